"""Density metrics (vector) and the cell, ring and cluster measurements behind several patterns.

Floor area: footprint area times storeys, where storeys come from the ``levels`` column (OSM
``building:levels``, else ``height`` / 3 m) and **untagged buildings count as one storey** (the same
rule as the ``floor_area`` band); ``levels_known_share`` says how many buildings were tagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from citygen.core.settings import DEFAULT_LEVELS
from citygen.metrics._common import MetricSet

# Pattern 60: a green of at least 0.56 ha and 46 m across within 230 m of every building.
GREEN_MIN_AREA_M2 = 5600.0
GREEN_MIN_WIDTH_M = 46.0
GREEN_ACCESS_M = 230.0
PARKING_CELL_M = 200.0  # Pattern 22: 4 ha cells
COVERAGE_CELL_M = 100.0  # Pattern 96: 1 ha cells
BUILT_CELL_MIN_COVERAGE = 0.05
ACTIVITY_LINK_M = 50.0  # Pattern 30: amenities within 50 m of each other form one node ...
ACTIVITY_MIN_POINTS = 3  # ... if there are at least three of them
MIN_LEVELS_KNOWN = 10
MIN_CELL_LAND_SHARE = 0.5

SHARE_LAYERS = {"green_share": "green", "water_share": "water", "parking_share": "parking"}


def _union_parts(gdf: gpd.GeoDataFrame | None, extent: shapely.Geometry) -> np.ndarray:
    """Non-overlapping polygon parts of a layer, clipped to the extent."""
    if gdf is None or len(gdf) == 0:
        return np.array([], dtype=object)
    geoms = gdf.geometry.values
    geoms = geoms[shapely.get_type_id(geoms) >= 3]  # polygons only
    if len(geoms) == 0:
        return np.array([], dtype=object)
    union = shapely.intersection(shapely.union_all(shapely.make_valid(geoms)), extent)
    parts = shapely.get_parts(union)
    return parts[shapely.get_type_id(parts) == 3]


def floor_area(geoms: np.ndarray, storeys: np.ndarray, extent: shapely.Geometry) -> float:
    """Floor area (m2) of buildings clipped to ``extent``, each location counted once at the highest storey count
    of the buildings over it (nested buildings, a building and its parts, a multipolygon whose outer way is tagged
    too): overlapping buildings are taken in order of storeys, each adding the area no taller one covered. Exact
    duplicates count once."""
    clipped = shapely.intersection(shapely.make_valid(np.asarray(geoms, dtype=object)), extent)
    keep = ~shapely.is_empty(clipped) & (shapely.area(clipped) > 0)
    clipped, storeys = clipped[keep], np.asarray(storeys, dtype=float)[keep]
    if len(clipped) == 0:
        return 0.0
    order = np.argsort(-storeys, kind="stable")  # tallest first
    clipped, storeys = clipped[order], storeys[order]
    _, first = np.unique(shapely.to_wkb(shapely.normalize(clipped)), return_index=True)
    first = np.sort(first)  # exact duplicates: the first (tallest) copy stays
    clipped, storeys = clipped[first], storeys[first]
    i, j = shapely.STRtree(clipped).query(clipped, predicate="intersects")
    pair = i < j
    i, j = i[pair], j[pair]
    overlapping = shapely.area(shapely.intersection(clipped[i], clipped[j])) > 1e-6
    i, j = i[overlapping], j[overlapping]
    n = len(clipped)
    _, group = csgraph.connected_components(sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    areas = shapely.area(clipped)
    single = np.bincount(group, minlength=group.max() + 1)[group] == 1
    total = float((areas[single] * storeys[single]).sum())
    for g in np.unique(group[~single]):
        covered = None
        for k in np.flatnonzero(group == g):  # tallest first (the order above)
            part = clipped[k] if covered is None else shapely.difference(clipped[k], covered)
            total += float(shapely.area(part)) * storeys[k]
            covered = clipped[k] if covered is None else shapely.union(covered, clipped[k])
    return total


def density_metrics(
    *, features: Mapping[str, gpd.GeoDataFrame], extent: shapely.Geometry, present: Mapping[str, bool]
) -> MetricSet:
    """Building coverage, floor area ratio, buildings per ha, green/water/parking shares."""
    out = MetricSet()
    area = float(extent.area)
    if not area > 0:
        raise ValueError("the extent has no area")
    out.set("area_km2", area / 1e6, "km2")
    bkeys = {
        "building_coverage": "share",
        "floor_area_ratio": "m2/m2",
        "buildings_per_ha": "per ha",
        "levels_known_share": "share",
        "mean_levels": "storeys",
    }
    buildings = features.get("buildings")
    if not present.get("buildings", False) or buildings is None:
        out.missing(bkeys, bkeys, "the data has no buildings layer")
    else:
        parts = _union_parts(buildings, extent)
        out.set("building_coverage", shapely.area(parts).sum() / area, "share")
        geoms = buildings.geometry.values
        inside = shapely.intersects(extent, shapely.point_on_surface(geoms))
        levels = buildings["levels"].to_numpy(float) if "levels" in buildings else np.full(len(buildings), np.nan)
        known = np.isfinite(levels) & (levels > 0)
        filled = np.where(known, levels, DEFAULT_LEVELS)
        covered = float(shapely.area(parts).sum())
        total_floor = floor_area(geoms, filled, extent)
        out.set(
            "floor_area_ratio",
            total_floor / area,
            "m2/m2",
            note="each location counted once, at the highest storey count of the buildings over it (storeys above "
            "building:min_level); buildings without levels or height count as one storey",
        )
        out.set("buildings_per_ha", inside.sum() / (area / 1e4), "per ha")
        n_in = int(inside.sum())
        out.set("levels_known_share", known[inside].mean() if n_in else None, "share")
        out.set(
            "mean_levels",
            total_floor / covered if covered > 0 else None,
            "storeys",
            note="floor area over the area under buildings, each location counted once (FAR / building coverage)",
        )
    for key, layer in SHARE_LAYERS.items():
        if not present.get(layer, False) or features.get(layer) is None:
            out.missing(key, "share", f"the data has no {layer} layer")
        else:
            out.set(key, shapely.area(_union_parts(features[layer], extent)).sum() / area, "share")
    return out


# ----------------------------------------------------------------------------- grid cells (vector)
def cell_shares(*, parts: np.ndarray, extent: shapely.Geometry, cell_m: float) -> np.ndarray:
    """Share of each square cell's land covered by ``parts`` (cells at least half inside the extent)."""
    minx, miny, maxx, maxy = extent.bounds
    xs = np.arange(minx, maxx, cell_m)
    ys = np.arange(miny, maxy, cell_m)
    gx, gy = np.meshgrid(xs, ys)
    boxes = shapely.box(gx.ravel(), gy.ravel(), gx.ravel() + cell_m, gy.ravel() + cell_m)
    land = shapely.area(shapely.intersection(boxes, extent))
    keep = land >= MIN_CELL_LAND_SHARE * cell_m * cell_m
    boxes, land = boxes[keep], land[keep]
    covered = np.zeros(len(boxes))
    if len(parts):
        tree = shapely.STRtree(parts)
        bi, pi = tree.query(boxes, predicate="intersects")
        np.add.at(covered, bi, shapely.area(shapely.intersection(boxes[bi], parts[pi])))
    return covered / land


