"""Generation-time search for the street threshold that meets street-graph targets.

The share constraint meets band-share targets (building coverage, green share) exactly, because a share is a
monotone function of one logit offset. Street-graph targets (intersection density, street density) come from
the skeleton graph the metric suite recovers from the street band, which no differentiable layer gives. They
are still close to monotone in an offset added to the street logits: raising the logits joins street pieces
into more and longer streets, lowering them breaks streets apart. So each candidate's street logits are
shifted by the offset, found by bisection with the metric suite in the loop, whose layout measures closest to
the request. The generator still decides where streets go; the search decides how much of its street
probability map becomes street.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from citygen.core.errors import ConfigError
from citygen.metrics.morphology import delivered
from citygen.metrics.targets import mean_relative_error, measure_targets, street_graph_targets

SEARCH_SPAN = 6.0  # offsets lie in [-6, 6]: a logit shifted by 6 turns a probability of 0.5 into 0.0025 or 0.9975
SEARCH_STEPS = 10  # bisection steps after offset 0: the offset is found to 12 / 2**10 ~ 0.01
# the layout ``[1, C, H, W]`` of sample ``i`` of a batch at shifted logits ``[1, C, H, W]`` over its mask
Constrain = Callable[[Tensor, int, Tensor], Tensor]


def check_street_search(
    output_bands: Sequence[str], conditions: Sequence[str], share_pairs: Sequence[tuple[int, int]]
) -> None:
    """Raise a ConfigError unless the search applies: streets are drawn, a street-graph target is asked for,
    and no share constraint fixes the street band (``share_pairs``: condition index, band index)."""
    bands = list(output_bands)
    if (
        "streets" in bands
        and street_graph_targets(conditions)
        and all(b != bands.index("streets") for _, b in share_pairs)
    ):
        return
    raise ConfigError(
        "street_search needs streets among output_bands, a street-graph condition "
        f"(intersection_density_km2 or street_density_km_km2; got {list(conditions)}) and no street_share target",
        "set street_search: false, or add such a condition",
    )


def search_street_offset(
    layout_at: Callable[[float], Mapping[str, np.ndarray]],
    wanted: Mapping[str, float],
    *,
    resolution_m: float,
    steps: int = SEARCH_STEPS,
    span: float = SEARCH_SPAN,
) -> tuple[float, float]:
    """``(offset, error)``: the street-logit offset whose layout comes closest to ``wanted`` among those
    bisection visits (0 first), and its mean relative error.

    ``layout_at(offset)`` returns the named bands (with ``valid``) of the layout at that offset. The search
    stops early at an exact match; among equally close offsets the one nearest 0 wins, so a candidate that
    already meets its targets is left as the generator drew it.
    """
    if not wanted:
        return 0.0, 0.0
    low, high = -span, span
    best_error, best_offset = math.inf, 0.0
    for _ in range(steps + 1):
        offset = (low + high) / 2
        error, signed = mean_relative_error(measure_targets(layout_at(offset), resolution_m), wanted)
        if (error, abs(offset)) < (best_error, abs(best_offset)):
            best_error, best_offset = error, offset
        if error < 1e-6:  # met, to float32 rounding of the requested value
            break
        if signed > 0:
            high = offset
        else:
            low = offset
    return best_offset, best_error


def searched_street_logits(
    raw: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    resolution_m: float | Sequence[float],
    *,
    output_bands: Sequence[str],
    conditions: Sequence[str],
    constrain: Constrain,
) -> Tensor:
    """Generator logits ``raw`` ``[B, C, H, W]`` with each sample's street logits shifted by the offset
    :func:`search_street_offset` finds for its raw (unscaled) ``targets`` ``[B, K]`` (of ``conditions``); the
    layout at an offset is ``constrain`` of the shifted logits, so band-share targets stay exact while streets
    change."""
    s = list(output_bands).index("streets")
    n = raw.shape[0]
    resolutions = np.broadcast_to(np.asarray(resolution_m, dtype=np.float64), (n,))
    masks = torch.ones_like(raw[:, :1]) if mask is None else mask.to(raw.dtype).reshape(n, 1, *raw.shape[-2:])
    shifted = raw.clone()
    for i in range(n):
        wanted = {name: float(targets[i, list(conditions).index(name)]) for name in street_graph_targets(conditions)}
        wanted = {name: value for name, value in wanted.items() if math.isfinite(value)}
        valid = masks[i, 0].float().cpu().numpy()

        def layout_at(offset: float, i: int = i, valid: np.ndarray = valid) -> dict[str, np.ndarray]:
            trial = raw[i : i + 1].clone()
            trial[:, s] += offset
            out = constrain(trial, i, masks[i : i + 1])[0].detach().float().cpu().numpy()
            # measured as delivered (bands at 0.5): the search meets the targets of what the user receives
            return delivered({**{name: out[c] for c, name in enumerate(output_bands)}, "valid": valid})

        offset, _ = search_street_offset(layout_at, wanted, resolution_m=float(resolutions[i]))
        shifted[i, s] += offset
    return shifted
