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


GANMode = Literal["vanilla", "lsgan", "hinge"]


class GANLoss(nn.Module):
    """Adversarial loss on discriminator logits: ``vanilla`` (BCE with logits, pix2pix), ``lsgan`` (MSE) or
    ``hinge`` (SAGAN / BigGAN: the discriminator's margin loss, the generator's mean logit)."""

    def __init__(self, mode: GANMode = "vanilla") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, logits: Tensor, real: bool) -> Tensor:
        """The discriminator's loss on logits of ``real`` (or generated) samples."""
        if self.mode == "hinge":
            return F.relu(1 - logits).mean() if real else F.relu(1 + logits).mean()
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)

    def generator(self, logits: Tensor) -> Tensor:
        """The generator's loss on the discriminator's logits of its samples."""
        return -logits.mean() if self.mode == "hinge" else self(logits, True)


def diff_augment(x: Tensor, *, generator: torch.Generator | None = None, cutout: float = 0.5) -> Tensor:
    """DiffAugment (Zhao et al. 2020) for what the discriminator sees: a random translation by up to 1/8 of the
    side (zero padding) and a random square cutout of ``cutout`` of the side, the same for every channel of a
    sample (condition and layout move together), differentiable so the generator trains through it."""
    b, _, h, w = x.shape
    shift = torch.randint(-(h // 8), h // 8 + 1, (b, 2), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] - shift[:, :1]).clamp(-1, h)  # [b, h], -1 / h: padding
    cols = (torch.arange(w, device=x.device)[None, :] - shift[:, 1:]).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1))
    x = padded[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None] + 1, cols[:, None, :] + 1]
    x = x.permute(0, 3, 1, 2)
    ch, cw = int(h * cutout), int(w * cutout)
    top = torch.randint(0, h - ch + 1, (b,), generator=generator).to(x.device)
    left = torch.randint(0, w - cw + 1, (b,), generator=generator).to(x.device)
    r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    inside = (
        (r[None, :, None] >= top[:, None, None])
        & (r[None, :, None] < (top + ch)[:, None, None])
        & (c[None, None, :] >= left[:, None, None])
        & (c[None, None, :] < (left + cw)[:, None, None])
    )
    return x * (~inside)[:, None].to(x.dtype)


__all__ = ["GANLoss", "GANMode", "diff_augment", "masked_bce", "masked_l1", "masked_mse", "soft_dice"]
