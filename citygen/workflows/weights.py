"""Generator-only exports of trained pix2pix checkpoints: what ``citygen/weights`` ships.

A Lightning checkpoint of a pix2pix run holds the discriminator, the metric regressor and both optimizers'
state; generation needs none of them. :func:`export_weights` keeps the generator (and the output head's
buffers) in half precision, the hyperparameters, the data module state, and what generation needs to know of
the training data without the dataset at hand: the training crops' measured targets (their ranges, and the
values a target the user did not give is filled from) and the pixel size. ``citygen export-weights`` writes
one; :func:`citygen.workflows.checkpoints.load_task` reads it as it reads a checkpoint.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import torch

from citygen.core.errors import CheckpointError
from citygen.data.geotiff import atomic_path
from citygen.learn.tasks.base import META_KEY, read_checkpoint
from citygen.workflows.checkpoints import (
    DATA_STATE_KEY,
    DROPPED,
    WEIGHTS_KEY,
    load_task,
    training_crops,
    training_resolution,
)


def export_weights(ckpt: str | Path, out: str | Path, *, data: str | Path | None = None) -> Path:
    """Write the generator-only export of a pix2pix checkpoint to ``out`` (atomically); ``data``: the dataset
    it was trained on, when not at the root the checkpoint records."""
    trained = load_task(ckpt, expected="Pix2PixTask")
    checkpoint = read_checkpoint(ckpt)
    root = Path(data) if data else trained.data_root
    if root is None or not (root / "tile_targets.parquet").is_file():
        raise CheckpointError(
            f"the dataset of {ckpt} ({root}) is not here to record its training targets",
            "pass --data DIR, the dataset the model was trained on",
        )
    names, size = list(trained.task.conditions), int(trained.meta["input_size"])
    crops = training_crops(root, names, size, trained.data.get("cities") or None).dropna()
    state = {
        k: (v.half() if v.is_floating_point() else v)
        for k, v in checkpoint["state_dict"].items()
        if not k.startswith(DROPPED)
    }
    export = {
        "state_dict": state,
        "hyper_parameters": dict(checkpoint["hyper_parameters"]),
        META_KEY: checkpoint[META_KEY],
        DATA_STATE_KEY: {**trained.data, "root": str(root)},
        WEIGHTS_KEY: {
            "source": Path(ckpt).name,
            "source_sha256": hashlib.sha256(Path(ckpt).read_bytes()).hexdigest(),
            "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "epoch": int(checkpoint.get("epoch", -1)),
            "global_step": int(checkpoint.get("global_step", -1)),
            "resolution_m": training_resolution(root),
            "crop_targets": {n: torch.from_numpy(crops[n].to_numpy(np.float32)) for n in names},
        },
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(export, tmp)
    return out
