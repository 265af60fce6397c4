"""Parallel builds: local worker processes and a (local) Dask cluster give the same rasters as a serial build."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from citygen.data.build import build_dataset
from citygen.data.geotiff import read_raster
from citygen.data.spec import parse_city

CITIES = ("houston_museum_district", "cph_indre_by_buildings", "grenoble_center")


def _specs() -> list:
    return [parse_city({"id": city, "sample": city}) for city in CITIES]


def _same_rasters(a: Path, b: Path) -> None:
    for city in CITIES:
        left, right = read_raster(a / f"{city}.tif"), read_raster(b / f"{city}.tif")
        for name, band in left.bands.items():
            np.testing.assert_array_equal(band, right.bands[name])


def test_process_workers_and_dask_cluster_match_serial(tmp_path: Path) -> None:
    serial = build_dataset(_specs(), tmp_path / "serial", progress=False)
    assert all(r.status == "built" for r in serial)
    processes = build_dataset(_specs(), tmp_path / "processes", workers=2, progress=False)
    assert [r.city for r in processes] == list(CITIES) and all(r.status == "built" for r in processes)
    _same_rasters(tmp_path / "serial", tmp_path / "processes")

    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        on_dask = build_dataset(
            _specs(), tmp_path / "dask", executor="dask", scheduler=cluster.scheduler_address, progress=False
        )
    assert all(r.status == "built" for r in on_dask), [r.error for r in on_dask]
    _same_rasters(tmp_path / "serial", tmp_path / "dask")
