"""Pix2PixTask: conditional GAN from urban-metric targets (and optionally streets) to layout channels.

Manual optimisation with two optimizers (D then G per batch), so ``trainer.global_step`` advances by two
per batch: set ``max_epochs`` rather than ``max_steps``. The task wires its collaborators: the generator and
discriminator (:mod:`citygen.learn.models`), the output head and share constraint
(:mod:`~citygen.learn.tasks.layout_head`), the losses (:mod:`~citygen.learn.tasks.pix2pix_objective`) and the
generation-time street search (:mod:`~citygen.learn.tasks.street_search`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
from torch import Tensor
from torchmetrics import MetricCollection

from citygen.core.errors import ConfigError
from citygen.learn.losses import GANLoss, GANMode, masked_l1
from citygen.learn.models import PatchGANDiscriminator, UnetGenerator, init_weights
from citygen.learn.models.norm import NormType
from citygen.learn.tasks.base import (
    BaseTask,
    channel_weights,
    check_bands,
    check_finite,
    fraction_metrics,
    is_fraction,
    linear_decay,
    select_channels,
    tile_identity,
    update_fraction_metrics,
)
from citygen.learn.tasks.candidates import GeneratorInput, draw_candidates, seeded_noise
from citygen.learn.tasks.layout_head import LayoutHead
from citygen.learn.tasks.pix2pix_objective import LossWeights, Pix2PixObjective, TargetConsistency, target_error
from citygen.learn.tasks.street_search import check_street_search
from citygen.metrics.targets import get_target

# the settings that fix the networks' shapes: a checkpoint loads only into a task with the same values
SHAPE_KEYS = ("output_bands", "input_bands", "conditions", "input_size", "num_downs", "ngf", "noise_dim",
              "inject_targets", "noise_maps", "upsample")  # fmt: skip


class Pix2PixTask(BaseTask):
    """U-Net generator + 70x70 PatchGAN that sees condition and layout together.

    Args:
        output_bands: generated layout channels.
        input_bands: real bands given to G as extra input (e.g. ``[streets]`` for streets -> buildings).
        conditions: targets (:data:`citygen.metrics.targets.TARGETS`) given as constant maps (the data module's
            ``targets``).
        input_size: crop side (``2**num_downs`` must divide it; ``num_downs`` defaults to log2(input_size)).
        noise_dim: size of the latent code injected at every encoder level (candidates differ by it).
        noise_maps: channels of coarse spatial noise (one value per ``noise_cell`` px) given to the generator
            with its input: without them a target-only generator sees a spatially constant input.
        inject_targets: also inject the scaled targets at every encoder level, beside the constant maps.
        diversity_weight: weight of the mode-seeking term rewarding outputs that change with the code, up to
            ``diversity_tau`` mean absolute change per unit of code change.
        gan_mode: ``vanilla`` (BCE, as pix2pix), ``lsgan`` or ``hinge``; ``upsample="resize"``, ``spectral_norm``,
            ``diffaugment``: resize-convolution (no checkerboard), a spectrally normalised D, DiffAugment.
        dice_weight: soft-Dice term on fraction bands: L1 alone favours blank layouts when streets and
            buildings cover a small share of the pixels (0 = plain pix2pix).
        overlap_weight: weight of a term on the area two coverage bands cover together beyond what the real
            crop shows (without it a short run paints green under the buildings).
        exclusive_bands: coverage bands as one softmax with an empty class, so one band cannot hide under another.
        target_weight: weight of the target-consistency term (0 = plain pix2pix): band shares are computed
            exactly from the generated bands, the other targets predicted by an auxiliary regressor.
        regressor_on_fakes: also train the regressor on generated layouts, labelled by the metric suite.
        output_prior: initial value of the fraction bands (bias of the last layer, as RetinaNet's prior init);
            None keeps the usual zero bias.
        share_constraint: meet band-share targets exactly (a per-sample logit offset found by bisection).
        street_search: at generation (not in training), shift each candidate's street logits by the offset,
            found with the metric suite in the loop, that brings its street-graph targets closest to the request.
        n_epochs_decay: linearly decay the learning rate to 0 over the last this many epochs.
    """

    scales: Tensor  # divisors of the conditions (registered buffer)

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
        gan_mode: GANMode = "vanilla",
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
        upsample: Literal["transposed", "resize"] = "transposed",
        spectral_norm: bool = False,
        diffaugment: bool = False,
    ) -> None:
        super().__init__()
        output_bands, input_bands = check_bands(output_bands, "output_bands"), check_bands(input_bands, "input_bands")
        conditions = [get_target(str(c)).name for c in conditions]
        if set(input_bands) & set(output_bands):
            raise ConfigError(f"bands {sorted(set(input_bands) & set(output_bands))} are both input and output")
        if not conditions and not input_bands:
            raise ConfigError("pix2pix needs conditions and/or input_bands to condition on")
        num_downs = num_downs or int(math.log2(input_size))
        if input_size % 2**num_downs:
            raise ConfigError(f"input_size {input_size} is not divisible by 2**num_downs = {2**num_downs}")
        if output_prior is not None and not 0 < output_prior < 1:
            raise ConfigError(f"output_prior must lie in (0, 1), got {output_prior}")
        self.save_hyperparameters()
        # normalised values (the CLI saves the parsed config, where num_downs may be null)
        self.hparams.update(
            output_bands=output_bands, input_bands=input_bands, conditions=conditions, num_downs=num_downs
        )
        self.meta = {key: self.hparams[key] for key in SHAPE_KEYS}
        self.automatic_optimization = False
        self.output_bands, self.input_bands, self.conditions = output_bands, input_bands, conditions
        self.inputs = GeneratorInput(conditions, input_bands)
        self.lr, self.betas, self.n_epochs_decay = lr, (beta1, beta2), n_epochs_decay
        self.target_weight = target_weight
        n_in = len(conditions) + len(input_bands)
        self.cond_dim = len(conditions) if inject_targets else 0
        shape = (num_downs, ngf, norm, dropout, noise_dim, self.cond_dim, noise_maps, noise_cell, upsample)
        self.generator = UnetGenerator(n_in, len(output_bands), *shape)
        self.discriminator = PatchGANDiscriminator(n_in + len(output_bands), ndf, n_layers_d, norm, spectral_norm)
        init_weights(self.generator, "normal", init_gain)
        init_weights(self.discriminator, "normal", init_gain)
        fraction = [is_fraction(b) for b in output_bands]
        self.head = LayoutHead(
            output_bands, fraction, conditions, exclusive=exclusive_bands, share_constraint=share_constraint
        )
        self.head.set_prior(cast(Any, self.generator.up[0])[-1], output_prior)
        self.register_buffer("scales", torch.tensor([get_target(n).scale for n in conditions], dtype=torch.float32))
        self.street_search = street_search  # a switch for generation: `citygen generate` may turn it off
        if street_search:
            check_street_search(output_bands, conditions, self.head.share_pairs)
        width = regressor_width if target_weight > 0 else None  # no term, no regressor
        self.consistency = TargetConsistency(conditions, output_bands, self.head, regressor_width=width)
        self.regressor = self.consistency.regressor  # a submodule of the task: saved, moved and optimised with D
        weights = LossWeights.from_hparams(self.hparams)
        self.objective = Pix2PixObjective(weights, GANLoss(gan_mode), self.discriminator, self.head, self.consistency)
        self.val_metrics = fraction_metrics([output_bands[i] for i in self.head.frac_idx], prefix="val/")
        self.test_metrics = self.val_metrics.clone(prefix="test/")

    def condition(self, targets: Tensor | None, inputs: Tensor | None, size: int) -> Tensor:
        """Generator input: scaled constant target maps ``[B, K, size, size]``, then the input bands."""
        return self.inputs.build(targets, inputs, size, self.scales)

    def raw_batch_targets(self, batch: dict[str, Any], *, scaled: bool = False) -> Tensor | None:
        return self.inputs.batch_targets(batch, self.scales if scaled else None)

    def batch_condition(self, batch: dict[str, Any]) -> Tensor:
        return self.inputs.from_batch(batch, self.scales)

    def generate_raw(self, cond: Tensor, z: Tensor | None = None, maps: Tensor | None = None) -> Tensor:
        """Generator logits for a generator input, a latent code and noise maps (drawn at random when None)."""
        # the constant target maps come first in ``cond``; their value is the scaled target vector
        c = cond[:, : self.cond_dim].mean(dim=(2, 3)) if self.cond_dim else None
        return self.generator(cond, z, c, maps)

    def constrain(self, raw: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """Band values of logits ``raw`` for generator input ``cond`` (share constraint applied when on)."""
        return self.head.constrain(raw, cond[:, : len(self.conditions)].mean(dim=(2, 3)) * self.scales, mask)

    def forward(
        self, cond: Tensor, z: Tensor | None = None, mask: Tensor | None = None, maps: Tensor | None = None
    ) -> Tensor:
        """Layout in band units; ``mask`` ``[B, 1, H, W]`` marks the pixels band shares are measured over."""
        return self.constrain(self.generate_raw(cond, z, maps), cond, mask)

    @torch.no_grad()
    def generate(
        self,
        targets: Tensor | None,
        inputs: Tensor | None = None,
        *,
        size: int | None = None,
        num_candidates: int = 1,
        seed: int | None = None,
        mask: Tensor | None = None,
        resolution_m: float | Sequence[float] | None = None,
    ) -> Tensor:
        """``[B, num_candidates, C, H, W]`` layouts for raw targets ``[B, K]``; ``mask`` ``[B, 1, H, W]`` is the
        area targets are measured over (default: all). ``street_search`` needs ``resolution_m`` (m per pixel)."""
        return draw_candidates(
            self,
            targets,
            inputs,
            size=size or self.meta["input_size"],
            n=num_candidates,
            seed=seed,
            mask=mask,
            resolution_m=resolution_m,
        )

    def _optimise(self, optimizer: Any, loss: Tensor, name: str) -> None:
        check_finite(loss, name, self.global_step)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        self.untoggle_optimizer(optimizer)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        opt_g, opt_d = cast(list, self.optimizers())
        cond, w = self.batch_condition(batch), channel_weights(batch, self.output_bands)
        real = select_channels(batch, self.output_bands) * w
        z = self.generator.sample_noise(cond.shape[0], cond.device)
        fake = self.constrain(self.generate_raw(cond, z), cond, batch["mask"]) * w
        wanted = self.raw_batch_targets(batch, scaled=True) if self.target_weight > 0 else None

        self.toggle_optimizer(opt_d)
        loss_d, logs_d = self.objective.discriminator_loss(cond, real, fake.detach(), batch, wanted, self.scales)
        self._optimise(opt_d, loss_d, "discriminator loss")

        def second() -> tuple[Tensor, Tensor]:
            z2 = self.generator.sample_noise(cond.shape[0], cond.device)
            return self.constrain(self.generate_raw(cond, z2), cond, batch["mask"]) * w, z2

        self.toggle_optimizer(opt_g)
        loss_g, logs_g = self.objective.generator_loss(cond, real, fake, w, batch, wanted, self.scales, second, z)
        self._optimise(opt_g, loss_g, "generator loss")
        self.log_dict({**logs_d, **logs_g}, batch_size=cond.shape[0])
        self.log("g_loss", loss_g, prog_bar=True, logger=False, batch_size=cond.shape[0])

    def on_train_epoch_end(self) -> None:
        for sched in cast(list, self.lr_schedulers() or []):
            sched.step()

    def _eval_step(self, batch: dict[str, Any], metrics: MetricCollection, stage: str) -> Tensor:
        cond, w = self.batch_condition(batch), channel_weights(batch, self.output_bands)
        real = select_channels(batch, self.output_bands)
        z, maps = seeded_noise(self.generator, cond, torch.Generator().manual_seed(0))
        fake = self(cond, z, batch["mask"], maps)
        n = cond.shape[0]
        self.log(f"{stage}/l1", masked_l1(fake * w, real * w, w), batch_size=n, sync_dist=True)
        wanted = self.raw_batch_targets(batch, scaled=True)
        if wanted is not None and self.head.share_pairs:
            got = self.consistency.layout_targets(fake * w, batch["mask"].to(fake.dtype), self.scales)
            for k, _ in self.head.share_pairs:  # absolute error of exactly computed shares, in target units
                err = target_error(got[:, k], wanted[:, k]) * self.scales[k]
                self.log(f"{stage}/target_error_{self.conditions[k]}", err, batch_size=n, sync_dist=True)
        update_fraction_metrics(metrics, fake, real, w, {self.output_bands[i]: i for i in self.head.frac_idx})
        self.log_dict(metrics, batch_size=n)
        return fake

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """A layout per crop for its measured targets, made as :meth:`generate` makes them."""
        inputs = select_channels(batch, self.input_bands) if self.input_bands else None
        size = batch["image"].shape[-1]
        resolutions = [float(b[2] - b[0]) / size for b in batch["bounds"].tolist()]
        generated = self.generate(
            self.raw_batch_targets(batch), inputs, size=size, mask=batch["mask"], resolution_m=resolutions
        )[:, 0]
        return {"generated": generated, **tile_identity(batch)}

    def configure_optimizers(self) -> Any:
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas)
        d_params = list(self.discriminator.parameters())
        if self.regressor is not None:
            d_params += list(self.regressor.parameters())
        opt_d = torch.optim.Adam(d_params, lr=self.lr, betas=self.betas)
        if self.n_epochs_decay <= 0:
            return [opt_g, opt_d]
        return [opt_g, opt_d], linear_decay([opt_g, opt_d], self.trainer.max_epochs, self.n_epochs_decay)

    @torch.no_grad()
    def render_samples(self, batch: dict[str, Any], n: int = 4) -> tuple[Any, str]:
        """Rows: real layout, then three candidates for the same targets."""
        from citygen.learn.tasks.render import pix2pix_rows

        return pix2pix_rows(self, batch, n)
