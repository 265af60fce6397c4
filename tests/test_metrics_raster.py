"""Raster metrics: agreement with the vector metrics on real samples, tile targets, bad input."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from affine import Affine
from test_metrics_helpers import AGREEMENT_SAMPLES, built_raster_dir, measured

from citygen.core.errors import SourceError
from citygen.data.geotiff import read_raster
from citygen.metrics.raster import raster_metrics, tile_targets
from citygen.metrics.skeleton import recover_street_graph


@pytest.fixture(scope="module")
def rasters(request, tmp_path_factory):
    return built_raster_dir(request, tmp_path_factory)


@pytest.mark.parametrize("sample_id", AGREEMENT_SAMPLES)
def test_raster_agrees_with_vector(sample_id: str, rasters) -> None:
    vec = measured(sample_id).metrics
    ras = measured(rasters / f"{sample_id}.tif").metrics
    # Same area on both sides: the raster's valid pixels cover the vector extent.
    assert ras["area_km2"] == pytest.approx(vec["area_km2"], rel=0.01)
    assert ras["street_density_km_km2"] == pytest.approx(vec["street_density_km_km2"], rel=0.10)
    assert ras["intersection_density_km2"] == pytest.approx(vec["intersection_density_km2"], rel=0.20)
    assert ras["prop_3way"] == pytest.approx(vec["prop_3way"], abs=0.1)
    assert ras["prop_4way"] == pytest.approx(vec["prop_4way"], abs=0.1)
    assert ras["orientation_entropy"] == pytest.approx(vec["orientation_entropy"], abs=0.1)
    # issue 21: one definition on both sides (streets cut by the data's edge are not dead ends; bearings by length)
    assert ras["prop_deadend"] == pytest.approx(vec["prop_deadend"], abs=0.03)
    assert ras["orientation_order"] == pytest.approx(vec["orientation_order"], rel=0.15)


def test_raster_keeps_houston_more_ordered(rasters) -> None:
    h = measured(rasters / "houston_montrose.tif").metrics
    c = measured(rasters / "cph_vesterbro.tif").metrics
    assert h["orientation_entropy"] < c["orientation_entropy"]
    assert h["prop_4way"] > c["prop_4way"]


def test_coverage_ratios_agree_on_a_city_with_buildings(rasters) -> None:
    vec = measured("helsinki_center").metrics
    ras = measured(rasters / "helsinki_center.tif").metrics
    for key in ("building_coverage", "floor_area_ratio", "green_share", "parking_share", "water_share"):
        assert ras[key] == pytest.approx(vec[key], abs=0.01), key
    assert vec["building_coverage"] > 0.1


def test_absent_layers_are_not_measurable_not_zero(rasters) -> None:
    m = measured(rasters / "houston_montrose.tif").metrics
    assert math.isnan(m["building_coverage"])
    assert "no 'buildings' band" in m.notes["building_coverage"]
    assert math.isnan(m["k_avg"]) and "directions" in m.notes["k_avg"]


def tile_of(
    rasters, sample_id: str, row: int | None = None, col: int | None = None, size: int = 256
) -> dict[str, np.ndarray]:
    """A window of a city raster, by default its centre (fully inside the mapped area)."""
    data = read_raster(rasters / f"{sample_id}.tif")
    height, width = data.bands["valid"].shape
    row = (height - size) // 2 if row is None else row
    col = (width - size) // 2 if col is None else col
    return {k: v[row : row + size, col : col + size] for k, v in data.bands.items() if data.present.get(k, True)}


def test_tile_targets_fast_and_consistent(rasters) -> None:
    tile = tile_of(rasters, "houston_montrose")
    targets = tile_targets(tile, resolution_m=2.0)
    for key in ("building_coverage", "intersection_density_km2", "green_share", "street_density_km_km2"):
        assert key in targets
    assert math.isnan(targets["building_coverage"])  # the Houston sample has no buildings
    assert 5 < targets["street_density_km_km2"] < 40
    assert targets["intersection_density_km2"] > 10
    full, _ = raster_metrics(bands=tile, resolution_m=2.0)
    assert targets["street_density_km_km2"] == pytest.approx(full["street_density_km_km2"])
    tile_targets(tile, resolution_m=2.0)  # warm-up (skan compiles on first use)
    start = time.perf_counter()
    for _ in range(20):
        tile_targets(tile, resolution_m=2.0)
    assert (time.perf_counter() - start) / 20 < 0.05


def test_tile_without_streets(rasters) -> None:
    tile = tile_of(rasters, "houston_montrose")
    tile["streets"] = np.zeros_like(tile["streets"])
    m, graph = raster_metrics(bands=tile, resolution_m=2.0)
    assert graph.n_edges == 0
    assert m["street_density_km_km2"] == 0.0 and "no street" in m.notes["street_density_km_km2"]
    assert math.isnan(m["orientation_entropy"]) and m.notes["orientation_entropy"].startswith("not measurable")
    assert math.isnan(tile_targets(tile, resolution_m=2.0)["orientation_entropy"])


def test_tile_all_streets(rasters) -> None:
    tile = tile_of(rasters, "houston_montrose")
    tile["streets"] = np.ones_like(tile["streets"])
    m, _ = raster_metrics(bands=tile, resolution_m=2.0)
    assert math.isnan(m["street_density_km_km2"]) and "all street" in m.notes["street_density_km_km2"]
    assert math.isnan(tile_targets(tile, resolution_m=2.0)["intersection_density_km2"])


def test_missing_bands_and_nonfinite_values(rasters) -> None:
    tile = tile_of(rasters, "cph_vesterbro")
    del tile["streets"]
    m, _ = raster_metrics(bands=tile, resolution_m=2.0)
    assert math.isnan(m["intersection_density_km2"]) and "no streets band" in m.notes["intersection_density_km2"]
    tile = tile_of(rasters, "cph_vesterbro")
    tile["streets"] = tile["streets"].copy()
    tile["streets"][:10, :] = np.nan
    tile["streets"][10:12, :] = np.inf
    m, _ = raster_metrics(bands=tile, resolution_m=2.0)
    assert "non-finite" in m.notes["band_streets"]
    assert m["area_km2"] == pytest.approx((tile["valid"][12:] > 0.5).sum() * 4 / 1e6)
    assert math.isfinite(m["street_density_km_km2"])


def test_bad_resolution_and_geographic_crs(rasters) -> None:
    tile = tile_of(rasters, "cph_vesterbro")
    with pytest.raises(SourceError, match="resolution"):
        raster_metrics(bands=tile, resolution_m=float("nan"))
    with pytest.raises(SourceError, match="geographic"):
        raster_metrics(bands=tile, resolution_m=2.0, crs="EPSG:4326", transform=Affine.identity())
    with pytest.raises(SourceError, match="no bands"):
        raster_metrics(bands={}, resolution_m=2.0)


def test_skeleton_recovers_a_plus_shaped_crossing() -> None:
    img = np.zeros((201, 201), np.float32)
    img[95:106, :] = 1.0  # an 11-pixel-wide east-west street
    img[:, 95:106] = 1.0  # and a north-south one
    g = recover_street_graph(img, resolution_m=2.0)
    assert (g.degrees() == 4).sum() == 1
    assert (g.degrees() == 1).sum() == 4
    assert g.length_m.sum() == pytest.approx(2 * 200 * 2.0, rel=0.05)


def test_tiled_table_has_one_row_per_tile_with_units(rasters) -> None:
    from citygen.metrics.suite import compute_metrics

    df = compute_metrics(rasters / "cph_vesterbro.tif", tiles=True, tile_size=512, sheds=False)
    assert len(df) >= 4 and (df["kind"] == "tile").all()
    assert df[["tile_row", "tile_col"]].drop_duplicates().shape[0] == len(df)
    assert df.attrs["units"]["street_density_km_km2"] == "km/km2"
    assert df["street_density_km_km2"].notna().all()


def test_tile_targets_survive_blurred_generated_streets() -> None:
    """A generated tile whose thresholded streets skeletonise to stray pixels (skan finds no paths)."""
    from pathlib import Path

    from citygen.metrics.raster import tile_targets

    saved = np.load(Path(__file__).parent / "data" / "blurred_generated_tile.npz")
    values = tile_targets({k: saved[k] for k in saved.files}, resolution_m=2.0)
    assert values["street_density_km_km2"] == 0.0 and values["intersection_density_km2"] == 0.0
    dots = np.zeros((64, 64), np.float32)
    dots[10, 10] = dots[30, 40] = 1.0
    assert (
        tile_targets({"streets": dots, "valid": np.ones_like(dots)}, resolution_m=2.0)["street_density_km_km2"] == 0.0
    )


def _lines(size: int, rows: list[tuple[int, int, int]], cols: list[tuple[int, int, int]]) -> np.ndarray:
    """A streets band of 5 px wide lines: rows (y, x0, x1) and columns (x, y0, y1)."""
    streets = np.zeros((size, size), np.float32)
    for y, x0, x1 in rows:
        streets[y - 2 : y + 3, x0:x1] = 1.0
    for x, y0, y1 in cols:
        streets[y0:y1, x - 2 : x + 3] = 1.0
    return streets


def test_junction_and_orientation_targets_on_a_grid_and_on_t_junctions() -> None:
    """four_way_share and orientation_order (issue 20's targets for the Houston-vs-Copenhagen question): a
    rectangular grid has four-way junctions only and the highest order; a brick pattern only T junctions."""
    valid = np.ones((160, 160), np.float32)
    grid = _lines(160, [(y, 0, 160) for y in (30, 80, 130)], [(x, 0, 160) for x in (30, 80, 130)])
    values = tile_targets({"streets": grid, "valid": valid}, resolution_m=2.0)
    assert values["four_way_share"] == 1.0
    assert values["orientation_order"] > 0.95 and values["intersection_density_km2"] == pytest.approx(9 / 0.1024)
    # brick: horizontal streets, short verticals between them, staggered from one row to the next
    brick = _lines(160, [(y, 0, 160) for y in (30, 80, 130)], [(50, 30, 80), (110, 30, 80), (80, 80, 130)])
    values = tile_targets({"streets": brick, "valid": valid}, resolution_m=2.0)
    assert values["four_way_share"] == 0.0 and values["intersection_density_km2"] > 0
    paths = np.zeros_like(grid)
    paths[:40] = 1.0
    assert tile_targets({"streets": grid, "paths": paths, "valid": valid}, resolution_m=2.0)["path_share"] == 0.25


def test_new_targets_on_a_real_tile(rasters) -> None:
    tile = tile_of(rasters, "houston_montrose")
    values = tile_targets(tile, resolution_m=2.0)
    assert 0 <= values["four_way_share"] <= 1 and 0 <= values["orientation_order"] <= 1
    assert values["orientation_order"] > 0.15, "Montrose is a grid, if a skewed one"
    assert 0 <= values["path_share"] < 0.2


def test_streets_cut_by_the_data_edge_are_not_dead_ends() -> None:
    """Issue 21: a street running out of the valid area (a city's boundary inside the raster) ends at a cut, not
    a dead end; a street that stops inside the data is one."""
    from citygen.metrics.raster import junction_census
    from citygen.metrics.skeleton import recover_street_graph

    streets = np.zeros((128, 128), np.float32)
    streets[62:66, 10:118] = 1.0  # west-east, through the whole valid area
    streets[20:66, 62:66] = 1.0  # north arm, ending 40 m inside the data: a T junction and one dead end
    valid = np.zeros_like(streets, dtype=bool)
    valid[:, 10:100] = True  # the data stops at column 100: the street's east end is cut there
    graph = recover_street_graph(streets, resolution_m=2.0, valid=valid)
    junctions, dead_ends = junction_census(graph, valid)
    assert list(junctions) == [3] and dead_ends == 1
    # all ends counted as dead ends when the data's edge is not known (the old reading)
    assert int((graph.degrees() == 1).sum()) == 3
