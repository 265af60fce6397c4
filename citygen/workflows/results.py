"""Typed results of ``citygen evaluate``, ``generate`` and ``compare``, and the one place they become JSON.

Readers (the demo report, notebooks, experiments) use fields, not key strings. In JSON an undefined figure
(NaN: a Spearman correlation over constant values, a MAPE without a target above the floor) is ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from citygen.data.geotiff import atomic_path


@dataclass
class Agreement:
    """How a measure of a reconstruction agrees with the same measure of its input, on ``n`` crops."""

    n: int
    rel_error: float  # median relative error
    spearman: float  # rank correlation


@dataclass
class Conditioning:
    """How well generated layouts meet requested targets: mean absolute percentage error (requests below the
    target's floor left out), mean absolute error in the target's unit, and Spearman's rho of requested vs
    achieved (mean over the candidates)."""

    mape: float
    mae: float
    spearman: float


@dataclass
class RealismScore:
    """One set of layouts against the real reference tiles (:mod:`citygen.workflows.realism`)."""

    tiles: int
    frechet_distance: float  # of the standardised morphology statistics, to the reference
    frechet_ratio: float  # that distance over the one between two halves of the reference
    c2st_accuracy: float  # cross-validated accuracy telling the set from the reference (0.5: cannot)
    pixel_c2st_accuracy: float  # the same with a small CNN on the delivered pixels
    precision: float  # Naeem et al. 2020, k = 5, in statistic space
    recall: float
    density: float
    coverage: float
    wasserstein: dict[str, float] = field(default_factory=dict)  # per statistic / reference std, worst first
    checkerboard_median: float = math.nan  # ~1 for real layouts
    checkerboard_above_reference: float = math.nan  # share above the reference's 99th percentile
    copies: float = math.nan  # share of tiles whose streets overlap a training crop's at IoU > 0.8
    best_train_iou_median: float = math.nan
    diversity_ratio: float = math.nan  # candidates' street 1-IoU for one request / real tiles of similar targets


@dataclass
class AutoencoderEvaluation:
    checkpoint: str
    data: str
    crop_size: int
    crops: int
    recon_loss: float
    iou: dict[str, float] = field(default_factory=dict)
    f1: dict[str, float] = field(default_factory=dict)
    urban_metrics: dict[str, Agreement] = field(default_factory=dict)  # reconstruction vs input, per metric
    task: str = "AutoencoderTask"


@dataclass
class Pix2PixEvaluation:
    checkpoint: str
    data: str
    crop_size: int
    crops: int
    candidates: int
    street_search: bool
    # every candidate, as delivered (with the model's street search when it is on)
    conditioning: dict[str, Conditioning] = field(default_factory=dict)
    # the candidate `citygen generate` ranks first among those drawn for one request
    best_candidate: dict[str, Conditioning] = field(default_factory=dict)
    # street-graph targets from the generator alone, without the street search (only when the search is on)
    generator_alone: dict[str, Conditioning] = field(default_factory=dict)
    diversity_l1: float = math.nan  # mean pairwise L1 between candidates for one request
    real_pair_l1: float = math.nan  # the same between random pairs of real crops
    diversity_streets_1_minus_iou: float = math.nan
    overlap: dict[str, float] = field(default_factory=dict)  # area share two coverage bands cover at once
    real_overlap: dict[str, float] = field(default_factory=dict)
    w1: dict[str, float] = field(default_factory=dict)  # Wasserstein-1 / real std, generated vs real, per metric
    # models drawing on real input bands (streets -> buildings): IoU of each delivered band of the first candidate
    # with the real crop's, pooled over the crops (where the input fixes the place, the real layout is a reference)
    iou_vs_real: dict[str, float] = field(default_factory=dict)
    # realism against the real test tiles: held-out real and retrieval baselines, the generator alone, and the
    # street-searched layouts labelled as post-processed (citygen.workflows.realism_eval)
    realism: dict[str, RealismScore] = field(default_factory=dict)
    # the retrieval baseline's conditioning: the training crop nearest each request, delivered
    retrieval: dict[str, Conditioning] = field(default_factory=dict)
    task: str = "Pix2PixTask"


Evaluation = AutoencoderEvaluation | Pix2PixEvaluation


@dataclass
class RealismReport:
    data: str
    reference: str  # what the sets are compared with
    tile_px: int
    resolution_m: float
    statistics: list[str]
    sets: dict[str, RealismScore] = field(default_factory=dict)  # the held-out real baseline first
    figure: str = ""


class TargetReport(TypedDict):
    requested: float
    achieved: float
    relative_error: float  # absolute value of citygen.metrics.targets.relative_error
    filled: bool  # not requested: filled in from the training crops nearest the request, not ranked on


class CandidateReport(TypedDict):
    rank: int
    candidate: int
    file: str
    vectors: str
    targets: dict[str, TargetReport]
    mean_relative_error: float
    patterns: list[dict[str, Any]]


class GenerateReport(TypedDict):
    checkpoint: str  # the stages' files, joined by " -> "
    stages: list[str]
    targets: dict[str, float]
    filled_targets: dict[str, float]
    training_ranges: dict[str, list[float]]
    street_search: bool
    crs: str
    transform: list[float]
    resolution_m: float
    size_px: int
    candidates: list[CandidateReport]
    diversity: float
    contact_sheet: str
    pattern_card: str
    realism: dict[str, RealismScore]  # candidates and held-out real tiles against the test tiles of similar targets
    attribution: str


class CityLevelReport(TypedDict, total=False):
    """The city-level part of ``citygen compare``'s report (groups of places, leave-one-city-out probe)."""

    groups_file: str
    groups: dict[str, dict[str, Any]]
    group_probe: dict[str, Any]  # leave-one-city-out probe of the groups
    group_probe_tiles: int
    unlabelled_places: list[str]
    city_level_distances: dict[str, dict[str, float]]


class CompareReport(CityLevelReport, total=False):
    """What ``citygen compare`` writes to ``report.json`` (probe entries: accuracy, chance, intervals, counts)."""

    embeddings: str
    n_tiles: int
    cities: list[str]
    probe_accuracy: dict[str, float | None]  # test split
    probe_cv_accuracy: dict[str, float | None]  # block cross-validation
    probes: dict[str, dict[str, Any]]
    probes_skipped: dict[str, str]
    probes_metrics_baseline: dict[str, dict[str, Any]]  # the same probes on the tiles' urban metrics
    control_embeddings: str | None
    baseline_metrics: list[str]
    metric_r2: dict[str, dict[str, float | int]]
    city_distances: dict[str, dict[str, float]]
    nearest_neighbours: list[dict[str, Any]]
    figures: dict[str, str]
    attribution: str


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy and torch scalars
        return _plain(value.item())
    return value


def to_json(result: Any) -> str:
    """JSON text of a result (dataclasses, TypedDicts, nested containers); NaN and inf become null."""
    return json.dumps(_plain(result), indent=2)


def write_json(path: str | Path, result: Any) -> Path:
    """Write :func:`to_json` of ``result`` atomically (no half-written file under a kill)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(to_json(result))
    return path
