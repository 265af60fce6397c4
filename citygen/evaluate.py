"""``citygen evaluate --ckpt CKPT [--data DIR] [--json FILE]``: figures of a trained model on the test split.

Autoencoder: per-channel IoU / F1 and reconstruction loss on every test crop; how well urban metrics of the
reconstruction match those of the input (median relative error and Spearman rank correlation) on a fixed
random subset of ``--max-crops`` crops (the metric suite is slower than the network).

pix2pix: the targets of test crops are the sweep of requested values; for each, ``--candidates`` layouts are
generated and measured (MAPE and Spearman of requested vs achieved per target), their diversity (mean
pairwise L1 and street 1-IoU between candidates of the same target, next to the same figure for random pairs
of real crops), and the distance between distributions of urban metrics of generated vs real test crops
(Wasserstein-1 divided by the real metric's standard deviation). For a model with ``street_search``, the
conditioning figures of street-graph targets are also given for the generator alone (keys ending in
``_no_search``), so what the network learned shows beside what the search adds.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr, wasserstein_distance
from torch.utils.data import DataLoader, Subset
from torchmetrics.classification import BinaryF1Score, BinaryJaccardIndex

from citygen.datamodules import CityTileDataModule, collate_tiles
from citygen.errors import CheckpointError
from citygen.tasks import AutoencoderTask, Pix2PixTask
from citygen.tasks.base import META_KEY, channel_weights, select_channels
from citygen.tasks.conditioning import TARGET_LAYERS, measure_targets

log = logging.getLogger(__name__)
URBAN = ("street_density_km_km2", "intersection_density_km2", "building_coverage")


def load_checkpoint(path: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(task in eval mode, citygen meta, data module state) of a checkpoint, loaded with weights_only=True."""
    from citygen.workflows.checkpoints import read_checkpoint  # the one reader: missing and corrupt files alike

    raw = read_checkpoint(path)
    meta = raw.get(META_KEY)
    if not meta:
        raise CheckpointError(f"{path} was not written by a citygen task", "evaluate checkpoints of `citygen fit`")
    cls = {"AutoencoderTask": AutoencoderTask, "Pix2PixTask": Pix2PixTask}[meta["task"]]
    task = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    task.eval()
    return task, meta, raw.get("CityTileDataModule", {})


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
        root=str(root or state["root"]), bands=state["bands"], crop_size=crop_size or state["crop_size"],
        batch_size=batch_size,
        targets=state.get("targets") or None, require_bands=state.get("require_bands") or None,
        cities=(state.get("cities") or None) if same else None,
        min_valid_fraction=state.get("min_valid_fraction", 0.5),
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("test")
    return dm


def _band_dict(values: np.ndarray, names: list[str], mask: np.ndarray) -> dict[str, np.ndarray]:
    out = {n: values[i] for i, n in enumerate(names)}
    out["valid"] = mask.astype(np.float32)
    return out


def _measure(items: list[tuple[dict[str, np.ndarray], float]], workers: int) -> list[dict[str, float]]:
    if workers > 1 and len(items) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(measure_targets, [b for b, _ in items], [r for _, r in items], chunksize=4))
    return [measure_targets(b, r) for b, r in items]


def _sample(n: int, k: int, seed: int = 0) -> set[int]:
    """A fixed random subset of ``k`` of ``n`` crop indices (spread over cities, not the first ones)."""
    return set(np.random.default_rng(seed).permutation(n)[: min(k, n)].tolist())


def _resolution(batch: dict[str, Any], i: int) -> float:
    minx, _, maxx, _ = batch["bounds"][i].tolist()
    return (maxx - minx) / batch["image"].shape[-1]


