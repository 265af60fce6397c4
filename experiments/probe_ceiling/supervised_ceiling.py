"""How well can the city probes do on these tiles at all? A CNN trained on the city labels of the train tiles.

The probes of `citygen compare` are linear classifiers on an autoencoder's latent statistics, which never saw
a city label. This script trains a small supervised CNN on the very tiles and splits the probes use (same
selection, `citygen.workflows.probes.probe_tiles`) and scores it on the same spatially held-out test tiles:
a rough ceiling for what the shipped sample data allows. Training sees random 160 px crops of the train
tiles with rotations and flips (`citygen.data.dataset.CityTileDataset`); a test tile is classified whole (mean of
its four rotations). The learning rate follows a cosine from 1e-3 to zero over the run (``--lr-schedule``), so
the last step is a settled one. The figure is the test accuracy after the last step: no step or seed is chosen
by the test split.

    python experiments/probe_ceiling/supervised_ceiling.py --probe houston_vs_copenhagen --seeds 0 1 2 \\
        --json experiments/probe_ceiling/houston_vs_copenhagen.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from citygen.core import settings
from citygen.data.dataset import CityTileDataset
from citygen.learn.datamodule import EpochSampler
from citygen.workflows.compare import PROBES
from citygen.workflows.probes import city_name, probe_tiles

BANDS = ("streets", "buildings", "valid")


class CityClassifier(L.LightningModule):
    """Four conv stages, global average pooling, a linear layer: a fully convolutional classifier."""

    def __init__(
        self,
        in_channels: int,
        classes: int,
        class_weights: Tensor,
        lr: float = 1e-3,
        lr_schedule: Literal["constant", "cosine"] = "cosine",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["class_weights"])
        self.register_buffer("class_weights", class_weights)

        def stage(i: int, o: int) -> nn.Module:
            return nn.Sequential(
                *(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()),
                *(nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()),
                nn.MaxPool2d(2),
            )

        self.net = nn.Sequential(
            stage(in_channels, 16), stage(16, 32), stage(32, 64), stage(64, 64),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(64, classes),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_weights)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        if self.hparams.lr_schedule == "constant":
            return {"optimizer": optimizer}
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.trainer.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}

    @torch.no_grad()
    def predict_tiles(self, images: Tensor, batch_size: int = 16) -> Tensor:
        """Class probabilities of whole tiles, averaged over their four rotations."""
        self.eval()
        out = []
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(self.device)
            out.append(torch.stack([self(torch.rot90(x, k, (2, 3))).softmax(1) for k in range(4)]).mean(0).cpu())
        return torch.cat(out)


def split_rows(frame: pd.DataFrame, split: str, labels: list[str]) -> tuple[pd.DataFrame, Tensor]:
    """The probe's tiles of one split and their city indices."""
    rows = frame[(frame["split"] == split) & frame["group"].isin(labels)]
    return rows, torch.tensor([labels.index(g) for g in rows["group"]])


def training_crops(data: Path, rows: pd.DataFrame, y: Tensor, *, crop: int, seed: int) -> DataLoader:
    """Batches of ``(image, city index)``: one random crop of every train tile (``rows``, city indices ``y``)
    per epoch, with random rotations and flips (``citygen.data.dataset.CityTileDataset``, repeatable from
    ``(seed, epoch, tile)``)."""
    crops = CityTileDataset(
        data, tiles=rows.drop(columns="geometry"), bands=BANDS, crop_size=crop, augment=True, rotate90=True, seed=seed
    )
    label_of_tile = dict(zip(rows["tile_id"], y.tolist(), strict=True))

    def image_and_label(samples: list[dict]) -> tuple[Tensor, Tensor]:
        images = torch.stack([s["image"] for s in samples])
        return images, torch.tensor([label_of_tile[s["tile_id"]] for s in samples])

    sampler = EpochSampler(len(crops), seed=seed)
    return DataLoader(crops, batch_size=32, sampler=sampler, collate_fn=image_and_label, drop_last=len(crops) > 32)


def run(
    probe: str,
    *,
    data: Path,
    seed: int,
    steps: int,
    crop: int,
    class_weighted: bool = True,
    lr_schedule: Literal["constant", "cosine"] = "cosine",
) -> dict:
    dataset = CityTileDataset(data, bands=list(BANDS))
    tiles = dataset.tiles.assign(group=dataset.tiles["city"].map(city_name))
    frame, labels = probe_tiles(tiles, PROBES[probe])
    train, y_train = split_rows(frame, "train", labels)
    test, y_test = split_rows(frame, "test", labels)
    x_test = torch.stack([dataset[int(i)]["image"] for i in test["_row"]])
    L.seed_everything(seed)
    counts = torch.bincount(y_train, minlength=len(labels)).float()
    weights = counts.sum() / (len(labels) * counts) if class_weighted else torch.ones(len(labels))
    model = CityClassifier(len(BANDS), len(labels), class_weights=weights, lr_schedule=lr_schedule)
    trainer = L.Trainer(accelerator="auto", devices=1, max_steps=steps, logger=False, enable_checkpointing=False)
    trainer.fit(model, training_crops(data, train, y_train, crop=crop, seed=seed))
    probabilities = model.predict_tiles(x_test)
    predicted = probabilities.argmax(1)
    return {
        "probe": probe,
        "seed": seed,
        "steps": steps,
        "class_weighted": class_weighted,
        "lr_schedule": lr_schedule,
        "cities": labels,
        "n_train": len(y_train),
        "n_test": len(y_test),
        "train_loss": float(trainer.callback_metrics["train/loss"]),  # of the last batch
        "test_accuracy": float((predicted == y_test).float().mean()),
        "chance": float(torch.bincount(y_test).max() / len(y_test)),
        "missed": [t for t, p, y in zip(test["tile_id"], predicted, y_test, strict=True) if p != y],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", choices=sorted(PROBES), default="houston_vs_copenhagen")
    parser.add_argument("--data", type=Path, default=settings.data_dir())
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--crop", type=int, default=160, help="training crop side in pixels")
    parser.add_argument(
        "--class-weights",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="weight the loss by inverse city frequency (off: plain cross-entropy, as the accuracy counts tiles)",
    )
    parser.add_argument(
        "--lr-schedule",
        choices=["constant", "cosine"],
        default="cosine",
        help="cosine: decay the learning rate to zero over the run; constant: keep 1e-3 (the first recorded runs)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    options = {
        "steps": args.steps,
        "crop": args.crop,
        "class_weighted": args.class_weights,
        "lr_schedule": args.lr_schedule,
    }
    runs = [run(args.probe, data=args.data, seed=s, **options) for s in args.seeds]
    accuracies = [r["test_accuracy"] for r in runs]
    summary = {"runs": runs, "mean_test_accuracy": float(np.mean(accuracies)), "test_accuracies": accuracies}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
