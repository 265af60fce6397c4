"""Urban metrics on vector data and on rasters: street network, density, walkability, A Pattern Language.

Entry points: :func:`compute_metrics` (tidy table), :func:`citygen.metrics.raster.tile_targets`
(fast per-tile targets), ``citygen metrics`` (CLI). Definitions and sources: docs/metrics.md.
Heavy submodules are imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compute_metrics", "measure", "network_metrics", "raster_metrics", "tile_targets"]


def __getattr__(name: str) -> Any:
    if name in ("compute_metrics", "measure"):
        from citygen.metrics import suite

        return getattr(suite, name)
    if name == "network_metrics":
        from citygen.metrics.network import network_metrics

        return network_metrics
    if name in ("raster_metrics", "tile_targets"):
        from citygen.metrics import raster

        return getattr(raster, name)
    raise AttributeError(f"module 'citygen.metrics' has no attribute {name!r}")
