"""A Pattern Language (Alexander et al. 1977): rules with a number, checked against measured values.

Each rule reads one measured value from the metric table (vector or raster), compares it with the
book's threshold and says whether it holds. Where the value could not be measured the rule says
"not measurable: <reason>" and ``holds`` is None. The operationalisations (which cells, which share
counts as "most") are citygen's and are stated in each rule's text and in docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely

from citygen.metrics import density as D
from citygen.metrics._common import MetricSet
from citygen.metrics.network import (
    MAJOR_ROADS,
    TERTIARY_AND_UP,
    _highways,
    cell_diameters,
    edge_lines,
    ensure_projected,
)
from citygen.metrics.walkability import network_distance_to_targets

PATH_HIGHWAYS = frozenset({"footway", "cycleway", "path", "pedestrian", "steps", "bridleway", "corridor"})


@dataclass(frozen=True)
class Rule:
    number: int
    name: str
    rule: str
    metric: str
    threshold: str
    test: Callable[[float], bool]


@dataclass
class PatternResult:
    number: int
    name: str
    rule: str
    metric: str
    value: float | None
    threshold: str
    holds: bool | None
    note: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _t_share(v: float) -> bool:
    return v >= 0.5


RULES: tuple[Rule, ...] = (
    Rule(
        11,
        "Local transport areas",
        "cells between major roads (motorway to secondary) are 1.6-3.2 km across (median equal-area diameter)",
        "major_road_cell_diameter_m",
        "1600-3200 m",
        lambda v: 1600 <= v <= 3200,
    ),
    Rule(
        14,
        "Identifiable neighborhood",
        "cells bounded by tertiary or larger roads are at most about 275 m across (median equal-area diameter)",
        "neighborhood_cell_diameter_m",
        "<= 275 m",
        lambda v: v <= 275,
    ),
    Rule(
        21,
        "Four-story limit",
        "most buildings have at most four storeys",
        "levels_le4_share",
        ">= 0.5",
        lambda v: v >= 0.5,
    ),
    Rule(
        22,
        "Nine per cent parking",
        "parking takes at most 9 % of the land in every 4 ha cell (worst cell)",
        "parking_share_max_4ha",
        "<= 0.09",
        lambda v: v <= 0.09,
    ),
    Rule(
        29,
        "Density rings",
        "density (floor area ratio) falls from the inner to the middle to the outer of "
        "three rings around the centre (value: inner / outer)",
        "density_ring_ratio",
        "inner > middle > outer",
        lambda v: v > 1.0,
    ),
    Rule(
        30,
        "Activity nodes",
        "activity nodes (3+ amenities within 50 m) lie about 270 m apart (median nearest-neighbour spacing)",
        "activity_node_spacing_m",
        "135-405 m",
        lambda v: 135 <= v <= 405,
    ),
    Rule(
        50,
        "T junctions",
        "three-way junctions outnumber four-way ones (value: 3-way / (3-way + 4-way))",
        "t_junction_share",
        ">= 0.5",
        _t_share,
    ),
    Rule(
        52,
        "Network of paths and cars",
        "a separate path network (footways, cycleways, paths) at least half as long as the street network",
        "path_street_length_ratio",
        ">= 0.5",
        lambda v: v >= 0.5,
    ),
    Rule(
        56,
        "Bike paths and racks",
        "a bike path within about 30 m of every building (share of buildings)",
        "cycleway_access_30m",
        ">= 0.9",
        lambda v: v >= 0.9,
    ),
    Rule(
        60,
        "Accessible green",
        "a green of at least 0.56 ha and 46 m across within 230 m walk of every building (share of buildings)",
        "green_access_230m",
        ">= 0.9",
        lambda v: v >= 0.9,
    ),
    Rule(
        61,
        "Small public squares",
        "public squares are at most about 21 m across (widest square)",
        "square_width_max_m",
        "<= 21 m",
        lambda v: v <= 21,
    ),
    Rule(
        89,
        "Corner grocery",
        "a shop within about 250 m walk (3 blocks) of most buildings (share of buildings)",
        "grocery_access_250m",
        ">= 0.8",
        lambda v: v >= 0.8,
    ),
    Rule(
        96,
        "Number of stories",
        "buildings cover at most half of their land (share of built 1 ha cells with coverage <= 50 %)",
        "coverage_cells_le50_share",
        ">= 0.8",
        lambda v: v >= 0.8,
    ),
)

PATTERN_UNITS = {
    "major_road_cell_diameter_m": "m",
    "neighborhood_cell_diameter_m": "m",
    "density_ring_ratio": "ratio",
    "t_junction_share": "share",
    "path_street_length_ratio": "ratio",
    "cycleway_access_30m": "share of buildings",
    "green_access_230m": "share of buildings",
    "square_width_max_m": "m",
    "grocery_access_250m": "share of buildings",
}


def derived_pattern_inputs(values: Mapping[str, float], notes: Mapping[str, str]) -> MetricSet:
    """Inputs computed from other metrics (the same for vector and raster)."""
    out = MetricSet()
    p3, p4 = values.get("prop_3way", math.nan), values.get("prop_4way", math.nan)
    if p3 + p4 > 0:
        out.set("t_junction_share", p3 / (p3 + p4), "share")
    else:
        out.missing("t_junction_share", "share", "no 3-way or 4-way junctions")
    inner, mid, outer = (values.get(f"density_ring_{k}", math.nan) for k in ("inner", "middle", "outer"))
    if all(math.isfinite(v) for v in (inner, mid, outer)) and outer > 0:
        # The rule needs a monotonic fall; report inner/outer, and 0 when the profile is not monotonic.
        ratio = inner / outer if inner > mid > outer else min(inner / outer, 1.0)
        out.set("density_ring_ratio", ratio, "ratio")
    else:
        reason = "needs building density in all three rings"
        if "density_ring_inner" in notes:
            reason = notes["density_ring_inner"].removeprefix("not measurable: ")
        out.missing("density_ring_ratio", "ratio", reason)
    return out


def evaluate_patterns(values: Mapping[str, float], notes: Mapping[str, str]) -> list[PatternResult]:
    """Check every rule against measured values; NaN values give "not measurable" with the reason."""
    results = []
    for r in RULES:
        v = values.get(r.metric, math.nan)
        if v is None or not math.isfinite(v):
            reason = notes.get(r.metric, "not measurable: the value was not computed for this source")
            if not reason.startswith("not measurable"):
                reason = f"not measurable: {reason}"
            results.append(PatternResult(r.number, r.name, r.rule, r.metric, None, r.threshold, None, reason))
        else:
            results.append(
                PatternResult(
                    r.number,
                    r.name,
                    r.rule,
                    r.metric,
                    float(v),
                    r.threshold,
                    bool(r.test(v)),
                    notes.get(r.metric, ""),
                )
            )
    return results


# ------------------------------------------------------------------------ vector inputs needing the graph
def _path_edges(graph: nx.MultiDiGraph, kinds: frozenset[str]) -> list[tuple]:
    return [(u, v, k) for u, v, k, d in graph.edges(keys=True, data=True) if any(h in kinds for h in _highways(d))]


def _undirected_length(graph: nx.MultiDiGraph, edges: list[tuple]) -> float:
    seen, total = set(), 0.0
    for u, v, k in edges:
        key = (min(u, v), max(u, v), k)
        if key not in seen:
            seen.add(key)
            total += float(graph.edges[u, v, k].get("length", 0.0))
    return total


def vector_pattern_inputs(
    *,
    graph: nx.MultiDiGraph | None,
    street_graph_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    features: Mapping[str, gpd.GeoDataFrame],
    present: Mapping[str, bool],
    network_type: str | None = None,
) -> MetricSet:
    """Vector measurements for patterns 11, 14, 52, 56, 60, 61 and 89 (those needing the graph)."""
    out = MetricSet()
    u = PATTERN_UNITS
    buildings = features.get("buildings") if present.get("buildings") else None
    if graph is None or graph.number_of_edges() == 0:
        keys = [
            "major_road_cell_diameter_m",
            "neighborhood_cell_diameter_m",
            "path_street_length_ratio",
            "cycleway_access_30m",
            "green_access_230m",
            "grocery_access_250m",
        ]
        out.missing(keys, u, "no street network")
    else:
        G = ensure_projected(graph)
        for key, classes in (
            ("major_road_cell_diameter_m", MAJOR_ROADS),
            ("neighborhood_cell_diameter_m", TERTIARY_AND_UP),
        ):
            d = cell_diameters(graph=G, classes=classes)
            if len(d):
                out.set(key, float(np.median(d)), "m", note=f"{len(d)} cells")
            else:
                out.missing(key, "m", "no cell is closed on all sides by such roads in this area")
        paths = _path_edges(G, PATH_HIGHWAYS)
        cycle = _path_edges(G, frozenset({"cycleway"}))
        drive_only = not paths or network_type == "drive"
        if drive_only:
            reason = "the street graph holds no footways or cycleways (a drive network)"
            out.missing(["path_street_length_ratio", "cycleway_access_30m"], u, reason)
        else:
            p_len = _undirected_length(G, paths)
            path_set = set(paths)
            s_len = _undirected_length(G, [e for e in G.edges(keys=True) if e not in path_set])
            out.set("path_street_length_ratio", p_len / s_len if s_len > 0 else None, "ratio")
            if buildings is None or len(buildings) == 0:
                out.missing("cycleway_access_30m", u["cycleway_access_30m"], "the data has no buildings")
            else:
                lines = edge_lines(G.edge_subgraph(cycle)) if cycle else np.array([], dtype=object)
                if len(lines) == 0:
                    out.set("cycleway_access_30m", 0.0, u["cycleway_access_30m"], note="no cycleway in the graph")
                else:
                    tree = shapely.STRtree(lines)
                    b = buildings.geometry.values
                    near = np.zeros(len(b), bool)
                    near[np.unique(tree.query(b, predicate="dwithin", distance=30.0)[0])] = True
                    out.set("cycleway_access_30m", near.mean(), u["cycleway_access_30m"])
        _access_inputs(out, street_graph_arrays, features, present)
    squares = features.get("squares")
    if squares is None or len(squares) == 0:
        out.missing("square_width_max_m", "m", "the data has no public-square layer (place=square)")
    else:
        widths = [2 * _inradius(g) for g in squares.geometry.values]
        out.set("square_width_max_m", max(widths), "m")
    return out


def _inradius(geom: shapely.Geometry) -> float:
    """Radius of the largest circle inside a polygon (shapely's maximum inscribed circle)."""
    line = shapely.maximum_inscribed_circle(geom)
    return float(shapely.length(line))


def qualifying_green_points(green: gpd.GeoDataFrame, spacing_m: float = 20.0) -> np.ndarray:
    """Points every ``spacing_m`` along the edges of greens of at least 0.56 ha and 46 m across."""
    parts = shapely.get_parts(shapely.union_all(shapely.make_valid(green.geometry.values)))
    parts = parts[shapely.get_type_id(parts) == 3]
    big = parts[shapely.area(parts) >= D.GREEN_MIN_AREA_M2]
    big = big[~shapely.is_empty(shapely.buffer(big, -D.GREEN_MIN_WIDTH_M / 2.0))]
    if len(big) == 0:
        return np.zeros((0, 2))
    return shapely.get_coordinates(shapely.segmentize(shapely.boundary(big), spacing_m))


def _access_inputs(
    out: MetricSet,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    features: Mapping[str, gpd.GeoDataFrame],
    present: Mapping[str, bool],
) -> None:
    u = PATTERN_UNITS
    buildings = features.get("buildings") if present.get("buildings") else None
    if buildings is None or len(buildings) == 0 or arrays is None:
        out.missing(["green_access_230m", "grocery_access_250m"], u, "the data has no buildings")
        return
    edges, length, xy = arrays
    b_xy = shapely.get_coordinates(buildings.geometry.representative_point().values)
    green = features.get("green") if present.get("green") else None
    if green is None:
        out.missing("green_access_230m", u["green_access_230m"], "the data has no green layer")
    else:
        targets = qualifying_green_points(green) if len(green) else np.zeros((0, 2))
        d = network_distance_to_targets(
            edges=edges,
            length_m=length,
            node_xy=xy,
            origins_xy=b_xy,
            targets_xy=targets,
            limit_m=D.GREEN_ACCESS_M,
        )
        note = None if len(targets) else "no green of at least 0.56 ha and 46 m across"
        out.set("green_access_230m", float(np.isfinite(d).mean()), u["green_access_230m"], note=note)
    amen = features.get("amenities") if present.get("amenities") else None
    if amen is None or "amenity_class" not in amen:
        out.missing("grocery_access_250m", u["grocery_access_250m"], "the data has no classified amenities")
    else:
        shops = amen[amen["amenity_class"].astype(str).isin(["shop", "marketplace"])]
        t_xy = shapely.get_coordinates(shops.geometry.representative_point().values)
        d = network_distance_to_targets(
            edges=edges, length_m=length, node_xy=xy, origins_xy=b_xy, targets_xy=t_xy, limit_m=250.0
        )
        out.set("grocery_access_250m", float(np.isfinite(d).mean()), u["grocery_access_250m"])


RASTER_NOT_MEASURABLE = {
    "major_road_cell_diameter_m": "the streets band carries no road class",
    "neighborhood_cell_diameter_m": "the streets band carries no road class",
    "cycleway_access_30m": "the paths band does not separate cycleways from footways",
    "square_width_max_m": "no band marks public squares",
    "grocery_access_250m": "the amenities band carries no amenity class",
}
