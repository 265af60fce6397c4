"""The realism block of ``citygen evaluate`` for a pix2pix model.

The layouts the generator draws for the test crops' targets are scored against the real test tiles
(:mod:`citygen.workflows.realism`) beside two baselines computed the same way:

- **held-out real**: the validation crops, as if they were candidates: what real, spatially held-out tiles reach;
- **retrieval**: for every request, the training crop whose measured targets are nearest it (in units of each
  target's scale): a generator must beat it on target error, or on novelty at equal realism, to earn its keep.

The generator alone is the primary set; with the model's street search on, the searched layouts are a second set,
labelled as post-processed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from citygen.metrics.morphology import delivered, statistic_matrix
from citygen.metrics.targets import conditioning_figures, get_target, measure_targets
from citygen.workflows.realism import (
    LAYOUT_BANDS,
    Reference,
    TileSet,
    cached_reference,
    dataset_tiles,
    measure,
    score,
    tile_bands,
)
from citygen.workflows.results import Conditioning, RealismScore

CANDIDATES_SCORED = 2  # candidates per request in the realism sets (the statistics cost ~0.2 s per tile)
SIMILAR_REAL = 32  # real tiles nearest a single request that `generate`'s candidates are compared with


@dataclass
class Generated:
    """What the evaluation generated: ``layouts`` ``[n, K, C, H, W]`` of ``bands`` (output bands, then the real
    input bands repeated per candidate), the crops' valid ``masks`` ``[n, H, W]`` and the ``requested`` targets
    ``[n, len(names)]``."""

    layouts: np.ndarray
    bands: list[str]
    masks: np.ndarray
    requested: np.ndarray
    names: list[str]
    resolution_m: float


def realism_bands(bands: Sequence[str]) -> list[str]:
    return [b for b in LAYOUT_BANDS if b in bands]


def generated_tiles(name: str, generated: Generated) -> TileSet:
    """The first :data:`CANDIDATES_SCORED` candidates of every request as one set (grouped by request)."""
    keep = realism_bands(generated.bands)
    k = min(CANDIDATES_SCORED, generated.layouts.shape[1])
    n = len(generated.layouts)
    layouts = generated.layouts[:, :k][:, :, [generated.bands.index(b) for b in keep]]
    return TileSet(
        name=name,
        layouts=layouts.reshape(n * k, len(keep), *layouts.shape[-2:]).astype(np.float32),
        valid=np.repeat(generated.masks, k, axis=0),
        bands=tuple(keep),
        resolution_m=generated.resolution_m,
        groups=np.repeat(np.arange(n), k).tolist(),
        requests=[dict(zip(generated.names, r.tolist(), strict=True)) for r in generated.requested],
    )


def retrieval(train: TileSet, generated: Generated) -> tuple[TileSet, np.ndarray]:
    """For every request, the training crop whose targets are nearest it, and those crops' achieved targets
    ``[n, len(names)]`` measured on the delivered layout (as the generator's are)."""
    assert train.targets is not None
    scale = np.array([get_target(n).scale for n in generated.names])
    known = np.isfinite(train.targets).all(axis=1)
    pool = np.flatnonzero(known)
    picks = [
        int(pool[np.argmin(np.linalg.norm((train.targets[pool] - r) / scale, axis=1))]) for r in generated.requested
    ]
    tiles = TileSet("retrieval", train.layouts[picks], train.valid[picks], train.bands, train.resolution_m)
    measured = [measure_targets(delivered(tile_bands(tiles, i)), tiles.resolution_m) for i in range(len(picks))]
    achieved = np.array([[m.get(n, math.nan) for n in generated.names] for m in measured])
    return tiles, achieved


@lru_cache(maxsize=2)
def held_out(
    root: str,
    size: int,
    cities: tuple[str, ...] | None,
    bands: tuple[str, ...],
    min_valid_fraction: float,
    workers: int,
    target_names: tuple[str, ...] = (),
) -> TileSet:
    """The validation crops, measured, with their targets (kept for the next call in this process)."""
    val = dataset_tiles(
        Path(root),
        "val",
        size=size,
        cities=cities,
        bands=bands,
        min_valid_fraction=min_valid_fraction,
        target_names=target_names,
    )
    return measure(val, workers=workers)


def nearest(tiles: TileSet, request: dict[str, float], k: int) -> np.ndarray:
    """Indices of the ``k`` tiles whose targets are nearest ``request`` (in units of each target's scale)."""
    assert tiles.targets is not None
    wanted = np.array([request[n] / get_target(n).scale for n in request])
    scaled = tiles.targets / np.array([get_target(n).scale for n in request])
    distance = np.where(np.isfinite(scaled).all(axis=1), np.linalg.norm(scaled - wanted, axis=1), np.inf)
    return np.argsort(distance, kind="stable")[: min(k, int(np.isfinite(distance).sum()))]


def subset(tiles: TileSet, index: np.ndarray, name: str) -> TileSet:
    targets = tiles.targets[index] if tiles.targets is not None else None
    rows = [tiles.rows[i] for i in index] if tiles.rows else []
    return TileSet(
        name, tiles.layouts[index], tiles.valid[index], tiles.bands, tiles.resolution_m, rows=rows, targets=targets
    )


def candidates_realism(
    root: Path,
    layouts: np.ndarray,
    bands: Sequence[str],
    resolution_m: float,
    request: dict[str, float],
    *,
    cities: Sequence[str] | None,
    min_valid_fraction: float,
    workers: int = 0,
) -> dict[str, RealismScore]:
    """``citygen generate``'s realism block: its candidates ``[n, C, H, W]`` for one request against the
    :data:`SIMILAR_REAL` real test tiles whose targets are nearest the request (the whole test split would judge one
    request against every density), beside the same number of validation tiles nearest it as the held-out real
    baseline. {} when the candidates do not hold streets, buildings and green, or are fewer than 4."""
    keep = realism_bands(bands)
    if len(keep) < len(LAYOUT_BANDS) or len(layouts) < 4:
        return {}
    size = int(layouts.shape[-1])
    key = (str(root), size, tuple(cities) if cities else None)
    reference = cached_reference(*key, tuple(request), tuple(keep), min_valid_fraction, workers)
    tiles = TileSet(
        "candidates",
        layouts[:, [list(bands).index(b) for b in keep]].astype(np.float32),
        np.ones((len(layouts), size, size), bool),
        tuple(keep),
        resolution_m,
        [0] * len(layouts),
        [request],
    )
    near = subset(reference.tiles, nearest(reference.tiles, request, SIMILAR_REAL), "test tiles of similar targets")
    assert near.targets is not None
    similar = Reference(near, statistic_matrix(near.rows), reference.train_masks, near.targets, reference.target_names)
    val = held_out(*key, tuple(keep), min_valid_fraction, workers, tuple(request))
    baseline = subset(val, nearest(val, request, SIMILAR_REAL), "validation tiles of similar targets")
    return {"held-out real (val split)": score(baseline, similar), "candidates": score(tiles, similar, workers=workers)}


def realism_block(
    root: str,
    generated: Generated,
    *,
    alone: Generated | None,
    cities: Sequence[str] | None,
    min_valid_fraction: float,
    workers: int,
) -> tuple[dict[str, RealismScore], dict[str, Conditioning]]:
    """Realism scores of the held-out real crops, the retrieval baseline and the generated sets (``alone``: the
    generator without the street search, when ``generated`` used it), and the retrieval baseline's conditioning
    figures."""
    bands = realism_bands(generated.bands)
    size = int(generated.layouts.shape[-1])
    reference: Reference = cached_reference(
        root, size, tuple(cities) if cities else None, tuple(generated.names), tuple(bands), min_valid_fraction, workers
    )
    scores: dict[str, RealismScore] = {}
    val = held_out(root, size, tuple(cities) if cities else None, tuple(bands), min_valid_fraction, workers)
    scores["held-out real (val split)"] = score(val, reference, workers=workers)
    fits: dict[str, Conditioning] = {}
    if reference.train is not None and reference.train.targets is not None and generated.names:
        retrieved, achieved = retrieval(reference.train, generated)
        scores["retrieval (nearest training crop)"] = score(retrieved, reference, workers=workers)
        for j, name in enumerate(generated.names):
            fits[name] = Conditioning(**conditioning_figures(name, generated.requested[:, j], achieved[:, j : j + 1]))
    if alone is not None:
        scores["generator"] = score(generated_tiles("generator", alone), reference, workers=workers)
        scores["generator + street search (post-processed)"] = score(
            generated_tiles("searched", generated), reference, workers=workers
        )
    else:
        scores["generator"] = score(generated_tiles("generator", generated), reference, workers=workers)
    return scores, fits
