"""Losses for sparse layout channels (masked BCE, soft Dice, L1) and the GAN objective."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-6


def _masked_mean(values: Tensor, weight: Tensor) -> Tensor:
    return (values * weight).sum() / weight.sum().clamp_min(EPS)


def masked_bce(logits: Tensor, target: Tensor, weight: Tensor, pos_weight: float | None = None) -> Tensor:
    """BCE with logits on soft targets (coverage fractions), averaged over weighted pixels."""
    pw = None if pos_weight is None else torch.tensor(pos_weight, device=logits.device, dtype=logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=pw)
    return _masked_mean(loss, weight)


def soft_dice(prob: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """1 - Dice per channel over the whole batch (robust to the rarity of street / building pixels)."""
    dims = (0, 2, 3)
    inter = (prob * target * weight).sum(dims)
    denom = ((prob + target) * weight).sum(dims)
    has = weight.sum(dims) > 0
    dice = 1 - (2 * inter + 1.0) / (denom + 1.0)
    return dice[has].mean() if has.any() else prob.sum() * 0


def masked_l1(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    return _masked_mean((pred - target).abs(), weight)


def masked_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    return _masked_mean((pred - target).pow(2), weight)


class GANLoss(nn.Module):
    """Adversarial loss on discriminator logits: ``vanilla`` (BCE with logits) or ``lsgan`` (MSE)."""

    def __init__(self, mode: Literal["vanilla", "lsgan"] = "vanilla") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, logits: Tensor, real: bool) -> Tensor:
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)


__all__ = ["GANLoss", "masked_bce", "masked_l1", "masked_mse", "soft_dice"]
