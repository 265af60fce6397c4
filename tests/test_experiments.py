"""Experiment scripts that recorded figures in ``experiments/`` still run on the library as it is now."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_supervised_ceiling_trains_on_the_probe_tiles_and_repeats(built_samples: Path) -> None:
    from citygen.data.dataset import read_tile_index

    run = runpy.run_path(str(EXPERIMENTS / "probe_ceiling" / "supervised_ceiling.py"))["run"]
    first, again = (run("houston_vs_copenhagen", data=built_samples, seed=3, steps=3, crop=64) for _ in range(2))
    tiles = read_tile_index(built_samples)
    houston_or_copenhagen = tiles["city"].isin(["houston_montrose", "cph_vesterbro"])
    assert math.isfinite(first["train_loss"])
    assert first["cities"] == ["Copenhagen", "Houston"]
    assert first["n_train"] == int((houston_or_copenhagen & (tiles["split"] == "train")).sum())
    test_ids = set(tiles.loc[houston_or_copenhagen & (tiles["split"] == "test"), "tile_id"])
    assert first["n_test"] == len(test_ids) and set(first["missed"]) <= test_ids
    assert first["test_accuracy"] == pytest.approx(1 - len(first["missed"]) / first["n_test"])
    assert again == first  # crops, flips and initialisation all follow the seed
    assert first["lr_schedule"] == "cosine"
    constant = run("houston_vs_copenhagen", data=built_samples, seed=3, steps=3, crop=64, lr_schedule="constant")
    assert constant["lr_schedule"] == "constant" and constant["train_loss"] != first["train_loss"]
