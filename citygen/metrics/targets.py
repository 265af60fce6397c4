"""The targets registry: every urban metric a layout can be asked for, defined once.

Each target has its unit, the scale that brings it to about [0, 1] as a conditioning input, its valid range,
the source layer it needs (a target is not measurable where the source did not provide that layer) and how it
is measured from a raster: the mean of one band over the valid area (a *band share*) or the street graph the
metric suite recovers from the streets band (:func:`citygen.metrics.raster.tile_targets` measures both).

:func:`relative_error` is the one definition of how far a layout is from a requested value. Training
(``street_search``), ``citygen generate`` (ranking candidates) and ``citygen evaluate`` (conditioning figures,
the best candidate) all use it, so they agree on which candidate is best.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from citygen.core.errors import ConfigError
from citygen.metrics.raster import SHARE_BANDS, tile_targets

log = logging.getLogger(__name__)

# Bump when a target's measure changes: cached targets (citygen.learn.conditioning) are keyed by it.
# 2: orientation weighted by edge length (issue 21).
MEASURE_VERSION = 2

# Errors are relative to max(|requested|, ZERO_FLOOR x the target's scale), so a request of 0 (no green) has a
# finite relative error: 5 % of the scale is the smallest request the error is relative to.
ZERO_FLOOR = 0.05


@dataclass(frozen=True)
class Target:
    """One target: what it means, its unit and how it is measured."""

    name: str
    unit: str
    scale: float  # divisor that brings the target to about [0, 1] as a generator input
    valid_range: tuple[float, float]  # the values the measure can take
    layer: str  # the source layer it needs
    description: str
    # monotone in a threshold of the streets band, so the generation-time street search can meet it
    searchable: bool = False

    @property
    def share_band(self) -> str | None:
        """The band whose mean over the valid area is the target, or None (measured on the street graph)."""
        return SHARE_BANDS.get(self.name)

    def floor(self) -> float:
        """The smallest |requested value| errors are relative to."""
        return ZERO_FLOOR * self.scale


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("building_coverage", "share", 1.0, (0.0, 1.0), "buildings", "share of the area under building footprints"),
        Target("floor_area_ratio", "m2/m2", 1.0, (0.0, math.inf), "buildings", "floor area per unit of ground area"),
        Target("green_share", "share", 1.0, (0.0, 1.0), "green", "share of the area that is parks, grass or woods"),
        Target("street_share", "share", 1.0, (0.0, 1.0), "streets", "share of the area that is carriageway"),
        Target("street_density_km_km2", "km/km2", 40.0, (0.0, math.inf), "streets",
               "street centre-line length per km2 (skeleton of the streets band)", searchable=True),
        Target("intersection_density_km2", "per km2", 200.0, (0.0, math.inf), "streets",
               "junctions of three or more streets per km2 (merged within 10 m)", searchable=True),
        Target("orientation_entropy", "nats", math.log(36), (0.0, math.log(36)), "streets",
               "Shannon entropy of street bearings in 36 bins (grid: low; organic: high)"),
        Target("orientation_order", "0-1", 1.0, (0.0, 1.0), "streets",
               "Boeing's orientation order phi = 1 - ((H - ln 4) / (ln 36 - ln 4))^2 (grid: 1; organic: 0)"),
        Target("four_way_share", "share", 1.0, (0.0, 1.0), "streets",
               "share of junctions (3+ streets, merged within 10 m) with four or more streets (Pattern 50)"),
        Target("path_share", "share", 1.0, (0.0, 1.0), "streets",
               "share of the area that is footway, cycleway, path or pedestrian street (micromobility)"),
    )
}  # fmt: skip


def get_target(name: str) -> Target:
    """The registry entry of ``name``, with the known names in the error."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}", f"choose from {', '.join(TARGETS)}") from None


def share_band(name: str) -> str | None:
    return get_target(name).share_band


