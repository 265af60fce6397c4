"""Metrics from a citygen raster alone (a built city, a tile, or a generated layout).

Shares come straight from the band means over valid pixels. The street network is recovered from the
``streets`` band (:mod:`citygen.metrics.skeleton`) and measured with the same definitions as the vector
graph; blocks are the connected non-street regions enclosed by streets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyproj
import scipy.ndimage as ndi
from affine import Affine

from citygen.core.errors import SourceError
from citygen.metrics import density as D
from citygen.metrics._common import (
    MetricSet,
    bearing_histogram,
    entropy_from_counts,
    orientation_order,
    undirected_bearings,
)
from citygen.metrics.network import (
    MIN_BLOCK_AREA_M2,
    NETWORK_UNITS,
    ORIENTATION_NOTE,
    block_stats,
    convergence_deg,
)
from citygen.metrics.skeleton import StreetGraph, consolidate_junctions, cut_ends, recover_street_graph
from citygen.metrics.walkability import network_distance_to_targets, shed_metrics

JUNCTION_TOLERANCE_M = 10.0
# Above this street share a tile is one paved surface (a plaza, a car park drawn as street): no centre lines.
ALL_STREETS_SHARE = 0.9
SHARE_BANDS = {
    "building_coverage": "buildings",
    "floor_area_ratio": "floor_area",
    "green_share": "green",
    "water_share": "water",
    "parking_share": "parking",
    "street_share": "streets",
    "path_share": "paths",
}
# Network metrics a raster cannot give: they need one-way directions or road classes.
NOT_FROM_RASTER = {
    "k_avg": "needs edge directions (one-way streets), which a raster does not hold",
    "edge_count": "needs edge directions (one-way streets), which a raster does not hold",
    "edge_length_total_m": "needs edge directions (one-way streets), which a raster does not hold",
    "edge_density_km_km2": "needs edge directions (one-way streets), which a raster does not hold",
    "intersection_count_raw": "the raster street graph is consolidated by construction",
    "prop_deadend_raw": "the raster street graph is consolidated by construction",
    "prop_3way_raw": "the raster street graph is consolidated by construction",
    "prop_4way_raw": "the raster street graph is consolidated by construction",
    "orientation_entropy_raw": "the skeleton cuts streets into edges unlike OSM ways: only the length-weighted "
    "orientation compares",
    "orientation_order_raw": "the skeleton cuts streets into edges unlike OSM ways: only the length-weighted "
    "orientation compares",
}


def clean_bands(
    bands: Mapping[str, np.ndarray], present: Mapping[str, bool] | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, str]]:
    """Float arrays, the valid mask, and notes. Non-finite pixels are made invalid (and noted);
    a band flagged absent or missing from ``bands`` is left out."""
    notes: dict[str, str] = {}
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in bands.items()}
    shapes = {a.shape for a in arrays.values()}
    if not arrays:
        raise SourceError("the raster has no bands", "pass a citygen raster or a dict of named bands")
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise SourceError(f"bands must be 2-D arrays of one shape, got shapes {sorted(shapes)}")
    shape = next(iter(shapes))
    valid = np.ones(shape, bool) if "valid" not in arrays else arrays["valid"] > 0.5
    present = present or {}
    out = {}
    for name, arr in arrays.items():
        if name != "valid" and present.get(name, True) is False:
            continue
        finite = np.isfinite(arr)
        if not finite.all():
            bad = int((~finite & valid).sum())
            if bad:
                notes[f"band_{name}"] = f"{bad} non-finite pixels in band {name!r} were treated as outside the data"
            valid &= finite
            arr = np.where(finite, arr, 0.0).astype(np.float32)
        out[name] = arr
    return out, valid, notes


def coverage_metrics(*, bands: Mapping[str, np.ndarray], valid: np.ndarray, resolution_m: float) -> MetricSet:
    """Band shares over valid pixels (coverage ratio, FAR, green/water/parking/street/path shares)."""
    out = MetricSet()
    n_valid = int(valid.sum())
    area_km2 = n_valid * resolution_m**2 / 1e6
    out.set(
        "area_km2",
        area_km2 if n_valid else None,
        "km2",
        None if n_valid else "not measurable: no valid pixel",
    )
    for key, band in SHARE_BANDS.items():
        unit = "m2/m2" if key == "floor_area_ratio" else "share"
        if band not in bands:
            out.missing(key, unit, f"the raster has no {band!r} band (or it is flagged absent)")
        elif n_valid == 0:
            out.missing(key, unit, "no valid pixel")
        else:
            out.set(key, float(bands[band][valid].mean(dtype=np.float64)), unit)
    if "amenities" in bands and n_valid:
        out.set(
            "amenity_density_km2",
            float(bands["amenities"][valid].sum(dtype=np.float64)) / area_km2,
            "per km2",
        )
    else:
        out.missing("amenity_density_km2", "per km2", "no amenities band or no valid pixel")
    out.missing(
        ["buildings_per_ha", "levels_known_share", "amenity_count"],
        {"buildings_per_ha": "per ha", "levels_known_share": "share", "amenity_count": "count"},
        "a raster does not separate individual buildings or amenities",
    )
    return out


def _bearings_true(graph: StreetGraph, crs: pyproj.CRS | None, transform: Affine | None) -> np.ndarray:
    e = graph.edges[graph.edges[:, 0] != graph.edges[:, 1]]
    d = graph.node_xy[e[:, 1]] - graph.node_xy[e[:, 0]]
    b = undirected_bearings(d[:, 0], d[:, 1])
    if crs is not None and transform is not None and crs.is_projected:
        cx, cy = transform * (graph.shape[1] / 2.0, graph.shape[0] / 2.0)
        b = (b + convergence_deg(crs, cx, cy)) % 360.0
    return b


def junction_census(
    graph: StreetGraph, valid: np.ndarray | None = None, *, tolerance_m: float = JUNCTION_TOLERANCE_M
) -> tuple[np.ndarray, int]:
    """The street count of every junction cluster (3+ streets merged within ``tolerance_m``) and the number of
    dead ends, ends where the data cuts a street not counted (:func:`citygen.metrics.skeleton.cut_ends`): the
    nodes the junction shares divide among, as :func:`citygen.metrics.network.junction_counts` takes them."""
    _, streets = consolidate_junctions(graph, tolerance_m=tolerance_m)
    tips = graph.degrees() == 1
    if tips.any():
        tips &= ~cut_ends(graph, valid)
    return streets, int(tips.sum())


def street_graph_metrics(
    *,
    graph: StreetGraph,
    area_km2: float,
    crs: pyproj.CRS | None = None,
    transform: Affine | None = None,
    valid: np.ndarray | None = None,
    tolerance_m: float = JUNCTION_TOLERANCE_M,
) -> MetricSet:
    """The vector network metrics, measured on a street graph recovered from a raster (``valid``: the data area,
    so streets cut by its edge do not count as dead ends)."""
    out = MetricSet()
    if graph.n_edges == 0:
        note = "no street centre line in the area (streets band empty or below the threshold)"
        for key in (
            "street_length_total_m",
            "street_density_km_km2",
            "intersection_count",
            "intersection_density_km2",
        ):
            out.set(key, 0.0, NETWORK_UNITS[key], note=note)
        keys = [k for k in NETWORK_UNITS if not k.startswith("block") and k != "area_km2" and k not in out.values]
        out.missing(keys, NETWORK_UNITS, "no streets in the area")
        return out
    streets, tips = junction_census(graph, valid, tolerance_m=tolerance_m)
    n_clusters = len(streets)
    n_nodes = n_clusters + tips
    length_total = float(graph.length_m.sum())
    e = graph.edges
    loops = e[:, 0] == e[:, 1]
    straight = np.hypot(*(graph.node_xy[e[~loops, 0]] - graph.node_xy[e[~loops, 1]]).T)
    u = NETWORK_UNITS
    out.set("node_count", n_nodes, u["node_count"])
    out.set("intersection_count", int((streets >= 2).sum()), u["intersection_count"])
    out.set("intersection_density_km2", (streets >= 2).sum() / area_km2, u["intersection_density_km2"])
    out.set("node_density_km2", n_nodes / area_km2, u["node_density_km2"])
    out.set("street_length_total_m", length_total, "m")
    out.set("street_segment_count", graph.n_edges, "count")
    out.set("street_length_avg_m", length_total / graph.n_edges, "m")
    out.set("street_density_km_km2", length_total / 1000.0 / area_km2, "km/km2")
    out.set(
        "streets_per_node_avg",
        (streets.sum() + tips) / n_nodes if n_nodes else None,
        u["streets_per_node_avg"],
    )
    out.set("link_node_ratio", graph.n_edges / n_nodes if n_nodes else None, "ratio")
    out.set("deadend_count", tips, "count")
    out.set("prop_deadend", tips / n_nodes if n_nodes else None, "share")
    out.set("prop_3way", (streets == 3).sum() / n_nodes if n_nodes else None, "share")
    out.set("prop_4way", (streets == 4).sum() / n_nodes if n_nodes else None, "share")
    out.set("circuity_avg", graph.length_m[~loops].sum() / straight.sum() if straight.sum() > 0 else None, "ratio")
    out.set("self_loop_proportion", loops.mean(), "share")
    entropy = entropy_from_counts(orientation_histogram_raster(graph, crs=crs, transform=transform))
    out.set("orientation_entropy", entropy, "nats", ORIENTATION_NOTE)
    out.set("orientation_order", orientation_order(entropy), "0-1", ORIENTATION_NOTE)
    for key, reason in NOT_FROM_RASTER.items():
        out.missing(key, NETWORK_UNITS[key], reason)
    return out


def orientation_histogram_raster(
    graph: StreetGraph, *, crs: pyproj.CRS | None = None, transform: Affine | None = None
) -> np.ndarray:
    """36-bin histogram of the street graph's bearings weighted by edge length, as the vector side's
    (:func:`citygen.metrics.network.orientation_histogram`): the short connectors the skeleton draws across
    wide junctions weigh what they measure."""
    loops = graph.edges[:, 0] == graph.edges[:, 1]
    return bearing_histogram(_bearings_true(graph, crs, transform), np.tile(graph.length_m[~loops], 2))


def closed_regions(mask: np.ndarray, valid: np.ndarray, resolution_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Areas (m2) and crack perimeters (m) of the 4-connected regions of ``mask`` that touch neither the edge of
    the array nor the area outside ``valid`` (no size limit)."""
    regions, n = ndi.label(mask)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    outside = ~valid
    outside[0, :] = outside[-1, :] = outside[:, 0] = outside[:, -1] = True
    touching = np.unique(regions[ndi.binary_dilation(outside) & (regions > 0)])
    sizes = np.bincount(regions.ravel(), minlength=n + 1).astype(float)
    # Perimeter: region pixel edges facing a different label (crack length).
    edge_counts = np.zeros(n + 1)
    for a, b in ((regions[:-1, :], regions[1:, :]), (regions[:, :-1], regions[:, 1:])):
        diff = a != b
        np.add.at(edge_counts, a[diff], 1)
        np.add.at(edge_counts, b[diff], 1)
    keep = np.ones(n + 1, bool)
    keep[0] = False
    keep[touching] = False
    return sizes[keep] * resolution_m**2, edge_counts[keep] * resolution_m


