"""The share constraint: logit offsets, found by bisection, that give generated bands their requested shares.

A band share (building coverage, green share) is the mean of a band over the crop, a monotone function of
one offset added to the band's logits, so bisection finds the offset that meets the request exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


@torch.no_grad()
def share_offset(logits: Tensor, mask: Tensor, wanted: Tensor, steps: int = 50) -> Tensor:
    """Per-sample offset ``d`` with ``mean(sigmoid(logits + d))`` over ``mask`` equal to ``wanted`` ``[B]``
    (bisection on a monotone function; 0 where the target is unknown)."""
    area = mask.sum(dim=(1, 2, 3)).clamp_min(1.0)
    target = wanted.clamp(1e-4, 1 - 1e-4)
    # bracket: every pixel below sigmoid(-20) at ``lo``, above sigmoid(20) at ``hi``
    lo = -logits.amax(dim=(1, 2, 3)).float() - 20.0
    hi = -logits.amin(dim=(1, 2, 3)).float() + 20.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        share = (torch.sigmoid(logits + mid[:, None, None, None]) * mask).sum(dim=(1, 2, 3)) / area
        low = share < target
        lo, hi = torch.where(low, mid, lo), torch.where(low, hi, mid)
    return torch.where(torch.isfinite(wanted), (lo + hi) / 2, torch.zeros_like(lo))


def exclusive_offsets(
    raw: Tensor, mask: Tensor, wanted: Tensor, frac_idx: Sequence[int], share_pairs: Sequence[tuple[int, int]],
    rounds: int = 6,
) -> Tensor:  # fmt: skip
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
