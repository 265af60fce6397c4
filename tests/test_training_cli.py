"""`citygen fit|validate|test|predict` in-process through citygen.learn.training.main (LightningCLI)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from citygen.core.errors import CheckpointError
from citygen.learn.training import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# shrink every shipped config to one tiny batch; pix2pix on the only fixture city with streets + buildings
OVERRIDES = {
    "ae_demo": [],
    "ae_corpus": [],
    "ae_full": ["--data.batch_size", "2", "--data.num_workers", "0"],
    "pix2pix_demo": [
        "--data.cities",
        "[helsinki_center]",
        "--data.min_valid_fraction",
        "0.5",
        "--data.num_workers",
        "0",
    ],
    "pix2pix_full": [
        "--data.batch_size",
        "2",
        "--data.num_workers",
        "0",
        "--data.cities",
        "[helsinki_center]",
        "--data.min_valid_fraction",
        "0.5",
    ],
    "pix2pix_stage1": [
        "--data.cities",
        "[helsinki_center]",
        "--data.min_valid_fraction",
        "0.5",
        "--data.num_workers",
        "0",
    ],
    "pix2pix_stage2": [
        "--data.cities",
        "[helsinki_center]",
        "--data.min_valid_fraction",
        "0.5",
        "--data.num_workers",
        "0",
    ],
    "pix2pix_streets_demo": [
        "--data.cities",
        "[helsinki_center]",
        "--data.min_valid_fraction",
        "0.5",
        "--data.num_workers",
        "0",
    ],
}
TINY_AE = [
    "--model.init_args.input_size", "32", "--model.init_args.widths", "[8, 16]", "--model.init_args.latent_dim", "64",
    "--data.crop_size", "32", "--data.batch_size", "4", "--data.num_workers", "0",
    "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2", "--trainer.log_every_n_steps", "1",
]  # fmt: skip


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYGEN_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_every_shipped_config_is_exercised() -> None:
    assert sorted(OVERRIDES) == sorted(p.stem for p in (CONFIGS / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_shipped_configs_fast_dev_run(name: str, built_samples: Path, runs: Path) -> None:
    args = ["fit", "--config", str(CONFIGS / "experiments" / f"{name}.yaml"), "--data.root", str(built_samples)]
    assert main([*args, *OVERRIDES[name], "--trainer.fast_dev_run", "1"]) == 0


def test_configs_compose_and_bad_keys_are_rejected(
    built_samples: Path, runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["fit", "--trainer", str(CONFIGS / "trainer" / "demo.yaml"), "--model", str(CONFIGS / "model" / "autoencoder.yaml"),
            "--data.root", str(built_samples), "--data.crop_size", "128", "--data.bands", "[streets, buildings]"]  # fmt: skip
    assert main([*base, "--trainer.fast_dev_run", "1", "--data.batch_size", "2"]) == 0
    with pytest.raises(SystemExit) as exc:
        main([*base, "--model.init_args.bandz", "[streets]"])
    assert exc.value.code != 0 and "bandz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--model.init_args.binary_loss", "focal"])
    assert "focal" in capsys.readouterr().err


def _last_ckpt(runs: Path, run: str) -> Path:
    found = sorted((runs / run).glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert found, f"no last.ckpt under {runs / run}"
    return found[-1]


def test_resume_continues_exactly_and_wrong_channels_fail(built_samples: Path, runs: Path, tmp_path: Path) -> None:
    cfg = CONFIGS / "experiments" / "ae_demo.yaml"
    common = ["--config", str(cfg), "--data.root", str(built_samples), *TINY_AE, "--trainer.enable_progress_bar", "false",
              "--model.init_args.variational", "true",
              # a cosine schedule spans max_epochs, which this test changes between the two halves
              "--model.init_args.lr_schedule", "constant"]  # fmt: skip
    main(["fit", *common, "--run_name", "straight", "--trainer.max_epochs", "2"])
    main(["fit", *common, "--run_name", "split", "--trainer.max_epochs", "1"])
    first = _last_ckpt(runs, "split")
    main(["fit", *common, "--run_name", "split", "--trainer.max_epochs", "2", "--ckpt_path", str(first)])
    a = torch.load(_last_ckpt(runs, "straight"), weights_only=True)
    b = torch.load(_last_ckpt(runs, "split"), weights_only=True)
    assert a["epoch"] == b["epoch"] == 1 and a["global_step"] == b["global_step"] == 6
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), f"{key} differs after resume"

    run_dir = _last_ckpt(runs, "straight").parents[1]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["init_args"]["bands"] == ["streets", "buildings"]
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert {"train/loss", "val/loss", "val/iou_streets", "val/f1_streets"} <= set(metrics.columns)
    assert list((run_dir / "images").glob("*.png")), "sample reconstructions are written as PNG without W&B"
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))

    # last.ckpt follows the last epoch even when the monitored metric does not improve (lr 0, no BatchNorm drift)
    main(["fit", *common, "--run_name", "flat", "--trainer.max_epochs", "2", "--model.init_args.lr", "0",
          "--model.init_args.norm", "none"])  # fmt: skip
    assert torch.load(_last_ckpt(runs, "flat"), weights_only=True)["epoch"] == 1
    # ... and when validation runs only every few epochs (a run stopped before its first validation keeps it)
    main(["fit", *common, "--run_name", "sparse_val", "--trainer.max_epochs", "1",
          "--trainer.check_val_every_n_epoch", "2"])  # fmt: skip
    assert torch.load(_last_ckpt(runs, "sparse_val"), weights_only=True)["epoch"] == 0

    with pytest.raises(CheckpointError, match="bands"):
        main(["validate", *common, "--model.init_args.bands", "[streets]", "--ckpt_path", str(first)])

    out = tmp_path / "emb.parquet"
    writer = tmp_path / "writer.yaml"
    writer.write_text(yaml.safe_dump({"trainer": {"callbacks": [
        {"class_path": "citygen.learn.callbacks.EmbeddingWriter", "init_args": {"output": str(out)}}]}}))  # fmt: skip
    main(["predict", *common, "--config", str(writer), "--data.predict_split", "test", "--data.max_tiles", "2",
          "--ckpt_path", str(first)])  # fmt: skip
    emb = pd.read_parquet(out)
    assert len(emb) == 2 * 64 and set(emb["split"]) == {"test"}  # 2 tiles of 8 x 8 crops of 32 px
    assert len(emb["embedding"].iloc[0]) == 64
    assert {"city", "tile_id", "minx", "miny", "maxx", "maxy", "crs"} <= set(emb.columns)


def _wait_for(needle: bytes, path: Path, patience_s: float = 60.0) -> bool:
    """Whether ``needle`` appears in ``path``; the W&B service writes its run file asynchronously."""
    deadline = time.monotonic() + patience_s
    while needle not in path.read_bytes():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_wandb_offline_run_holds_metrics_images_and_config(
    built_samples: Path, runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    main(["fit", "--config", str(CONFIGS / "experiments" / "ae_demo.yaml"), "--data.root", str(built_samples), *TINY_AE,
          "--run_name", "wb", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"])  # fmt: skip
    wandb_runs = list((runs / "wb" / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1
    files = wandb_runs[0] / "files"
    assert list(files.glob("media/images/**/*.png")), "sample images go to W&B"
    assert "run_name: wb" in (files / "citygen_config.yaml").read_text()
    assert _wait_for(b"cli_config", next(wandb_runs[0].glob("*.wandb"))), "resolved config in the W&B run config"
    run_dir = _last_ckpt(runs, "wb").parents[1]
    assert run_dir.name == wandb_runs[0].name.rsplit("-", 1)[-1]  # checkpoints live under the W&B run id
    assert (run_dir / "config.yaml").exists() and (run_dir / "metrics.csv").exists()


@pytest.mark.parametrize("part", sorted(p.name for p in (CONFIGS / "model").glob("*.yaml")))
def test_model_config_parts_parse(part: str, runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fit", "--trainer", str(CONFIGS / "trainer" / "demo.yaml"), "--model", str(CONFIGS / "model" / part)]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--print_config"])
    assert exc.value.code in (0, None)
    assert "class_path: citygen.learn.tasks." in capsys.readouterr().out


@pytest.mark.parametrize("part", sorted(p.name for p in (CONFIGS / "trainer").glob("*.yaml")))
def test_trainer_config_parts_parse(part: str, runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fit", "--trainer", str(CONFIGS / "trainer" / part), "--model", str(CONFIGS / "model" / "autoencoder.yaml")]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--print_config"])
    assert exc.value.code in (0, None)
    assert "accelerator: auto" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["ae_full", "pix2pix_full"])
def test_full_configs_train_with_ddp_on_two_processes(name: str, built_samples: Path, tmp_path: Path) -> None:
    """The full configs as a multi-GPU run starts them, on two CPU processes (gloo): Lightning launches a
    second `citygen fit` process, gradients are all-reduced, and rank 0 alone writes the run."""
    import os
    import subprocess
    import sys

    # an in-process single-device DDP run of an earlier test leaves its rendezvous (MASTER_PORT, ranks) in
    # this process's environment, with the port still taken: the new run must pick its own
    rendezvous = {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE"}
    env = {k: v for k, v in os.environ.items() if k not in rendezvous}
    env.update(CITYGEN_RUNS_DIR=str(tmp_path / "runs"), WANDB_MODE="disabled")
    args = [sys.executable, "-m", "citygen", "fit", "--config", str(CONFIGS / "experiments" / f"{name}.yaml"),
            "--data.root", str(built_samples), *OVERRIDES[name], "--run_name", "ddp", "--trainer.accelerator", "cpu",
            "--trainer.devices", "2", "--trainer.precision", "32-true", "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
            "--trainer.check_val_every_n_epoch", "1", "--trainer.enable_progress_bar", "false"]  # fmt: skip
    if name == "ae_full":
        args += ["--trainer.strategy", "ddp"]  # the config's `auto` picks DDP on several GPUs
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stderr, "two DDP processes"
    assert len(list((tmp_path / "runs" / "ddp").rglob("last.ckpt"))) == 1, "one run, written by rank 0"
