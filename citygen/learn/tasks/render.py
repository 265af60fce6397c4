"""The pictures tasks hand to the image logger (`render_samples`): panel grids of layouts (colours from
:mod:`citygen.core.viz`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from citygen.core.viz import COLORS, render_layout

__all__ = ["COLORS", "grid", "render_layout"]


def grid(rows: list[list[np.ndarray]], pad: int = 2, min_size: int = 128) -> np.ndarray:
    """Tile equally sized RGB panels into one uint8 image (rows x columns), white padding.

    Panels smaller than ``min_size`` pixels are enlarged by pixel repetition so small crops stay legible.
    """
    factor = max(1, -(-min_size // rows[0][0].shape[0]))
    if factor > 1:
        rows = [[p.repeat(factor, axis=0).repeat(factor, axis=1) for p in row] for row in rows]
    h, w = rows[0][0].shape[:2]
    n_cols = max(len(r) for r in rows)
    out = np.ones((len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), np.float32)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = panel
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def pix2pix_rows(task: Any, batch: dict[str, Any], n: int = 4) -> tuple[np.ndarray, str]:
    """A pix2pix task's image log: per crop, the real layout, then three candidates for its targets."""
    from citygen.learn.tasks.base import select_channels

    was_training = task.training
    task.eval()
    cond = task.batch_condition(batch)[:n]
    cands = [
        task(cond, task.generator.sample_noise(cond.shape[0], cond.device)).float().cpu().numpy() for _ in range(3)
    ]
    task.train(was_training)
    real = select_channels(batch, task.output_bands)[:n].float().cpu().numpy()
    mask = batch["mask"][:n].cpu().numpy()
    shown = [*task.input_bands, *task.output_bands]
    inputs = select_channels(batch, task.input_bands)[:n].float().cpu().numpy() if task.input_bands else None
    rows = []
    for i in range(len(real)):

        def full(out: np.ndarray, i: int = i) -> np.ndarray:
            return out if inputs is None else np.concatenate([inputs[i], out])

        rows.append([render_layout(full(real[i]), shown, mask[i]), *(render_layout(full(c[i]), shown) for c in cands)])
    caption = "real | 3 candidates for its targets"
    if task.conditions:
        t = batch["targets"][:n]
        caption += "; " + " / ".join(", ".join(f"{v:.3g}" for v in row.tolist()) for row in t)
    return grid(rows), caption
