"""The losses of :class:`~citygen.learn.tasks.pix2pix.Pix2PixTask`, one small collaborator each.

- :class:`TargetConsistency`: the targets of a generated layout, band shares exactly and the rest (intersection
  density, street density) by an auxiliary :class:`~citygen.learn.models.MetricRegressor` trained on real layouts
  beside the discriminator, and optionally on generated layouts labelled by the metric suite (as MetricGAN, Fu et
  al. 2019, learns a non-differentiable score).
- :class:`Pix2PixObjective`: the discriminator's loss (with the regressor's) and the generator's: GAN, L1 to the
  real layout, soft Dice, excess band overlap, target consistency and the capped mode-seeking term.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from citygen.learn.losses import GANLoss, diff_augment, masked_l1, soft_dice
from citygen.learn.models import MetricRegressor
from citygen.learn.tasks.layout_head import LayoutHead
from citygen.metrics.targets import measure_targets


def target_error(predicted: Tensor, wanted: Tensor) -> Tensor:
    """Mean absolute difference over the finite pairs (0 when there are none), in scaled target units."""
    ok = torch.isfinite(predicted) & torch.isfinite(wanted)
    if not ok.any():
        return predicted.new_zeros(())
    return (predicted[ok] - wanted[ok]).abs().mean()


class TargetConsistency:
    """Scaled targets ``[B, K]`` of generated layouts, and the regressor's training loss."""

    def __init__(
        self, conditions: Sequence[str], output_bands: Sequence[str], head: LayoutHead, *, regressor_width: int | None
    ) -> None:
        """``regressor_width``: width of the regressor of the targets that are not band shares (None: none)."""
        self.conditions, self.output_bands, self.head = list(conditions), list(output_bands), head
        shared = {k for k, _ in head.share_pairs}
        self.regressed = [k for k in range(len(conditions)) if k not in shared]
        self.regressor: nn.Module | None = None
        if regressor_width is not None and self.regressed:
            self.regressor = MetricRegressor(len(output_bands), len(self.regressed), regressor_width)

    def layout_targets(self, layout: Tensor, mask: Tensor, scales: Tensor) -> Tensor:
        """Band shares exactly, the rest by the regressor (NaN without one); ``layout`` in band units."""
        out = layout.new_full((layout.shape[0], len(self.conditions)), float("nan"))
        mask = mask.reshape(layout.shape[0], *layout.shape[-2:])
        area = mask.sum(dim=(1, 2)).clamp_min(1.0)
        for k, b in self.head.share_pairs:
            out[:, k] = (layout[:, b] * mask).sum(dim=(1, 2)) / area / scales[k]
        if self.regressor is not None:
            out[:, self.regressed] = self.regressor(layout)
        return out

    @torch.no_grad()
    def measured(self, layout: Tensor, batch: dict[str, Any], scales: Tensor) -> Tensor:
        """The targets the metric suite measures on ``layout`` (NaN where not measurable), scaled."""
        out = torch.full((layout.shape[0], len(self.conditions)), float("nan"))
        arrays = layout.float().cpu().numpy()
        masks = batch["mask"].reshape(layout.shape[0], *layout.shape[-2:]).cpu().numpy()
        for i in range(layout.shape[0]):
            minx, _, maxx, _ = batch["bounds"][i].tolist()
            bands = {name: arrays[i, c] for c, name in enumerate(self.output_bands)}
            values = measure_targets({**bands, "valid": masks[i].astype("float32")}, (maxx - minx) / layout.shape[-1])
            out[i] = torch.tensor([values.get(name, float("nan")) for name in self.conditions])
        return out.to(layout) / scales

    def regressor_loss(
        self, real: Tensor, fake: Tensor, wanted: Tensor, batch: dict[str, Any], scales: Tensor, *, on_fakes: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The regressor learns measured targets of real layouts (and of ``fake`` ones, when ``on_fakes``)."""
        assert self.regressor is not None
        loss = target_error(self.regressor(real), wanted[:, self.regressed])
        logs = {}
        if on_fakes:
            fake_loss = target_error(self.regressor(fake), self.measured(fake, batch, scales)[:, self.regressed])
            loss = loss + fake_loss
            logs["train/regressor_fake_l1"] = fake_loss
        return loss, {**logs, "train/regressor_l1": loss}


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's terms (see :class:`~citygen.learn.tasks.pix2pix.Pix2PixTask`'s arguments)."""

    lambda_l1: float
    dice: float
    overlap: float
    target: float
    diversity: float
    diversity_tau: float
    regressor_on_fakes: bool
    diffaugment: bool = False  # the discriminator sees translated, cut-out pairs (DiffAugment), real and fake alike

    @classmethod
    def from_hparams(cls, hp: Mapping[str, Any]) -> LossWeights:
        """The weights of a :class:`~citygen.learn.tasks.pix2pix.Pix2PixTask`'s hyperparameters (same names)."""
        names = {
            "dice": "dice_weight",
            "overlap": "overlap_weight",
            "target": "target_weight",
            "diversity": "diversity_weight",
        }
        return cls(**{f.name: hp[names.get(f.name, f.name)] for f in fields(cls) if names.get(f.name, f.name) in hp})


class Pix2PixObjective:
    """Discriminator and generator losses; every term is logged under ``train/``."""

    def __init__(
        self,
        weights: LossWeights,
        gan_loss: GANLoss,
        discriminator: nn.Module,
        head: LayoutHead,
        consistency: TargetConsistency,
    ) -> None:
        self.w, self.gan_loss, self.discriminator = weights, gan_loss, discriminator
        self.head, self.consistency = head, consistency

    def _seen(self, pair: Tensor) -> Tensor:
        """What the discriminator sees of a (condition, layout) pair."""
        return diff_augment(pair) if self.w.diffaugment else pair

    def discriminator_loss(
        self, cond: Tensor, real: Tensor, fake: Tensor, batch: dict[str, Any], wanted: Tensor | None, scales: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``fake`` is detached by the caller; the regressor trains here, with the discriminator's optimiser."""
        pred_real = self.discriminator(self._seen(torch.cat([cond, real], 1)))
        pred_fake = self.discriminator(self._seen(torch.cat([cond, fake], 1)))
        loss_d = 0.5 * (self.gan_loss(pred_real, True) + self.gan_loss(pred_fake, False))
        logs = {"train/loss_d": loss_d}
        if self.consistency.regressor is not None and wanted is not None:
            loss_reg, reg_logs = self.consistency.regressor_loss(
                real, fake, wanted, batch, scales, on_fakes=self.w.regressor_on_fakes
            )
            return loss_d + loss_reg, {**logs, **reg_logs}
        return loss_d, logs

    def generator_loss(
        self,
        cond: Tensor,
        real: Tensor,
        fake: Tensor,
        weight: Tensor,
        batch: dict[str, Any],
        wanted: Tensor | None,
        scales: Tensor,
        second: Callable[[], tuple[Tensor, Tensor]],
        z: Tensor,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``second()`` draws another layout for the same input and its code (the mode-seeking pair of ``z``)."""
        w = self.w
        loss_gan = self.gan_loss.generator(self.discriminator(self._seen(torch.cat([cond, fake], 1))))
        loss_l1 = masked_l1(fake, real, weight)
        loss = loss_gan + w.lambda_l1 * loss_l1
        logs = {"train/loss_g_gan": loss_gan, "train/l1": loss_l1}
        f = self.head.frac_idx
        if w.dice > 0 and f:
            logs["train/dice"] = soft_dice(fake[:, f], real[:, f], weight[:, f])
            loss = loss + w.dice * logs["train/dice"]
        if w.overlap > 0 and self.head.coverage_pairs:
            logs["train/overlap"] = self.head.excess_overlap(fake, real)
            loss = loss + w.overlap * logs["train/overlap"]
        if wanted is not None:
            got = self.consistency.layout_targets(fake, batch["mask"].to(fake.dtype), scales)
            logs["train/target_l1"] = target_error(got, wanted)
            loss = loss + w.target * logs["train/target_l1"]
        if w.diversity > 0 and z.shape[1] > 0:
            fake2, z2 = second()
            # output change per unit of code change, rewarded up to diversity_tau (DSGAN's capped form, Yang et al.
            # 2019: MSGAN's 1 / ratio, Mao et al. 2019, explodes while the generator still ignores the code)
            ratio = (fake - fake2).abs().mean(dim=(1, 2, 3)) / (z - z2).abs().mean(dim=1)
            loss = loss + w.diversity * (w.diversity_tau - ratio.clamp(max=w.diversity_tau)).mean()
            logs["train/diversity"] = ratio.mean()
        return loss, {**logs, "train/loss_g": loss}
