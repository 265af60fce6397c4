"""Load trained tasks from Lightning checkpoints, safely (`weights_only=True`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from citygen.errors import CheckpointError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
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


def load_task(path: str | Path, expected: str | None = None) -> tuple[Any, Path | None]:
    """The task stored in a checkpoint (in eval mode on the CPU) and the dataset it was trained on."""
    from citygen.tasks import AutoencoderTask, Pix2PixTask
    from citygen.tasks.base import META_KEY

    checkpoint = read_checkpoint(path)
    task_name = checkpoint.get(META_KEY, {}).get("task")
    classes = {"AutoencoderTask": AutoencoderTask, "Pix2PixTask": Pix2PixTask}
    if task_name not in classes:
        raise CheckpointError(
            f"{path} is not a citygen task checkpoint (task {task_name!r})",
            "pass a checkpoint written by `citygen fit`",
        )
    if expected is not None and task_name != expected:
        raise CheckpointError(
            f"{path} holds a {task_name}, but this command needs a {expected}",
            f"pass a {expected} checkpoint",
        )
    task = classes[task_name].load_from_checkpoint(path, map_location="cpu", weights_only=True)
    task.eval()
    root = checkpoint.get("datamodule_hyper_parameters", {}).get("root")
    return task, Path(root) if root else None
