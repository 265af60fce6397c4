"""Layout rasters as RGB images (a map-like colour per band, painted in a fixed order)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# drawn bottom to top; bands not listed here are shown as separate grey panels only
COLORS: dict[str, tuple[float, float, float]] = {
    "green": (0.55, 0.78, 0.45),
    "water": (0.45, 0.65, 0.9),
    "parking": (0.8, 0.8, 0.7),
    "buildings": (0.85, 0.45, 0.35),
    "paths": (0.55, 0.55, 0.55),
    "streets": (0.15, 0.15, 0.15),
}


def render_layout(image: np.ndarray, bands: Sequence[str], mask: np.ndarray | None = None) -> np.ndarray:
    """``image [C, H, W]`` of fractions -> ``[H, W, 3]`` float RGB in [0, 1] on white paper."""
    h, w = image.shape[-2:]
    rgb = np.ones((h, w, 3), dtype=np.float32)
    for name, color in COLORS.items():
        if name in bands:
            alpha = np.clip(image[list(bands).index(name)], 0, 1)[..., None]
            rgb = rgb * (1 - alpha) + np.asarray(color, np.float32) * alpha
    if not any(b in COLORS for b in bands):  # nothing colourable: mean of the channels in grey
        rgb = np.repeat(1 - np.clip(image.mean(0), 0, 1)[..., None], 3, axis=2)
    if mask is not None:
        rgb = np.where(mask.reshape(h, w, 1) > 0.5, rgb, np.float32(0.75) * rgb + np.float32(0.25) * 0.5)
    return rgb


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
