"""Shared behaviour of the citygen LightningModules: band bookkeeping, masked losses, checks.

Hyperparameters are plain lists / ints / floats / strings so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryF1Score, BinaryJaccardIndex

from citygen.core.bands import BAND_NAMES, band
from citygen.core.errors import CheckpointError, CitygenError, ConfigError

RNG_KEY = "citygen_rng_state"
META_KEY = "citygen_meta"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary (tensors and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path}",
            "train one with `citygen fit --config configs/experiments/ae_demo.yaml`",
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}", "pass a .ckpt written by `citygen fit`") from exc


class TrainingDivergedError(CitygenError):
    """A loss became NaN or infinite."""


def check_bands(names: Sequence[str], what: str) -> list[str]:
    names = list(names)
    unknown = [b for b in names if b not in BAND_NAMES]
    if unknown:
        raise ConfigError(f"{what}: unknown band(s) {unknown}", f"choose from {', '.join(BAND_NAMES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{what}: duplicate bands in {names}")
    return names


def is_fraction(name: str) -> bool:
    """Fraction bands get a sigmoid output, BCE / Dice losses and IoU / F1 metrics."""
    return band(name).unit == "fraction"


def select_channels(batch: dict[str, Any], names: Sequence[str]) -> Tensor:
    """Channels of ``batch["image"]`` by band name (the data module may load more bands, in any order)."""
    available = list(batch["bands"])
    missing = [n for n in names if n not in available]
    if missing:
        raise ConfigError(
            f"the model needs band(s) {missing} but the data module loads {available}",
            "add them to data.bands (or use the same bands list for data and model)",
        )
    if available == list(names):
        return batch["image"]
    return batch["image"][:, [available.index(n) for n in names]]


def channel_weights(batch: dict[str, Any], names: Sequence[str]) -> Tensor:
    """Per-pixel loss weights ``[B, C, H, W]``: inside the data extent and where the band's layer exists."""
    mask = batch["mask"].to(batch["image"].dtype)
    available = list(batch["bands"])
    present = batch["present"][:, [available.index(n) for n in names]].to(mask.dtype)
    return mask * present[:, :, None, None]


def tile_identity(batch: dict[str, Any]) -> dict[str, Any]:
    """The keys that say which tile a prediction belongs to (for writers and embeddings)."""
    return {key: batch[key] for key in ("tile_id", "city", "split", "crs", "bounds")}


def check_finite(loss: Tensor, name: str, step: int) -> None:
    if not torch.isfinite(loss).all():
        raise TrainingDivergedError(
            f"{name} is {loss.item()} at step {step}; training diverged",
            "lower the learning rate, use precision 32, or check the input data for NaN / inf values",
        )


class BaseTask(L.LightningModule):
    """Checkpoint compatibility checks and RNG state in checkpoints (so a resumed run continues exactly).

    Subclasses set ``self.meta``: the normalised settings that fix the network's shape (band lists,
    sizes). It is stored in every checkpoint and must match when a checkpoint is loaded.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending_rng: Tensor | None = None
        self.meta: dict[str, Any] = {}

    @property
    def hp(self) -> Any:
        """``hparams`` with attribute access (Lightning types it as a plain mapping)."""
        return self.hparams

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = torch.get_rng_state()
        checkpoint[META_KEY] = {"task": type(self).__name__, **self.meta}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(META_KEY, {})
        if saved.get("task", type(self).__name__) != type(self).__name__:
            raise CheckpointError(f"the checkpoint holds a {saved['task']}, not a {type(self).__name__}")
        diffs = []
        for key, mine in self.meta.items():
            if key in saved and list_or_value(saved[key]) != list_or_value(mine):
                diffs.append(f"{key}: checkpoint {saved[key]!r}, model {mine!r}")
        if diffs:
            raise CheckpointError(
                f"checkpoint does not fit this {type(self).__name__}: " + "; ".join(diffs),
                "use the model settings the checkpoint was trained with (see its saved config), "
                "or train a new model for these channels",
            )
        self._pending_rng = checkpoint.get(RNG_KEY)

    def on_train_start(self) -> None:
        # restored here, after the sanity check, so validation does not shift the random stream
        if self._pending_rng is not None:
            torch.set_rng_state(self._pending_rng.cpu())
            self._pending_rng = None


def list_or_value(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def fraction_metrics(bands: Sequence[str], *, prefix: str) -> MetricCollection:
    """IoU and F1 at 0.5 of each coverage band (pixels outside the data extent carry the label -1)."""
    metrics: dict[str, Any] = {}
    for name in bands:
        metrics[f"iou_{name}"] = BinaryJaccardIndex(threshold=0.5, ignore_index=-1)
        metrics[f"f1_{name}"] = BinaryF1Score(threshold=0.5, ignore_index=-1)
    return MetricCollection(metrics, prefix=prefix)


def update_fraction_metrics(
    metrics: MetricCollection, pred: Tensor, real: Tensor, weight: Tensor, bands: dict[str, int]
) -> None:
    """Update :func:`fraction_metrics` with predicted coverage ``[B, C, H, W]`` against the real layout thresholded
    at 0.5, pixels of zero ``weight`` ignored; ``bands``: band name -> channel."""
    for name, i in bands.items():
        target = torch.where(weight[:, i] > 0, (real[:, i] >= 0.5).long(), -1)
        metrics[f"iou_{name}"].update(pred[:, i], target)
        metrics[f"f1_{name}"].update(pred[:, i], target)


def linear_decay(optimizers: list[Any], max_epochs: int | None, n_decay: int) -> list[Any]:
    """Schedulers (stepped once per epoch) keeping the learning rate, then decaying it linearly to 0 over the last
    ``n_decay`` epochs of ``max_epochs`` (pix2pix's schedule)."""
    epochs = max_epochs if max_epochs and max_epochs > 0 else 1
    keep = max(epochs - n_decay, 0)

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - keep) / float(n_decay + 1)

    return [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in optimizers]
