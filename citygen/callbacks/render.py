"""Panel grids of layout pictures for image logs (the colours live in :mod:`citygen.viz`)."""

from __future__ import annotations

import numpy as np

from citygen.viz import COLORS, render_layout

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
