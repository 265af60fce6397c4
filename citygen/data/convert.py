"""Turn other OpenStreetMap-derived formats into OSM files, so one pyosmium reader serves them all.

- Overpass API JSON responses (``.json`` / ``.json.gz``: the ``elements`` list of nodes, ways and relations,
  with ``out body`` node elements or ``out geom`` inline geometry).
- Street-line tables: GeoParquet edge tables (OSMnx ``graph_to_gdfs`` edges, e.g. neatnet's
  ``*_original.parquet``) and line GeoJSON with a ``highway`` column. Lines become ways; vertices at the same
  coordinate become one node, so streets that meet in the source meet in the graph.
- Building polygons (any vector file) become closed ways or multipolygon relations with their tags.

The result is written with ``osmium.SimpleWriter`` (nodes first, then ways, then relations), the order
pyosmium's location index needs.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely
from osmium.osm import mutable

from citygen.core.errors import SourceError

# Coordinates are rounded to 1e-7 degrees (1 cm), OSM's own precision, before nodes are shared.
_PRECISION = 7
# Ids of nodes made up here: above any real OSM id (about 1.3e10 in 2026), and positive because pyosmium's
# node location index takes no negative ids.
_SYNTHETIC_ID = 1 << 50


def is_overpass_json(path: Path) -> bool:
    """True for a JSON response of the Overpass API (a top-level object with an ``elements`` list)."""
    name = path.name.lower()
    if not name.endswith((".json", ".json.gz")):
        return False
    try:
        with _open_text(path) as handle:
            head = handle.read(4096)
    except (OSError, EOFError, UnicodeDecodeError):
        return False
    return '"elements"' in head or ('"version"' in head and '"osm3s"' in head)


def _open_text(path: Path) -> IO[str]:
    return (
        gzip.open(path, "rt", encoding="utf-8") if path.name.lower().endswith(".gz") else open(path, encoding="utf-8")
    )


class _NodeTable:
    """Node ids for coordinates: real OSM ids where known, else synthetic ids shared by equal coordinates."""

    def __init__(self) -> None:
        self.locations: dict[int, tuple[float, float]] = {}
        self._by_coordinate: dict[tuple[float, float], int] = {}

    def add(self, node_id: int, lon: float, lat: float) -> int:
        self.locations.setdefault(node_id, (lon, lat))
        self._by_coordinate.setdefault((round(lon, _PRECISION), round(lat, _PRECISION)), node_id)
        return node_id

    def at(self, lon: float, lat: float) -> int:
        key = (round(lon, _PRECISION), round(lat, _PRECISION))
        found = self._by_coordinate.get(key)
        if found is None:
            found = _SYNTHETIC_ID + len(self._by_coordinate)
            self._by_coordinate[key] = found
            self.locations[found] = key
        return found


def _write(
    out: Path,
    nodes: Mapping[int, tuple[float, float]],
    ways: Iterable[tuple[int, list[int], dict[str, str]]],
    relations: Iterable[tuple[int, list[tuple[str, int, str]], dict[str, str]]] = (),
) -> None:
    writer = osmium.SimpleWriter(str(out))
    try:
        for node_id in sorted(nodes):
            writer.add_node(mutable.Node(id=node_id, location=nodes[node_id], version=1))
        for way_id, refs, tags in ways:
            writer.add_way(mutable.Way(id=way_id, nodes=refs, tags=tags, version=1))
        for rel_id, members, tags in relations:
            writer.add_relation(mutable.Relation(id=rel_id, members=members, tags=tags, version=1))
    finally:
        writer.close()


def _tags(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def overpass_to_osm(path: Path, out: Path) -> None:
    """Write the elements of an Overpass JSON response as an OSM file (``out``: ``.osm`` or ``.osm.pbf``)."""
    try:
        with _open_text(path) as handle:
            data = json.load(handle)
        elements = data["elements"]
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SourceError(
            f"cannot read {path.name} as an Overpass API JSON response: {exc}",
            "pass the complete response (a JSON object with an `elements` list); re-download it if it is truncated",
        ) from exc
    nodes = _NodeTable()
    ways: dict[int, tuple[int, list[int], dict[str, str]]] = {}
    relations = []
    next_way = _SYNTHETIC_ID

    def way_from_geometry(
        way_id: int | None, refs: list[int] | None, geometry: list[dict[str, float]]
    ) -> tuple[int, list[int]]:
        nonlocal next_way
        if refs is not None and len(refs) == len(geometry):
            ids = [nodes.add(int(r), float(g["lon"]), float(g["lat"])) for r, g in zip(refs, geometry, strict=True)]
        else:
            ids = [nodes.at(float(g["lon"]), float(g["lat"])) for g in geometry if g]
        if way_id is None:
            way_id, next_way = next_way, next_way + 1
        return way_id, ids

    for element in elements:
        kind = element.get("type")
        if kind == "node" and "lat" in element:
            nodes.add(int(element["id"]), float(element["lon"]), float(element["lat"]))
    for element in elements:
        kind = element.get("type")
        if kind == "way":
            if "geometry" in element:
                way_id, refs = way_from_geometry(int(element["id"]), element.get("nodes"), element["geometry"])
            else:
                way_id, refs = int(element["id"]), [int(r) for r in element.get("nodes", [])]
            ways[way_id] = (way_id, refs, _tags(element.get("tags")))
        elif kind == "relation":
            members = []
            for member in element.get("members", []):
                mtype, ref, role = member.get("type"), int(member.get("ref", 0)), str(member.get("role", ""))
                if mtype == "way" and "geometry" in member and ref not in ways:
                    way_id, refs = way_from_geometry(ref, None, member["geometry"])
                    ways[way_id] = (way_id, refs, {})
                if mtype in ("node", "way", "relation"):
                    members.append((mtype[0], ref, role))
            relations.append((int(element["id"]), members, _tags(element.get("tags"))))
    if not ways and not nodes.locations:
        raise SourceError(f"{path.name}: the Overpass response holds no elements", "check the query that produced it")
    _write(out, nodes.locations, ways.values(), relations)


# Mapbox Streets / generalised road classes -> OSM highway values (for vector tiles decoded to GeoJSON).
ROAD_CLASS_HIGHWAY = {
    "motorway": "motorway",
    "motorway_link": "motorway_link",
    "trunk": "trunk",
    "trunk_link": "trunk_link",
    "primary": "primary",
    "primary_link": "primary_link",
    "secondary": "secondary",
    "secondary_link": "secondary_link",
    "tertiary": "tertiary",
    "tertiary_link": "tertiary_link",
    "link": "primary_link",
    "street": "residential",
    "street_limited": "residential",
    "residential": "residential",
    "service": "service",
    "track": "track",
    "path": "footway",
    "pedestrian": "pedestrian",
    "non-primary": "residential",
    "unclassified": "unclassified",
    "living_street": "living_street",
    "footway": "footway",
    "cycleway": "cycleway",
    "steps": "steps",
}


def highway_values(frame: pd.DataFrame) -> pd.Series | None:
    """The OSM ``highway`` value of each row: the ``highway`` column, else a road class mapped to it."""
    if "highway" in frame.columns:
        return frame["highway"].map(_first_highway)
    for column in ("class", "hw_class"):
        if column in frame.columns:
            return frame[column].map(lambda v: ROAD_CLASS_HIGHWAY.get(str(v)) if v is not None else None)
    return None


def _first_highway(value: object) -> str | None:
    if isinstance(value, (list, tuple, np.ndarray)):
        value = value[0] if len(value) else None
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def vector_to_osm(
    frame: gpd.GeoDataFrame, out: Path, *, tag_columns: Iterable[str] = (), clip: tuple[float, ...] | None = None
) -> dict[str, int]:
    """Write street lines (rows with a highway value) and polygons (with their tag columns) as an OSM file.

    ``frame`` may be in any CRS; it is reprojected to WGS84. ``clip`` ([west, south, east, north] in degrees)
    keeps only what intersects that box. Returns the counts of street ways and areas written.
    """
    if frame.crs is None:
        raise SourceError("a vector file without a CRS cannot be placed", "write the CRS into the file")
    frame = frame.to_crs(4326)
    if clip is not None:
        frame = frame[frame.intersects(shapely.box(*clip))]
    highway = highway_values(frame)
    lines = frame.geom_type.isin(["LineString", "MultiLineString"]).to_numpy()
    polygons = frame.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    nodes = _NodeTable()
    ways: list[tuple[int, list[int], dict[str, str]]] = []
    relations: list[tuple[int, list[tuple[str, int, str]], dict[str, str]]] = []
    next_id = 1
    if highway is not None:
        keep = lines & highway.notna().to_numpy()
        for geometry, value in zip(frame.geometry.values[keep], highway.to_numpy()[keep], strict=True):
            for part in shapely.get_parts(geometry):
                coords = shapely.get_coordinates(part)
                refs = [nodes.at(float(x), float(y)) for x, y in coords]
                refs = [r for i, r in enumerate(refs) if i == 0 or r != refs[i - 1]]
                if len(refs) >= 2:
                    ways.append((next_id, refs, {"highway": value}))
                    next_id += 1
    n_streets = len(ways)
    columns = [c for c in tag_columns if c in frame.columns]
    for geometry, record in zip(
        frame.geometry.values[polygons], frame.loc[polygons, columns].to_dict("records"), strict=True
    ):
        tags = {k: str(v) for k, v in record.items() if v is not None and not (isinstance(v, float) and np.isnan(v))}
        parts = [p for p in shapely.get_parts(geometry) if not p.is_empty]
        if len(parts) == 1 and not parts[0].interiors:
            ways.append((next_id, _ring(nodes, parts[0].exterior), tags))
            next_id += 1
            continue
        members = []
        for part in parts:
            for role, ring in (("outer", part.exterior), *(("inner", r) for r in part.interiors)):
                ways.append((next_id, _ring(nodes, ring), {}))
                members.append(("w", next_id, role))
                next_id += 1
        relations.append((next_id, members, {**tags, "type": "multipolygon"}))
        next_id += 1
    _write(out, nodes.locations, ways, relations)
    return {"streets": n_streets, "areas": len(ways) - n_streets}


def _ring(nodes: _NodeTable, ring: Any) -> list[int]:
    refs = [nodes.at(float(x), float(y)) for x, y in shapely.get_coordinates(ring)]
    refs = [r for i, r in enumerate(refs) if i == 0 or r != refs[i - 1]]
    if refs[0] != refs[-1]:
        refs.append(refs[0])
    return refs
