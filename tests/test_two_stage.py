"""The two-stage generator (issue 20): generator-only exports, chaining stage 1 (targets -> streets) into stage 2
(streets -> buildings and green), ``--streets`` running stage 2 alone, and the shipped ``pretrained`` weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from citygen.cli import main
from citygen.learn.training import main as lightning_main

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "experiments"
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.max_time", "null", "--trainer.enable_progress_bar", "false", "--data.num_workers", "0",
        "--data.batch_size", "2", "--data.cities", "[helsinki_center]", "--data.min_valid_fraction", "0.5",
        "--model.init_args.ngf", "8", "--model.init_args.ndf", "8"]  # fmt: skip


@pytest.fixture(scope="module")
def stages(built_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYGEN_RUNS_DIR", str(runs))
        for name in ("stage1", "stage2"):
            lightning_main(["fit", "--config", str(CONFIGS / f"pix2pix_{name}.yaml"), "--data.root", str(built_samples),
                            "--run_name", name, *TINY])  # fmt: skip
    found = {name: sorted((runs / name).rglob("last.ckpt"))[-1] for name in ("stage1", "stage2")}
    for name in ("stage1", "stage2"):
        out = runs / f"{name}.pt"
        assert main(["export-weights", "--ckpt", str(found[name]), "--out", str(out)]) == 0
        found[f"{name}_export"] = out
    return found


def test_export_keeps_the_generator_and_what_generation_needs(stages: dict[str, Path]) -> None:
    from citygen.workflows.checkpoints import load_task

    ckpt, export = stages["stage2"], stages["stage2_export"]
    assert export.stat().st_size < ckpt.stat().st_size / 3, "no discriminator, no optimizer state, half precision"
    full, slim = load_task(ckpt), load_task(export)
    assert slim.task.conditions == full.task.conditions and slim.meta == full.meta
    crops = slim.training_crops()
    assert len(crops) > 10 and list(crops.columns) == ["building_coverage", "green_share"]
    pd_crops = full.training_crops().dropna()
    assert np.allclose(np.sort(crops["building_coverage"]), np.sort(pd_crops["building_coverage"]), atol=1e-6)
    inputs = torch.rand(1, 1, 128, 128)
    t = torch.tensor([[0.2, 0.05]])
    a = full.task.generate(t, inputs, num_candidates=2, seed=3)
    b = slim.task.generate(t, inputs, num_candidates=2, seed=3)
    assert (a - b).abs().mean() < 0.01, "half precision changes the layouts by little"
    assert main(["export-weights", "--ckpt", str(export.with_suffix(".missing")), "--out", str(export)]) == 2


def test_two_stages_chain_streets_into_buildings(stages: dict[str, Path], tmp_path: Path) -> None:
    from citygen.data.geotiff import read_raster
    from citygen.metrics.morphology import delivered

    out = tmp_path / "gen"
    args = ["generate", "--ckpt", str(stages["stage1_export"]), "--then", str(stages["stage2_export"]),
            "--target", "building_coverage=0.2", "--target", "intersection_density_km2=60", "--n", "2",
            "--allow-extrapolation", "--no-realism", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["stages"]) == 2
    # targets not given are filled from the training crops nearest the given ones, and reported
    assert {"four_way_share", "orientation_order", "path_share", "green_share"} == set(report["filled_targets"])
    best = report["candidates"][0]
    assert best["targets"]["path_share"]["filled"] and not best["targets"]["building_coverage"]["filled"]
    raster = read_raster(out / "candidate_0.tif")
    assert {"streets", "paths", "buildings", "green"} <= set(raster.bands)
    drawn = delivered(raster.bands)
    assert drawn["buildings"].mean() == pytest.approx(0.2, abs=1e-3)
    assert not (drawn["buildings"].astype(bool) & drawn["green"].astype(bool)).any()


def test_streets_file_runs_stage_two_alone(stages: dict[str, Path], built_samples: Path, tmp_path: Path) -> None:
    out = tmp_path / "dressed"
    city = built_samples / "helsinki_center.tif"
    args = ["generate", "--ckpt", str(stages["stage1"]), "--then", str(stages["stage2"]), "--streets", str(city),
            "--target", "building_coverage=0.3", "--n", "1", "--allow-extrapolation", "--no-realism", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["stages"] == [str(stages["stage2"])]
    with rasterio.open(city) as src, rasterio.open(out / "candidate_0.tif") as got:
        window = rasterio.windows.from_bounds(*got.bounds, transform=src.transform)
        given = src.read(src.descriptions.index("streets") + 1, window=window)
        assert np.allclose(got.read(got.descriptions.index("streets") + 1), given)
        assert "paths" not in got.descriptions or got.read(got.descriptions.index("paths") + 1).max() == 0


def test_chains_that_cannot_work_are_refused(stages: dict[str, Path], tmp_path: Path, capsys) -> None:
    base = ["generate", "--target", "building_coverage=0.2", "--out", str(tmp_path / "x"), "--no-realism"]
    # stage 2 first: it needs streets nobody drew
    assert main([*base, "--ckpt", str(stages["stage2"]), "--then", str(stages["stage1"])]) == 2
    assert "--streets" in capsys.readouterr().err
    assert main([*base, "--ckpt", "pretrained", "--then", str(stages["stage2"])]) == 2
    assert "drop --then" in capsys.readouterr().err


def test_pretrained_weights_generate(tmp_path: Path) -> None:
    """The shipped weights install with the package and draw a full layout from the demo's three targets."""
    from citygen.workflows.checkpoints import pretrained_paths

    paths = pretrained_paths()
    assert sum(p.stat().st_size for p in paths) <= 25e6
    out = tmp_path / "pre"
    args = ["generate", "--ckpt", "pretrained", "--target", "building_coverage=0.25", "--target",
            "intersection_density_km2=80", "--target", "green_share=0.1", "--n", "2", "--no-realism",
            "--no-street-search", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    best = report["candidates"][0]["targets"]
    assert best["building_coverage"]["relative_error"] < 0.01 and best["green_share"]["relative_error"] < 0.01
    with rasterio.open(out / "candidate_0.tif") as src:
        assert {"streets", "buildings", "green"} <= set(src.descriptions)