def _agreement(a: np.ndarray, b: np.ndarray, prefix: str) -> dict[str, float]:
    """Median relative error and Spearman of b (measured) against a (reference), on finite pairs."""
    ok = np.isfinite(a) & np.isfinite(b)
    out = {f"{prefix}_n": float(ok.sum())}
    if ok.sum() < 3:
        return {**out, f"{prefix}_rel_error": math.nan, f"{prefix}_spearman": math.nan}
    a, b = a[ok], b[ok]
    nz = np.abs(a) > 1e-9
    out[f"{prefix}_rel_error"] = float(np.median(np.abs(b[nz] - a[nz]) / np.abs(a[nz]))) if nz.any() else math.nan
    out[f"{prefix}_spearman"] = float(spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else math.nan
    return out


@torch.no_grad()
def evaluate_autoencoder(
    task: AutoencoderTask, dm: CityTileDataModule, max_crops: int, workers: int
) -> dict[str, float]:
    metrics = {n: (BinaryJaccardIndex(ignore_index=-1), BinaryF1Score(ignore_index=-1))
               for i, n in enumerate(task.bands) if i in task.binary_idx}  # fmt: skip
    losses, pairs = [], []
    chosen = _sample(len(dm.datasets["test"]), max_crops)  # crops measured with the (slower) metric suite
    seen = 0
    for batch in dm.test_dataloader():
        out, x, w, raw, _ = task._step(batch)
        losses.append((out["recon"].item(), x.shape[0]))
        pred = task.activate(raw)
        for i, name in enumerate(task.bands):
            if name in metrics:
                target = torch.where(w[:, i] > 0, (x[:, i] >= task.hparams.threshold).long(), -1)
                for m in metrics[name]:
                    m.update(pred[:, i], target)
        for i in range(x.shape[0]):
            seen += 1
            if seen - 1 in chosen:
                mask = batch["mask"][i, 0].numpy()
                present = dict(zip(task.bands, batch["present"][i].tolist(), strict=True))
                pairs.append((_band_dict(x[i].numpy(), task.bands, mask), _band_dict(pred[i].numpy(), task.bands, mask),
                              _resolution(batch, i), present))  # fmt: skip
    result: dict[str, float] = {"crops": float(sum(n for _, n in losses)),
                                "recon_loss": sum(v * n for v, n in losses) / sum(n for _, n in losses)}  # fmt: skip
    for name, (iou, f1) in metrics.items():
        result[f"iou_{name}"], result[f"f1_{name}"] = iou.compute().item(), f1.compute().item()
    real = _measure([(a, r) for a, _, r, _ in pairs], workers)
    rec = _measure([(b, r) for _, b, r, _ in pairs], workers)
    for key in URBAN:
        layer = TARGET_LAYERS[key]
        ok = [i for i, (*_, present) in enumerate(pairs) if present.get(layer, False)]
        a = np.array([real[i].get(key, math.nan) for i in ok])
        b = np.array([rec[i].get(key, math.nan) for i in ok])
        result.update(_agreement(a, b, key))
    return result


@torch.no_grad()
def evaluate_pix2pix(
    task: Pix2PixTask, dm: CityTileDataModule, max_crops: int, candidates: int, workers: int, seed: int = 0
) -> dict[str, float]:
    names = task.conditions
    requested, items, real_items, gen, reals = [], [], [], [], []
    ds = dm.datasets["test"]
    subset = Subset(ds, sorted(_sample(len(ds), max_crops)))
    loader = DataLoader(
        subset, batch_size=dm.hparams.eval_batch_size or dm.hparams.batch_size, collate_fn=collate_tiles
    )
    for batch in loader:
        cond_in = select_channels(batch, task.input_bands) if task.input_bands else None
        tnames = list(batch.get("target_names", ()))
        targets = batch["targets"][:, [tnames.index(c) for c in names]] if names else None
        resolutions = [_resolution(batch, i) for i in range(batch["image"].shape[0])]
        out = task.generate(targets, cond_in, size=batch["image"].shape[-1], num_candidates=candidates,
                            seed=seed + len(requested), mask=batch["mask"], resolution_m=resolutions)  # fmt: skip
        real = select_channels(batch, task.output_bands)
        w = channel_weights(batch, task.output_bands)
        for i in range(out.shape[0]):
            if len(requested) >= max_crops:
                break
            mask = batch["mask"][i, 0].numpy()
            extra = select_channels(batch, task.input_bands)[i].numpy() if task.input_bands else None
            all_names = [*task.output_bands, *task.input_bands]

            def with_inputs(values: np.ndarray, extra: np.ndarray | None = extra) -> np.ndarray:
                return values if extra is None else np.concatenate([values, extra])

            requested.append(targets[i].numpy() if targets is not None else np.zeros(0))
            res = resolutions[i]
            for k in range(candidates):
                items.append((_band_dict(with_inputs((out[i, k] * w[i]).numpy()), all_names, mask), res))
            real_items.append((_band_dict(with_inputs(real[i].numpy()), all_names, mask), res))
            gen.append(out[i].numpy())
            reals.append(real[i].numpy())
        if len(requested) >= max_crops:
            break
    achieved = _measure(items, workers)
    real_m = _measure(real_items, workers)
    n = len(requested)
    result: dict[str, float] = {"crops": float(n), "candidates": float(candidates),
                                "street_search": float(task.street_search)}  # fmt: skip
    req = np.array(requested)
    # achieved[i, k, j]: target j measured on candidate k of crop i
    ach_all = np.array(
        [[[achieved[i * candidates + k].get(name, math.nan) for name in names] for k in range(candidates)]
         for i in range(n)]
    ).reshape(n, candidates, len(names))  # fmt: skip
    best = _best_candidates(req, ach_all)
    for j, name in enumerate(names):
        ach, r = ach_all[:, :, j], req[:, j]
        result.update(_conditioning(name, r, ach))
        # the candidate `citygen generate` ranks first (smallest mean relative error over all targets)
        chosen = ach[np.arange(n), best][:, None]
        result.update({f"{k}_best_of_{candidates}": v for k, v in _conditioning(name, r, chosen).items()})
    g = np.stack(gen)  # [n, K, C, H, W]
    pair_l1 = [np.abs(g[:, a] - g[:, b]).mean() for a in range(candidates) for b in range(a + 1, candidates)]
    result["diversity_l1"] = float(np.mean(pair_l1)) if pair_l1 else math.nan
    rr = np.stack(reals)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    result["real_pair_l1"] = float(np.abs(rr - rr[perm]).mean()) if n > 1 else math.nan
    if "streets" in task.output_bands and candidates > 1:
        s = task.output_bands.index("streets")
        ious = []
        for a in range(candidates):
            for b in range(a + 1, candidates):
                ga, gb = g[:, a, s] >= 0.5, g[:, b, s] >= 0.5
                union = (ga | gb).sum(axis=(1, 2))
                ious += ((ga & gb).sum(axis=(1, 2))[union > 0] / union[union > 0]).tolist()
        # undefined (None in JSON) when no candidate has a street pixel
        result["diversity_streets_1_minus_iou"] = float(1 - np.mean(ious)) if ious else math.nan
    # area share two coverage bands cover together (green painted under buildings is no open space)
    for a, b in task.coverage_pairs:
        pair = f"{task.output_bands[a]}_{task.output_bands[b]}"
        result[f"overlap_{pair}"] = float((g[:, :, a] * g[:, :, b]).mean())
        result[f"real_overlap_{pair}"] = float((rr[:, a] * rr[:, b]).mean())
    gen0 = [achieved[i * candidates] for i in range(n)]
    for key in sorted({*URBAN, *names}):
        a = np.array([m.get(key, math.nan) for m in real_m])
        b = np.array([m.get(key, math.nan) for m in gen0])
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) > 1 and len(b) > 1 and a.std() > 0:
            result[f"w1_{key}"] = float(wasserstein_distance(a, b) / a.std())
    return result


