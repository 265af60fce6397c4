"""A pix2pix generator's input, and candidate layouts drawn from it: seeded codes, the street search, the constraint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from citygen.core.errors import ConfigError
from citygen.learn.tasks.base import select_channels
from citygen.learn.tasks.street_search import check_street_search, searched_street_logits


class GeneratorInput:
    """Scaled constant maps of the requested targets (``conditions``), then the real ``input_bands``."""

    def __init__(self, conditions: Sequence[str], input_bands: Sequence[str]) -> None:
        self.conditions, self.input_bands = list(conditions), list(input_bands)

    def build(self, targets: Tensor | None, inputs: Tensor | None, size: int, scales: Tensor) -> Tensor:
        """``[B, K + len(input_bands), size, size]`` from raw targets ``[B, K]`` and input bands."""
        parts = []
        if self.conditions:
            if targets is None:
                raise ConfigError(f"the model is conditioned on {self.conditions}; set data.targets to them")
            t = targets.to(scales.dtype) / scales
            parts.append(t[:, :, None, None].expand(-1, -1, size, size))
        if self.input_bands:
            assert inputs is not None
            parts.append(inputs)
        return torch.cat(parts, dim=1)

    def batch_targets(self, batch: dict[str, Any], scales: Tensor | None = None) -> Tensor | None:
        """The batch's targets ``[B, K]`` of the conditions, raw (or divided by ``scales``); None without any."""
        if not self.conditions:
            return None
        names = list(batch.get("target_names", ()))
        missing = [c for c in self.conditions if c not in names]
        if missing:
            raise ConfigError(
                f"the model is conditioned on {self.conditions} but the batch has targets {names}",
                "set data.targets to the model's conditions",
            )
        targets = batch["targets"][:, [names.index(c) for c in self.conditions]]
        return targets if scales is None else targets.to(scales.dtype) / scales

    def from_batch(self, batch: dict[str, Any], scales: Tensor) -> Tensor:
        inputs = select_channels(batch, self.input_bands) if self.input_bands else None
        return self.build(self.batch_targets(batch), inputs, batch["image"].shape[-1], scales)


def seeded_noise(generator: Any, cond: Tensor, gen: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
    """A latent code ``[B, noise_dim]`` and coarse noise maps (or None) drawn from ``gen`` (the global stream
    when None)."""
    z = torch.randn(cond.shape[0], generator.noise_dim, generator=gen).to(cond)
    maps = None
    if generator.noise_maps:
        maps = generator.sample_maps(cond.shape[0], (cond.shape[-2], cond.shape[-1]), cond.device, gen)
    return z, maps


@torch.no_grad()
def draw_candidates(
    task: Any,
    targets: Tensor | None,
    inputs: Tensor | None,
    *,
    size: int,
    n: int,
    seed: int | None,
    mask: Tensor | None,
    resolution_m: float | Sequence[float] | None,
) -> Tensor:
    """``[B, n, C, H, W]`` layouts of a :class:`~citygen.learn.tasks.pix2pix.Pix2PixTask` for raw targets
    ``[B, K]``: candidate ``k`` uses the ``k``-th code drawn from ``seed``; with the task's ``street_search`` on,
    each candidate's street logits are shifted to meet its street-graph targets before the share constraint."""
    cond = task.condition(targets, inputs, size)
    gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    search = task.street_search and targets is not None
    if search:  # the switch may have been turned on after training
        check_street_search(task.output_bands, task.conditions, task.head.share_pairs)
    if search and resolution_m is None:
        raise ConfigError(
            "street_search measures the layouts and needs their pixel size",
            "pass resolution_m (metres per pixel) to generate()",
        )
    with task.head.delivered():  # requested shares are met on the layout a user receives
        return torch.stack([_candidate(task, cond, targets, mask, resolution_m, gen, search) for _ in range(n)], 1)


def _candidate(
    task: Any,
    cond: Tensor,
    targets: Tensor | None,
    mask: Tensor | None,
    resolution_m: float | Sequence[float] | None,
    gen: torch.Generator | None,
    search: bool,
) -> Tensor:
    """One candidate: a code drawn from ``gen``, the street search when on, the share constraint."""
    raw = task.generate_raw(cond, *seeded_noise(task.generator, cond, gen))
    if search:
        assert targets is not None and resolution_m is not None
        raw = searched_street_logits(
            raw,
            targets,
            mask,
            resolution_m,
            output_bands=task.output_bands,
            conditions=task.conditions,
            constrain=lambda trial, i, m: task.constrain(trial, cond[i : i + 1], m),
        )
    return task.constrain(raw, cond, mask)
