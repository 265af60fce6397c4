"""Load a city's layers from its spec, project them to the local UTM zone, and find the area they cover.

Everything downstream (rasterizing, metrics) works on a :class:`CityLayers`: an OSMnx street graph and one
GeoDataFrame per feature layer, all in one projected metric CRS.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import osmnx as ox
import pandas as pd
import shapely
from pyproj import CRS

from citygen.core.bands import LAYERS
from citygen.core.errors import EmptyAreaError, SourceError
from citygen.data import layers as L
from citygen.data.convert import is_overpass_json, overpass_to_osm, vector_to_osm
from citygen.data.osmfile import is_osm_file, read_osm_file, split_layers
from citygen.data.raw import RawSource
from citygen.data.samples import check_file
from citygen.data.spec import CitySpec, FileSource, parse_city

log = logging.getLogger(__name__)
GRAPHML_SUFFIXES = (".graphml", ".graphml.gz")
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".geojson.gz", ".json.gz", ".parquet")


@dataclass
class CityLayers:
    """A city's vector layers in a projected metric CRS."""

    city_id: str
    crs: CRS
    graph: nx.MultiDiGraph | None
    features: dict[str, gpd.GeoDataFrame]
    extent: shapely.Polygon
    present: dict[str, bool]
    sources: list[dict[str, object]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)  # "load" (read/download), "project"

    @property
    def area_km2(self) -> float:
        return float(self.extent.area) / 1e6


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_city(spec: CitySpec | str) -> CityLayers:
    """Load, project and bound a city. ``spec`` may be a :class:`CitySpec` or a sample id."""
    if isinstance(spec, str):
        spec = parse_city({"id": spec, "sample": spec})
    start = time.perf_counter()
    if spec.files:
        raws = [_load_file(source, spec) for source in spec.files]
    else:
        from citygen.data.online import download  # imports requests machinery only when needed

        raws = [download(spec)]
    loaded = time.perf_counter()
    city = _assemble(spec, raws)
    city.timings_s = {"load": loaded - start, "project": time.perf_counter() - loaded}
    return city


def _load_file(source: FileSource, spec: CitySpec) -> RawSource:
    path = Path(source.path)
    if source.origin is not None:
        check_file(path, sha256=None, origin=source.origin)
    if not path.is_file():
        raise SourceError(
            f"file not found: {path}",
            "check the `files` entry of the city spec (paths are relative to the config file)",
        )
    digest = sha256_file(path)
    check_file(path, sha256=source.sha256, origin=source.origin, actual_sha256=digest)
    wanted = tuple(layer for layer in (source.layers or LAYERS) if layer in spec.layers)
    record: dict[str, object] = {
        "path": str(path),
        "sha256": digest,
        "bytes": path.stat().st_size,
        "layers": list(wanted),
    }
    name = path.name.lower()
    if name.endswith(GRAPHML_SUFFIXES):
        if "streets" not in wanted:
            raise SourceError(
                f"{path.name} is a street graph but the spec takes {list(wanted)} from it",
                "list `streets` in the file's layers",
            )
        try:
            graph = ox.load_graphml(path)
        except Exception as exc:  # GraphML parsing raises many types
            raise SourceError(
                f"cannot read {path.name} as GraphML: {exc}",
                "pass a GraphML file saved by osmnx.save_graphml",
            ) from exc
        return RawSource(graph=graph, features={}, layers=("streets",), record=record)
    if is_osm_file(path):
        return _from_osm_file(path, path, source, spec, wanted, record)
    if is_overpass_json(path):
        with tempfile.TemporaryDirectory(prefix="citygen-overpass-") as tmp:
            converted = Path(tmp) / "overpass.osm"
            overpass_to_osm(path, converted)
            return _from_osm_file(converted, path, source, spec, wanted, record)
    if name.endswith(VECTOR_SUFFIXES):
        frame = _read_frame(path)
        if "streets" in wanted and frame.geom_type.isin(["LineString", "MultiLineString"]).any():
            # street lines (an edge table, decoded vector tiles): through an OSM file to an OSMnx graph
            with tempfile.TemporaryDirectory(prefix="citygen-lines-") as tmp:
                converted = Path(tmp) / "lines.osm"
                vector_to_osm(frame, converted, tag_columns=L.FEATURE_KEYS, clip=spec.clip)
                return _from_osm_file(converted, path, source, spec, wanted, record)
        features = _read_vector(path, wanted, frame=frame, clip=spec.clip)
        # A vector file vouches for the layers it was declared for, or else for those found in it.
        provided = wanted if source.layers is not None else tuple(features)
        provided = tuple(layer for layer in provided if layer != "streets")  # polygons and points hold no graph
        return RawSource(graph=None, features=features, layers=provided, record=record)
    raise SourceError(
        f"unsupported file type: {path.name}",
        "use .osm, .osm.bz2, .osm.gz, .osm.pbf, .graphml(.gz), .geojson, .gpkg or .parquet",
    )


