"""The one checkpoint loader: a trained task from a Lightning checkpoint or a generator-only export, read safely
(``weights_only=True``).

``citygen evaluate``, ``embed`` and ``generate``, the demo and the experiments all load through
:func:`load_task`, so a missing, corrupt or foreign file gets the same clear error everywhere (the raw reader,
:func:`citygen.learn.tasks.base.read_checkpoint`, also serves the resume check of ``citygen fit``).
:func:`load_stages` also resolves ``pretrained``, the two-stage model shipped in :mod:`citygen.weights`
(exports written by :func:`citygen.workflows.weights.export_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from citygen.core.errors import CheckpointError
from citygen.learn.tasks import AutoencoderTask, Pix2PixTask
from citygen.learn.tasks.base import META_KEY, read_checkpoint

TASKS: dict[str, type[AutoencoderTask] | type[Pix2PixTask]] = {
    "AutoencoderTask": AutoencoderTask,
    "Pix2PixTask": Pix2PixTask,
}
DATA_STATE_KEY = "CityTileDataModule"  # the data module's state_dict in a checkpoint (Lightning keys it by class)
WEIGHTS_KEY = "citygen_weights"  # marks a generator-only export; holds what generation needs of the data
DROPPED = ("discriminator.", "regressor.", "consistency.regressor.")  # training-only parts an export leaves out
PRETRAINED = "pretrained"
PRETRAINED_FILES = ("stage1.pt", "stage2.pt")
RANGE_QUANTILES = (0.01, 0.99)  # the "range seen in training": 1st to 99th percentile of training crops


@dataclass
class TrainedTask:
    """A task in eval mode on the CPU, and what its checkpoint says about how it was trained."""

    task: Any  # AutoencoderTask | Pix2PixTask
    name: str  # the task class name
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)  # the shape-fixing settings (bands, sizes)
    data: dict[str, Any] = field(default_factory=dict)  # the data module state: root, bands, crop size, targets
    export: dict[str, Any] = field(default_factory=dict)  # an export's record of its training data ({} otherwise)

    @property
    def data_root(self) -> Path | None:
        """The dataset it was trained on, where it is on this machine (None when absent or not recorded)."""
        root = Path(self.data["root"]) if self.data.get("root") else None
        return root if root is None or root.is_dir() or not self.export else None

    def training_crops(self) -> pd.DataFrame:
        """Measured targets of the training crops: from an export, else from the dataset's target cache."""
        names = list(getattr(self.task, "conditions", []))
        if self.export.get("crop_targets"):
            values = self.export["crop_targets"]
            return pd.DataFrame({k: np.asarray(values[k], dtype=np.float64) for k in names if k in values})
        size = int(self.meta.get("input_size", self.data.get("crop_size", 0)) or 0)
        return training_crops(self.data_root, names, size, self.data.get("cities") or None)

    def resolution_m(self) -> float:
        """Metres per pixel of the training data (2 m when nothing records it)."""
        if self.export.get("resolution_m"):
            return float(self.export["resolution_m"])
        return training_resolution(self.data_root)


def load_task(path: str | Path, expected: str | None = None) -> TrainedTask:
    """The task stored in a checkpoint written by ``citygen fit`` or an export of one (``expected``: the task
    class it must hold)."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    meta = checkpoint.get(META_KEY) or {}
    name = meta.get("task")
    if name not in TASKS:
        raise CheckpointError(
            f"{path} is not a citygen task checkpoint (task {name!r})", "pass a checkpoint written by `citygen fit`"
        )
    if expected is not None and name != expected:
        raise CheckpointError(
            f"{path} holds a {name}, but this command needs a {expected}", f"pass a {expected} checkpoint"
        )
    export = dict(checkpoint.get(WEIGHTS_KEY) or {})
    if export:
        task = _from_export(TASKS[name], checkpoint, path)
    else:
        task = TASKS[name].load_from_checkpoint(path, map_location="cpu", weights_only=True)
    task.eval()
    data = dict(checkpoint.get(DATA_STATE_KEY) or {})
    if not data.get("root"):  # checkpoints of runs without a data module state keep the root in its hparams
        root = checkpoint.get("datamodule_hyper_parameters", {}).get("root")
        data.update({"root": root} if root else {})
    return TrainedTask(task=task, name=name, path=path, meta=dict(meta), data=data, export=export)


def load_stages(ckpt: str | Path, then: str | Path | None = None) -> list[TrainedTask]:
    """The pix2pix stages to chain: ``pretrained`` (the shipped two), or ``ckpt`` followed by ``then``."""
    if str(ckpt) == PRETRAINED:
        if then is not None:
            raise CheckpointError("--ckpt pretrained already holds both stages", "drop --then")
        return [load_task(p, expected="Pix2PixTask") for p in pretrained_paths()]
    stages = [load_task(ckpt, expected="Pix2PixTask")]
    return [*stages, load_task(then, expected="Pix2PixTask")] if then is not None else stages


def pretrained_paths() -> list[Path]:
    """The shipped stage files, in chain order (a clear error if the install lacks them)."""
    folder = resources.files("citygen.weights")
    paths = [Path(str(folder.joinpath(name))) for name in PRETRAINED_FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise CheckpointError(
            f"the shipped weights {missing} are missing from {folder}",
            "reinstall citygen (`pip install .`), or pass a checkpoint of your own with --ckpt",
        )
    return paths


def _from_export(task_class: Any, checkpoint: dict[str, Any], path: Path) -> Any:
    """A task built from a generator-only export (the training-only parts keep their initial values)."""
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}  # _class_path
    task = task_class(**hparams)
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    missing, unexpected = task.load_state_dict(state, strict=False)
    lost = [k for k in missing if not k.startswith(DROPPED)]
    if lost or unexpected:
        raise CheckpointError(
            f"{path} does not fit a {task_class.__name__}: missing {lost[:3]}, unexpected {unexpected[:3]}",
            "export it again with `citygen export-weights` from the checkpoint it came from",
        )
    return task


def training_crops(
    root: Path | None, names: list[str], cell_size: int, cities: list[str] | None = None
) -> pd.DataFrame:
    """Measured targets of the training crops (``cities``: only those) from the dataset's target cache; an empty
    frame when the dataset or its cache is missing."""
    if root is None or not (root / "tile_targets.parquet").is_file() or not (root / "tiles.parquet").is_file():
        return pd.DataFrame(columns=names)
    cache = pd.read_parquet(root / "tile_targets.parquet")
    tiles = pd.read_parquet(root / "tiles.parquet", columns=["tile_id", "split", "city"])
    train = tiles[tiles["split"] == "train"]
    if cities:
        train = train[train["city"].isin(cities)]
    crops = cache[(cache["cell_size"] == cell_size) & cache["tile_id"].isin(train["tile_id"])]
    return crops[[n for n in names if n in crops]].reset_index(drop=True)


def ranges_of(crops: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """The 1st-99th percentile of each target over the training crops (targets with < 10 values are left out)."""
    ranges = {}
    for name in crops.columns:
        if crops[name].notna().sum() >= 10:
            low, high = crops[name].quantile(list(RANGE_QUANTILES))
            ranges[name] = (float(low), float(high))
    return ranges


def training_resolution(root: Path | None) -> float:
    if root is not None and (root / "tiles.parquet").is_file():
        tiles = pd.read_parquet(root / "tiles.parquet", columns=["minx", "maxx", "width"])
        return float(((tiles["maxx"] - tiles["minx"]) / tiles["width"]).median())
    return 2.0