def ring_values(*, parts: np.ndarray, weights: np.ndarray, extent: shapely.Geometry) -> tuple[float, float, float]:
    """Weighted coverage of three rings of equal thickness around the weighted centre of ``parts``.

    The rings reach the radius of the circle with the extent's area (Pattern 29, density rings).
    """
    if len(parts) == 0:
        return (float("nan"),) * 3
    cents = shapely.get_coordinates(shapely.centroid(parts))
    w = shapely.area(parts) * weights
    cx, cy = (cents * w[:, None]).sum(axis=0) / w.sum()
    radius = math.sqrt(extent.area / math.pi)
    centre = shapely.Point(cx, cy)
    vals = []
    for i in range(3):
        ring = centre.buffer(radius * (i + 1) / 3)
        if i:
            ring = ring.difference(centre.buffer(radius * i / 3))
        land = ring.intersection(extent).area
        inter = shapely.area(shapely.intersection(parts, ring))
        vals.append(float((inter * weights).sum() / land) if land > 0 else float("nan"))
    return vals[0], vals[1], vals[2]


def activity_node_spacing(points_xy: np.ndarray) -> tuple[float, int]:
    """Median nearest-neighbour spacing (m) of activity nodes: clusters of at least 3 amenities
    linked within 50 m (single linkage). Returns (spacing, number of nodes)."""
    if len(points_xy) < ACTIVITY_MIN_POINTS:
        return float("nan"), 0
    pairs = cKDTree(points_xy).query_pairs(ACTIVITY_LINK_M, output_type="ndarray")
    n = len(points_xy)
    adj = sparse.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, lab = csgraph.connected_components(adj, directed=False)
    sizes = np.bincount(lab)
    big = np.flatnonzero(sizes >= ACTIVITY_MIN_POINTS)
    if len(big) < 2:
        return float("nan"), len(big)
    cents = np.array([points_xy[lab == c].mean(axis=0) for c in big])
    d, _ = cKDTree(cents).query(cents, k=2)
    return float(np.median(d[:, 1])), len(big)


