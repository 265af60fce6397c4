"""Pix2pix stages chained into one generator: stage 1 draws streets from targets, stage 2 dresses each of its
candidates with buildings and green (the streets as delivered, thresholded at 0.5, as a user receives them).

:class:`ChainedTask` offers what ``citygen generate`` and ``citygen evaluate`` use of a
:class:`~citygen.learn.tasks.Pix2PixTask` (conditions, bands, ``generate``, ``street_search``), so the shipped
two-stage model is generated with, evaluated and scored for realism exactly as one network is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from citygen.core.bands import band
from citygen.learn.tasks.candidates import GeneratorInput
from citygen.learn.tasks.layout_head import coverage_pairs
from citygen.metrics.morphology import DELIVERED_THRESHOLD
from citygen.metrics.targets import street_graph_targets
from citygen.workflows.checkpoints import TrainedTask


@dataclass
class _Head:
    coverage_pairs: list[tuple[int, int]] = field(default_factory=list)


class ChainedTask:
    """Stages run in order; each later stage takes its input bands from the bands drawn before it."""

    def __init__(self, tasks: Sequence[Any]) -> None:
        self.tasks = list(tasks)
        first = self.tasks[0]
        self.input_bands: list[str] = list(first.input_bands)
        self.output_bands: list[str] = [b for t in self.tasks for b in t.output_bands]
        self.conditions: list[str] = []
        for t in self.tasks:
            self.conditions += [c for c in t.conditions if c not in self.conditions]
        self.meta = dict(first.meta)
        fraction = [i for i, b in enumerate(self.output_bands) if band(b).unit == "fraction"]
        self.head = _Head(coverage_pairs(fraction))
        self._inputs = GeneratorInput(self.conditions, self.input_bands)

    @property
    def street_search(self) -> bool:
        return any(t.street_search for t in self.tasks)

    @street_search.setter
    def street_search(self, on: bool) -> None:
        for t in self.tasks:  # only a stage that draws streets for street-graph targets can search
            t.street_search = on and "streets" in t.output_bands and bool(street_graph_targets(t.conditions))

    def raw_batch_targets(self, batch: dict[str, Any]) -> Tensor | None:
        return self._inputs.batch_targets(batch, None)

    def _targets(self, task: Any, targets: Tensor | None) -> Tensor | None:
        if targets is None or not task.conditions:
            return None
        return targets[:, [self.conditions.index(c) for c in task.conditions]]

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
        """``[B, num_candidates, C, H, W]``: the first stage's candidates, each dressed by the later stages."""
        first, n = self.tasks[0], num_candidates
        out = first.generate(
            self._targets(first, targets),
            inputs,
            size=size,
            num_candidates=n,
            seed=seed,
            mask=mask,
            resolution_m=resolution_m,
        )
        b = out.shape[0]
        drawn = list(first.output_bands)
        repeat = (lambda x: x.repeat_interleave(n, dim=0)) if n > 1 else (lambda x: x)
        resolutions = resolution_m
        if isinstance(resolution_m, Sequence):
            resolutions = list(np.repeat(np.asarray(resolution_m, dtype=float), n))
        for k, task in enumerate(self.tasks[1:], start=1):
            flat = out.reshape(b * n, *out.shape[2:])
            given = (flat[:, [drawn.index(x) for x in task.input_bands]] >= DELIVERED_THRESHOLD).to(flat.dtype)
            t = self._targets(task, targets)
            more = task.generate(
                None if t is None else repeat(t),
                given,
                size=size,
                num_candidates=1,
                seed=None if seed is None else seed + k,
                mask=None if mask is None else repeat(mask),
                resolution_m=resolutions,
            )[:, 0]
            out = torch.cat([out, more.reshape(b, n, *more.shape[1:])], dim=2)
            drawn += list(task.output_bands)
        return out


def chained(stages: Sequence[TrainedTask]) -> TrainedTask:
    """The stages as one :class:`TrainedTask` for ``citygen evaluate``: it is scored on the test split of the
    last stage's places (the ones whose every drawn layer is complete), with every stage's targets."""
    task = ChainedTask([s.task for s in stages])
    last = stages[-1]
    data = {
        **last.data,
        "bands": list(task.output_bands),
        "targets": list(task.conditions),
        "require_bands": [b for s in stages for b in s.data.get("require_bands", [])],
    }
    data["require_bands"] = sorted(set(data["require_bands"]))
    path = Path(" -> ".join(str(s.path) for s in stages))
    return TrainedTask(task=task, name="Pix2PixTask", path=path, meta=dict(stages[0].meta), data=data)
