"""From generator logits to layout bands, and the share constraint.

Coverage bands (streets, buildings, green, ...) are fractions: a sigmoid each, or one softmax with an empty
class (``exclusive``), so a pixel is street, building, green or open. Other bands (floor area) are positive.

The share constraint: a band share (building coverage, green share) is the mean of a band over the crop, a
monotone function of one offset added to the band's logits, so bisection finds the offset that meets the request
exactly. The generator decides *where* buildings and green go; the constraint decides *how much*. In training
the soft band mean meets the request; when drawing candidates (:meth:`LayoutHead.delivered`) the share of
pixels at or above 0.5 does, so the layout a user receives (thresholded, as the GeoJSON draws it) has it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import Tensor

from citygen.metrics.targets import share_band


@torch.no_grad()
def coverage_pairs(fraction_bands: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs of coverage (fraction) bands whose common area the overlap term and ``citygen evaluate`` measure."""
    return [(a, b) for i, a in enumerate(fraction_bands) for b in fraction_bands[i + 1 :]]


def share_offset(logits: Tensor, mask: Tensor, wanted: Tensor, steps: int = 50, *, hard: bool = False) -> Tensor:
    """Per-sample offset ``d`` with ``mean(sigmoid(logits + d))`` over ``mask`` equal to ``wanted`` ``[B]``
    (bisection on a monotone function; 0 where the target is unknown). ``hard``: the share of pixels with
    ``sigmoid(logits + d) >= 0.5`` instead (the smallest offset that reaches it)."""
    area = mask.sum(dim=(1, 2, 3)).clamp_min(1.0)
    target = wanted.clamp(1e-4, 1 - 1e-4)
    # bracket: every pixel below sigmoid(-20) at ``lo``, above sigmoid(20) at ``hi``
    lo = -logits.amax(dim=(1, 2, 3)).float() - 20.0
    hi = -logits.amin(dim=(1, 2, 3)).float() + 20.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        shifted = logits + mid[:, None, None, None]
        value = (shifted >= 0).to(logits.dtype) if hard else torch.sigmoid(shifted)
        low = (value * mask).sum(dim=(1, 2, 3)) / area < target
        lo, hi = torch.where(low, mid, lo), torch.where(low, hi, mid)
    return torch.where(torch.isfinite(wanted), hi if hard else (lo + hi) / 2, torch.zeros_like(lo))


def exclusive_offsets(
    raw: Tensor,
    mask: Tensor,
    wanted: Tensor,
    frac_idx: Sequence[int],
    share_pairs: Sequence[tuple[int, int]],
    rounds: int = 6,
) -> Tensor:
    """Logit offsets ``[B, C]`` that give every share-constrained band (``share_pairs``: condition index, band
    index) its requested share under a softmax over the coverage bands ``frac_idx`` and an empty class: one
    band's share is a sigmoid of its logit minus the log-sum-exp of the others, so each band is solved by
    bisection given the others, a few rounds in turn."""
    offsets = torch.zeros(raw.shape[0], raw.shape[1], dtype=raw.dtype, device=raw.device)
    frac = list(frac_idx)
    for _ in range(rounds):
        for k, b in share_pairs:
            shifted = raw[:, frac] + offsets[:, frac, None, None]
            others = [j for j, c in enumerate(frac) if c != b]
            rest = torch.logsumexp(
                torch.cat([torch.zeros_like(raw[:, :1]), shifted[:, others]], dim=1), dim=1, keepdim=True
            )
            found = share_offset(raw[:, b : b + 1] - rest, mask, wanted[:, k])
            # a share of 0 empties the band
            offsets[:, b] = torch.where(wanted[:, k] <= 0, torch.full_like(found, -1e4), found.to(raw.dtype))
    return offsets


@torch.no_grad()
def deliver_exclusive(
    out: Tensor, mask: Tensor, wanted: Tensor, frac_idx: Sequence[int], share_pairs: Sequence[tuple[int, int]]
) -> Tensor:
    """Band values whose delivered layout (pixels >= 0.5) gives every share-constrained band exactly its requested
    share, for exclusive bands: per-band offsets cannot always do it (raising one band's logits lowers the others'
    probabilities, so two bands may both stay under 0.5 where they compete). Pixels already delivered as an
    unconstrained band (streets) keep it; each constrained band in turn takes the free pixels where its value is
    highest; the values are clipped just above 0.5 where taken and below it elsewhere, keeping their order."""
    below = 0.5 - 1e-3
    out = out.clone()
    constrained = [b for _, b in share_pairs]
    taken = torch.zeros_like(out[:, 0], dtype=torch.bool)
    for c in frac_idx:
        if c not in constrained:
            taken |= out[:, c] >= 0.5
    inside = mask[:, 0] > 0
    for k, b in share_pairs:
        for i in range(out.shape[0]):
            if not torch.isfinite(wanted[i, k]):
                continue
            n = round(float(wanted[i, k].clamp(0, 1)) * int(inside[i].sum()))
            score = torch.where(inside[i] & ~taken[i], out[i, b], torch.full_like(out[i, b], -1.0)).flatten()
            chosen = torch.zeros_like(score, dtype=torch.bool)
            chosen[torch.topk(score, n).indices if n else []] = True
            chosen = chosen.view_as(out[i, b]) & (score.view_as(out[i, b]) >= 0)
            out[i, b] = torch.where(chosen, out[i, b].clamp_min(0.5), out[i, b].clamp_max(below))
            for c in frac_idx:
                if c != b:  # a taken pixel is this band's: the others stay under 0.5 and the sum under 1
                    out[i, c] = torch.where(
                        chosen, torch.minimum(out[i, c], (1 - out[i, b]).clamp_max(below)), out[i, c]
                    )
            taken[i] |= chosen
    return out