def density_pattern_inputs(
    *, features: Mapping[str, gpd.GeoDataFrame], extent: shapely.Geometry, present: Mapping[str, bool]
) -> MetricSet:
    """Vector measurements for patterns 21, 22, 29, 30 and 96."""
    out = MetricSet()
    buildings = features.get("buildings") if present.get("buildings") else None
    if buildings is None or len(buildings) == 0:
        out.missing(
            [
                "levels_le4_share",
                "coverage_cells_le50_share",
                "density_ring_inner",
                "density_ring_middle",
                "density_ring_outer",
            ],
            {"levels_le4_share": "share", "coverage_cells_le50_share": "share"}
            | dict.fromkeys(["density_ring_inner", "density_ring_middle", "density_ring_outer"], "m2/m2"),
            "the data has no buildings",
        )
    else:
        levels = buildings["levels"].to_numpy(float) if "levels" in buildings else np.full(len(buildings), np.nan)
        known = levels[np.isfinite(levels) & (levels > 0)]
        if len(known) < MIN_LEVELS_KNOWN:
            out.missing("levels_le4_share", "share", f"only {len(known)} buildings have levels or height tags")
        else:
            out.set(
                "levels_le4_share",
                (known <= 4).mean(),
                "share",
                note=f"over the {len(known)} of {len(levels)} buildings with levels or height",
            )
        parts = _union_parts(buildings, extent)
        cov = cell_shares(parts=parts, extent=extent, cell_m=COVERAGE_CELL_M)
        built = cov[cov >= BUILT_CELL_MIN_COVERAGE]
        out.set("coverage_cells_le50_share", (built <= 0.5).mean() if len(built) else None, "share")
        filled = np.where(np.isfinite(levels) & (levels > 0), levels, DEFAULT_LEVELS)
        geoms = shapely.make_valid(buildings.geometry.values)
        clipped = shapely.intersection(geoms, extent)
        ok = ~shapely.is_empty(clipped)
        rings = ring_values(parts=clipped[ok], weights=filled[ok], extent=extent)
        for name, val in zip(("inner", "middle", "outer"), rings, strict=True):
            out.set(f"density_ring_{name}", val, "m2/m2")
    parking = features.get("parking") if present.get("parking") else None
    if parking is None:
        out.missing("parking_share_max_4ha", "share", "the data has no parking layer")
    else:
        shares = cell_shares(parts=_union_parts(parking, extent), extent=extent, cell_m=PARKING_CELL_M)
        out.set("parking_share_max_4ha", shares.max() if len(shares) else None, "share")
    amenities = features.get("amenities") if present.get("amenities") else None
    if amenities is None:
        out.missing("activity_node_spacing_m", "m", "the data has no amenities layer")
    else:
        xy = shapely.get_coordinates(amenities.geometry.representative_point().values)
        xy = xy[shapely.contains_xy(extent, xy[:, 0], xy[:, 1])] if len(xy) else xy
        spacing, n_nodes = activity_node_spacing(xy)
        note = None if n_nodes >= 2 else f"not measurable: {n_nodes} activity node(s) (3+ amenities within 50 m)"
        out.set("activity_node_spacing_m", spacing, "m", note=note)
    return out


