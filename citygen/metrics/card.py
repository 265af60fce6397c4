"""The one-page "pattern card": the map, a polar histogram of street orientations, key numbers and the
A Pattern Language rules with pass / fail / not measurable."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from citygen.core import OSM_ATTRIBUTION

if TYPE_CHECKING:
    from citygen.data.geotiff import RasterData
    from citygen.data.sources import CityLayers
    from citygen.metrics.suite import SourceResult

KEY_NUMBERS: tuple[tuple[str, str, str], ...] = (
    ("street_density_km_km2", "Street density", "{:.1f} km/km²"),
    ("intersection_density_km2", "Intersections (10 m merged)", "{:.0f} /km²"),
    ("prop_3way", "3-way junctions", "{:.0%}"),
    ("prop_4way", "4-way junctions", "{:.0%}"),
    ("prop_deadend", "Dead ends", "{:.0%}"),
    ("orientation_entropy", "Orientation entropy (by length)", "{:.3f}"),
    ("orientation_order", "Orientation order φ (by length)", "{:.3f}"),
    ("orientation_entropy_raw", "Orientation entropy (OSMnx)", "{:.3f}"),
    ("circuity_avg", "Circuity", "{:.3f}"),
    ("block_area_median_m2", "Median block", "{:,.0f} m²"),
    ("building_coverage", "Building coverage", "{:.1%}"),
    ("floor_area_ratio", "Floor area ratio", "{:.2f}"),
    ("green_share", "Green share", "{:.1%}"),
    ("parking_share", "Parking share", "{:.1%}"),
    ("ped_shed_ratio_800m", "Ped-shed ratio (800 m)", "{:.2f}"),
    ("walkability_index", "Walkability index", "{:+.2f}"),
    ("area_km2", "Area", "{:.2f} km²"),
)
COLORS = {
    "streets": "#444444",
    "paths": "#c58b3b",
    "buildings": "#b5523b",
    "green": "#5f9e4f",
    "water": "#4a7fb5",
    "parking": "#9a8fb0",
}


def fmt(value: float, pattern: str) -> str:
    return "n/m" if value is None or not math.isfinite(value) else pattern.format(value)


def _draw_vector_map(ax: plt.Axes, city: CityLayers) -> None:
    import geopandas as gpd
    import osmnx as ox

    for layer in ("water", "green", "parking", "buildings"):
        gdf = city.features.get(layer)
        if city.present.get(layer) and gdf is not None and len(gdf):
            polys = gdf[gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
            if len(polys):
                polys.plot(ax=ax, color=COLORS[layer], linewidth=0)
    if city.graph is not None and city.graph.number_of_edges():
        edges = ox.convert.graph_to_gdfs(city.graph, nodes=False, fill_edge_geometry=True)
        gpd.GeoSeries(edges.geometry.values).plot(ax=ax, color=COLORS["streets"], linewidth=0.4)
    x0, y0, x1, y1 = city.extent.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def _draw_raster_map(ax: plt.Axes, raster: RasterData) -> None:
    bands = raster.bands
    shape = next(iter(bands.values())).shape
    rgb = np.ones((*shape, 3), np.float32)
    present = getattr(raster, "present", None) or {}
    for name in ("water", "green", "parking", "buildings", "paths", "streets"):
        if name in bands and present.get(name, True):
            a = np.clip(np.nan_to_num(bands[name]), 0, 1)[..., None]
            color = np.array(matplotlib.colors.to_rgb(COLORS[name]), np.float32)
            rgb = rgb * (1 - a) + color * a
    if "valid" in bands:
        rgb[bands["valid"] < 0.5] = 0.85
    t = raster.transform
    extent = (t.c, t.c + t.a * shape[1], t.f + t.e * shape[0], t.f)
    ax.imshow(rgb, extent=extent, interpolation="nearest")


def draw_card(result: SourceResult, path: str | Path) -> Path:
    """Write the pattern card of one measured source as a PNG (A4 portrait)."""
    m = result.metrics
    fig = plt.figure(figsize=(8.27, 11.69), dpi=110)
    grid = fig.add_gridspec(
        3,
        2,
        height_ratios=[1.15, 0.75, 1.25],
        width_ratios=[1.3, 1],
        hspace=0.25,
        wspace=0.15,
        left=0.06,
        right=0.97,
        top=0.93,
        bottom=0.04,
    )
    fig.suptitle(f"{result.city_id} — pattern card", fontsize=16, fontweight="bold", x=0.06, y=0.985, ha="left")
    fig.text(0.06, 0.955, f"{result.kind} source: {result.source}", fontsize=8, color="#555555")

    ax_map = fig.add_subplot(grid[0, 0])
    if result.kind == "vector":
        _draw_vector_map(ax_map, result.layers)
    else:
        _draw_raster_map(ax_map, result.layers)
    ax_map.set_aspect("equal")
    ax_map.set_xlabel("")
    ax_map.set_ylabel("")
    ax_map.set_xticks([])
    ax_map.set_yticks([])
    ax_map.set_title("Map (streets, buildings, green, water, parking)", fontsize=9)

    ax_pol: Any = fig.add_subplot(grid[0, 1], projection="polar")  # a PolarAxes
    hist = np.asarray(result.orientation_hist, float)
    if hist.sum() > 0:
        theta = np.radians(np.arange(0, 360, 10))
        ax_pol.bar(theta, hist / hist.max(), width=np.radians(10), color="#3b6ea8", edgecolor="white", linewidth=0.5)
    ax_pol.set_theta_zero_location("N")
    ax_pol.set_theta_direction(-1)
    ax_pol.set_yticks([])
    ax_pol.set_xticks(np.radians([0, 90, 180, 270]), ["N", "E", "S", "W"])
    ax_pol.set_title(
        f"Street orientations\nH = {fmt(m.get('orientation_entropy'), '{:.3f}')}, "
        f"φ = {fmt(m.get('orientation_order'), '{:.3f}')}",
        fontsize=9,
    )

    ax_num = fig.add_subplot(grid[1, :])
    ax_num.axis("off")
    ax_num.set_title("Key numbers", fontsize=11, loc="left", fontweight="bold")
    half = math.ceil(len(KEY_NUMBERS) / 2)
    for i, (key, label, pattern) in enumerate(KEY_NUMBERS):
        col, row = divmod(i, half)
        x, y = 0.0 + 0.5 * col, 0.95 - row * (0.95 / half)
        ax_num.text(x, y, label, fontsize=9, va="top", transform=ax_num.transAxes)
        ax_num.text(
            x + 0.46,
            y,
            fmt(m.get(key), pattern),
            fontsize=9,
            va="top",
            ha="right",
            fontweight="bold",
            transform=ax_num.transAxes,
        )

    ax_pat = fig.add_subplot(grid[2, :])
    ax_pat.axis("off")
    ax_pat.set_title("A Pattern Language (Alexander et al. 1977)", fontsize=11, loc="left", fontweight="bold")
    n = len(result.patterns)
    for i, p in enumerate(result.patterns):
        y = 1.0 - i / max(n, 1)
        mark, color = (
            ("PASS", "#2e7d32") if p.holds else ("FAIL", "#c62828") if p.holds is False else ("n/m", "#888888")
        )
        ax_pat.text(0.0, y, mark, fontsize=8.5, fontweight="bold", color=color, va="top", transform=ax_pat.transAxes)
        ax_pat.text(
            0.07,
            y,
            f"{p.number} {p.name}",
            fontsize=8.5,
            fontweight="bold",
            va="top",
            transform=ax_pat.transAxes,
        )
        detail = (
            f"{p.value:.3g} (rule {p.threshold})" if p.value is not None else p.note.removeprefix("not measurable: ")
        )
        ax_pat.text(
            0.36,
            y,
            textwrap.shorten(detail, 80),
            fontsize=8,
            va="top",
            color="#333333",
            transform=ax_pat.transAxes,
        )
    fig.text(0.97, 0.012, f"Data {OSM_ATTRIBUTION}", fontsize=7, ha="right", color="#666666")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
