"""``citygen realism``: do layouts pass for real ones? Sets of tiles scored against the real test tiles of a dataset.

Every set (folders of candidate GeoTIFFs, or the layouts ``citygen evaluate`` generates) is measured the way a user
receives it: coverage bands thresholded at 0.5. The reference is the test split of the dataset, in crops of the
candidates' size; the **held-out real baseline** is the validation split measured the same way, so every figure
has the value real, spatially held-out tiles reach beside it. See :mod:`citygen.metrics.realism` for the measures.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from citygen.core.errors import ConfigError, SourceError
from citygen.core.parallel import process_map
from citygen.data.dataset import CityTileDataset
from citygen.data.geotiff import read_raster
from citygen.metrics import realism as R
from citygen.metrics.morphology import (
    DELIVERED_THRESHOLD,
    DISTRIBUTION_STATISTICS,
    morphology,
    statistic_matrix,
)
from citygen.metrics.targets import get_target
from citygen.workflows.results import RealismReport, RealismScore

log = logging.getLogger(__name__)
LAYOUT_BANDS = ("streets", "buildings", "green")  # the coverage bands realism looks at
COPY_IOU = 0.8  # a candidate whose streets overlap a training crop's this much is a copy of it
SIMILAR = 8  # real tiles of similar targets a request's candidates are compared with
MIN_REFERENCE = 8  # fewer real test crops cannot say what a real distribution looks like


@dataclass
class TileSet:
    """Layouts ``[n, len(bands), H, W]`` (band values; ``valid`` separately) and what is known of them."""

    name: str
    layouts: np.ndarray
    valid: np.ndarray  # [n, H, W] bool
    bands: tuple[str, ...]
    resolution_m: float
    groups: list[int] | None = None  # candidates drawn for one request share a group
    requests: list[dict[str, float]] = field(default_factory=list)  # per group: the requested targets
    rows: list[dict[str, float]] = field(default_factory=list)  # morphology per tile, filled by :func:`measure`
    targets: np.ndarray | None = None  # [n, K] measured targets of real tiles (the dataset's cache)

    def band(self, name: str) -> np.ndarray:
        return self.layouts[:, self.bands.index(name)]

    def delivered(self) -> np.ndarray:
        """The layouts as a user receives them: bands thresholded at 0.5, 0 outside the valid area."""
        return ((self.layouts >= DELIVERED_THRESHOLD) & self.valid[:, None]).astype(np.float32)

    def street_masks(self) -> np.ndarray:
        return (self.band("streets") >= DELIVERED_THRESHOLD) & self.valid


def tile_bands(tiles: TileSet, i: int) -> dict[str, np.ndarray]:
    """Tile ``i`` as a band dict with its ``valid`` mask."""
    return {**{b: tiles.layouts[i, k] for k, b in enumerate(tiles.bands)}, "valid": tiles.valid[i].astype(np.float32)}


def measure(tiles: TileSet, *, workers: int = 0) -> TileSet:
    """Fill ``tiles.rows`` with the morphology statistics of every tile (``workers`` > 1: in that many processes)."""
    items = [tile_bands(tiles, i) for i in range(len(tiles.layouts))]
    resolutions = [tiles.resolution_m] * len(items)
    tiles.rows = process_map(_morphology, items, resolutions, workers=workers, chunksize=8)
    return tiles


def _morphology(bands: dict[str, np.ndarray], resolution_m: float) -> dict[str, float]:
    return morphology(bands, resolution_m=resolution_m)


def dataset_tiles(
    root: Path,
    split: str,
    *,
    size: int,
    bands: Sequence[str] = LAYOUT_BANDS,
    cities: Sequence[str] | None = None,
    min_valid_fraction: float = 0.9,
    target_names: Sequence[str] = (),
) -> TileSet:
    """Grid crops of ``size`` px of one split, from tiles whose sources provide every band, with their
    ``target_names`` targets from the dataset's cache (measured first if needed)."""
    from citygen.learn.datamodule import CityTileDataModule

    dm = CityTileDataModule(
        root=str(root),
        bands=list(bands),
        crop_size=size,
        require_bands=list(bands),
        cities=list(cities) if cities else None,
        min_valid_fraction=min_valid_fraction,
    )
    frame = dm.tiles(split)
    if frame.empty:
        raise SourceError(
            f"no {split} tiles with {list(bands)} in {root} (min_valid_fraction {min_valid_fraction}, cities {cities})",
            "build a dataset with those layers (citygen data build), or name other cities",
        )
    ds = CityTileDataset(root, tiles=frame, bands=list(bands), crop_size=size)
    samples = [ds[i] for i in range(len(ds))]
    resolution = float((frame["maxx"] - frame["minx"]).iloc[0] / frame["width"].iloc[0])
    targets = None
    if target_names:
        from citygen.learn.conditioning import cell_targets

        targets = cell_targets(Path(root), frame, ds.cells, size, list(target_names))
    return TileSet(
        name=f"{split} split",
        layouts=np.stack([s["image"].numpy() for s in samples]),
        valid=np.stack([s["mask"][0].numpy() for s in samples]),
        bands=tuple(bands),
        resolution_m=resolution,
        targets=targets,
    )


