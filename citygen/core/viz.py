"""Layout rasters as RGB pictures: one map-like colour per band, painted in a fixed order.

Used by dataset plots, training image logs and reports, so a layout looks the same everywhere.
"""

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


def composite(image: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """RGB picture of a ``[C, H, W]`` layout; pixels outside the ``valid`` band (if present) are greyed."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    names = list(bands)
    mask = array[names.index("valid")] if "valid" in names else None
    return render_layout(array, names, mask)
