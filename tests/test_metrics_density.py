"""Density metrics on real extracts: floor area counted once per location (issue 21)."""

from __future__ import annotations

import pytest


def test_floor_area_counts_each_location_once_on_a_real_extract() -> None:
    """Issue 21: in Helsinki's centre (the shipped extract) a university wing tagged `building:levels=5` and
    `building:min_level=4` sits inside the main university building (untagged: one storey). The wing holds one
    storey of floor area, not five, and the ground under both counts once; the rasterizer agrees whatever order
    the buildings come in."""
    import numpy as np
    import shapely
    from rasterio.windows import Window

    from citygen.data.rasterize import CityRasterizer, grid_for
    from citygen.data.sources import load_city
    from citygen.metrics.density import floor_area

    city = load_city("helsinki_center")
    buildings = city.features["buildings"]
    pair = buildings[buildings["osm_id"].isin([89541314, 1320784])].copy()
    assert len(pair) == 2
    wing = pair[pair["osm_id"] == 89541314].iloc[0]
    assert wing["building:levels"] == "5" and wing["building:min_level"] == "4" and wing["levels"] == 1.0
    main = pair[pair["osm_id"] == 1320784].iloc[0]
    assert np.isnan(main["levels"])  # untagged: one storey
    extent = shapely.box(*shapely.buffer(shapely.union_all(pair.geometry.values), 10).bounds)
    a_wing, a_main = wing.geometry.area, main.geometry.area
    overlap = shapely.intersection(wing.geometry, main.geometry).area
    assert overlap > 0.5 * a_wing, "the wing lies (mostly) over the main building"
    # by hand: one storey everywhere, each location once
    assert floor_area(pair.geometry.values, np.array([1.0, 1.0]), extent) == pytest.approx(a_wing + a_main - overlap)
    # were the wing 5 storeys (the old reading of its tags), the overlap would count at 5, not 5 + 1
    storeys = np.where(pair["osm_id"] == 89541314, 5.0, 1.0)
    want = 5 * a_wing + (a_main - overlap)
    assert floor_area(pair.geometry.values, storeys, extent) == pytest.approx(want)
    # exact duplicates from one source count once
    twice = np.concatenate([pair.geometry.values, pair.geometry.values])
    assert floor_area(twice, np.concatenate([storeys, storeys]), extent) == pytest.approx(want)

    # the rasterizer: the same floor area band whichever building is drawn first
    grid = grid_for(extent, crs=city.crs, resolution=1.0)
    bands = []
    for frame in (pair.assign(levels=storeys), pair.assign(levels=storeys).iloc[::-1]):
        city.features = {"buildings": frame}
        city.extent = extent
        city.graph = None
        raster = CityRasterizer(city, grid, supersample=4).render(Window(0, 0, grid.width, grid.height))
        bands.append(raster["floor_area"])
    assert np.array_equal(bands[0], bands[1])
    assert bands[0].sum() * 1.0 == pytest.approx(want, rel=0.03)  # 1 m pixels: area-weighted storeys


def test_mean_levels_is_floor_area_over_covered_area() -> None:
    """mean_levels divides the floor area (each location once) by the area under buildings (each location once), so
    FAR = coverage x mean levels holds on a real extract with overlapping buildings."""
    from citygen.data.sources import load_city
    from citygen.metrics.density import density_metrics

    city = load_city("helsinki_center")
    m = density_metrics(features=city.features, extent=city.extent, present=city.present)
    assert m["mean_levels"] > 1
    assert m["floor_area_ratio"] == pytest.approx(m["building_coverage"] * m["mean_levels"], rel=1e-9)