def block_metrics_raster(*, street_mask: np.ndarray, valid: np.ndarray, resolution_m: float) -> MetricSet:
    """Blocks: 4-connected non-street regions that do not touch the edge of the data."""
    area_km2 = valid.sum() * resolution_m**2 / 1e6
    if area_km2 == 0:
        return block_stats(areas=np.array([]), perimeters=np.array([]), area_km2=1e-12)
    areas, perimeters = closed_regions(~street_mask & valid, valid, resolution_m)
    big = areas >= MIN_BLOCK_AREA_M2
    return block_stats(areas=areas[big], perimeters=perimeters[big], area_km2=area_km2)


def _cell_points(mask_weight: np.ndarray, resolution_m: float, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Points (x, y in metres, as StreetGraph) of cells of size ``cell_m`` with their weight sums."""
    k = max(1, round(cell_m / resolution_m))
    h, w = mask_weight.shape
    hp, wp = -(-h // k) * k, -(-w // k) * k
    padded = np.zeros((hp, wp), np.float64)
    padded[:h, :w] = mask_weight
    sums = padded.reshape(hp // k, k, wp // k, k).sum(axis=(1, 3))
    rows, cols = np.nonzero(sums > 0)
    xy = np.stack([(cols + 0.5) * k * resolution_m, -(rows + 0.5) * k * resolution_m], axis=1)
    return xy, sums[rows, cols]


def green_access_raster(
    *, bands: Mapping[str, np.ndarray], valid: np.ndarray, resolution_m: float, graph: StreetGraph
) -> MetricSet:
    """Pattern 60 on a raster: share of building area within 230 m walk of a green >= 0.56 ha, 46 m across."""
    out = MetricSet()
    key = "green_access_230m"
    if "green" not in bands or "buildings" not in bands:
        out.missing(key, "share of buildings", "needs the green and buildings bands")
        return out
    if graph.n_edges == 0:
        out.missing(key, "share of buildings", "no street network recovered from the streets band")
        return out
    green = (bands["green"] > 0.5) & valid
    labels, n = ndi.label(green)
    big = np.zeros(n + 1, bool)
    if n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1) * resolution_m**2
        depth = ndi.distance_transform_edt(green) * resolution_m
        max_depth = np.zeros(n + 1)  # the deepest point of each region (ndi.maximum sorts every pixel: slower)
        np.maximum.at(max_depth, labels.ravel(), depth.ravel())
        big = (sizes >= D.GREEN_MIN_AREA_M2) & (np.asarray(max_depth) >= D.GREEN_MIN_WIDTH_M / 2.0)
        big[0] = False
    b_xy, b_w = _cell_points(np.where(valid, bands["buildings"], 0.0), resolution_m, 10.0)
    if b_w.sum() == 0:
        out.missing(key, "share of buildings", "no buildings in the area")
        return out
    g_xy, _ = _cell_points(big[labels].astype(float), resolution_m, 10.0)
    dist = network_distance_to_targets(
        edges=graph.edges,
        length_m=graph.length_m,
        node_xy=graph.node_xy,
        origins_xy=b_xy,
        targets_xy=g_xy,
        limit_m=D.GREEN_ACCESS_M,
    )
    out.set(key, float((b_w * np.isfinite(dist)).sum() / b_w.sum()), "share of buildings")
    return out


def raster_metrics(
    *,
    bands: Mapping[str, np.ndarray],
    resolution_m: float,
    present: Mapping[str, bool] | None = None,
    crs: pyproj.CRS | None = None,
    transform: Affine | None = None,
    tags: Mapping[str, str] | None = None,
    sheds: bool = True,
) -> tuple[MetricSet, StreetGraph]:
    """Every metric measurable from the bands, plus the recovered street graph (for plots)."""
    if not (isinstance(resolution_m, (int, float)) and math.isfinite(resolution_m) and resolution_m > 0):
        raise SourceError(f"resolution_m must be a positive number of metres, got {resolution_m!r}")
    if crs is not None and pyproj.CRS.from_user_input(crs).is_geographic:
        raise SourceError(
            "the raster is in a geographic CRS (degrees), so pixel sizes are not metres",
            "reproject it to a projected CRS (e.g. UTM) or rebuild it with citygen",
        )
    arrays, valid, notes = clean_bands(bands, present)
    out = coverage_metrics(bands=arrays, valid=valid, resolution_m=resolution_m)
    out.notes.update(notes)
    area_km2 = out.get("area_km2")
    if "streets" not in arrays:
        empty = StreetGraph(np.zeros((0, 2)), np.zeros((0, 2), np.int64), np.zeros(0), resolution_m, valid.shape)
        keys = [k for k in NETWORK_UNITS if k != "area_km2"]
        out.missing(keys, NETWORK_UNITS, "the raster has no streets band (or it is flagged absent)")
        graph = empty
    else:
        from citygen.metrics.skeleton import street_mask

        graph = recover_street_graph(arrays["streets"], resolution_m=resolution_m, valid=valid)
        if not math.isfinite(area_km2) or area_km2 <= 0:
            out.missing([k for k in NETWORK_UNITS if k != "area_km2"], NETWORK_UNITS, "no valid pixel")
        elif out.get("street_share") > ALL_STREETS_SHARE:
            reason = "the area is almost all street surface, so no street centre lines can be recovered"
            out.missing([k for k in NETWORK_UNITS if k != "area_km2"], NETWORK_UNITS, reason)
            graph = StreetGraph(np.zeros((0, 2)), np.zeros((0, 2), np.int64), np.zeros(0), resolution_m, valid.shape)
        else:
            out.update(street_graph_metrics(graph=graph, area_km2=area_km2, crs=crs, transform=transform, valid=valid))
            mask = street_mask(arrays["streets"], resolution_m=resolution_m, valid=valid)
            out.update(block_metrics_raster(street_mask=mask, valid=valid, resolution_m=resolution_m))
    if sheds:
        out.update(shed_metrics(edges=graph.edges, length_m=graph.length_m, node_xy=graph.node_xy))
    out.update(green_access_raster(bands=arrays, valid=valid, resolution_m=resolution_m, graph=graph))
    out.update(D.raster_pattern_inputs(bands=arrays, valid=valid, resolution_m=resolution_m, tags=tags or {}))
    return out, graph


def tile_targets(bands: Mapping[str, np.ndarray], *, resolution_m: float) -> dict[str, float]:
    """A few metrics of one tile, fast enough for thousands of tiles (NaN where not measurable).

    Returns ``building_coverage``, ``floor_area_ratio``, ``green_share``, ``street_share``, ``path_share``,
    ``street_density_km_km2``, ``intersection_density_km2``, ``four_way_share`` (junctions of four or more
    streets among those of three or more, both merged within 10 m), ``orientation_entropy`` and
    ``orientation_order``.
    """
    arrays, valid, _ = clean_bands(bands)
    nan = float("nan")
    n_valid = int(valid.sum())
    area_km2 = n_valid * resolution_m**2 / 1e6
    out: dict[str, float] = {}
    for key in ("building_coverage", "floor_area_ratio", "green_share", "street_share", "path_share"):
        band = SHARE_BANDS[key]
        out[key] = float(arrays[band][valid].mean(dtype=np.float64)) if band in arrays and n_valid else nan
    graph_keys = ("street_density_km_km2", "intersection_density_km2", "four_way_share", "orientation_entropy")
    out.update(dict.fromkeys((*graph_keys, "orientation_order"), nan))
    if "streets" not in arrays or n_valid == 0 or out["street_share"] > ALL_STREETS_SHARE:
        return out
    graph = recover_street_graph(arrays["streets"], resolution_m=resolution_m, valid=valid)
    out["street_density_km_km2"] = float(graph.length_m.sum()) / 1000.0 / area_km2
    if graph.n_edges == 0:
        out["intersection_density_km2"] = 0.0
        return out
    _, streets = consolidate_junctions(graph, tolerance_m=JUNCTION_TOLERANCE_M)
    out["intersection_density_km2"] = float((streets >= 2).sum()) / area_km2
    junctions = int((streets >= 3).sum())
    out["four_way_share"] = float((streets >= 4).sum()) / junctions if junctions else nan
    out["orientation_entropy"] = entropy_from_counts(orientation_histogram_raster(graph))
    out["orientation_order"] = orientation_order(out["orientation_entropy"])
    return out
