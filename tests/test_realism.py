"""Realism measures (issue 20) on real tiles: held-out real tiles score like the reference, blurred tiles, noise and
checkerboards clearly worse, copies of training tiles are caught; `citygen realism` refuses bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS
from scipy import ndimage as ndi

from citygen.cli import main
from citygen.data.geotiff import write_raster
from citygen.metrics.morphology import checkerboard_score, morphology, statistic_matrix
from citygen.workflows.realism import Reference, TileSet, dataset_tiles, measure, merge, score

CITIES = ["helsinki_center", "kotka_karhula"]  # the built samples with streets, buildings and green


@pytest.fixture(scope="module")
def halves(built_samples: Path) -> tuple[Reference, TileSet]:
    """Every 64 px crop of the two cities, split at random into a reference half and a held-out half."""
    pool = merge("real", [dataset_tiles(built_samples, s, size=64, cities=CITIES) for s in ("train", "val", "test")])
    order = np.random.default_rng(0).permutation(len(pool.layouts))
    half = len(order) // 2
    a = measure(TileSet("a", pool.layouts[order[:half]], pool.valid[order[:half]], pool.bands, pool.resolution_m))
    b = TileSet("b", pool.layouts[order[half:]], pool.valid[order[half:]], pool.bands, pool.resolution_m)
    reference = Reference(a, statistic_matrix(a.rows), a.street_masks(), np.zeros((half, 0)), [])
    return reference, b


def _variant(tiles: TileSet, name: str, change) -> TileSet:
    layouts = np.stack([change(x) for x in tiles.layouts]).astype(np.float32)
    return TileSet(name, layouts, tiles.valid, tiles.bands, tiles.resolution_m)


def test_held_out_real_tiles_score_like_the_reference_and_garbage_does_not(halves: tuple[Reference, TileSet]) -> None:
    reference, held_out = halves
    real = score(held_out, reference)
    assert real.frechet_ratio < 1.5 and real.c2st_accuracy < 0.6 and real.checkerboard_above_reference < 0.1
    assert real.pixel_c2st_accuracy < 0.65
    assert real.precision > 0.8 and real.recall > 0.8
    blurred = score(_variant(held_out, "blur", lambda x: np.stack([ndi.gaussian_filter(c, 3) for c in x])), reference)
    assert blurred.frechet_ratio > 2 * real.frechet_ratio and blurred.c2st_accuracy > real.c2st_accuracy + 0.15
    rng = np.random.default_rng(0)
    noise = score(_variant(held_out, "noise", lambda x: rng.random(x.shape) < x.mean(axis=(1, 2), keepdims=True)),
                  reference)  # fmt: skip
    assert noise.frechet_ratio > 5 * real.frechet_ratio and noise.c2st_accuracy > 0.9 and noise.precision < 0.5
    assert noise.pixel_c2st_accuracy > 0.8
    board = (np.indices((64, 64)).sum(axis=0) % 2)[None]
    checker = score(_variant(held_out, "checker", lambda x: np.clip(x + 0.4 * board - 0.2, 0, 1)), reference)
    assert checker.checkerboard_above_reference > 0.9 and checker.checkerboard_median > 100


def test_copies_of_training_tiles_are_counted(halves: tuple[Reference, TileSet]) -> None:
    reference, held_out = halves
    with_streets = float((reference.tiles.street_masks().reshape(len(reference.train_masks), -1).any(axis=1)).mean())
    assert score(reference.tiles, reference).copies == pytest.approx(with_streets)  # its own crops: all copies
    assert score(held_out, reference).copies < 0.1


def test_morphology_of_a_drawn_grid() -> None:
    """Two streets crossing a 128 px tile at 2 m, one ending 56 m inside it: one four-way junction and one dead
    end; the three ends where the tile's edge cuts a street are not dead ends. No closed block."""
    streets = np.zeros((128, 128), np.float32)
    streets[62:66, :100] = streets[:, 62:66] = 1.0
    stats = morphology({"streets": streets, "buildings": np.zeros_like(streets)}, resolution_m=2.0)
    assert stats["intersection_density_km2"] == pytest.approx(1 / (0.256**2))
    assert stats["four_way_share"] == pytest.approx(1 / 2) and stats["dead_end_share"] == pytest.approx(1 / 2)
    assert stats["block_count"] == 0 and stats["footprint_count"] == 0
    assert checkerboard_score(streets) < 2 < checkerboard_score(np.indices((128, 128)).sum(axis=0) % 2)


def _write(
    folder: Path, layouts: np.ndarray, *, resolution: float = 2.0, bands=("streets", "buildings", "green")
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, layout in enumerate(layouts):
        arrays = {b: layout[i] for i, b in enumerate(bands)}
        write_raster(folder / f"candidate_{k}.tif", {**arrays, "valid": np.ones(layout.shape[1:], np.float32)},
                     crs=CRS.from_epsg(32633), transform=Affine(resolution, 0, 0, 0, -resolution, 0),
                     present={b: b in bands for b in ("streets", "buildings", "green")})  # fmt: skip


def test_realism_command(built_samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    val = dataset_tiles(built_samples, "val", size=64, cities=CITIES)
    _write(tmp_path / "run", val.layouts[:12])
    out = tmp_path / "realism.json"
    args = ["realism", "--data", str(built_samples), "--cities", *CITIES, "--candidates", str(tmp_path / "run")]
    assert main([*args, "--json", str(out), "--out", str(tmp_path / "fig")]) == 0
    report = json.loads(out.read_text())
    assert list(report["sets"]) == ["held-out real (val split)", "candidates"] and report["tile_px"] == 64
    assert (tmp_path / "fig" / "realism.png").stat().st_size > 10_000
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "coarse", val.layouts[:4], resolution=4.0)
    _write(tmp_path / "no_green", val.layouts[:4, :2], bands=("streets", "buildings"))
    for bad, message in [
        (["--candidates", str(tmp_path / "empty")], "no GeoTIFF"),
        (["--candidates", str(tmp_path / "coarse")], "4 m pixels"),
        (["--candidates", str(tmp_path / "no_green")], "no band(s) ['green']"),
        (["--candidates", str(tmp_path / "run"), "--cities", "houston_montrose"], "no test tiles"),
    ]:
        assert main(["realism", "--data", str(built_samples), *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
