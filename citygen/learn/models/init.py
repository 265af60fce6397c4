"""Weight initialisation as in the pix2pix reference implementation (N(0, 0.02))."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]


def init_weights(module: nn.Module, init_type: InitType = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise conv / linear weights in place and norm layers to N(1, gain); returns ``module``."""

    def _init(m: nn.Module) -> None:
        name = type(m).__name__
        weight = getattr(m, "weight", None)
        if weight is not None and ("Conv" in name or "Linear" in name):
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(weight, gain=gain)
            else:  # pragma: no cover - guarded by the Literal type
                raise ValueError(f"unknown init_type {init_type!r}")
            if isinstance(bias := getattr(m, "bias", None), torch.Tensor):
                nn.init.zeros_(bias)
        elif weight is not None and "Norm" in name:
            nn.init.normal_(weight, 1.0, gain)
            if isinstance(bias := getattr(m, "bias", None), torch.Tensor):
                nn.init.zeros_(bias)

    module.apply(_init)
    return module
