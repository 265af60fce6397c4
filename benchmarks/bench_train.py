"""Training throughput of both tasks on CPU vs. the loading rate of the data module alone.

    python benchmarks/bench_train.py [--data DIR] [--steps 10] [--workers 0 2]

Models and data settings come from the demo experiment configs. Training is timed on batches already in
memory (the optimisation step alone); loading is timed by iterating the training dataloader without a
model, over the same batches twice: cold (first touch of each GeoTIFF block) and warm (GDAL's block cache,
the steady state from the second epoch on). The goal is loading >= 10x faster than training consumes, so
the GPU / CPU never waits for data.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from torch.utils.data import DataLoader

from citygen.core.settings import data_dir
from citygen.learn.datamodule import CityTileDataModule

ROOT = Path(__file__).resolve().parents[1]


def load_experiment(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "configs" / "experiments" / f"{name}.yaml").read_text())


def build_task(cfg: dict[str, Any]) -> L.LightningModule:
    module, _, cls = cfg["model"]["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), cls)(**cfg["model"].get("init_args", {}))


def datamodule(cfg: dict[str, Any], root: Path, workers: int) -> CityTileDataModule:
    kwargs = {**cfg["data"], "root": str(root), "num_workers": workers}
    dm = CityTileDataModule(**kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _identity(x: Any) -> Any:
    return x


def bench_training(task: L.LightningModule, batch: dict[str, Any], steps: int) -> float:
    """Samples per second of training steps on one in-memory batch (Lightning loop, no logger)."""
    trainer = L.Trainer(max_steps=-1, max_epochs=1, limit_train_batches=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                        limit_val_batches=0)  # fmt: skip

    def loader(n: int) -> DataLoader:
        return DataLoader([batch] * n, batch_size=None, collate_fn=_identity)

    trainer.fit(task, train_dataloaders=loader(2))  # warm-up (allocator, first-call overheads)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                        limit_val_batches=0)  # fmt: skip
    start = time.perf_counter()
    trainer.fit(task, train_dataloaders=loader(steps))
    return steps * batch["image"].shape[0] / (time.perf_counter() - start)


def bench_loading(dm: CityTileDataModule, batches: int) -> tuple[float, float]:
    """Samples/s over the first ``batches`` batches of two epochs: cold (GeoTIFF blocks decompressed on first
    touch) and warm (after a full epoch GDAL's block cache holds them: the steady state of a training run)."""
    loader = dm.train_dataloader()
    rates = []
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        it = iter(loader)
        next(it)  # worker start-up is not throughput
        n, start = 0, time.perf_counter()
        for _, batch in zip(range(batches), it, strict=False):
            n += batch["image"].shape[0]
        rates.append(n / (time.perf_counter() - start))
        for _ in it:  # finish the epoch: every tile's blocks have been read once
            pass
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=data_dir(), help="built dataset (default: settings.data_dir())")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed per task")
    parser.add_argument("--batches", type=int, default=30, help="batches timed for loading")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers settings to time")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, data {args.data}")
    for name in ("ae_demo", "pix2pix_demo"):
        cfg = load_experiment(name)
        dm = datamodule(cfg, args.data, 0)
        batch = next(iter(dm.train_dataloader()))
        train_rate = bench_training(build_task(cfg), batch, args.steps)
        print(f"{name}: training {train_rate:8.1f} samples/s (batch {batch['image'].shape[0]}, "
              f"{tuple(batch['image'].shape[1:])})")  # fmt: skip
        for workers in args.workers:
            cold, warm = bench_loading(datamodule(cfg, args.data, workers), args.batches)
            print(f"{name}: loading  {cold:8.1f} samples/s cold, {warm:8.1f} warm with num_workers={workers} "
                  f"({cold / train_rate:.1f}x / {warm / train_rate:.1f}x training)")  # fmt: skip


if __name__ == "__main__":
    main()
