"""The city-to-tensor pipeline on real sample cities: formats, accuracy of the bands, splits."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from pyproj import CRS

from citygen.core.bands import BAND_NAMES
from citygen.data.build import build_dataset
from citygen.data.dataset import CityTileDataset
from citygen.data.geotiff import read_raster
from citygen.data.samples import get_sample, list_samples
from citygen.data.sources import load_city, street_surfaces
from citygen.data.spec import load_config, parse_city
from citygen.data.tiles import tiles_overlap_across_splits

ROOT = Path(__file__).resolve().parents[1]
# Samples with buildings that build in a few seconds each; Monaco and Campo Grande are in the slow test.
FAST_BUILDING_SAMPLES = (
    "helsinki_center", "cph_indre_by_buildings", "houston_meyerland", "kotka_karhula",
    "nyc_west_village", "sf_parnassus", "piedmont", "aguascalientes_centro",
)  # fmt: skip
SLOW_BUILDING_SAMPLES = ("monaco", "campo_grande")


def _sample_specs(ids: tuple[str, ...]) -> list:
    return [s for s in load_config(ROOT / "configs" / "data" / "samples.yaml") if s.id in ids]


def test_registry_has_houston_copenhagen_and_every_city() -> None:
    ids = {s.id for s in list_samples()}
    assert {
        "houston_montrose",
        "houston_museum_district",
        "cph_vesterbro",
        "cph_indre_by_streets",
        "cph_indre_by_buildings",
    } <= ids
    cities = {s.city.split(",")[0] for s in list_samples()}
    for city in (
        "Houston",
        "Copenhagen",
        "Grenoble",
        "Helsinki",
        "Kotka",
        "Monaco",
        "Aguascalientes",
        "Campo Grande",
        "New York",
        "San Francisco",
        "Mountain View and Los Altos",
    ):
        assert city in cities
    for sample in list_samples():
        for item in sample.files:
            assert (ROOT / "citygen" / "samples" / item.path).is_file(), item.path
    config_ids = {s.id for s in load_config(ROOT / "configs" / "data" / "samples.yaml")}
    assert config_ids == ids


def test_attribution_and_provenance_ship_with_the_data() -> None:
    provenance = (ROOT / "citygen" / "samples" / "PROVENANCE.md").read_text()
    assert "OpenStreetMap contributors" in provenance and "ODbL" in provenance
    assert "OpenStreetMap contributors" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("sample_id", ["houston_montrose", "cph_vesterbro", "cph_indre_by_buildings"])
def test_registry_extent_matches_the_data(sample_id: str) -> None:
    city = load_city(sample_id)
    minx, miny, maxx, maxy = city.extent.bounds
    width_km, height_km = get_sample(sample_id).extent_km
    assert (maxx - minx) / 1000 == pytest.approx(width_km, abs=0.02)
    assert (maxy - miny) / 1000 == pytest.approx(height_km, abs=0.02)


def test_layers_are_projected_to_utm() -> None:
    city = load_city("cph_vesterbro")  # the source GraphML is already in UTM 33N
    assert city.crs.is_projected and city.crs.axis_info[0].unit_name == "metre"
    assert city.crs.to_epsg() == 32633
    houston = load_city("houston_montrose")  # source in lon/lat
    assert houston.crs.to_epsg() == 32615
    x = [d["x"] for _, d in houston.graph.nodes(data=True)]
    assert 2e5 < min(x) < 8e5  # UTM eastings, not degrees


def test_rasters_carry_crs_resolution_and_band_names(built_samples: Path) -> None:
    for path in sorted(built_samples.glob("*.tif")):
        with rasterio.open(path) as src:
            assert CRS(src.crs).is_projected
            assert CRS(src.crs).axis_info[0].unit_name == "metre"
            assert src.res == (2.0, 2.0)
            assert tuple(src.descriptions) == BAND_NAMES
            assert src.profile["tiled"] and src.block_shapes[0] == (128, 128) and src.interleaving.value == "BAND"
            assert src.compression.name.lower() in ("zstd", "deflate")
            assert src.tags()["attribution"].startswith("(c) OpenStreetMap")
    raster = read_raster(built_samples / "houston_montrose.tif")
    assert raster.present["streets"] and not raster.present["buildings"]  # a drive network has no buildings
    assert float(raster.bands["buildings"].max()) == 0.0


def _coverage_check(city_id: str, out: Path) -> tuple[float, float]:
    city = load_city(city_id)
    footprints = shapely.union_all(city.features["buildings"].geometry.values)
    vector = footprints.intersection(city.extent).area / city.extent.area
    raster = read_raster(out / f"{city_id}.tif")
    valid = raster.bands["valid"] > 0.5
    return float(raster.bands["buildings"][valid].mean()), vector


@pytest.mark.parametrize("city_id", FAST_BUILDING_SAMPLES)
def test_buildings_band_mean_equals_vector_coverage(city_id: str, tmp_path: Path) -> None:
    build_dataset(_sample_specs((city_id,)), tmp_path, progress=False)
    band_mean, vector = _coverage_check(city_id, tmp_path)
    assert vector > 0
    assert band_mean == pytest.approx(vector, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("city_id", SLOW_BUILDING_SAMPLES)
def test_buildings_band_mean_equals_vector_coverage_large(city_id: str, tmp_path: Path) -> None:
    build_dataset(_sample_specs((city_id,)), tmp_path, progress=False)
    band_mean, vector = _coverage_check(city_id, tmp_path)
    assert band_mean == pytest.approx(vector, abs=0.01)


@pytest.mark.parametrize("city_id", ["houston_montrose", "cph_vesterbro", "helsinki_center"])
def test_streets_band_area_equals_buffered_street_area(city_id: str, built_samples: Path) -> None:
    city = load_city(city_id)
    streets, _ = street_surfaces(city.graph)
    vector_area = shapely.union_all(streets.values).intersection(city.extent).area
    raster = read_raster(built_samples / f"{city_id}.tif")
    raster_area = float(raster.bands["streets"].sum(dtype=np.float64)) * raster.resolution_m**2
    assert raster_area == pytest.approx(vector_area, rel=0.03)


def test_floor_area_uses_levels(built_samples: Path) -> None:
    raster = read_raster(built_samples / "helsinki_center.tif")
    valid = raster.bands["valid"] > 0.5
    # central Helsinki is tagged with building:levels, so floor area exceeds footprint area several times
    assert raster.bands["floor_area"][valid].mean() > 2 * raster.bands["buildings"][valid].mean()
    assert raster.present["green"] and raster.bands["green"][valid].mean() > 0


def test_tile_index_and_spatial_splits(built_samples: Path) -> None:
    tiles = gpd.read_parquet(built_samples / "tiles.parquet")
    assert tiles.crs.to_epsg() == 4326
    assert set(tiles["split"]) == {"train", "val", "test"}
    assert not tiles_overlap_across_splits(tiles)
    assert tiles["tile_id"].is_unique
    assert (tiles["valid_fraction"] >= 0.5).all()
    for column in (
        "city",
        "path",
        "row_off",
        "col_off",
        "height",
        "width",
        "crs",
        "minx",
        "maxy",
        "present_streets",
    ):
        assert column in tiles
    houston = tiles[tiles["city"] == "houston_montrose"]
    assert set(houston["split"]) == {"train", "val", "test"}
    manifest = json.loads((built_samples / "manifest.json").read_text())
    record = manifest["cities"]["houston_montrose"]
    assert record["sources"][0]["sha256"] and record["crs"] == "EPSG:32615" and "osmnx" in manifest["versions"]


def test_overlapping_tiles_never_cross_splits(tmp_path: Path) -> None:
    spec = parse_city(
        {"id": "cph", "sample": "cph_vesterbro", "tile_size": 128, "stride": 64, "split": {"block_tiles": 3}}
    )
    build_dataset([spec], tmp_path, progress=False)
    tiles = gpd.read_parquet(tmp_path / "tiles.parquet")
    assert len(tiles) > 100 and set(tiles["split"]) == {"train", "val", "test"}
    assert not tiles_overlap_across_splits(tiles)
    # and the check itself sees an overlap when one exists
    leaked = tiles.copy()
    first_test = leaked.index[leaked["split"] == "test"][0]
    leaked.loc[leaked.index[leaked["split"] == "train"][0], ["row_off", "col_off"]] = (
        leaked.loc[first_test, ["row_off", "col_off"]].to_numpy() + 10
    )
    assert tiles_overlap_across_splits(leaked)


def test_dataset_returns_named_samples_and_plots(built_samples: Path, tmp_path: Path) -> None:
    dataset = CityTileDataset(built_samples, split="train", bands=["streets", "buildings", "valid"])
    assert len(dataset) > 0
    sample = dataset[0]
    assert sample["image"].shape == (3, 256, 256) and sample["image"].dtype.is_floating_point
    assert sample["bands"] == ("streets", "buildings", "valid")
    assert sample["split"] == "train" and sample["crs"].startswith("EPSG:")
    minx, miny, maxx, maxy = sample["bounds"]
    assert maxx - minx == pytest.approx(512.0) and maxy - miny == pytest.approx(512.0)
    fig = dataset.plot(sample)
    fig.savefig(tmp_path / "sample.png")
    assert (tmp_path / "sample.png").stat().st_size > 10_000


def test_dataset_loads_in_worker_processes(built_samples: Path) -> None:
    from torch.utils.data import DataLoader

    dataset = CityTileDataset(built_samples, split="val", bands=["streets"])
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["image"].shape[1:] == (1, 256, 256)


def test_builds_are_identical_in_every_process(tmp_path: Path) -> None:
    """OSMnx merges the tags of simplified edges through a set, whose order follows Python's hash seed;
    two builds in processes with different seeds must still write the same pixels."""
    import os
    import subprocess
    import sys

    arrays = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        subprocess.run(
            [sys.executable, "-m", "citygen", "data", "build", "--config", str(ROOT / "configs/data/samples.yaml"),
             "--cities", "helsinki_center", "--out", str(out), "--no-progress"],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        arrays.append(read_raster(out / "helsinki_center.tif").bands)
    for name in ("streets", "paths"):
        assert np.array_equal(arrays[0][name], arrays[1][name]), name


def test_merged_edge_tags_resolve_whatever_their_order() -> None:
    from citygen.data.layers import first_value, highway_class, parse_number, street_width_m

    assert highway_class(["residential", "primary"]) == highway_class(["primary", "residential"]) == "primary"
    assert highway_class(["footway", "service"]) == "service", "a street wins over a path"
    assert parse_number(["2", "4"]) == parse_number(["4", "2"]) == 4.0
    assert first_value(["b", "a"]) == first_value(["a", "b"]) == "a"
    assert street_width_m(highway=["tertiary", "residential"]) == street_width_m(highway=["residential", "tertiary"])


def test_sparse_layers_burn_in_groups_with_the_same_result() -> None:
    """Houston Meyerland's 60 buildings lie far apart: they are burned as many small boxes (issue 21, point 6), and
    the bands equal one 4 x 4 supersampled burn of the whole window."""
    from affine import Affine
    from rasterio import features
    from rasterio.windows import transform as window_transform

    from citygen.data.rasterize import CityRasterizer, _touching_groups, grid_for
    from citygen.data.sources import load_city
    from citygen.data.spec import parse_city

    spec = parse_city({"id": "houston_meyerland", "sample": "houston_meyerland"})
    city = load_city(spec)
    grid = grid_for(city.extent, crs=city.crs, resolution=spec.resolution)
    rasterizer = CityRasterizer(city, grid, supersample=4)
    layer = rasterizer.layers["buildings"]
    window = next(grid.windows())
    transform = window_transform(window, grid.transform)
    h, w = int(window.height), int(window.width)
    boxes = rasterizer._pixel_boxes(shapely.bounds(layer.geometries), transform, h, w)
    inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    assert len(_touching_groups(boxes[inside], h, w)) > 10
    order = np.lexsort((np.arange(len(layer.values)), layer.values))
    fine = features.rasterize(
        zip(layer.geometries[order], layer.values[order], strict=True),
        out_shape=(h * 4, w * 4),
        transform=transform @ Affine.scale(1 / 4),
        dtype="float32",
    )
    bands = rasterizer.render(window)
    valid = bands["valid"]
    expected_cover = (fine > 0).reshape(h, 4, w, 4).mean(axis=(1, 3)) * valid
    expected_floor = fine.reshape(h, 4, w, 4).mean(axis=(1, 3)) * valid
    assert bands["buildings"].sum() > 100
    np.testing.assert_allclose(bands["buildings"], expected_cover, atol=1e-6)
    np.testing.assert_allclose(bands["floor_area"], expected_floor, rtol=1e-5, atol=1e-5)
