"""Read local OpenStreetMap extracts (`.osm`, `.osm.bz2`, `.osm.gz`, `.osm.pbf`) with pyosmium.

Streets go through OSMnx (`graph_from_xml`) so a local file yields the same graph as a download: the
highway ways of the chosen network type are written to a temporary OSM XML file first. Extracts cut
out of a larger file often reference nodes they do not contain; such ways are split into runs of
nodes that are present, instead of failing as `graph_from_xml` would on the raw file.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import networkx as nx
import osmium
import osmnx as ox
import pandas as pd
import shapely
from osmium.osm import mutable

from citygen.core.errors import SourceError
from citygen.data import layers as L

OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.gz", ".osm.pbf", ".pbf", ".xml")
_WAY_ID_STRIDE = 1000  # ids for the pieces of a split way: -(way_id * stride + k)


@dataclass
class OsmExtract:
    """What a local OSM file holds, in WGS84."""

    graph: nx.MultiDiGraph | None
    features: dict[str, gpd.GeoDataFrame]
    bounds: tuple[float, float, float, float] | None  # header bbox (lon/lat), when the file has one


def is_osm_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in OSM_SUFFIXES)


def header_bounds(path: Path) -> tuple[float, float, float, float] | None:
    reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
    try:
        box = reader.header().box()
    finally:
        reader.close()
    if not box.valid():
        return None
    return (box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat)


def read_osm_file(
    path: Path, *, network_type: str, layers: set[str], clip: tuple[float, float, float, float] | None = None
) -> OsmExtract:
    """Read the requested layers from an OSM file.

    Args:
        path: the extract.
        network_type: one of `citygen.data.layers.NETWORK_TYPES`; selects the highway ways.
        layers: citygen layer names to read (`streets`, `buildings`, `green`, ...).
        clip: [west, south, east, north] in degrees: keep only what lies in this box (streets are cut at
            its edge, features kept when they intersect it). None keeps everything.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"OSM file not found: {path}", "check the path in the city spec")
    try:
        bounds = header_bounds(path)
        try:
            graph, features = _read_layers(path, network_type, layers, clip)
        except RuntimeError as exc:
            if "out of order" not in str(exc):
                raise
            # some tools write objects unsorted; libosmium's area assembly needs them sorted
            with tempfile.TemporaryDirectory(prefix="citygen-sorted-") as tmp:
                graph, features = _read_layers(sorted_copy(path, Path(tmp)), network_type, layers, clip)
    except (RuntimeError, osmium.InvalidLocationError) as exc:
        raise SourceError(
            f"cannot read {path.name} as OpenStreetMap data: {exc}",
            "pass an .osm, .osm.bz2, .osm.gz or .osm.pbf file (re-download it if it is truncated)",
        ) from exc
    return OsmExtract(graph=graph, features=features, bounds=bounds)


def _read_layers(
    path: Path, network_type: str, layers: set[str], clip: tuple[float, float, float, float] | None
) -> tuple[nx.MultiDiGraph | None, dict[str, gpd.GeoDataFrame]]:
    graph = _read_streets(path, network_type, clip) if "streets" in layers else None
    feature_layers = layers - {"streets"}
    features = _read_features(path, feature_layers, clip) if feature_layers else {}
    return graph, features


def sorted_copy(path: Path, folder: Path) -> Path:
    """The file's nodes, ways and relations rewritten in id order (what OSM tools call a sorted file)."""
    nodes, ways, relations = [], [], []
    for obj in osmium.FileProcessor(str(path)):
        tags = dict(obj.tags)
        if isinstance(obj, osmium.osm.Node):
            if obj.location.valid():
                nodes.append(
                    mutable.Node(id=obj.id, location=(obj.location.lon, obj.location.lat), tags=tags, version=1)
                )
        elif isinstance(obj, osmium.osm.Way):
            ways.append(mutable.Way(id=obj.id, nodes=[n.ref for n in obj.nodes], tags=tags, version=1))
        elif isinstance(obj, osmium.osm.Relation):
            members = [(m.type, m.ref, m.role) for m in obj.members]
            relations.append(mutable.Relation(id=obj.id, members=members, tags=tags, version=1))
    out = folder / "sorted.osm.pbf"
    writer = osmium.SimpleWriter(str(out))
    try:
        for group in (nodes, ways, relations):
            for item in sorted(group, key=lambda o: o.id):
                writer.add(item)
    finally:
        writer.close()
    return out


def _inside(clip: tuple[float, float, float, float] | None, lon: float, lat: float) -> bool:
    return clip is None or (clip[0] <= lon <= clip[2] and clip[1] <= lat <= clip[3])


