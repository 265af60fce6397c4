"""Pix2PixTask: conditional GAN from urban-metric targets (and optionally streets) to layout channels.

Manual optimisation with two optimizers (D then G per batch), so ``trainer.global_step`` advances by two
per batch: set ``max_epochs`` rather than ``max_steps``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryF1Score, BinaryJaccardIndex

from citygen.errors import ConfigError
from citygen.losses import GANLoss, masked_l1, soft_dice
from citygen.metrics.raster import SHARE_BANDS
from citygen.models import MetricRegressor, PatchGANDiscriminator, UnetGenerator, init_weights
from citygen.models.norm import NormType
from citygen.tasks.base import (
    BaseTask,
    channel_weights,
    check_bands,
    check_finite,
    is_fraction,
    select_channels,
    tile_identity,
)
from citygen.tasks.conditioning import target_scale
from citygen.tasks.constraints import exclusive_offsets, share_offset
from citygen.tasks.street_search import check_street_search, searched_street_logits, street_graph_targets


class Pix2PixTask(BaseTask):
    """U-Net generator + 70x70 PatchGAN that sees condition and layout together.

    Args:
        output_bands: generated layout channels.
        input_bands: real bands given to G as extra input (e.g. ``[streets]`` for streets -> buildings).
        conditions: ``tile_targets`` keys given as constant maps (the data module's ``targets``).
        input_size: crop side (``2**num_downs`` must divide it; ``num_downs`` defaults to log2(input_size)).
        noise_dim: size of the latent code injected at every encoder level (candidates differ by it).
        noise_maps: channels of coarse spatial noise (one value per ``noise_cell`` px) given to the generator
            with its input: without them a target-only generator sees a spatially constant input.
        inject_targets: also inject the scaled targets at every encoder level, beside the constant maps.
        diversity_weight: weight of the mode-seeking term (Mao et al. 2019; capped as in DSGAN, Yang et al.
            2019) rewarding outputs that change with the code, up to ``diversity_tau`` mean absolute change
            per unit of code change.
        gan_mode: ``vanilla`` (BCE with logits, as pix2pix) or ``lsgan``.
        dice_weight: optional soft-Dice term on fraction bands: L1 alone favours blank layouts when
            streets and buildings cover a small share of the pixels (0 = plain pix2pix).
        overlap_weight: weight of a term on the area that two coverage bands (streets, buildings, green)
            cover together beyond what the real crop shows (well under 1 % in the samples). Without it a
            short run paints green under the buildings: the green share is met, but no open space shows.
        exclusive_bands: coverage bands (streets, buildings, green) as one softmax with an empty class, so
            a pixel is street, building, green or open and one band cannot hide under another; the share
            constraint then solves the band offsets jointly.
        target_weight: weight of the target-consistency term (0 = plain pix2pix). Conditions that are a
            band share (building coverage, green share, street share) are computed exactly from the
            generated bands; the others (intersection density, street density) are predicted by an
            auxiliary :class:`~citygen.models.MetricRegressor` trained on real layouts alongside the
            discriminator. The term is the mean absolute difference to the requested targets, in scaled
            units. L1 towards one real layout cannot say that *this* layout must hold 35 % buildings; this
            term does.
        regressor_on_fakes: also train the regressor on generated layouts, labelled with their metrics
            measured by the metric suite (as MetricGAN, Fu et al. 2019, learns a non-differentiable score),
            so the generator cannot satisfy a regressor that only ever saw real layouts with layouts that
            measure differently.
        share_constraint: meet band-share targets (building coverage, green share, ...) exactly: a
            per-sample offset added to the band's logits, found by bisection, makes the mean of the
            generated band over the crop equal the requested share. The generator decides *where*
            buildings and green go; the constraint layer guarantees *how much*, in training and at
            generation time alike.
        street_search: at generation (not in training), shift each candidate's street logits by the offset,
            found by bisection with the metric suite in the loop, that brings its street-graph targets
            (intersection density, street density) closest to the request; see
            :mod:`citygen.tasks.street_search`. The share constraint's counterpart for targets that are not
            a band share.
        output_prior: initial value of the fraction bands (bias of the last layer, as the prior init of
            RetinaNet): layouts are mostly empty, and a generator that starts at 0.5 everywhere spends its
            first epochs unlearning that. None keeps the usual zero bias.
        n_epochs_decay: linearly decay the learning rate to 0 over the last this many epochs.
    """

    def __init__(
        self,
        output_bands: Sequence[str] = ("streets", "buildings"),
        input_bands: Sequence[str] = (),
        conditions: Sequence[str] = ("building_coverage", "intersection_density_km2", "green_share"),
        input_size: int = 256,
        num_downs: int | None = None,
        ngf: int = 64,
        ndf: int = 64,
        n_layers_d: int = 3,
        norm: NormType = "batch",
        dropout: float = 0.5,
        noise_dim: int = 8,
        noise_maps: int = 0,
        noise_cell: int = 8,
        inject_targets: bool = True,
        diversity_weight: float = 10.0,
        diversity_tau: float = 0.1,
        gan_mode: Literal["vanilla", "lsgan"] = "vanilla",
        lambda_l1: float = 100.0,
        dice_weight: float = 0.0,
        overlap_weight: float = 0.0,
        exclusive_bands: bool = False,
        target_weight: float = 0.0,
        regressor_width: int = 32,
        regressor_on_fakes: bool = True,
        output_prior: float | None = 0.1,
        share_constraint: bool = False,
        street_search: bool = False,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        n_epochs_decay: int = 0,
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        output_bands = check_bands(output_bands, "output_bands")
        input_bands = check_bands(input_bands, "input_bands")
        conditions = [str(c) for c in conditions]
        if set(input_bands) & set(output_bands):
            raise ConfigError(f"bands {sorted(set(input_bands) & set(output_bands))} are both input and output")
        if not conditions and not input_bands:
            raise ConfigError("pix2pix needs conditions and/or input_bands to condition on")
        num_downs = num_downs or int(math.log2(input_size))
        if input_size % 2**num_downs:
            raise ConfigError(f"input_size {input_size} is not divisible by 2**num_downs = {2**num_downs}")
        self.save_hyperparameters()
        # normalised values (the CLI saves the parsed config, where num_downs may be null)
        self.hparams.update(
            output_bands=output_bands, input_bands=input_bands, conditions=conditions, num_downs=num_downs
        )
        self.meta = {"output_bands": output_bands, "input_bands": input_bands, "conditions": conditions,
                     "input_size": input_size, "num_downs": num_downs, "ngf": ngf, "noise_dim": noise_dim,
                     "inject_targets": inject_targets, "noise_maps": noise_maps}  # fmt: skip
        self.automatic_optimization = False
        self.output_bands, self.input_bands, self.conditions = output_bands, input_bands, conditions
        n_in = len(conditions) + len(input_bands)
        self.cond_dim = len(conditions) if inject_targets else 0
        self.generator = UnetGenerator(
            n_in, len(output_bands), num_downs, ngf, norm, dropout, noise_dim, self.cond_dim, noise_maps, noise_cell
        )
        self.discriminator = PatchGANDiscriminator(n_in + len(output_bands), ndf, n_layers_d, norm)
        init_weights(self.generator, "normal", init_gain)
        init_weights(self.discriminator, "normal", init_gain)
        self.frac_idx = [i for i, b in enumerate(output_bands) if is_fraction(b)]
        # pairs of coverage bands whose common area the overlap term and `citygen evaluate` measure
        self.coverage_pairs = [(a, b) for i, a in enumerate(self.frac_idx) for b in self.frac_idx[i + 1 :]]
        if output_prior is not None and self.frac_idx:
            if not 0 < output_prior < 1:
                raise ConfigError(f"output_prior must lie in (0, 1), got {output_prior}")
            last = self.generator.up[0][-1]
            with torch.no_grad():
                last.bias[self.frac_idx] = math.log(output_prior / (1 - output_prior))
        self.gan_loss = GANLoss(gan_mode)
        self.register_buffer("scales", torch.tensor([target_scale(n) for n in conditions], dtype=torch.float32))
        # target consistency: (condition index, output band index) for band shares; the rest via a regressor
        self.share_pairs = [
            (k, output_bands.index(SHARE_BANDS[c])) for k, c in enumerate(conditions)
            if SHARE_BANDS.get(c) in output_bands
        ]  # fmt: skip
        shared = {k for k, _ in self.share_pairs}
        self.street_targets = street_graph_targets(conditions)
        if street_search:
            check_street_search(output_bands, conditions, self.share_pairs)
        self.regressed = [k for k in range(len(conditions)) if k not in shared]
        self.regressor = (
            MetricRegressor(len(output_bands), len(self.regressed), regressor_width)
            if target_weight > 0 and self.regressed
            else None
        )
        metrics: dict[str, Any] = {}
        for i in self.frac_idx:
            metrics[f"iou_{output_bands[i]}"] = BinaryJaccardIndex(threshold=0.5, ignore_index=-1)
            metrics[f"f1_{output_bands[i]}"] = BinaryF1Score(threshold=0.5, ignore_index=-1)
        self.val_metrics = MetricCollection(metrics, prefix="val/")
        self.test_metrics = self.val_metrics.clone(prefix="test/")

    # -- generation -----------------------------------------------------------------------------
    def condition(self, targets: Tensor | None, inputs: Tensor | None, size: int) -> Tensor:
        """Generator input: scaled constant target maps, then the input bands."""
        parts = []
        if self.conditions:
            if targets is None:
                raise ConfigError(f"the model is conditioned on {self.conditions}; set data.targets to them")
            t = targets.to(self.scales.dtype) / self.scales
            parts.append(t[:, :, None, None].expand(-1, -1, size, size))
        if self.input_bands:
            parts.append(inputs)
        return torch.cat(parts, dim=1)

    def raw_batch_targets(self, batch: dict[str, Any]) -> Tensor | None:
        """The batch's targets ``[B, K]`` of the model's conditions, unscaled (None without conditions)."""
        if not self.conditions:
            return None
        names = list(batch.get("target_names", ()))
        missing = [c for c in self.conditions if c not in names]
        if missing:
            raise ConfigError(
                f"the model is conditioned on {self.conditions} but the batch has targets {names}",
                "set data.targets to the model's conditions",
            )
        return batch["targets"][:, [names.index(c) for c in self.conditions]]

    def batch_condition(self, batch: dict[str, Any]) -> Tensor:
        inputs = select_channels(batch, self.input_bands) if self.input_bands else None
        return self.condition(self.raw_batch_targets(batch), inputs, batch["image"].shape[-1])

    def _exclusive(self) -> bool:
        return bool(self.hparams.get("exclusive_bands", False)) and len(self.frac_idx) > 1

    def activate(self, raw: Tensor, offsets: Tensor | None = None) -> Tensor:
        """Band values from generator logits; ``offsets`` ``[B, C]`` are added to the logits first."""
        if offsets is not None:
            raw = raw + offsets[:, :, None, None]
        out = raw.clone()
        if self._exclusive():  # softmax over the coverage bands and an empty class with logit 0
            logits = torch.cat([torch.zeros_like(raw[:, :1]), raw[:, self.frac_idx]], dim=1)
            out[:, self.frac_idx] = torch.softmax(logits, dim=1)[:, 1:]
        elif self.frac_idx:
            out[:, self.frac_idx] = torch.sigmoid(raw[:, self.frac_idx])
        other = [i for i in range(raw.shape[1]) if i not in self.frac_idx]
        if other:
            out[:, other] = torch.nn.functional.softplus(raw[:, other])
        return out

    def generate_raw(self, cond: Tensor, z: Tensor | None = None, maps: Tensor | None = None) -> Tensor:
        """Generator logits for a generator input (see :meth:`condition`), a latent code and noise maps
        (each drawn at random when None)."""
        # the constant target maps come first in ``cond``; their value is the scaled target vector
        c = cond[:, : self.cond_dim].mean(dim=(2, 3)) if self.cond_dim else None
        return self.generator(cond, z, c, maps)

    def forward(
        self, cond: Tensor, z: Tensor | None = None, mask: Tensor | None = None, maps: Tensor | None = None
    ) -> Tensor:
        """Layout in band units for a generator input (see :meth:`condition`), a latent code and noise
        maps; ``mask`` ``[B, 1, H, W]`` marks the pixels band shares are measured over (default: all)."""
        return self.constrain(self.generate_raw(cond, z, maps), cond, mask)

    def _seeded_noise(self, cond: Tensor, gen: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        z = torch.randn(cond.shape[0], self.generator.noise_dim, generator=gen).to(cond)
        maps = None
        if self.generator.noise_maps:
            maps = self.generator.sample_maps(cond.shape[0], (cond.shape[-2], cond.shape[-1]), cond.device, gen)
        return z, maps

    def constrain(self, raw: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """:meth:`activate`, with the share constraint applied when ``share_constraint`` is on."""
        if not self.hparams.share_constraint or not self.share_pairs:
            return self.activate(raw)
        m = (
            torch.ones_like(raw[:, :1])
            if mask is None
            else mask.to(raw.dtype).reshape(raw.shape[0], 1, *raw.shape[-2:])
        )
        wanted = cond[:, : len(self.conditions)].mean(dim=(2, 3)) * self.scales
        if self._exclusive():
            return self.activate(raw, exclusive_offsets(raw.detach(), m, wanted, self.frac_idx, self.share_pairs))
        out = self.activate(raw)
        for k, b in self.share_pairs:
            offset = share_offset(raw[:, b : b + 1].detach(), m, wanted[:, k])
            share = torch.sigmoid(raw[:, b] + offset[:, None, None])
            # a share of exactly 0 or 1 is an empty or a full band (a sigmoid only approaches them)
            full = wanted[:, k, None, None].expand_as(share)
            out[:, b] = torch.where((full <= 0) | (full >= 1), full.clamp(0, 1), share)
        return out

    @property
    def street_search(self) -> bool:
        """Whether :meth:`generate` searches street thresholds (False in checkpoints made before the option)."""
        return bool(self.hparams.get("street_search", False))

    @street_search.setter
    def street_search(self, on: bool) -> None:
        """Turn the search on or off for a trained model (on only where it applies)."""
        if on:
            check_street_search(self.output_bands, self.conditions, self.share_pairs)
        self.hparams.street_search = on

    @torch.no_grad()
    def generate(
        self, targets: Tensor | None, inputs: Tensor | None = None, *, size: int | None = None,
        num_candidates: int = 1, seed: int | None = None, mask: Tensor | None = None,
        resolution_m: float | Sequence[float] | None = None,
    ) -> Tensor:  # fmt: skip
        """``[B, num_candidates, C, H, W]`` layouts for raw (unscaled) targets ``[B, K]``; ``mask`` ``[B, 1, H, W]``
        is the area targets are measured over (default: the whole crop). ``resolution_m`` (metres per pixel,
        one value or one per sample) is needed by ``street_search``, which measures street-graph targets."""
        size = size or self.meta["input_size"]
        cond = self.condition(targets, inputs, size)
        gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
        search = self.street_search and targets is not None
        if search and resolution_m is None:
            raise ConfigError("street_search measures the layouts and needs their pixel size",
                              "pass resolution_m (metres per pixel) to generate()")  # fmt: skip
        outs = []
        for _ in range(num_candidates):
            z, maps = self._seeded_noise(cond, gen)
            raw = self.generate_raw(cond, z, maps)
            if search:
                assert targets is not None and resolution_m is not None
                raw = searched_street_logits(self, raw, cond, targets, mask, resolution_m)
            outs.append(self.constrain(raw, cond, mask))
        return torch.stack(outs, dim=1)

    # -- target consistency ---------------------------------------------------------------------
    def batch_targets(self, batch: dict[str, Any]) -> Tensor | None:
        """Scaled targets ``[B, K]`` of the model's conditions (NaN where not measurable), or None."""
        if not self.conditions or "targets" not in batch:
            return None
        names = list(batch.get("target_names", ()))
        if any(c not in names for c in self.conditions):
            return None
        return batch["targets"][:, [names.index(c) for c in self.conditions]].to(self.scales.dtype) / self.scales

    def layout_targets(self, layout: Tensor, mask: Tensor) -> Tensor:
        """Scaled metrics ``[B, K]`` of layouts in band units: band shares exactly, the rest by the
        regressor (NaN without one)."""
        out = layout.new_full((layout.shape[0], len(self.conditions)), float("nan"))
        mask = mask.reshape(layout.shape[0], *layout.shape[-2:])
        area = mask.sum(dim=(1, 2)).clamp_min(1.0)
        for k, b in self.share_pairs:
            out[:, k] = (layout[:, b] * mask).sum(dim=(1, 2)) / area / self.scales[k]
        if self.regressor is not None:
            out[:, self.regressed] = self.regressor(layout)
        return out

    @torch.no_grad()
    def measure(self, layout: Tensor, batch: dict[str, Any]) -> Tensor:
        """Scaled metrics ``[B, K]`` of layouts measured with the metric suite (NaN where not measurable)."""
        from citygen.tasks.conditioning import measure_targets

        out = torch.full((layout.shape[0], len(self.conditions)), float("nan"))
        arrays = layout.float().cpu().numpy()
        masks = batch["mask"].reshape(layout.shape[0], *layout.shape[-2:]).cpu().numpy()
        for i in range(layout.shape[0]):
            minx, _, maxx, _ = batch["bounds"][i].tolist()
            bands = {name: arrays[i, c] for c, name in enumerate(self.output_bands)}
            values = measure_targets({**bands, "valid": masks[i].astype("float32")}, (maxx - minx) / layout.shape[-1])
            out[i] = torch.tensor([values.get(name, float("nan")) for name in self.conditions])
        return out.to(layout) / self.scales

    @staticmethod
    def _target_error(predicted: Tensor, wanted: Tensor) -> Tensor:
        ok = torch.isfinite(predicted) & torch.isfinite(wanted)
        if not ok.any():
            return predicted.new_zeros(())
        return (predicted[ok] - wanted[ok]).abs().mean()

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        hp = self.hparams
        opt_g, opt_d = self.optimizers()
        cond = self.batch_condition(batch)
        real = select_channels(batch, self.output_bands)
        w = channel_weights(batch, self.output_bands)
        real = real * w
        z = self.generator.sample_noise(cond.shape[0], cond.device)
        fake = self.constrain(self.generate_raw(cond, z), cond, batch["mask"]) * w

        self.toggle_optimizer(opt_d)
        pred_real = self.discriminator(torch.cat([cond, real], 1))
        pred_fake = self.discriminator(torch.cat([cond, fake.detach()], 1))
        loss_d = 0.5 * (self.gan_loss(pred_real, True) + self.gan_loss(pred_fake, False))
        check_finite(loss_d, "discriminator loss", self.global_step)
        wanted = self.batch_targets(batch) if hp.target_weight > 0 else None
        loss_d_total = loss_d
        if self.regressor is not None and wanted is not None:
            # the regressor learns measured metrics of real layouts; it is optimised with D
            loss_reg = self._target_error(self.regressor(real), wanted[:, self.regressed])
            if hp.regressor_on_fakes:
                measured = self.measure(fake.detach(), batch)[:, self.regressed]
                loss_reg_fake = self._target_error(self.regressor(fake.detach()), measured)
                loss_reg = loss_reg + loss_reg_fake
                self.log("train/regressor_fake_l1", loss_reg_fake, batch_size=cond.shape[0])
            loss_d_total = loss_d + loss_reg
            self.log("train/regressor_l1", loss_reg, batch_size=cond.shape[0])
        opt_d.zero_grad()
        self.manual_backward(loss_d_total)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        loss_gan = self.gan_loss(self.discriminator(torch.cat([cond, fake], 1)), True)
        loss_l1 = masked_l1(fake, real, w)
        loss_g = loss_gan + hp.lambda_l1 * loss_l1
        logs = {"train/loss_d": loss_d, "train/loss_g_gan": loss_gan, "train/l1": loss_l1}
        if hp.dice_weight > 0 and self.frac_idx:
            f = self.frac_idx
            loss_dice = soft_dice(fake[:, f], real[:, f], w[:, f])
            loss_g = loss_g + hp.dice_weight * loss_dice
            logs["train/dice"] = loss_dice
        if hp.overlap_weight > 0 and self.coverage_pairs:
            loss_overlap = self._excess_overlap(fake, real)
            loss_g = loss_g + hp.overlap_weight * loss_overlap
            logs["train/overlap"] = loss_overlap
        if wanted is not None:
            loss_target = self._target_error(self.layout_targets(fake, batch["mask"].to(fake.dtype)), wanted)
            loss_g = loss_g + hp.target_weight * loss_target
            logs["train/target_l1"] = loss_target
        if hp.diversity_weight > 0 and hp.noise_dim > 0:
            z2 = self.generator.sample_noise(cond.shape[0], cond.device)
            fake2 = self.constrain(self.generate_raw(cond, z2), cond, batch["mask"]) * w
            # output change per unit of code change, rewarded up to diversity_tau (DSGAN's capped form:
            # MSGAN's 1 / ratio explodes while the generator still ignores the code)
            ratio = (fake - fake2).abs().mean(dim=(1, 2, 3)) / (z - z2).abs().mean(dim=1)
            loss_div = (hp.diversity_tau - ratio.clamp(max=hp.diversity_tau)).mean()
            loss_g = loss_g + hp.diversity_weight * loss_div
            logs["train/diversity"] = ratio.mean()
        check_finite(loss_g, "generator loss", self.global_step)
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        logs["train/loss_g"] = loss_g
        self.log_dict(logs, batch_size=cond.shape[0])
        self.log("g_loss", loss_g, prog_bar=True, logger=False, batch_size=cond.shape[0])

    def _excess_overlap(self, fake: Tensor, real: Tensor) -> Tensor:
        """Mean over crops and pairs of coverage bands of the area share both cover in the generated layout,
        beyond the share both cover in the real one (layouts already multiplied by their channel weights)."""
        excess = [
            torch.relu((fake[:, a] * fake[:, b]).mean(dim=(1, 2)) - (real[:, a] * real[:, b]).mean(dim=(1, 2)))
            for a, b in self.coverage_pairs
        ]
        return torch.stack(excess).mean()

    def on_train_epoch_end(self) -> None:
        for sched in self.lr_schedulers() or []:
            sched.step()

    def _eval_step(self, batch: dict[str, Any], metrics: MetricCollection, stage: str) -> Tensor:
        cond = self.batch_condition(batch)
        real = select_channels(batch, self.output_bands)
        w = channel_weights(batch, self.output_bands)
        z, maps = self._seeded_noise(cond, torch.Generator().manual_seed(0))
        fake = self(cond, z, batch["mask"], maps)
        self.log(f"{stage}/l1", masked_l1(fake * w, real * w, w), batch_size=cond.shape[0], sync_dist=True)
        wanted = self.batch_targets(batch)
        if wanted is not None and self.share_pairs:
            got = self.layout_targets(fake * w, batch["mask"].to(fake.dtype))
            for k, _ in self.share_pairs:  # absolute error of exactly computed shares, in target units
                err = self._target_error(got[:, k], wanted[:, k]) * self.scales[k]
                self.log(f"{stage}/target_error_{self.conditions[k]}", err, batch_size=cond.shape[0], sync_dist=True)
        for i in self.frac_idx:
            name = self.output_bands[i]
            target = (real[:, i] >= 0.5).long()
            target = torch.where(w[:, i] > 0, target, torch.full_like(target, -1))
            metrics[f"iou_{name}"].update(fake[:, i], target)
            metrics[f"f1_{name}"].update(fake[:, i], target)
        self.log_dict(metrics, batch_size=cond.shape[0])
        return fake

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """A layout per crop for its measured targets, made as :meth:`generate` makes them (shares measured
        over the crop's valid area, street search when on)."""
        inputs = select_channels(batch, self.input_bands) if self.input_bands else None
        size = batch["image"].shape[-1]
        resolutions = [float(b[2] - b[0]) / size for b in batch["bounds"].tolist()]
        generated = self.generate(self.raw_batch_targets(batch), inputs, size=size, mask=batch["mask"],
                                  resolution_m=resolutions)[:, 0]  # fmt: skip
        return {"generated": generated, **tile_identity(batch)}

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=betas)
        d_params = list(self.discriminator.parameters())
        if self.regressor is not None:
            d_params += list(self.regressor.parameters())
        opt_d = torch.optim.Adam(d_params, lr=hp.lr, betas=betas)
        if hp.n_epochs_decay <= 0:
            return [opt_g, opt_d]
        max_epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        keep = max(max_epochs - hp.n_epochs_decay, 0)

        def factor(epoch: int) -> float:
            return 1.0 - max(0, epoch + 1 - keep) / float(hp.n_epochs_decay + 1)

        scheds = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds

    # -- images ---------------------------------------------------------------------------------
    @torch.no_grad()
    def render_samples(self, batch: dict[str, Any], n: int = 4) -> tuple[np.ndarray, str]:
        """Rows: real layout, then three candidates for the same targets."""
        from citygen.callbacks.render import grid, render_layout

        was_training = self.training
        self.eval()
        cond = self.batch_condition(batch)[:n]
        cands = [
            self(cond, self.generator.sample_noise(cond.shape[0], cond.device)).float().cpu().numpy() for _ in range(3)
        ]
        self.train(was_training)
        real = select_channels(batch, self.output_bands)[:n].float().cpu().numpy()
        mask = batch["mask"][:n].cpu().numpy()
        shown = [*self.input_bands, *self.output_bands]
        inputs = select_channels(batch, self.input_bands)[:n].float().cpu().numpy() if self.input_bands else None
        rows = []
        for i in range(len(real)):

            def full(out: np.ndarray, i: int = i) -> np.ndarray:
                return out if inputs is None else np.concatenate([inputs[i], out])

            rows.append(
                [render_layout(full(real[i]), shown, mask[i]), *(render_layout(full(c[i]), shown) for c in cands)]
            )
        caption = "real | 3 candidates for its targets"
        if self.conditions:
            t = batch["targets"][:n]
            caption += "; " + " / ".join(", ".join(f"{v:.3g}" for v in row.tolist()) for row in t)
        return grid(rows), caption