def _from_osm_file(
    path: Path,
    original: Path,
    source: FileSource,
    spec: CitySpec,
    wanted: tuple[str, ...],
    record: dict[str, object],
) -> RawSource:
    extract = read_osm_file(path, network_type=spec.network_type, layers=set(wanted), clip=spec.clip)
    if "streets" in wanted and extract.graph is None and (source.layers is not None and "streets" in source.layers):
        raise SourceError(
            f"{original.name} holds no streets (no highway ways of network type {spec.network_type!r})",
            "take only other layers from it (`layers: [buildings, ...]`), or use a file with a street network",
        )
    if source.layers is not None:
        provided = wanted
    else:
        # What the file holds decides: a file without building footprints is a filtered extract (streets
        # only, for instance), so its feature layers are absent, not zero.
        found = {"streets"} if extract.graph is not None else set()
        if "buildings" in extract.features or ("buildings" not in wanted and extract.features):
            found |= set(wanted) - {"streets"}
        provided = tuple(layer for layer in wanted if layer in found)
    if not provided:
        raise SourceError(
            f"{original.name} holds none of the layers {list(wanted)}",
            "check that the file covers the area (and the clip box) and holds highway ways or building footprints",
        )
    return RawSource(graph=extract.graph, features=extract.features, layers=provided, record=record)


def _read_frame(path: Path) -> gpd.GeoDataFrame:
    try:
        if path.name.endswith(".parquet"):
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(f"/vsigzip/{path}" if path.name.lower().endswith(".gz") else path)
    except Exception as exc:  # pyogrio raises DataSourceError and friends; pyarrow ArrowInvalid
        raise SourceError(
            f"cannot read {path.name}: {exc}", "check that the file is complete GeoJSON, GeoPackage or GeoParquet"
        ) from exc
    if gdf.crs is None or (len(gdf) and gdf.crs.is_geographic and not _lonlat_range(gdf)):
        raise SourceError(
            f"{path.name} has no CRS, or coordinates that are not longitude/latitude (bounds {[round(v) for v in gdf.total_bounds]})",
            "write the CRS into the file (e.g. with geopandas: gdf.set_crs('EPSG:32633').to_file(...)); GeoJSON "
            "without a `crs` member is read as EPSG:4326 degrees",
        )
    return gdf


def _read_vector(
    path: Path,
    wanted: tuple[str, ...],
    *,
    frame: gpd.GeoDataFrame | None = None,
    clip: tuple[float, float, float, float] | None = None,
) -> dict[str, gpd.GeoDataFrame]:
    gdf = _read_frame(path) if frame is None else frame
    if clip is not None:
        gdf = gdf[gdf.intersects(gpd.GeoSeries([shapely.box(*clip)], crs=4326).to_crs(gdf.crs).iloc[0])]
    feature_layers = [layer for layer in wanted if layer != "streets"]
    tag_columns = [key for key in L.FEATURE_KEYS if key in gdf.columns]
    if len(feature_layers) == 1 and not tag_columns:
        gdf = gdf.assign(layers=[[feature_layers[0]]] * len(gdf))  # untagged file given for one layer
    else:
        records = gdf[tag_columns].to_dict("records")
        gdf = gdf.assign(
            layers=[
                [name for name in L.feature_layers(_clean(tags), is_point=kind == "Point") if name in feature_layers]
                for tags, kind in zip(records, gdf.geom_type, strict=True)
            ]
        )
        gdf = gdf[gdf["layers"].map(len) > 0]
    return split_layers(gdf)


def _clean(tags: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in tags.items() if v is not None and not (isinstance(v, float) and np.isnan(v))}


