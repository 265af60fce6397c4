"""The one checkpoint loader: a trained task from a Lightning checkpoint, read safely (``weights_only=True``).

``citygen evaluate``, ``embed`` and ``generate``, the demo and the experiments all load through
:func:`load_task`, so a missing, corrupt or foreign file gets the same clear error everywhere (the raw reader,
:func:`citygen.learn.tasks.base.read_checkpoint`, also serves the resume check of ``citygen fit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citygen.core.errors import CheckpointError
from citygen.learn.tasks import AutoencoderTask, Pix2PixTask
from citygen.learn.tasks.base import META_KEY, read_checkpoint

TASKS: dict[str, type[AutoencoderTask] | type[Pix2PixTask]] = {
    "AutoencoderTask": AutoencoderTask,
    "Pix2PixTask": Pix2PixTask,
}
DATA_STATE_KEY = "CityTileDataModule"  # the data module's state_dict in a checkpoint (Lightning keys it by class)


@dataclass
class TrainedTask:
    """A task in eval mode on the CPU, and what its checkpoint says about how it was trained."""

    task: Any  # AutoencoderTask | Pix2PixTask
    name: str  # the task class name
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)  # the shape-fixing settings (bands, sizes)
    data: dict[str, Any] = field(default_factory=dict)  # the data module state: root, bands, crop size, targets

    @property
    def data_root(self) -> Path | None:
        """The dataset it was trained on (None when the checkpoint does not record it)."""
        return Path(self.data["root"]) if self.data.get("root") else None


def load_task(path: str | Path, expected: str | None = None) -> TrainedTask:
    """The task stored in a checkpoint written by ``citygen fit`` (``expected``: the task class it must hold)."""
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
    task = TASKS[name].load_from_checkpoint(path, map_location="cpu", weights_only=True)
    task.eval()
    data = dict(checkpoint.get(DATA_STATE_KEY) or {})
    if not data.get("root"):  # checkpoints of runs without a data module state keep the root in its hparams
        root = checkpoint.get("datamodule_hyper_parameters", {}).get("root")
        data.update({"root": root} if root else {})
    return TrainedTask(task=task, name=name, path=path, meta=dict(meta), data=data)
