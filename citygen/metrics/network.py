"""Street-network metrics from an OSMnx graph (vector side).

Follows ``osmnx.stats.basic_stats`` (OSMnx 2.1) for counts, lengths, streets per node and circuity,
consolidates intersections within 10 m as in Boeing's global indicators, and computes orientation
entropy / order (Boeing 2019: 36 bins, undirected graph, one unweighted straight-line bearing per edge
and its reciprocal) and street blocks (faces of the planar street layout).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import networkx as nx
import numpy as np
import osmnx as ox
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from citygen.core.errors import SourceError
from citygen.data.layers import PATH_CLASSES
from citygen.metrics._common import (
    MetricSet,
    bearing_histogram,
    entropy_from_counts,
    orientation_order,
)
from citygen.metrics.skeleton import (
    CUT_END_M,
    MIN_FRAGMENT_M,
    SPUR_LENGTH_M,
    StreetGraph,
    consolidate_junctions,
    prune_spurs,
)

log = logging.getLogger(__name__)

CLEAN_INTERSECTION_TOLERANCE_M = 10.0
# Faces of the street layout smaller than this are slivers between carriageways or in ramps, not blocks.
MIN_BLOCK_AREA_M2 = 400.0
CELL_ROAD_BUFFER_M = 15.0
MIN_CELL_AREA_M2 = 5000.0
MAJOR_ROADS = ("motorway", "trunk", "primary", "secondary")
TERTIARY_AND_UP = (*MAJOR_ROADS, "tertiary")
# The classes the street network leaves out: the ones the raster puts in the paths band, not the streets band
# (one definition, citygen.data.layers; tracks are streets on both sides).
NON_STREET_HIGHWAYS = tuple(sorted(PATH_CLASSES))

NETWORK_UNITS: dict[str, str] = {
    "node_count": "count",
    "edge_count": "count",
    "k_avg": "edges per node",
    "streets_per_node_avg": "streets per node",
    "intersection_count": "count",
    "intersection_count_raw": "count",
    "intersection_density_km2": "per km2",
    "node_density_km2": "per km2",
    "street_length_total_m": "m",
    "street_length_avg_m": "m",
    "street_segment_count": "count",
    "street_density_km_km2": "km/km2",
    "edge_length_total_m": "m",
    "edge_density_km_km2": "km/km2",
    "link_node_ratio": "ratio",
    "deadend_count": "count",
    "prop_deadend": "share",
    "prop_3way": "share",
    "prop_4way": "share",
    "prop_deadend_raw": "share",
    "prop_3way_raw": "share",
    "prop_4way_raw": "share",
    "circuity_avg": "ratio",
    "self_loop_proportion": "share",
    "orientation_entropy": "nats",
    "orientation_order": "0-1",
    "orientation_entropy_raw": "nats",
    "orientation_order_raw": "0-1",
    "block_count": "count",
    "block_density_km2": "per km2",
    "block_area_median_m2": "m2",
    "block_perimeter_median_m": "m",
    "area_km2": "km2",
}


ORIENTATION_NOTE = "bearings weighted by edge length (vector and raster alike)"
ORIENTATION_RAW_NOTE = "osmnx.bearing.orientation_entropy: every edge counts once, unweighted"


def ensure_projected(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Return the graph in a projected (metre) CRS, projecting a geographic graph to its UTM zone."""
    crs = graph.graph.get("crs")
    if crs is None:
        raise SourceError(
            "the street graph has no CRS (graph.graph['crs'] is missing), so lengths in metres are unknown",
            "load it with osmnx (which records the CRS) or set graph.graph['crs'] before computing metrics",
        )
    if pyproj.CRS.from_user_input(crs).is_geographic:
        log.info("projecting the street graph from %s to UTM for metric computations", crs)
        graph = ox.project_graph(graph)
    return with_street_counts(graph)


def within_extent(graph: nx.MultiDiGraph, extent: BaseGeometry | None) -> nx.MultiDiGraph:
    """The part of a projected graph whose nodes lie in ``extent`` (same CRS), as ``osmnx.graph_from_polygon``
    takes it (``truncate_by_edge=False``; street counts kept from the whole graph). Densities divide by the
    extent's area, so a file reaching beyond the extent (a sample cut from a larger network) must be cut too."""
    if extent is None or extent.is_empty or graph.number_of_nodes() == 0:
        return graph
    xy = np.array([(d["x"], d["y"]) for _, d in graph.nodes(data=True)], dtype=float)
    if shapely.contains_xy(shapely.buffer(extent, 1e-6), xy[:, 0], xy[:, 1]).all():
        return graph
    try:
        return ox.truncate.truncate_graph_polygon(graph, extent)
    except ValueError:  # no node inside the extent
        empty = nx.MultiDiGraph()
        empty.graph.update(graph.graph)
        return empty


