"""Figures of a trained model on the test split (``citygen evaluate``), as typed results (:mod:`.results`).

Autoencoder: per-channel IoU / F1 and reconstruction loss on every test crop; how well urban metrics of the
reconstruction match those of the input (median relative error and Spearman rank correlation) on a fixed
random subset of ``--max-crops`` crops (the metric suite is slower than the network).

pix2pix: the targets of test crops are the sweep of requested values; for each, ``--candidates`` layouts are
generated and measured (MAPE and Spearman of requested vs achieved per target), their diversity (mean
pairwise L1 and street 1-IoU between candidates of the same target, next to the same figure for random pairs
of real crops), and the distance between distributions of urban metrics of generated vs real test crops
(Wasserstein-1 divided by the real metric's standard deviation). For a model with ``street_search``, the
conditioning figures of street-graph targets are also given for the generator alone (``generator_alone``), so
what the network learned shows beside what the search adds. Relative errors and the best candidate follow
:mod:`citygen.metrics.targets`, as ``citygen generate`` does.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr, wasserstein_distance
from torch.utils.data import DataLoader, Subset
from torchmetrics.classification import BinaryF1Score, BinaryJaccardIndex

from citygen.core.bands import band
from citygen.core.errors import CheckpointError, ConfigError, SourceError
from citygen.core.parallel import process_map
from citygen.data.dataset import collate_tiles
from citygen.learn.datamodule import CityTileDataModule
from citygen.learn.tasks import AutoencoderTask, Pix2PixTask
from citygen.learn.tasks.base import channel_weights, select_channels
from citygen.metrics.morphology import delivered
from citygen.metrics.targets import (
    conditioning_figures,
    get_target,
    measure_targets,
    rank_candidates,
    street_graph_targets,
)
from citygen.workflows.checkpoints import TrainedTask
from citygen.workflows.realism import LAYOUT_BANDS
from citygen.workflows.realism_eval import Generated, realism_bands, realism_block
from citygen.workflows.results import Agreement, AutoencoderEvaluation, Conditioning, Evaluation, Pix2PixEvaluation

log = logging.getLogger(__name__)
# urban metrics compared between real and reconstructed (or generated) crops
URBAN = ("street_density_km_km2", "intersection_density_km2", "building_coverage")


def test_data(
    state: dict[str, Any], root: Path | None, batch_size: int, crop_size: int | None = None
) -> CityTileDataModule:
    """The test split the checkpoint was trained beside (or of ``root``), in crops of ``crop_size`` (default: the
    training crop size; fully convolutional models also take larger crops)."""
    # the dataset it was trained on, named or not, keeps the checkpoint's choice of cities
    same = root is None or (bool(state.get("root")) and Path(root).resolve() == Path(state["root"]).resolve())
    if same and not state.get("root"):
        raise CheckpointError("the checkpoint does not record its dataset", "pass --data DIR")
    dm = CityTileDataModule(
        root=str(root or state["root"]),
        bands=state["bands"],
        crop_size=crop_size or state["crop_size"],
        batch_size=batch_size,
        targets=state.get("targets") or None,
        require_bands=state.get("require_bands") or None,
        cities=(state.get("cities") or None) if same else None,
        min_valid_fraction=state.get("min_valid_fraction", 0.5),
    )
    dm.prepare_data()
    dm.setup("test")
    return dm


def _band_dict(values: np.ndarray, names: list[str], mask: np.ndarray) -> dict[str, np.ndarray]:
    out = {n: values[i] for i, n in enumerate(names)}
    out["valid"] = mask.astype(np.float32)
    return out


def _measure(items: list[tuple[dict[str, np.ndarray], float]], workers: int) -> list[dict[str, float]]:
    return process_map(measure_targets, [b for b, _ in items], [r for _, r in items], workers=workers, chunksize=4)


def _sample(n: int, k: int, seed: int = 0) -> set[int]:
    """A fixed random subset of ``k`` of ``n`` crop indices (spread over cities, not the first ones)."""
    return set(np.random.default_rng(seed).permutation(n)[: min(k, n)].tolist())


def _resolution(batch: dict[str, Any], i: int) -> float:
    minx, _, maxx, _ = batch["bounds"][i].tolist()
    return (maxx - minx) / batch["image"].shape[-1]


def _agreement(a: np.ndarray, b: np.ndarray) -> Agreement:
    """Median relative error and Spearman of b (measured) against a (reference), on finite pairs."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return Agreement(n=int(ok.sum()), rel_error=math.nan, spearman=math.nan)
    a, b = a[ok], b[ok]
    nz = np.abs(a) > 1e-9
    rel = float(np.median(np.abs(b[nz] - a[nz]) / np.abs(a[nz]))) if nz.any() else math.nan
    rho = float(spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else math.nan
    return Agreement(n=int(ok.sum()), rel_error=rel, spearman=rho)


@torch.no_grad()
def evaluate_autoencoder(
    task: AutoencoderTask, dm: CityTileDataModule, max_crops: int, workers: int
) -> AutoencoderEvaluation:
    metrics = {
        n: (BinaryJaccardIndex(ignore_index=-1), BinaryF1Score(ignore_index=-1))
        for i, n in enumerate(task.bands)
        if i in task.binary_idx
    }
    losses, pairs = [], []
    chosen = _sample(len(dm.datasets["test"]), max_crops)  # crops measured with the (slower) metric suite
    seen = 0
    for batch in dm.test_dataloader():
        out, x, w, raw, _ = task._step(batch)
        losses.append((out["recon"].item(), x.shape[0]))
        pred = task.activate(raw)
        for i, name in enumerate(task.bands):
            if name in metrics:
                target = torch.where(w[:, i] > 0, (x[:, i] >= task.hp.threshold).long(), -1)
                for m in metrics[name]:
                    m.update(pred[:, i], target)
        for i in range(x.shape[0]):
            seen += 1
            if seen - 1 in chosen:
                mask = batch["mask"][i, 0].numpy()
                present = dict(zip(task.bands, batch["present"][i].tolist(), strict=True))
                pairs.append(
                    (
                        _band_dict(x[i].numpy(), task.bands, mask),
                        _band_dict(pred[i].numpy(), task.bands, mask),
                        _resolution(batch, i),
                        present,
                    )
                )
    n = sum(k for _, k in losses)
    result = AutoencoderEvaluation(
        checkpoint="",
        data=str(dm.root),
        crop_size=int(dm.hp.crop_size),
        crops=int(n),
        recon_loss=sum(v * k for v, k in losses) / n,
    )
    for name, (iou, f1) in metrics.items():
        result.iou[name], result.f1[name] = iou.compute().item(), f1.compute().item()
    real = _measure([(a, r) for a, _, r, _ in pairs], workers)
    rec = _measure([(b, r) for _, b, r, _ in pairs], workers)
    for key in URBAN:
        ok = [i for i, (*_, present) in enumerate(pairs) if present.get(get_target(key).layer, False)]
        a = np.array([real[i].get(key, math.nan) for i in ok])
        b = np.array([rec[i].get(key, math.nan) for i in ok])
        result.urban_metrics[key] = _agreement(a, b)
    return result


def _generated(
    task: Pix2PixTask, dm: CityTileDataModule, max_crops: int, candidates: int, seed: int
) -> tuple[Generated, list[tuple[dict[str, np.ndarray], float]], np.ndarray]:
    """The layouts generated for ``max_crops`` test crops' targets, the real crops as band dicts (with their pixel
    size) and the real layouts ``[n, C, H, W]`` of the output bands."""
    requested: list[np.ndarray] = []
    real_items: list[tuple[dict[str, np.ndarray], float]] = []
    gen: list[np.ndarray] = []
    reals: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    ds = dm.datasets["test"]
    subset = Subset(ds, sorted(_sample(len(ds), max_crops)))
    loader = DataLoader(subset, batch_size=dm.hp.eval_batch_size or dm.hp.batch_size, collate_fn=collate_tiles)
    all_names = [*task.output_bands, *task.input_bands]
    resolution = math.nan
    for batch in loader:
        cond_in = select_channels(batch, task.input_bands) if task.input_bands else None
        targets = task.raw_batch_targets(batch)
        resolutions = [_resolution(batch, i) for i in range(batch["image"].shape[0])]
        resolution = resolutions[0]
        out = task.generate(
            targets,
            cond_in,
            size=batch["image"].shape[-1],
            num_candidates=candidates,
            seed=seed + len(requested),
            mask=batch["mask"],
            resolution_m=resolutions,
        )
        out = out * channel_weights(batch, task.output_bands)[:, None]
        if cond_in is not None:  # the real input bands beside every candidate
            out = torch.cat([out, cond_in[:, None].expand(-1, candidates, -1, -1, -1)], dim=2)
        real = select_channels(batch, all_names)
        for i in range(out.shape[0]):
            if len(requested) >= max_crops:
                break
            mask = batch["mask"][i, 0].numpy()
            requested.append(targets[i].numpy() if targets is not None else np.zeros(0))
            real_items.append((_band_dict(real[i].numpy(), all_names, mask), resolutions[i]))
            gen.append(out[i].numpy())
            reals.append(real[i, : len(task.output_bands)].numpy())
            masks.append(mask.astype(bool))
        if len(requested) >= max_crops:
            break
    generated = Generated(
        np.stack(gen), all_names, np.stack(masks), np.array(requested), list(task.conditions), resolution
    )
    return generated, real_items, np.stack(reals)


def _delivered_items(generated: Generated) -> list[tuple[dict[str, np.ndarray], float]]:
    """Every candidate as the band dict a user receives (coverage bands thresholded at 0.5)."""
    n, k = generated.layouts.shape[:2]
    return [
        (delivered(_band_dict(generated.layouts[i, j], generated.bands, generated.masks[i])), generated.resolution_m)
        for i in range(n)
        for j in range(k)
    ]


@torch.no_grad()
def evaluate_pix2pix(
    task: Pix2PixTask, dm: CityTileDataModule, max_crops: int, candidates: int, workers: int, seed: int = 0
) -> tuple[Pix2PixEvaluation, Generated]:
    """Conditioning, diversity and distribution figures of the layouts drawn for test crops' targets, measured on
    the delivered layouts (coverage bands thresholded at 0.5), and what was generated."""
    names = task.conditions
    generated, real_items, rr = _generated(task, dm, max_crops, candidates, seed)
    req, g = generated.requested, generated.layouts[:, :, : len(task.output_bands)]
    achieved, real_m = _measure(_delivered_items(generated), workers), _measure(real_items, workers)
    n = len(req)
    result = Pix2PixEvaluation(
        checkpoint="",
        data=str(dm.root),
        crop_size=int(dm.hp.crop_size),
        crops=n,
        candidates=candidates,
        street_search=bool(task.street_search),
    )
    per_crop = [achieved[i * candidates : (i + 1) * candidates] for i in range(n)]
    # achieved[i, k, j]: target j measured on candidate k of crop i
    ach_all = np.array([[[m.get(name, math.nan) for name in names] for m in crop] for crop in per_crop])
    ach_all = ach_all.reshape(n, candidates, len(names))
    # the candidate `citygen generate` ranks first, by the same rule
    best = [rank_candidates(crop, dict(zip(names, req[i].tolist(), strict=True)))[0] for i, crop in enumerate(per_crop)]
    for j, name in enumerate(names):
        result.conditioning[name] = Conditioning(**conditioning_figures(name, req[:, j], ach_all[:, :, j]))
        result.best_candidate[name] = Conditioning(
            **conditioning_figures(name, req[:, j], ach_all[np.arange(n), best, j][:, None])
        )
    pair_l1 = [np.abs(g[:, a] - g[:, b]).mean() for a in range(candidates) for b in range(a + 1, candidates)]
    result.diversity_l1 = float(np.mean(pair_l1)) if pair_l1 else math.nan
    perm = np.random.default_rng(seed).permutation(n)
    result.real_pair_l1 = float(np.abs(rr - rr[perm]).mean()) if n > 1 else math.nan
    if "streets" in task.output_bands and candidates > 1:
        s = task.output_bands.index("streets")
        ious = []
        for a in range(candidates):
            for b in range(a + 1, candidates):
                ga, gb = g[:, a, s] >= 0.5, g[:, b, s] >= 0.5
                union = (ga | gb).sum(axis=(1, 2))
                ious += ((ga & gb).sum(axis=(1, 2))[union > 0] / union[union > 0]).tolist()
        # undefined (null in JSON) when no candidate has a street pixel
        result.diversity_streets_1_minus_iou = float(1 - np.mean(ious)) if ious else math.nan
    # area share two coverage bands cover together (green painted under buildings is no open space)
    for a, b in task.head.coverage_pairs:
        pair = f"{task.output_bands[a]}_{task.output_bands[b]}"
        result.overlap[pair] = float((g[:, :, a] * g[:, :, b]).mean())
        result.real_overlap[pair] = float((rr[:, a] * rr[:, b]).mean())
    if task.input_bands:
        for j, name in enumerate(task.output_bands):
            if band(name).unit == "fraction":
                ga, ra = g[:, 0, j] >= 0.5, (rr[:, j] >= 0.5) & generated.masks
                ga &= generated.masks
                union = int((ga | ra).sum())
                result.iou_vs_real[name] = float((ga & ra).sum() / union) if union else math.nan
    gen0 = [achieved[i * candidates] for i in range(n)]
    for key in sorted({*URBAN, *names}):
        real_v = np.array([m.get(key, math.nan) for m in real_m])
        gen_v = np.array([m.get(key, math.nan) for m in gen0])
        real_v, gen_v = real_v[np.isfinite(real_v)], gen_v[np.isfinite(gen_v)]
        if len(real_v) > 1 and len(gen_v) > 1 and real_v.std() > 0:
            result.w1[key] = float(wasserstein_distance(real_v, gen_v) / real_v.std())
    return result, generated


def evaluate(
    trained: TrainedTask,
    *,
    data: Path | None = None,
    max_crops: int | None = None,
    candidates: int = 8,
    crop_size: int | None = None,
    street_search: bool | None = None,
    batch_size: int = 16,
    workers: int = 0,
    realism: bool = True,
) -> Evaluation:
    """Figures of a trained task on the test split (of ``data``, default: the dataset it was trained on).

    pix2pix: ``street_search`` overrides the model's switch; with the search on, the street-graph targets are also
    measured for the generator alone (``generator_alone``), so what the network learned shows beside what the
    search adds. ``realism``: also score the layouts against the real test tiles beside the held-out real and the
    retrieval baselines (:mod:`citygen.workflows.realism_eval`; models that draw streets, buildings and green).
    """
    dm = test_data(trained.data, data, batch_size, crop_size)
    task = trained.task
    if isinstance(task, AutoencoderTask):
        result: Evaluation = evaluate_autoencoder(task, dm, max_crops or 256, workers)
    else:
        if street_search is not None:
            task.street_search = street_search
        result, generated = evaluate_pix2pix(task, dm, max_crops or 64, candidates, workers)
        alone_layouts = None
        if task.street_search:  # what the generator draws alone, beside it
            task.street_search = False
            try:
                alone, alone_layouts = evaluate_pix2pix(task, dm, max_crops or 64, candidates, workers)
            finally:
                task.street_search = True
            result.generator_alone = {k: alone.conditioning[k] for k in street_graph_targets(task.conditions)}
        if realism and len(realism_bands(generated.bands)) == len(LAYOUT_BANDS):
            try:
                result.realism, result.retrieval = realism_block(
                    str(dm.root),
                    generated,
                    alone=alone_layouts,
                    cities=dm.hp.cities,
                    min_valid_fraction=dm.hp.min_valid_fraction,
                    workers=workers,
                )
            except (ConfigError, SourceError) as exc:  # too few real tiles to say what real looks like
                log.warning("realism not measured: %s", exc.problem)
    result.checkpoint = str(trained.path)
    return result