# ----------------------------------------------------------------------------- the same from a raster
def _block_mean(a: np.ndarray, valid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = a.shape
    hp, wp = -(-h // k) * k, -(-w // k) * k
    pa = np.zeros((hp, wp))
    pv = np.zeros((hp, wp))
    pa[:h, :w] = np.where(valid, a, 0.0)
    pv[:h, :w] = valid
    s = pa.reshape(hp // k, k, wp // k, k).sum(axis=(1, 3))
    n = pv.reshape(hp // k, k, wp // k, k).sum(axis=(1, 3))
    keep = n >= MIN_CELL_LAND_SHARE * k * k
    return s[keep] / n[keep], keep


def raster_pattern_inputs(
    *, bands: Mapping[str, np.ndarray], valid: np.ndarray, resolution_m: float, tags: Mapping[str, str]
) -> MetricSet:
    """Raster measurements for patterns 21, 22, 29, 30, 52 and 96."""
    out = MetricSet()
    res = resolution_m
    if "buildings" in bands and "floor_area" in bands:
        known = tags.get("levels_known_share")
        b, fa = bands["buildings"], bands["floor_area"]
        solid = (b > 0.5) & valid
        if known is not None and float(known) < 0.5:
            out.missing(
                "levels_le4_share",
                "share",
                f"levels are tagged on only {float(known):.0%} of footprints (the rest are drawn as one storey)",
            )
        elif solid.sum() == 0:
            out.missing("levels_le4_share", "share", "no building pixels")
        else:
            levels = fa[solid] / np.maximum(b[solid], 1e-6)
            out.set(
                "levels_le4_share",
                float((levels <= 4.5).mean()),
                "share",
                note="share of building footprint area (pixels), not of buildings",
            )
    else:
        out.missing("levels_le4_share", "share", "needs the buildings and floor_area bands")
    if "buildings" in bands:
        k = max(1, round(COVERAGE_CELL_M / res))
        cov, _ = _block_mean(bands["buildings"], valid, k)
        built = cov[cov >= BUILT_CELL_MIN_COVERAGE]
        out.set("coverage_cells_le50_share", (built <= 0.5).mean() if len(built) else None, "share")
        dens = bands.get("floor_area", bands["buildings"])
        _raster_rings(out, dens, valid, res)
    else:
        out.missing(
            ["coverage_cells_le50_share", "density_ring_inner", "density_ring_middle", "density_ring_outer"],
            "share",
            "the raster has no buildings band",
        )
    if "parking" in bands:
        shares, _ = _block_mean(bands["parking"], valid, max(1, round(PARKING_CELL_M / res)))
        out.set("parking_share_max_4ha", shares.max() if len(shares) else None, "share")
    else:
        out.missing("parking_share_max_4ha", "share", "the raster has no parking band")
    if "amenities" in bands:
        counts = np.rint(np.where(valid, bands["amenities"], 0)).astype(int)
        rows, cols = np.nonzero(counts > 0)
        xy = np.repeat(np.stack([(cols + 0.5) * res, -(rows + 0.5) * res], axis=1), counts[rows, cols], axis=0)
        spacing, n_nodes = activity_node_spacing(xy)
        note = None if n_nodes >= 2 else f"not measurable: {n_nodes} activity node(s) (3+ amenities within 50 m)"
        out.set("activity_node_spacing_m", spacing, "m", note=note)
    else:
        out.missing("activity_node_spacing_m", "m", "the raster has no amenities band")
    return out


def _raster_rings(out: MetricSet, dens: np.ndarray, valid: np.ndarray, res: float) -> None:
    w = np.where(valid, dens, 0.0)
    total = w.sum()
    if total <= 0:
        out.missing(["density_ring_inner", "density_ring_middle", "density_ring_outer"], "m2/m2", "no buildings")
        return
    rows, cols = np.indices(w.shape)
    cy, cx = (rows * w).sum() / total, (cols * w).sum() / total
    radius = math.sqrt(valid.sum() / math.pi)
    r = np.hypot(rows - cy, cols - cx)
    for i, name in enumerate(("inner", "middle", "outer")):
        sel = valid & (r >= radius * i / 3) & (r < radius * (i + 1) / 3)
        out.set(f"density_ring_{name}", float(dens[sel].mean()) if sel.any() else None, "m2/m2")