class LayoutHead:
    """Activation and share constraint of a generator's output bands.

    Args:
        output_bands: the generated bands, in order.
        fraction: which of them are coverage fractions.
        conditions: the targets the generator is conditioned on.
        exclusive: coverage bands as one softmax with an empty class (needs two or more coverage bands).
        share_constraint: meet band-share targets exactly (see the module docstring).
    """

    def __init__(
        self,
        output_bands: Sequence[str],
        fraction: Sequence[bool],
        conditions: Sequence[str],
        *,
        exclusive: bool,
        share_constraint: bool,
    ) -> None:
        self.frac_idx = [i for i, is_fraction in enumerate(fraction) if is_fraction]
        self.exclusive = exclusive and len(self.frac_idx) > 1
        self.share_constraint = share_constraint
        self.hard = False  # shares of the delivered layout (pixels >= 0.5) rather than of the soft bands
        # (condition index, output band index) of every target that is the share of a generated band
        bands = {k: share_band(c) for k, c in enumerate(conditions)}
        self.share_pairs = [(k, list(output_bands).index(b)) for k, b in bands.items() if b and b in output_bands]
        # pairs of coverage bands whose common area the overlap term and `citygen evaluate` measure
        self.coverage_pairs = coverage_pairs(self.frac_idx)

    @contextlib.contextmanager
    def delivered(self) -> Iterator[None]:
        """Within the block the share constraint meets requests on the delivered layout (pixels >= 0.5)."""
        before, self.hard = self.hard, True
        try:
            yield
        finally:
            self.hard = before

    @torch.no_grad()
    def set_prior(self, last_layer: torch.nn.Module, prior: float | None) -> None:
        """Start the coverage bands at ``prior`` (the bias of the generator's last layer, as RetinaNet's prior
        init): layouts are mostly empty, and a generator that starts at 0.5 spends epochs unlearning that."""
        if prior is not None and self.frac_idx:
            cast(Tensor, last_layer.bias)[self.frac_idx] = math.log(prior / (1 - prior))

    def activate(self, raw: Tensor, offsets: Tensor | None = None) -> Tensor:
        """Band values from logits ``raw``; ``offsets`` ``[B, C]`` are added to the logits first."""
        if offsets is not None:
            raw = raw + offsets[:, :, None, None]
        out = raw.clone()
        if self.exclusive:  # softmax over the coverage bands and an empty class with logit 0
            logits = torch.cat([torch.zeros_like(raw[:, :1]), raw[:, self.frac_idx]], dim=1)
            out[:, self.frac_idx] = torch.softmax(logits, dim=1)[:, 1:]
        elif self.frac_idx:
            out[:, self.frac_idx] = torch.sigmoid(raw[:, self.frac_idx])
        other = [i for i in range(raw.shape[1]) if i not in self.frac_idx]
        if other:
            out[:, other] = torch.nn.functional.softplus(raw[:, other])
        return out

    def constrain(self, raw: Tensor, wanted: Tensor, mask: Tensor | None = None) -> Tensor:
        """:meth:`activate`, with the share constraint applied when on: ``wanted`` ``[B, K]`` are the raw
        targets, ``mask`` ``[B, 1, H, W]`` the pixels shares are measured over (default: all)."""
        if not self.share_constraint or not self.share_pairs:
            return self.activate(raw)
        m = (
            torch.ones_like(raw[:, :1])
            if mask is None
            else mask.to(raw.dtype).reshape(raw.shape[0], 1, *raw.shape[-2:])
        )
        if self.exclusive:
            out = self.activate(raw, exclusive_offsets(raw.detach(), m, wanted, self.frac_idx, self.share_pairs))
            return deliver_exclusive(out, m, wanted, self.frac_idx, self.share_pairs) if self.hard else out
        out = self.activate(raw)
        for k, b in self.share_pairs:
            offset = share_offset(raw[:, b : b + 1].detach(), m, wanted[:, k], hard=self.hard)
            share = torch.sigmoid(raw[:, b] + offset[:, None, None])
            # a share of exactly 0 or 1 is an empty or a full band (a sigmoid only approaches them)
            full = wanted[:, k, None, None].expand_as(share)
            out[:, b] = torch.where((full <= 0) | (full >= 1), full.clamp(0, 1), share)
        return out

    def excess_overlap(self, fake: Tensor, real: Tensor) -> Tensor:
        """Mean over crops and pairs of coverage bands of the area share both cover in the generated layout,
        beyond the share both cover in the real one (layouts already multiplied by their channel weights)."""
        excess = [
            torch.relu((fake[:, a] * fake[:, b]).mean(dim=(1, 2)) - (real[:, a] * real[:, b]).mean(dim=(1, 2)))
            for a, b in self.coverage_pairs
        ]
        return torch.stack(excess).mean()