def _read_streets(
    path: Path, network_type: str, clip: tuple[float, float, float, float] | None = None
) -> nx.MultiDiGraph | None:
    nodes: dict[int, tuple[float, float]] = {}
    ways: list[tuple[int, list[int], dict[str, str]]] = []
    processor = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for way in processor:
        if not isinstance(way, osmium.osm.Way):
            continue
        tags = dict(way.tags)
        if not L.in_network(tags, network_type):
            continue
        runs: list[list[int]] = [[]]
        for ref in way.nodes:
            if ref.location.valid() and _inside(clip, ref.location.lon, ref.location.lat):
                nodes[ref.ref] = (ref.location.lon, ref.location.lat)
                runs[-1].append(ref.ref)
            elif runs[-1]:
                runs.append([])
        runs = [run for run in runs if len(run) >= 2]
        for k, run in enumerate(runs):
            way_id = way.id if len(runs) == 1 else -(way.id * _WAY_ID_STRIDE + k)
            ways.append((way_id, run, tags))
    if not ways:
        return None
    with tempfile.TemporaryDirectory(prefix="citygen-osm-") as tmp:
        xml_path = Path(tmp) / "streets.osm"
        writer = osmium.SimpleWriter(str(xml_path))
        try:
            for node_id in sorted(nodes):
                writer.add_node(mutable.Node(id=node_id, location=nodes[node_id], version=1))
            for way_id, run, tags in ways:
                writer.add_way(mutable.Way(id=way_id, nodes=run, tags=tags, version=1))
        finally:
            writer.close()
        return ox.graph_from_xml(xml_path, bidirectional=network_type == "walk", retain_all=True)


def _read_features(
    path: Path, wanted: set[str], clip: tuple[float, float, float, float] | None = None
) -> dict[str, gpd.GeoDataFrame]:
    factory = osmium.geom.WKBFactory()
    rows: list[dict[str, object]] = []
    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY | osmium.osm.AREA)
        .with_locations()
        .with_areas()
        .with_filter(osmium.filter.KeyFilter(*L.FEATURE_KEYS))
    )
    for obj in processor:
        if not isinstance(obj, (osmium.osm.Node, osmium.osm.Area)):
            continue  # ways are read for area assembly only
        is_point = isinstance(obj, osmium.osm.Node)
        tags = dict(obj.tags)
        layer_names = [name for name in L.feature_layers(tags, is_point=is_point) if name in wanted]
        if not layer_names:
            continue
        try:
            wkb = factory.create_point(obj) if isinstance(obj, osmium.osm.Node) else factory.create_multipolygon(obj)
        except (RuntimeError, osmium.InvalidLocationError):
            continue  # rings broken by the extract boundary
        if isinstance(obj, osmium.osm.Node):
            osm_id, osm_type = obj.id, "node"
        else:
            osm_id, osm_type = obj.orig_id(), "way" if obj.from_way() else "relation"
        rows.append(
            {
                "wkb": wkb,
                "layers": layer_names,
                "osm_type": osm_type,
                "osm_id": osm_id,
                **{k: v for k, v in tags.items() if k in L.FEATURE_KEYS},
            }
        )
    if not rows:
        return {}
    frame = pd.DataFrame(rows)
    geometry = shapely.from_wkb(frame.pop("wkb").to_numpy())  # pyosmium gives hex WKB
    gdf = gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")
    if clip is not None:
        gdf = gdf[gdf.intersects(shapely.box(*clip))]
    return split_layers(gdf)


def split_layers(gdf: gpd.GeoDataFrame) -> dict[str, gpd.GeoDataFrame]:
    """Turn a frame of tagged features with a `layers` list column into one frame per layer."""
    out: dict[str, gpd.GeoDataFrame] = {}
    exploded = gdf.explode("layers", ignore_index=True) if len(gdf) else gdf
    for name, group in exploded.groupby("layers"):
        group = group.drop(columns=["layers"])
        if name == "amenities":
            polygons = ~group.geometry.geom_type.isin(["Point"])
            group = group.copy()
            group.loc[polygons, "geometry"] = group.loc[polygons].geometry.representative_point()
            group["amenity_class"] = [L.amenity_class(row) for row in _tag_dicts(group)]
        else:
            group = group[group.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
            if name == "buildings":
                group = group.copy()
                group["levels"] = [L.levels_from_tags(row) for row in _tag_dicts(group)]
        out[str(name)] = gpd.GeoDataFrame(group.reset_index(drop=True), geometry="geometry", crs=gdf.crs)
    return {name: frame for name, frame in out.items() if len(frame)}


def _tag_dicts(frame: pd.DataFrame) -> list[dict[str, object]]:
    keys = [key for key in L.FEATURE_KEYS if key in frame.columns]
    records = frame[keys].to_dict("records")
    return [{k: v for k, v in record.items() if not (isinstance(v, float) and math.isnan(v))} for record in records]