def _lonlat_bounds(raw: RawSource) -> list[tuple[float, float, float, float]]:
    bounds = []
    if raw.graph is not None and raw.graph.number_of_nodes():
        nodes = ox.graph_to_gdfs(raw.graph, edges=False)
        bounds.append(tuple(nodes.to_crs(4326).total_bounds))
    for gdf in raw.features.values():
        if len(gdf):
            bounds.append(tuple(gdf.to_crs(4326).total_bounds))
    return bounds


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The UTM zone CRS for a point (WGS84 datum)."""
    return CRS(gpd.GeoSeries([shapely.Point(lon, lat)], crs=4326).estimate_utm_crs())


def _assemble(spec: CitySpec, raws: list[RawSource]) -> CityLayers:
    all_bounds = [b for raw in raws for b in _lonlat_bounds(raw)]
    for raw in raws:
        if raw.extent_lonlat is not None:
            all_bounds.append(tuple(raw.extent_lonlat.bounds))
    if not all_bounds:
        raise EmptyAreaError(
            f"city {spec.id!r}: the sources hold no usable data for layers {list(spec.layers)}",
            "check that the file covers the area and holds the requested layers (for example highway ways for streets)",
        )
    west, south = np.min([b[0] for b in all_bounds]), np.min([b[1] for b in all_bounds])
    east, north = np.max([b[2] for b in all_bounds]), np.max([b[3] for b in all_bounds])
    crs = utm_crs_for((west + east) / 2, (south + north) / 2)

    graph = None
    features: dict[str, list[gpd.GeoDataFrame]] = {}
    extent: shapely.Geometry | None = None
    for raw in raws:
        hulls = []
        if raw.graph is not None and raw.graph.number_of_nodes():
            projected = ox.project_graph(raw.graph, to_crs=crs)
            graph = projected if graph is None else nx.compose(graph, projected)
            xy = np.array([(d["x"], d["y"]) for _, d in projected.nodes(data=True)])
            hulls.append(shapely.convex_hull(shapely.multipoints(xy)))
        for name, gdf in raw.features.items():
            gdf = gdf.to_crs(crs)
            features.setdefault(name, []).append(gdf)
            hulls.append(shapely.convex_hull(shapely.union_all(shapely.envelope(gdf.geometry.values))))
        if raw.extent_lonlat is not None:
            source_extent = gpd.GeoSeries([raw.extent_lonlat], crs=4326).to_crs(crs).iloc[0]
        elif hulls:
            # The area a file covers: the convex hull of everything in it (a street graph fetched
            # around a point or inside a place polygon does not fill its bounding box).
            source_extent = shapely.convex_hull(shapely.union_all(hulls))
        else:
            continue  # a source with nothing in it constrains nothing
        extent = source_extent if extent is None else extent.intersection(source_extent)
    if extent is not None and spec.clip is not None:
        extent = extent.intersection(gpd.GeoSeries([shapely.box(*spec.clip)], crs=4326).to_crs(crs).iloc[0])
    if extent is None or extent.is_empty or extent.area <= 0:
        raise EmptyAreaError(
            f"city {spec.id!r}: the sources do not overlap (or cover zero area)",
            "give files that cover the same area, or build them as separate cities",
        )
    if not isinstance(extent, shapely.Polygon) or extent.area <= 0:
        raise EmptyAreaError(
            f"city {spec.id!r}: the data covers no area (a single point or line)",
            "give sources that cover an area, or a bbox / point with a distance",
        )
    merged = {
        name: _without_duplicates(gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs))
        for name, frames in features.items()
    }
    provided = {layer for raw in raws for layer in raw.layers}
    present = {layer: layer in provided and layer in spec.layers for layer in LAYERS}
    if present["streets"] and graph is None:
        log.warning("city %s: no streets found in the sources", spec.id)
    return CityLayers(
        city_id=spec.id,
        crs=crs,
        graph=graph,
        features=merged,
        extent=extent,
        present=present,
        sources=[raw.record for raw in raws],
    )


def _lonlat_range(frame: gpd.GeoDataFrame) -> bool:
    west, south, east, north = frame.total_bounds
    return bool(-180.5 <= west <= east <= 180.5 and -90.5 <= south <= north <= 90.5)


def _without_duplicates(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per OSM object: the same file given twice, or two extracts that share objects, must not count
    a building twice. Rows without an OSM id are kept unless their geometry repeats exactly."""
    if frame.empty:
        return frame
    if {"osm_type", "osm_id"} <= set(frame.columns):
        known = frame["osm_id"].notna()
        keys = frame["osm_type"].astype(str) + ":" + frame["osm_id"].astype(str)
        duplicated = known & keys.duplicated()
    else:
        duplicated = pd.Series(False, index=frame.index)
    geometry = pd.Series(shapely.to_wkb(frame.geometry.values), index=frame.index)
    duplicated |= ~frame.get("osm_id", pd.Series(index=frame.index, dtype=object)).notna() & geometry.duplicated()
    return frame[~duplicated].reset_index(drop=True)


def undirected_edges(graph: nx.MultiDiGraph) -> gpd.GeoDataFrame:
    """Edges with geometry, each street once (reciprocal directed edges collapse to one row)."""
    edges = ox.graph_to_gdfs(graph, nodes=False, fill_edge_geometry=True)
    normalized = shapely.to_wkb(shapely.normalize(edges.geometry.values))
    return edges[~pd.Series(normalized).duplicated().to_numpy()]


def street_surfaces(graph: nx.MultiDiGraph | None) -> tuple[gpd.GeoSeries, gpd.GeoSeries]:
    """Street and path surfaces: undirected centre lines buffered by half their width.

    Widths come from the `width` tag, else `lanes` x 3.25 m, else the class default
    (:func:`citygen.data.layers.street_width_m`). Buffering is vectorised in shapely.
    Returns (streets, paths).
    """
    if graph is None or graph.number_of_edges() == 0:
        empty = gpd.GeoSeries([], crs=None if graph is None else graph.graph.get("crs"))
        return empty, empty
    edges = undirected_edges(graph)
    column = {
        name: edges[name].tolist() if name in edges else [None] * len(edges) for name in ("highway", "width", "lanes")
    }
    widths = np.array(
        [
            L.street_width_m(highway=h, width=w, lanes=n)
            for h, w, n in zip(column["highway"], column["width"], column["lanes"], strict=True)
        ]
    )
    is_path = np.array([L.is_path(h) for h in column["highway"]], dtype=bool)
    buffered = shapely.buffer(edges.geometry.values, widths / 2.0, quad_segs=4)
    return gpd.GeoSeries(buffered[~is_path], crs=edges.crs), gpd.GeoSeries(buffered[is_path], crs=edges.crs)