def street_graph_targets(names: Sequence[str]) -> list[str]:
    """The targets among ``names`` that the street search can meet (street and intersection density)."""
    return [n for n in names if get_target(n).searchable]


def measure_targets(bands: Mapping[str, np.ndarray], resolution_m: float) -> dict[str, float]:
    """Every target of one raster crop (band name -> 2-D array, with ``valid``); {} if the crop cannot be measured
    (a degenerate generated skeleton must not stop a run: its targets count as unmeasurable)."""
    try:
        values = tile_targets(bands, resolution_m=resolution_m)
    except Exception as exc:
        shape = next(iter(bands.values())).shape
        log.warning(
            "tile_targets failed on a %s crop (%s: %s); its targets count as NaN", shape, type(exc).__name__, exc
        )
        return {}
    return {k: float(v) for k, v in values.items()}


def relative_error(name: str, achieved: float, requested: float) -> float:
    """Signed error of ``achieved`` against ``requested``, relative to max(|requested|, the target's floor).

    An unmeasurable value (NaN) counts as 100 % too high: the metric suite leaves a street graph unmeasured when
    streets cover nearly the whole crop, and a layout without a measurable target has not met it.
    """
    if not math.isfinite(achieved):
        return 1.0
    return (achieved - requested) / max(abs(requested), get_target(name).floor())


def mean_relative_error(achieved: Mapping[str, float], requested: Mapping[str, float]) -> tuple[float, float]:
    """(mean absolute, mean signed) :func:`relative_error` over the ``requested`` targets (0, 0 for none)."""
    errors = [relative_error(name, achieved.get(name, math.nan), value) for name, value in requested.items()]
    if not errors:
        return 0.0, 0.0
    return float(np.mean(np.abs(errors))), float(np.mean(errors))


def relative_errors(name: str, achieved: np.ndarray, requested: np.ndarray) -> np.ndarray:
    """:func:`relative_error` elementwise; ``requested`` broadcasts against ``achieved``."""
    floor = get_target(name).floor()
    requested = np.broadcast_to(np.asarray(requested, dtype=np.float64), np.shape(achieved))
    error = (np.asarray(achieved, dtype=np.float64) - requested) / np.maximum(np.abs(requested), floor)
    return np.where(np.isfinite(achieved), error, 1.0)


def conditioning_figures(name: str, requested: np.ndarray, achieved: np.ndarray) -> dict[str, float]:
    """How well ``achieved`` ``[n, candidates]`` values meet ``requested`` ``[n]`` ones of one target: ``mape``, the
    mean absolute :func:`relative_error` over requests at or above the target's floor (a percentage of a near-zero
    request says little); ``mae`` in the target's unit; ``spearman``, the rank correlation of requested and mean
    achieved values (NaN where undefined)."""
    from scipy.stats import spearmanr

    r, ach = np.asarray(requested, dtype=np.float64), np.asarray(achieved, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(ach).all(axis=1)
    sel = ok & (np.abs(r) >= get_target(name).floor())
    mean_ach = ach[ok].mean(axis=1)
    good = ok.sum() >= 3 and np.ptp(r[ok]) > 0 and np.ptp(mean_ach) > 0
    return {
        "mape": float(np.abs(relative_errors(name, ach[sel], r[sel, None])).mean()) if sel.any() else math.nan,
        "mae": float(np.abs(ach[ok] - r[ok, None]).mean()) if ok.any() else math.nan,
        "spearman": float(spearmanr(r[ok], mean_ach).statistic) if good else math.nan,
    }


def rank_candidates(achieved: Sequence[Mapping[str, float]], requested: Mapping[str, float]) -> list[int]:
    """Candidate indices from closest to farthest: by mean absolute :func:`relative_error` over the requested
    targets, ties by index. ``citygen generate`` ranks with it and ``citygen evaluate`` takes its first."""
    errors = [mean_relative_error(values, requested)[0] for values in achieved]
    return sorted(range(len(errors)), key=lambda i: (errors[i], i))
