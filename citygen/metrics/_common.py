"""Shared pieces of the metric suite: the result container, orientation statistics, diversity.

Every metric family returns a :class:`MetricSet`: values (floats, NaN where not measurable), the unit
of each value, and for every NaN a reason. The suite turns these into one tidy table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# Boeing (2019): 36 bins of 10 degrees; a perfect grid puts all bearings into 4 bins.
ORIENTATION_BINS = 36
H_MAX = math.log(ORIENTATION_BINS)
H_GRID = math.log(4)


@dataclass
class MetricSet:
    """Values of one metric family for one city or tile.

    ``notes`` maps a metric name to the reason it is NaN ("not measurable: ...") or to a caveat.
    """

    values: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def set(self, key: str, value: float | int | None, unit: str, note: str | None = None) -> None:
        """Store a value; ``None``, NaN and inf become NaN and need a ``note`` saying why."""
        val = float("nan") if value is None else float(value)
        if not math.isfinite(val):
            val = float("nan")
            if note is None:
                note = "not measurable: the computation gave no finite value"
        self.values[key] = val
        self.units[key] = unit
        if note is not None:
            self.notes[key] = note

    def missing(self, keys: Iterable[str] | str, units: Mapping[str, str] | str, reason: str) -> None:
        """Mark metrics as not measurable, with the reason."""
        for key in [keys] if isinstance(keys, str) else keys:
            unit = units if isinstance(units, str) else units.get(key, "")
            self.set(key, None, unit, note=f"not measurable: {reason}")

    def update(self, other: MetricSet) -> MetricSet:
        self.values.update(other.values)
        self.units.update(other.units)
        self.notes.update(other.notes)
        return self

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def get(self, key: str, default: float = float("nan")) -> float:
        return self.values.get(key, default)


def bearing_histogram(
    bearings_deg: npt.ArrayLike, weights: npt.ArrayLike | None = None, *, num_bins: int = ORIENTATION_BINS
) -> np.ndarray:
    """Histogram of bearings with bins centred on 0, 10, 20, ... degrees.

    Same binning as ``osmnx.bearing._bearings_distribution``: twice as many bins, the last rolled to
    the front, merged in pairs, so 359.9 and 0.1 degrees fall in the same bin.
    """
    bearings = np.asarray(bearings_deg, dtype=float) % 360.0
    w = np.ones_like(bearings) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(bearings) & np.isfinite(w)
    split_counts, _ = np.histogram(bearings[keep], bins=np.linspace(0.0, 360.0, 2 * num_bins + 1), weights=w[keep])
    split_counts = np.roll(split_counts, 1)
    return split_counts[::2] + split_counts[1::2]


def entropy_from_counts(counts: npt.ArrayLike) -> float:
    """Shannon entropy (natural log) of a histogram; NaN if it is empty."""
    c = np.asarray(counts, dtype=float)
    total = c.sum()
    if not total > 0:
        return float("nan")
    p = c[c > 0] / total
    return float(-(p * np.log(p)).sum())


def orientation_order(entropy: float) -> float:
    """Boeing's orientation order: 1 - ((H - ln 4) / (ln 36 - ln 4))^2, in [0, 1]."""
    if not math.isfinite(entropy):
        return float("nan")
    return float(1.0 - ((entropy - H_GRID) / (H_MAX - H_GRID)) ** 2)


def undirected_bearings(dx: npt.ArrayLike, dy: npt.ArrayLike) -> np.ndarray:
    """Compass bearings (0 = grid north, clockwise) of vectors, each with its reciprocal appended."""
    b = np.degrees(np.arctan2(np.asarray(dx, float), np.asarray(dy, float))) % 360.0
    return np.concatenate([b, (b - 180.0) % 360.0])


def hill_numbers(counts: npt.ArrayLike) -> tuple[float, float, float]:
    """Hill numbers (effective number of classes) of orders q = 0, 1, 2."""
    c = np.asarray(counts, dtype=float)
    c = c[c > 0]
    if c.size == 0:
        return (float("nan"),) * 3
    p = c / c.sum()
    q0 = float(c.size)
    q1 = float(math.exp(-(p * np.log(p)).sum()))
    q2 = float(1.0 / (p**2).sum())
    return q0, q1, q2


def normalized_entropy(counts: npt.ArrayLike, n_classes: int) -> float:
    """Land-use-mix entropy as in Frank et al.: -sum p ln p / ln N (0 = one class, 1 = even mix)."""
    if n_classes < 2:
        return float("nan")
    return entropy_from_counts(counts) / math.log(n_classes)
