"""Normalisation layer factory shared by the networks."""

from __future__ import annotations

from typing import Literal

from torch import nn

NormType = Literal["batch", "instance", "group", "none"]


def norm_layer(kind: NormType, channels: int) -> nn.Module:
    """A 2-D normalisation layer; ``none`` gives identity.

    ``group`` (8 groups, or fewer for narrow layers) is batch-size independent, which matters for the
    small batches of pix2pix and for DDP without SyncBatchNorm.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose batch, instance, group or none")


def uses_bias(kind: NormType) -> bool:
    """Convolutions followed by a norm layer with a learned shift do not need their own bias."""
    return kind == "none"