def with_street_counts(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Make sure every node has osmnx's ``street_count`` (graphs built from GeoDataFrames or PBF may not)."""
    if all("street_count" in d for _, d in graph.nodes(data=True)):
        return graph
    graph = graph.copy()
    nx.set_node_attributes(graph, ox.stats.count_streets_per_node(graph), "street_count")
    return graph


def graph_crs(graph: nx.MultiDiGraph) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(graph.graph["crs"])


def _highways(data: dict) -> list[str]:
    hw = data.get("highway")
    if hw is None:
        return []
    return [str(h) for h in hw] if isinstance(hw, list) else [str(hw)]


def street_subgraph(graph: nx.MultiDiGraph, classes: Iterable[str] | None = None) -> nx.MultiDiGraph:
    """Edges whose ``highway`` is in ``classes`` (links such as ``primary_link`` count as their class).

    With ``classes=None``: every edge except footways, cycleways and other non-street paths.
    """
    wanted = None if classes is None else set(classes)
    keep = []
    for u, v, k, data in graph.edges(keys=True, data=True):
        hws = [h.removesuffix("_link") for h in _highways(data)]
        if wanted is None:
            ok = not hws or any(h not in NON_STREET_HIGHWAYS for h in hws)
        else:
            ok = any(h in wanted for h in hws)
        if ok:
            keep.append((u, v, k))
    sub = graph.edge_subgraph(keep).copy()
    sub.graph = dict(graph.graph)
    return sub


def edge_lines(graph: nx.MultiDiGraph | nx.MultiGraph) -> np.ndarray:
    """One shapely LineString per edge, straight where the edge has no ``geometry``."""
    xs = nx.get_node_attributes(graph, "x")
    ys = nx.get_node_attributes(graph, "y")
    lines = []
    for u, v, data in graph.edges(data=True):
        geom = data.get("geometry")
        if geom is None:
            geom = shapely.LineString([(xs[u], ys[u]), (xs[v], ys[v])])
        lines.append(geom)
    return np.array(lines, dtype=object)


def convergence_deg(crs: pyproj.CRS, x: float, y: float) -> float:
    """Meridian convergence (degrees) at a projected point: true bearing = grid bearing + convergence."""
    try:
        lon, lat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
        factors = pyproj.Proj(crs).get_factors(lon, lat)
        return float(factors.meridian_convergence)
    except Exception:  # an unusual CRS: fall back to grid bearings (error below a few degrees)
        return 0.0


def orientation_histogram(*, graph: nx.MultiDiGraph, weighted: bool = True) -> np.ndarray:
    """36-bin histogram of true-north bearings, each undirected edge counted both ways.

    ``weighted``: each edge weighs its length, so the histogram is the share of street length facing each
    direction, however the streets are cut into edges (a raster's skeleton cuts them differently from OSM, with
    short connectors across wide junctions). Unweighted it is ``osmnx.bearing.orientation_entropy``'s count.
    """
    G = ensure_projected(graph)
    Gu = ox.convert.to_undirected(G)
    if Gu.number_of_edges() == 0:
        return np.zeros(36)
    xs = nx.get_node_attributes(Gu, "x")
    ys = nx.get_node_attributes(Gu, "y")
    rows = [(xs[u], ys[u], xs[v], ys[v], d.get("length", 0.0)) for u, v, d in Gu.edges(data=True) if u != v]
    if not rows:
        return np.zeros(36)
    pts = np.array(rows, dtype=float)
    # Bearings on the sphere (what osmnx does on the unprojected graph) keep the reference values exact.
    to_ll = pyproj.Transformer.from_crs(graph_crs(G), 4326, always_xy=True)
    lon1, lat1 = to_ll.transform(pts[:, 0], pts[:, 1])
    lon2, lat2 = to_ll.transform(pts[:, 2], pts[:, 3])
    b = ox.bearing.calculate_bearing(lat1, lon1, lat2, lon2)
    b = np.concatenate([b, (b - 180.0) % 360.0])
    return bearing_histogram(b, np.tile(pts[:, 4], 2) if weighted else None)


def block_polygons(*, graph: nx.MultiDiGraph, min_area_m2: float = MIN_BLOCK_AREA_M2) -> np.ndarray:
    """Street blocks: faces of the noded street layout (``shapely.polygonize``), slivers dropped."""
    G = ensure_projected(graph)
    if G.number_of_edges() == 0:
        return np.array([], dtype=object)
    noded = shapely.union_all(edge_lines(ox.convert.to_undirected(G)))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    return faces[shapely.area(faces) >= min_area_m2]


def default_area(graph: nx.MultiDiGraph) -> tuple[float, str]:
    """Area (m2) to divide by when the data extent is unknown: the convex hull of the nodes."""
    xy = np.array([(d["x"], d["y"]) for _, d in graph.nodes(data=True)], dtype=float)
    hull = shapely.convex_hull(shapely.multipoints(xy))
    return float(hull.area), "area = convex hull of the street nodes (no data extent was given)"


def junction_counts(
    graph: nx.MultiDiGraph, *, tolerance_m: float, extent: BaseGeometry | None = None
) -> dict[int, int]:
    """Numbers of dead ends (1), of 3- and 4-way junctions (3, 4) and of all junctions and dead ends (0): the
    raster street graph's definition (:func:`citygen.metrics.raster.junction_census`) with its code. Stubs shorter than the
    skeleton's spur limit are pruned (:func:`~citygen.metrics.skeleton.prune_spurs`), junctions of three or more
    streets merged within ``tolerance_m`` (:func:`~citygen.metrics.skeleton.consolidate_junctions`); with an
    ``extent``, only what lies in it counts and ends within ``CUT_END_M`` of its edge are cuts, not dead ends."""
    from citygen.metrics.walkability import graph_arrays

    edges, length, xy, _ = graph_arrays(graph)
    kept = prune_spurs(edges, length, len(xy), SPUR_LENGTH_M, MIN_FRAGMENT_M)
    street_graph = StreetGraph(xy, edges[kept], length[kept], resolution_m=0.0, shape=(0, 0))
    labels, streets = consolidate_junctions(street_graph, tolerance_m=tolerance_m)
    tip = street_graph.degrees() == 1
    if extent is not None and len(xy):
        inside = shapely.contains_xy(extent, xy[:, 0], xy[:, 1])
        tip &= inside & (shapely.distance(extent.boundary, shapely.points(xy)) > CUT_END_M)
        counted = np.zeros(len(streets), bool)
        counted[labels[inside & (labels >= 0)]] = True
        streets = streets[counted]
    tips = int(tip.sum())
    return {0: len(streets) + tips, 1: tips, 3: int((streets == 3).sum()), 4: int((streets == 4).sum())}


def length_within(graph: nx.MultiDiGraph, extent: BaseGeometry) -> float:
    """Length (m) of the undirected edges inside ``extent``, edges crossing its edge cut there (what a raster of
    the extent holds); equal to osmnx's ``street_length_total`` when the whole graph lies inside."""
    Gu = ox.convert.to_undirected(graph)
    if Gu.number_of_edges() == 0:
        return 0.0
    edges = ox.convert.graph_to_gdfs(Gu, nodes=False, fill_edge_geometry=True)
    geoms = edges.geometry.to_numpy()
    full = shapely.length(geoms)
    inside = shapely.length(shapely.intersection(geoms, extent))
    share = np.divide(inside, full, out=np.ones_like(full), where=full > 0)
    return float((edges["length"].to_numpy(dtype=float) * share).sum())


def network_metrics(
    *,
    graph: nx.MultiDiGraph | None,
    extent: BaseGeometry | None = None,
    area_m2: float | None = None,
    clean_tolerance_m: float = CLEAN_INTERSECTION_TOLERANCE_M,
) -> MetricSet:
    """Street-network metrics of a (simplified) OSMnx graph.

    ``extent`` (a polygon in the graph's projected CRS) or ``area_m2`` gives the area for densities;
    without either, the convex hull of the nodes is used (and noted). Geographic graphs are projected
    to UTM first. An empty graph yields NaN for every metric, with the reason.
    """
    out = MetricSet()
    keys = list(NETWORK_UNITS)
    if graph is None or graph.number_of_nodes() == 0 or graph.number_of_edges() == 0:
        out.missing(keys, NETWORK_UNITS, "the street graph is missing or has no edges")
        return out
    whole = ensure_projected(graph)
    G = within_extent(whole, extent)
    if G.number_of_edges() == 0:
        out.missing(keys, NETWORK_UNITS, "no street of the graph lies in the extent")
        return out
    if area_m2 is None and extent is not None:
        area_m2 = float(extent.area)
    if area_m2 is None:
        area_m2, note = default_area(G)
        out.notes["area_km2"] = note
    if not area_m2 > 0:
        raise SourceError(f"the area for densities must be positive, got {area_m2} m2")
    area_km2 = area_m2 / 1e6
    out.set("area_km2", area_km2, "km2", out.notes.get("area_km2"))

    stats = ox.stats.basic_stats(G, area=area_m2, clean_int_tol=clean_tolerance_m)
    props = stats["streets_per_node_proportions"]
    Gu = ox.convert.to_undirected(G)
    u = NETWORK_UNITS
    out.set("node_count", stats["n"], u["node_count"])
    out.set("edge_count", stats["m"], u["edge_count"])
    out.set("k_avg", stats["k_avg"], u["k_avg"])
    out.set("streets_per_node_avg", stats["streets_per_node_avg"], u["streets_per_node_avg"])
    out.set("intersection_count", stats["clean_intersection_count"], u["intersection_count"])
    out.set("intersection_count_raw", stats["intersection_count"], u["intersection_count_raw"])
    out.set("intersection_density_km2", stats["clean_intersection_density_km"], u["intersection_density_km2"])
    out.set("node_density_km2", stats["node_density_km"], u["node_density_km2"])
    street_length = stats["street_length_total"]
    if G is not whole:  # the graph reaches beyond the extent: count the length inside it, as a raster does
        street_length = length_within(whole, extent)
        for key in ("street_length_total_m", "street_density_km_km2"):
            out.notes[key] = "edges crossing the extent's edge cut there (nodes outside it dropped as osmnx does)"
    out.set("street_length_total_m", street_length, "m", out.notes.get("street_length_total_m"))
    out.set("street_length_avg_m", stats["street_length_avg"], "m")
    out.set("street_segment_count", stats["street_segment_count"], "count")
    out.set("street_density_km_km2", street_length / area_m2 * 1000.0, "km/km2", out.notes.get("street_density_km_km2"))
    out.set("edge_length_total_m", stats["edge_length_total"], "m")
    out.set("edge_density_km_km2", stats["edge_density_km"] / 1000.0, "km/km2")
    out.set("link_node_ratio", Gu.number_of_edges() / Gu.number_of_nodes(), "ratio")
    # junction shares as the raster side reports them: junctions merged within the tolerance, over junctions
    # plus dead ends; OSMnx's shares of raw graph nodes stay under *_raw for reference checks
    merged = junction_counts(whole, tolerance_m=clean_tolerance_m, extent=extent)
    note = (
        f"junctions merged within {clean_tolerance_m:g} m, over merged junctions and dead ends (stubs under "
        f"{SPUR_LENGTH_M:g} m pruned, streets cut by the extent's edge are not dead ends)"
    )
    out.set("deadend_count", merged[1], "count", note)
    for k, name in ((1, "prop_deadend"), (3, "prop_3way"), (4, "prop_4way")):
        out.set(name, merged[k] / merged[0] if merged[0] else 0.0, "share", note)
        out.set(f"{name}_raw", props.get(k, 0.0), "share", "osmnx basic_stats: share of all graph nodes")
    out.set("circuity_avg", stats["circuity_avg"], "ratio")
    out.set("self_loop_proportion", stats["self_loop_proportion"], "share")

    for suffix, weighted, note in (("", True, ORIENTATION_NOTE), ("_raw", False, ORIENTATION_RAW_NOTE)):
        entropy = entropy_from_counts(orientation_histogram(graph=G, weighted=weighted))
        out.set(f"orientation_entropy{suffix}", entropy, "nats", note)
        out.set(f"orientation_order{suffix}", orientation_order(entropy), "0-1", note)

    blocks = block_polygons(graph=G)
    out.update(block_stats(areas=shapely.area(blocks), perimeters=shapely.length(blocks), area_km2=area_km2))
    return out


def block_stats(*, areas: np.ndarray, perimeters: np.ndarray, area_km2: float) -> MetricSet:
    """Block count, density and median size from block areas (m2) and perimeters (m)."""
    out = MetricSet()
    out.set("block_count", len(areas), "count")
    out.set("block_density_km2", len(areas) / area_km2 if area_km2 > 0 else None, "per km2")
    if len(areas) == 0:
        out.missing(
            ["block_area_median_m2", "block_perimeter_median_m"],
            NETWORK_UNITS,
            "no street block is closed on all sides in this area",
        )
    else:
        out.set("block_area_median_m2", float(np.median(areas)), "m2")
        out.set("block_perimeter_median_m", float(np.median(perimeters)), "m")
    return out


def cell_diameters(
    *, graph: nx.MultiDiGraph, classes: Iterable[str], road_buffer_m: float = CELL_ROAD_BUFFER_M
) -> np.ndarray:
    """Equal-area diameters (m) of the cells enclosed by roads of the given classes.

    Road centre lines are buffered by ``road_buffer_m`` and merged, so dual carriageways and ramps
    make one road instead of sliver cells; the cells are the holes of that road surface, measured
    back to the centre lines (diameter + 2 x buffer). Cells under 0.5 ha are left out.
    """
    sub = street_subgraph(ensure_projected(graph), classes)
    if sub.number_of_edges() == 0:
        return np.array([])
    roads = shapely.union_all(shapely.buffer(edge_lines(ox.convert.to_undirected(sub)), road_buffer_m))
    holes = [shapely.Polygon(ring) for poly in shapely.get_parts(roads) for ring in poly.interiors]
    areas = np.array([h.area for h in holes])
    areas = areas[areas >= MIN_CELL_AREA_M2]
    return 2.0 * np.sqrt(areas / math.pi) + 2.0 * road_buffer_m
