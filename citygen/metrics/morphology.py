"""Per-tile morphology statistics: what a layout looks like, measured the same way on real and generated tiles.

The statistics describe the layout a user receives: coverage bands thresholded at 0.5, as the GeoJSON export of
``citygen generate`` draws them. They come from the raster metric suite (the street graph recovered from the
streets band, closed blocks between streets, connected building footprints) plus a spectral checkerboard score,
and :mod:`citygen.metrics.realism` compares their distributions between real and generated tiles.

A statistic that a tile cannot have (the median block area of a tile without a closed block, the junction shares
of a tile without streets) is 0: "none" is a value generated tiles must match too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import ndimage as ndi

from citygen.core.bands import BAND_NAMES, band
from citygen.metrics._common import entropy_from_counts
from citygen.metrics.network import MIN_BLOCK_AREA_M2
from citygen.metrics.raster import clean_bands, closed_regions, junction_census, orientation_histogram_raster
from citygen.metrics.skeleton import recover_street_graph

DELIVERED_THRESHOLD = 0.5  # coverage bands become street / building / green pixels at this value

# name -> what it measures (units in brackets)
STATISTICS: dict[str, str] = {
    "street_coverage": "share of the tile that is street surface",
    "street_density_km_km2": "street centre-line length per area [km/km2]",
    "intersection_density_km2": "junctions of 3+ streets (merged within 10 m) per area [1/km2]",
    "dead_end_share": "dead ends among street nodes (ends where the tile cuts a street left out)",
    "three_way_share": "3-way junctions among street nodes",
    "four_way_share": "4-way junctions among street nodes",
    "block_count": "closed blocks (non-street regions not touching the tile edge, >= 0.1 ha)",
    "block_area_median_m2": "median block area [m2]",
    "block_compactness_median": "median block compactness (4 pi area / perimeter^2; 1 = disc)",
    "orientation_entropy": "entropy of street bearings in 36 bins [nats]",
    "building_coverage": "share of the tile under building footprints",
    "footprint_count": "connected building footprints",
    "footprint_area_median_m2": "median footprint area [m2]",
    "green_share": "share of the tile that is green",
    "checkerboard": "spectral power where strided upsampling imprints its grid over the power around it (~1 real)",
}
# compared as distributions after log1p: counts, areas and densities have long right tails
LOG_STATISTICS = ("street_density_km_km2", "intersection_density_km2", "block_count", "block_area_median_m2",
                  "footprint_count", "footprint_area_median_m2")  # fmt: skip
# the artifact detector is reported on its own, beside the statistics whose distributions are compared
DISTRIBUTION_STATISTICS = tuple(name for name in STATISTICS if name != "checkerboard")


def statistic_matrix(rows: list[dict[str, float]]) -> np.ndarray:
    """``[len(rows), len(DISTRIBUTION_STATISTICS)]`` of :func:`morphology` results, the long-tailed ones log1p."""
    matrix = np.array([[row[name] for name in DISTRIBUTION_STATISTICS] for row in rows], dtype=np.float64)
    for j, name in enumerate(DISTRIBUTION_STATISTICS):
        if name in LOG_STATISTICS:
            matrix[:, j] = np.log1p(np.maximum(matrix[:, j], 0.0))
    return matrix.reshape(len(rows), len(DISTRIBUTION_STATISTICS))


def delivered(bands: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The layout a user receives: coverage bands (unit ``fraction``) thresholded at 0.5 to 0 or 1, as the GeoJSON
    export draws them; other bands (floor area, ``valid``) as they are."""
    return {
        name: (np.asarray(a) >= DELIVERED_THRESHOLD).astype(np.float32)
        if name in BAND_NAMES and band(name).unit == "fraction"
        else np.asarray(a, dtype=np.float32)
        for name, a in bands.items()
    }


def _delivered(arrays: Mapping[str, np.ndarray], name: str, valid: np.ndarray) -> np.ndarray | None:
    if name not in arrays:
        return None
    return (arrays[name] >= DELIVERED_THRESHOLD) & valid