def folder_tiles(folder: Path, *, bands: Sequence[str] = LAYOUT_BANDS) -> TileSet:
    """The GeoTIFFs of one folder (e.g. a ``citygen generate`` output: one request, its candidates)."""
    import json

    paths = sorted(Path(folder).glob("*.tif"))
    if not paths:
        raise ConfigError(f"no GeoTIFF in {folder}", "pass folders written by `citygen generate` (candidate_*.tif)")
    rasters = [read_raster(p) for p in paths]
    shapes = {next(iter(r.bands.values())).shape for r in rasters}
    resolutions = {round(r.resolution_m, 6) for r in rasters}
    if len(shapes) != 1 or len(resolutions) != 1:
        raise ConfigError(
            f"the GeoTIFFs of {folder} differ in size {sorted(shapes)} or pixel size {sorted(resolutions)}"
        )
    missing = sorted({b for r in rasters for b in bands if b not in r.bands or not r.present.get(b, True)})
    if missing:
        raise ConfigError(f"GeoTIFFs in {folder} have no band(s) {missing}", f"realism compares {list(bands)}")
    report = folder / "report.json"
    requests = [json.loads(report.read_text())["targets"]] if report.is_file() else []
    layouts = np.stack([np.stack([r.bands[b] for b in bands]) for r in rasters]).astype(np.float32)
    shape = next(iter(shapes))
    valid = np.stack([r.bands["valid"] > 0.5 if "valid" in r.bands else np.ones(shape, bool) for r in rasters])
    return TileSet(
        name=str(folder),
        layouts=np.nan_to_num(layouts),
        valid=valid,
        bands=tuple(bands),
        resolution_m=float(resolutions.pop()),
        groups=[0] * len(rasters) if requests else None,
        requests=requests,
    )


def merge(name: str, sets: Sequence[TileSet]) -> TileSet:
    """One set of several (their groups renumbered), e.g. the folders of several ``citygen generate`` runs."""
    groups: list[int] | None = []
    requests: list[dict[str, float]] = []
    for s in sets:
        if s.groups is None or groups is None:
            groups = None
            continue
        groups += [g + len(requests) for g in s.groups]
        requests += s.requests
    first = sets[0]
    for s in sets[1:]:
        if s.layouts.shape[1:] != first.layouts.shape[1:] or abs(s.resolution_m - first.resolution_m) > 1e-6:
            raise ConfigError(f"{s.name} and {first.name} hold tiles of other sizes or pixel sizes")
    return TileSet(
        name,
        np.concatenate([s.layouts for s in sets]),
        np.concatenate([s.valid for s in sets]),
        first.bands,
        first.resolution_m,
        groups,
        requests,
        [r for s in sets for r in s.rows],
    )