def _conditioning(name: str, requested: np.ndarray, achieved: np.ndarray) -> dict[str, float]:
    """MAPE, MAE and Spearman rank correlation of requested ``[n]`` vs achieved ``[n, candidates]`` values."""
    r, ach = requested, achieved
    ok = np.isfinite(r) & np.isfinite(ach).all(axis=1)
    floor = 0.05 * np.nanmax(np.abs(r)) if ok.any() else 0.0  # MAPE is undefined near zero targets
    sel = ok & (np.abs(r) > floor)
    ape = np.abs(ach[sel] - r[sel, None]) / np.abs(r[sel, None])
    mean_ach = ach[ok].mean(axis=1)
    good = ok.sum() >= 3 and np.ptp(r[ok]) > 0 and np.ptp(mean_ach) > 0
    return {
        f"mape_{name}": float(ape.mean()) if sel.any() else math.nan,
        f"mae_{name}": float(np.abs(ach[ok] - r[ok, None]).mean()) if ok.any() else math.nan,
        f"spearman_{name}": float(spearmanr(r[ok], mean_ach).statistic) if good else math.nan,
    }


def _best_candidates(requested: np.ndarray, achieved: np.ndarray) -> np.ndarray:
    """Index of the candidate with the smallest mean relative error over the targets, per crop (the
    ranking of `citygen generate`; unmeasurable values count as 100 % off)."""
    scale = np.maximum(np.abs(requested), 0.05 * np.nanmax(np.abs(requested), axis=0, initial=0.0) + 1e-12)
    rel = np.abs(achieved - requested[:, None, :]) / scale[:, None, :]
    return np.nan_to_num(rel, nan=1.0).mean(axis=2).argmin(axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citygen evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="checkpoint written by `citygen fit`")
    parser.add_argument("--data", type=Path, default=None, help="dataset (default: the one the model was trained on)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--max-crops", type=int, default=None, help="crops measured with the metric suite "
                        "(default 256 for autoencoders, 64 for pix2pix)")  # fmt: skip
    parser.add_argument("--candidates", type=int, default=8, help="pix2pix layouts generated per target (default 8)")
    parser.add_argument(
        "--crop-size",
        type=int,
        default=None,
        help="side of the test crops in pixels (default: "
        "the training crop size; pix2pix: targets are measured and requested on crops of this size)",
    )
    parser.add_argument("--no-street-search", action="store_true", help="pix2pix: measure the generator's own "
                        "streets only, without the model's street_search")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="processes measuring urban metrics")
    args = parser.parse_args(argv)
    task, meta, state = load_checkpoint(args.ckpt)
    dm = test_data(state, args.data, args.batch_size, args.crop_size)
    if isinstance(task, AutoencoderTask):
        result = evaluate_autoencoder(task, dm, args.max_crops or 256, args.workers)
    else:
        if args.no_street_search:
            task.street_search = False
        result = evaluate_pix2pix(task, dm, args.max_crops or 64, args.candidates, args.workers)
        if task.street_search:  # what the generator draws alone, beside it
            task.street_search = False
            try:
                alone = evaluate_pix2pix(task, dm, args.max_crops or 64, args.candidates, args.workers)
            finally:
                task.street_search = True
            street = tuple(f"{stat}_{name}" for stat in ("mape", "mae", "spearman") for name in task.street_targets)
            result.update({f"{k}_no_search": v for k, v in alone.items() if k.startswith(street)})
    result = {"crop_size": float(dm.hparams.crop_size), **result}
    result = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()}
    print(f"{meta['task']} {args.ckpt} on the test split of {dm.root}")
    for key, value in result.items():
        print(f"  {key:<40} {'n/a' if value is None else f'{value:.4g}'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"task": meta["task"], "checkpoint": str(args.ckpt), "data": str(dm.root),
                                         **result}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