# Off-axis frequencies (cycles per pixel along rows, columns) where strided upsampling imprints its grid: a
# stride-2 transposed convolution puts power at (1/2, 1/2), a stride-4 one at quarters. Off the axes, so the
# streets of a grid city (power along the axes) do not count.
CHECKERBOARD_FREQUENCIES = ((0.5, 0.5), (0.25, 0.25), (0.25, -0.25), (0.5, 0.25), (0.25, 0.5))


def checkerboard_score(image: np.ndarray) -> float:
    """Mean over :data:`CHECKERBOARD_FREQUENCIES` of the spectral power there over the mean power of the
    frequencies around it (a 5 x 5 ring): about 1 for a natural layout, far above 1 for a checkerboard; 0 for a
    constant image."""
    a = np.asarray(image, dtype=np.float64)
    a = a - a.mean()
    power = np.abs(np.fft.fft2(a)) ** 2
    if power.sum() <= 1e-12:
        return 0.0
    n, m = a.shape
    ratios = []
    for fr, fc in CHECKERBOARD_FREQUENCIES:
        r, c = round(fr * n) % n, round(fc * m) % m
        ring = [power[(r + dr) % n, (c + dc) % m] for dr in range(-2, 3) for dc in range(-2, 3) if dr or dc]
        ratios.append(power[r, c] / max(float(np.mean(ring)), 1e-12))
    return float(np.mean(ratios))


def morphology(bands: Mapping[str, np.ndarray], *, resolution_m: float) -> dict[str, float]:
    """The :data:`STATISTICS` of one tile (band name -> 2-D array; ``valid`` marks the data area)."""
    arrays, valid, _ = clean_bands(bands)
    area_px = max(int(valid.sum()), 1)
    area_km2 = area_px * resolution_m**2 / 1e6
    out = dict.fromkeys(STATISTICS, 0.0)
    streets = _delivered(arrays, "streets", valid)
    if streets is not None and streets.any():
        out["street_coverage"] = float(streets.sum() / area_px)
        graph = recover_street_graph(streets.astype(np.float32), resolution_m=resolution_m, valid=valid)
        out["street_density_km_km2"] = float(graph.length_m.sum()) / 1000.0 / area_km2
        if graph.n_edges:
            junctions, tips = junction_census(graph, valid)
            nodes = max(len(junctions) + tips, 1)
            out["intersection_density_km2"] = float((junctions >= 2).sum()) / area_km2
            out["dead_end_share"] = tips / nodes
            out["three_way_share"] = float((junctions == 3).sum()) / nodes
            out["four_way_share"] = float((junctions == 4).sum()) / nodes
            entropy = entropy_from_counts(orientation_histogram_raster(graph))
            out["orientation_entropy"] = entropy if math.isfinite(entropy) else 0.0
        areas, perimeters = closed_regions(~streets & valid, valid, resolution_m)
        big = areas >= MIN_BLOCK_AREA_M2
        out["block_count"] = float(big.sum())
        if big.any():
            out["block_area_median_m2"] = float(np.median(areas[big]))
            out["block_compactness_median"] = float(np.median(4 * np.pi * areas[big] / perimeters[big] ** 2))
    buildings = _delivered(arrays, "buildings", valid)
    if buildings is not None and buildings.any():
        out["building_coverage"] = float(buildings.sum() / area_px)
        labels, n = ndi.label(buildings)
        sizes = np.bincount(labels.ravel())[1:] * resolution_m**2
        out["footprint_count"] = float(n)
        out["footprint_area_median_m2"] = float(np.median(sizes)) if n else 0.0
    green = _delivered(arrays, "green", valid)
    if green is not None:
        out["green_share"] = float(green.sum() / area_px)
    shown = [arrays[b] for b in ("streets", "buildings", "green") if b in arrays]
    out["checkerboard"] = float(np.mean([checkerboard_score(a) for a in shown])) if shown else 0.0
    return out