def _requests_matrix(requests: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    return np.array([[r[n] / get_target(n).scale for n in names] for r in requests], dtype=np.float64)


def diversity_ratio(tiles: TileSet, reference: TileSet, reference_targets: np.ndarray, names: Sequence[str]) -> float:
    """Mean over requests of the candidates' pairwise street 1-IoU over the same figure among the
    :data:`SIMILAR` reference tiles whose measured targets (``reference_targets`` ``[n_ref, len(names)]``) are
    nearest the request, in units of each target's scale. NaN without requests."""
    if tiles.groups is None or not tiles.requests or not names:
        return math.nan
    masks, ref_masks = tiles.street_masks(), reference.street_masks()
    wanted = _requests_matrix(tiles.requests, names)
    scaled = reference_targets / np.array([get_target(n).scale for n in names])
    ratios = []
    for g, request in enumerate(wanted):
        own = R.pairwise_dissimilarity(masks[np.asarray(tiles.groups) == g])
        ok = np.isfinite(scaled).all(axis=1)
        nearest = np.flatnonzero(ok)[np.argsort(np.linalg.norm(scaled[ok] - request, axis=1))[:SIMILAR]]
        real = R.pairwise_dissimilarity(ref_masks[nearest])
        if math.isfinite(own) and math.isfinite(real) and real > 0:
            ratios.append(own / real)
    return float(np.mean(ratios)) if ratios else math.nan


@dataclass
class Reference:
    """The real tiles every set is scored against, and what scoring needs of them."""

    tiles: TileSet
    matrix: np.ndarray  # statistic_matrix of the reference rows
    train_masks: np.ndarray  # street masks of the training crops (memorisation)
    targets: np.ndarray  # [n, len(target_names)] measured targets of the reference tiles
    target_names: list[str]
    train: TileSet | None = None  # the training crops (with their targets: the retrieval baseline draws from them)


def reference_for(
    root: Path,
    *,
    size: int,
    cities: Sequence[str] | None,
    target_names: Sequence[str],
    bands: Sequence[str] = LAYOUT_BANDS,
    min_valid_fraction: float = 0.9,
    workers: int = 0,
) -> Reference:
    """The test split (measured) and the training crops' street masks and targets of ``root``."""
    kwargs: dict[str, Any] = {
        "size": size,
        "cities": cities,
        "bands": bands,
        "min_valid_fraction": min_valid_fraction,
        "target_names": target_names,
    }
    test = measure(dataset_tiles(root, "test", **kwargs), workers=workers)
    train = dataset_tiles(root, "train", **kwargs)
    targets = test.targets if test.targets is not None else np.zeros((len(test.layouts), 0))
    return Reference(test, statistic_matrix(test.rows), train.street_masks(), targets, list(target_names), train)


@lru_cache(maxsize=2)
def cached_reference(
    root: str,
    size: int,
    cities: tuple[str, ...] | None,
    target_names: tuple[str, ...],
    bands: tuple[str, ...],
    min_valid_fraction: float,
    workers: int,
) -> Reference:
    """:func:`reference_for`, kept for the next call in this process (the demo generates three times)."""
    return reference_for(
        Path(root),
        size=size,
        cities=cities,
        target_names=target_names,
        bands=bands,
        min_valid_fraction=min_valid_fraction,
        workers=workers,
    )


def score(tiles: TileSet, reference: Reference, *, workers: int = 0) -> RealismScore:
    """Every realism measure of ``tiles`` (measured first if needed) against ``reference``."""
    if not tiles.rows:
        measure(tiles, workers=workers)
    if tiles.layouts.shape[-2:] != reference.tiles.layouts.shape[-2:] or (
        abs(tiles.resolution_m - reference.tiles.resolution_m) > 1e-6
    ):
        raise ConfigError(
            f"{tiles.name}: tiles of {tiles.layouts.shape[-1]} px at {tiles.resolution_m:g} m, the reference has "
            f"{reference.tiles.layouts.shape[-1]} px at {reference.tiles.resolution_m:g} m",
            "compare layouts generated at the dataset's pixel size and crop size",
        )
    if len(tiles.rows) < 4:
        raise ConfigError(f"{tiles.name}: {len(tiles.rows)} tiles are too few to compare distributions (4 or more)")
    if len(reference.tiles.rows) < MIN_REFERENCE:
        raise ConfigError(
            f"the reference holds {len(reference.tiles.rows)} test crops; realism needs {MIN_REFERENCE} or more",
            "compare with a dataset of more cities, or with smaller crops",
        )
    matrix = statistic_matrix(tiles.rows)
    frechet = R.frechet_ratio(reference.matrix, matrix)
    close = R.prdc(reference.matrix, matrix)
    board = np.array([r["checkerboard"] for r in tiles.rows])
    real_board = np.array([r["checkerboard"] for r in reference.tiles.rows])
    best = R.best_iou(tiles.street_masks(), reference.train_masks)
    return RealismScore(
        tiles=len(tiles.rows),
        frechet_distance=frechet["distance"],
        frechet_ratio=frechet["ratio"],
        c2st_accuracy=R.c2st_accuracy(reference.matrix, matrix),
        pixel_c2st_accuracy=R.pixel_c2st_accuracy(reference.tiles.delivered(), tiles.delivered()),
        **close,
        wasserstein=R.wasserstein_per_statistic(reference.matrix, matrix, list(DISTRIBUTION_STATISTICS)),
        checkerboard_median=float(np.median(board)),
        checkerboard_above_reference=float((board > np.percentile(real_board, 99)).mean()),
        copies=float((best > COPY_IOU).mean()),
        best_train_iou_median=float(np.median(best)),
        diversity_ratio=diversity_ratio(tiles, reference.tiles, reference.targets, reference.target_names),
    )


def realism_report(
    root: Path, folders: Sequence[Path], *, out: Path | None = None, cities: Sequence[str] | None = None
) -> RealismReport:
    """Score the candidate GeoTIFFs of ``folders`` (one set) and the held-out real baseline against the test
    split of ``root``; with ``out``, also draw ``out/realism.png``."""
    candidates = merge("candidates", [folder_tiles(Path(f)) for f in folders])
    names = sorted(set.intersection(*(set(r) for r in candidates.requests))) if candidates.requests else []
    size = int(candidates.layouts.shape[-1])
    reference = reference_for(root, size=size, cities=cities, target_names=names)
    if abs(reference.tiles.resolution_m - candidates.resolution_m) > 1e-6:
        raise ConfigError(
            f"the candidates have {candidates.resolution_m:g} m pixels, the dataset {reference.tiles.resolution_m:g} m",
            "compare layouts with the dataset their model was trained on",
        )
    baseline = dataset_tiles(root, "val", size=size, cities=cities)
    report = RealismReport(
        data=str(root),
        tile_px=size,
        resolution_m=candidates.resolution_m,
        statistics=list(DISTRIBUTION_STATISTICS),
        reference=f"test split: {len(reference.tiles.layouts)} crops with {list(LAYOUT_BANDS)}",
    )
    report.sets["held-out real (val split)"] = score(baseline, reference)
    report.sets["candidates"] = score(candidates, reference)
    if out is not None:
        from citygen.workflows.figures import realism_figure

        report.figure = realism_figure(
            reference.tiles, {"held-out real": baseline, "candidates": candidates}, Path(out) / "realism.png"
        ).name
    return report
