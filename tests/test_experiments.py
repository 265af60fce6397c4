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


def test_random_weights_control_reinitialises_a_copy_and_measures_its_batch_norms(built_samples: Path) -> None:
    import torch

    from citygen.data.dataset import CityTileDataset
    from citygen.learn.tasks import AutoencoderTask

    variants = runpy.run_path(str(EXPERIMENTS / "probe_ceiling" / "feature_variants.py"))
    dataset = CityTileDataset(built_samples, bands=["streets", "buildings", "valid"])
    train = (dataset.tiles["split"] == "train").to_numpy()
    task = AutoencoderTask(input_size=64, widths=[8, 16], bottleneck="spatial", latent_dim=16 * 16 * 4).eval()
    before = {k: v.clone() for k, v in task.state_dict().items()}
    control = variants["random_weights"](task, dataset, train, seed=1)
    assert all(torch.equal(v, task.state_dict()[k]) for k, v in before.items())  # the task itself is untouched
    assert not control.training
    layers = control.net.encoder.features
    assert not torch.equal(layers[0].weight, task.net.encoder.features[0].weight)
    norm_at = next(i for i, m in enumerate(layers) if isinstance(m, torch.nn.BatchNorm2d))
    norm = layers[norm_at]
    rows = train.nonzero()[0]
    with torch.no_grad():  # the first norm's running mean: the mean over batches of 32 train tiles of its inputs
        batches = [
            torch.stack([dataset[int(i)]["image"][:2] for i in rows[s : s + 32]]) for s in range(0, len(rows), 32)
        ]
        means = torch.stack([layers[:norm_at](images).mean(dim=(0, 2, 3)) for images in batches])
    assert int(norm.num_batches_tracked) == len(batches)
    assert torch.allclose(norm.running_mean, means.mean(0), atol=1e-5)
    with torch.no_grad():
        stats, *_ = variants["encoded"](control, dataset)
    assert stats.shape[0] == len(dataset) and torch.isfinite(torch.from_numpy(stats)).all()
