"""`citygen evaluate` on checkpoints of short real training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citygen.cli.evaluate import main as evaluate
from citygen.core.errors import CheckpointError
from citygen.learn.training import main as fit
from citygen.workflows.checkpoints import load_task
from citygen.workflows.evaluate import test_data as evaluation_split

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "experiments"


def _last(root: Path) -> Path:
    return sorted(root.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)[-1]


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYGEN_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_evaluate_autoencoder(built_samples: Path, runs: Path, tmp_path: Path) -> None:
    fit(["fit", "--config", str(CONFIGS / "ae_demo.yaml"), "--data.root", str(built_samples),
         "--model.init_args.input_size", "64", "--model.init_args.widths", "[8, 16, 32]", "--model.init_args.latent_dim", "128",
         "--data.crop_size", "64", "--data.batch_size", "8", "--data.num_workers", "0", "--trainer.max_epochs", "1",
         "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false"])  # fmt: skip
    out = tmp_path / "ae.json"
    assert evaluate(["--ckpt", str(_last(runs)), "--json", str(out), "--max-crops", "24"]) == 0
    res = json.loads(out.read_text())
    assert res["task"] == "AutoencoderTask" and res["data"] == str(built_samples.resolve())
    assert {"streets", "buildings"} <= set(res["iou"]) and "streets" in res["f1"] and res["recon_loss"] > 0
    for key in ("street_density_km_km2", "intersection_density_km2", "building_coverage"):
        assert set(res["urban_metrics"][key]) == {"n", "rel_error", "spearman"}
    assert 0 <= res["iou"]["streets"] <= 1 and res["crops"] > 24
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        evaluate(["--ckpt", str(tmp_path / "missing.ckpt")])


def test_evaluate_pix2pix(built_samples: Path, runs: Path, tmp_path: Path) -> None:
    fit(["fit", "--config", str(CONFIGS / "pix2pix_demo.yaml"), "--data.root", str(built_samples),
         "--data.cities", "[helsinki_center]", "--data.min_valid_fraction", "0.5", "--model.init_args.ngf", "8", "--model.init_args.ndf", "8",
         "--data.num_workers", "0", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
         "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false"])  # fmt: skip
    out = tmp_path / "p2p.json"
    assert evaluate(["--ckpt", str(_last(runs)), "--json", str(out), "--max-crops", "4", "--candidates", "3"]) == 0
    res = json.loads(out.read_text())
    assert res["task"] == "Pix2PixTask" and res["crops"] == 4
    for name in ("building_coverage", "intersection_density_km2", "green_share"):
        assert set(res["conditioning"][name]) == {"mape", "mae", "spearman"} and name in res["best_candidate"]
    assert res["diversity_l1"] > 0, "candidates for the same target must differ"
    assert "real_pair_l1" in res and res["w1"]
    assert 0 <= res["overlap"]["buildings_green"] <= 1 and 0 <= res["real_overlap"]["buildings_green"] <= 1
    assert res["crop_size"] == 128
    # the demo config searches street thresholds; the generator alone is reported beside it
    assert res["street_search"] is True and "intersection_density_km2" in res["generator_alone"]
    assert "building_coverage" not in res["generator_alone"], "band shares do not depend on the search"
    assert evaluate(["--ckpt", str(_last(runs)), "--json", str(out), "--max-crops", "2", "--candidates", "2",
                     "--no-street-search"]) == 0  # fmt: skip
    alone = json.loads(out.read_text())
    assert alone["street_search"] is False and not alone["generator_alone"]
    # naming the dataset it was trained on keeps the checkpoint's cities (the demo passes --data)
    state = load_task(_last(runs)).data
    assert set(evaluation_split(state, built_samples, 4).datasets["test"].tiles["city"]) == {"helsinki_center"}
    # a fully convolutional generator also takes larger crops: targets requested and measured at 256 px
    assert evaluate(["--ckpt", str(_last(runs)), "--json", str(out), "--crop-size", "256", "--candidates", "2"]) == 0
    res = json.loads(out.read_text())
    assert res["crop_size"] == 256 and res["crops"] == 1  # Helsinki's one 256 px test tile
