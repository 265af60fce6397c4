"""`citygen demo`: the main job on the shipped sample cities, end to end, on a CPU in minutes.

1. build every sample city into rasters and a tile dataset;
2. train the demo autoencoder and the demo pix2pix model (configs/experiments/*_demo.yaml);
3. evaluate both on the spatially held-out test split;
4. embed every tile and compare the cities (distances, maps, probes, nearest neighbours);
5. generate candidate layouts for a few target densities and score them with the metric suite;
6. write runs/demo/report.md and report.json, with the figures, checkpoints and embeddings.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from citygen.core import OSM_ATTRIBUTION, settings
from citygen.workflows.results import (
    AutoencoderEvaluation,
    CompareReport,
    Evaluation,
    GenerateReport,
    Pix2PixEvaluation,
    write_json,
)

# Target sets for the generation step: a low-, a mid- and a high-density layout.
TARGET_SWEEP: dict[str, dict[str, float]] = {
    "low_density": {"building_coverage": 0.10, "intersection_density_km2": 40.0, "green_share": 0.15},
    "mid_density": {"building_coverage": 0.25, "intersection_density_km2": 80.0, "green_share": 0.10},
    "high_density": {"building_coverage": 0.40, "intersection_density_km2": 120.0, "green_share": 0.05},
}


def preview(
    data: Path, out: Path, *, cities: tuple[str, ...] = ("houston_montrose", "cph_vesterbro", "helsinki_center")
) -> Path:
    """A PNG with a few training tiles of each city side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from citygen.data.dataset import CityTileDataset, composite

    dataset = CityTileDataset(data, split="train", cities=list(cities))
    fig, axes = plt.subplots(len(cities), 4, figsize=(12, 3.2 * len(cities)), squeeze=False)
    for row, city in enumerate(cities):
        for ax, index in zip(axes[row], dataset.tiles.index[dataset.tiles["city"] == city][:4], strict=False):
            sample = dataset[int(index)]
            ax.imshow(composite(sample["image"], sample["bands"]))
            ax.set_title(f"{city}\n{sample['tile_id'].split(':', 1)[1]}", fontsize=8)
        for ax in axes[row]:
            ax.set_axis_off()
    fig.suptitle("Sample tiles (512 m x 512 m at 2 m/px): streets dark grey, paths orange, buildings red, green")
    fig.text(0.99, 0.01, f"Map data {OSM_ATTRIBUTION}", ha="right", fontsize=7, color="0.4")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sample_tiles.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _fit(config: str, data: Path, run_name: str, quick: bool) -> Path:
    from citygen.learn.training import main as lightning_main

    path = settings.configs_dir() / "experiments" / config
    args = ["fit", "--config", str(path), "--data.root", str(data), "--run_name", run_name]
    if quick:
        args += ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2"]
    lightning_main(args)
    checkpoints = sorted((settings.runs_dir() / run_name).rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        raise RuntimeError(f"training {run_name} wrote no checkpoint under {settings.runs_dir() / run_name}")
    return checkpoints[-1]


def _evaluate(ckpt: Path, data: Path, out: Path, workers: int) -> Evaluation:
    from citygen.workflows.checkpoints import load_task
    from citygen.workflows.evaluate import evaluate

    result = evaluate(load_task(ckpt), data=data, workers=workers)
    write_json(out, result)
    return result


def run_demo(
    *,
    config: Path | None = None,
    data: Path | None = None,
    out: Path | None = None,
    workers: int = 2,
    quick: bool = False,
) -> int:
    """The whole chain; 0 on success, 2 when a city failed to build. ``config``: the build config (default: the
    shipped ``data/samples.yaml``); ``quick``: tiny training runs (a smoke test of the whole chain)."""
    from citygen.data.build import build_dataset
    from citygen.data.spec import load_config
    from citygen.workflows.compare import compare
    from citygen.workflows.embed import embed
    from citygen.workflows.generate import generate

    config = config or settings.configs_dir() / "data" / "samples.yaml"
    data = (data or settings.data_dir()).resolve()
    out = (out or settings.runs_dir() / "demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["CITYGEN_RUNS_DIR"] = str(out / "runs")  # checkpoints and logs of the demo's training runs
    timings: dict[str, float] = {}

    def step(name: str, message: str) -> float:
        print(f"\n[{len(timings) + 1}/7] {message}", flush=True)
        timings[name] = 0.0
        return time.perf_counter()

    start = step("build", f"building the sample cities into {data}/ ...")
    results = build_dataset(load_config(config), data, workers=workers, progress=False)
    for result in results:
        print("  " + result.summary())
    if any(r.status == "failed" for r in results):
        return 2
    picture = preview(data, out)
    timings["build"] = time.perf_counter() - start

    start = step("train_autoencoder", "training the demo autoencoder (configs/experiments/ae_demo.yaml) ...")
    ae_ckpt = _fit("ae_demo.yaml", data, "demo_autoencoder", quick)
    timings["train_autoencoder"] = time.perf_counter() - start

    start = step("train_pix2pix", "training the demo pix2pix model (configs/experiments/pix2pix_demo.yaml) ...")
    p2p_ckpt = _fit("pix2pix_demo.yaml", data, "demo_pix2pix", quick)
    timings["train_pix2pix"] = time.perf_counter() - start

    start = step("evaluate", "evaluating both models on the test split ...")
    ae_eval = _evaluate(ae_ckpt, data, out / "evaluate_autoencoder.json", workers)
    p2p_eval = _evaluate(p2p_ckpt, data, out / "evaluate_pix2pix.json", workers)
    assert isinstance(ae_eval, AutoencoderEvaluation) and isinstance(p2p_eval, Pix2PixEvaluation)
    timings["evaluate"] = time.perf_counter() - start

    start = step("embed_compare", "embedding every tile and comparing the cities ...")
    embed(ae_ckpt, out / "embeddings.parquet", data=data, workers=workers)
    comparison = compare(out / "embeddings.parquet", out / "compare", data_root=data)
    timings["embed_compare"] = time.perf_counter() - start

    start = step("generate", "generating candidate layouts for three target densities ...")
    generated = {
        name: generate(p2p_ckpt, targets, out / "generate" / name, n=8, seed=i, strict=False)
        for i, (name, targets) in enumerate(TARGET_SWEEP.items())
    }
    timings["generate"] = time.perf_counter() - start

    print(f"\n[7/7] writing the report to {out}/ ...", flush=True)
    report = demo_report(data, out, picture, ae_ckpt, p2p_ckpt, ae_eval, p2p_eval, comparison, generated, timings)
    print(
        f"\nDone in {sum(timings.values()) / 60:.1f} min. Look at:\n"
        f"  {out}/report.md            the summary (figures linked)\n"
        f"  {out}/report.json          probe accuracies, reconstruction IoU, conditioning errors\n"
        f"  {out}/compare/             city distances, tile maps, nearest neighbours\n"
        f"  {out}/generate/            candidate GeoTIFFs, GeoJSON, contact sheets, pattern cards\n"
        f"  {out}/runs/                checkpoints and training logs\n"
        f"  {data}/                    rasters, tiles.parquet, manifest.json\n"
        f"Probe accuracy Houston vs Copenhagen: {_fmt(report['probe_accuracy'].get('houston_vs_copenhagen'))} "
        f"(block CV {_fmt(report['probe_cv_accuracy'].get('houston_vs_copenhagen'))}), all cities: "
        f"{_fmt(report['probe_accuracy'].get('all_cities'))} (block CV "
        f"{_fmt(report['probe_cv_accuracy'].get('all_cities'))}). Map data {OSM_ATTRIBUTION}."
    )
    return 0


def conditioning_summary(p2p_eval: Pix2PixEvaluation) -> dict[str, dict[str, Any]]:
    """Per target: MAPE / Spearman / MAE over all candidates and (``best``) of the top-ranked candidate."""
    out: dict[str, dict[str, Any]] = {}
    for name, fit in p2p_eval.conditioning.items():
        out[name] = {"mape": fit.mape, "spearman": fit.spearman, "mae": fit.mae}
        if name in p2p_eval.generator_alone:  # the generator alone, without the street search
            alone = p2p_eval.generator_alone[name]
            out[name]["no_search"] = {"mape": alone.mape, "spearman": alone.spearman}
        best = p2p_eval.best_candidate[name]
        out[name]["best"] = {
            "candidates": p2p_eval.candidates,
            "mape": best.mape,
            "spearman": best.spearman,
            "mae": best.mae,
        }
    return out


REALISM_ROWS = (
    ("frechet_ratio", "Fréchet ratio of morphology statistics (1: two halves of the real test tiles)"),
    ("c2st_accuracy", "C2ST accuracy on the statistics (0.5: indistinguishable)"),
    ("pixel_c2st_accuracy", "C2ST accuracy on pixels (small CNN)"),
    ("precision", "precision (Naeem et al. 2020)"),
    ("recall", "recall"),
    ("checkerboard_median", "checkerboard score, median (~1 real)"),
    ("copies", "share copying a training crop (street IoU > 0.8)"),
    ("diversity_ratio", "diversity ratio (candidates / real tiles of similar targets)"),
)


def realism_lines(p2p_eval: Pix2PixEvaluation) -> list[str]:
    """The realism table of report.md: every set against the real test tiles, baselines first."""
    names = list(p2p_eval.realism)
    lines = [
        "",
        "## Realism (pix2pix, layouts as delivered: bands thresholded at 0.5)",
        "",
        "Every set is scored against the real test tiles. Baselines: held-out real (validation crops, as if they "
        "were candidates) and retrieval (the training crop nearest each request). The generator alone is the "
        "primary figure; street-searched layouts are post-processed.",
        "",
        "| figure | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for key, label in REALISM_ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(getattr(p2p_eval.realism[n], key)) for n in names) + " |")
    if p2p_eval.retrieval:
        fits = ", ".join(f"{k} {_fmt(v.mape)}" for k, v in p2p_eval.retrieval.items())
        lines += ["", f"Retrieval baseline conditioning MAPE (delivered): {fits}."]
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def demo_report(
    data: Path,
    out: Path,
    picture: Path,
    ae_ckpt: Path,
    p2p_ckpt: Path,
    ae_eval: AutoencoderEvaluation,
    p2p_eval: Pix2PixEvaluation,
    comparison: CompareReport,
    generated: dict[str, GenerateReport],
    timings: dict[str, float],
) -> dict[str, Any]:
    from citygen.data.geotiff import atomic_path

    conditioning = conditioning_summary(p2p_eval)
    report: dict[str, Any] = {
        "data": str(data),
        "checkpoints": {"autoencoder": str(ae_ckpt), "pix2pix": str(p2p_ckpt)},
        "probe_accuracy": comparison["probe_accuracy"],
        "probe_cv_accuracy": comparison.get("probe_cv_accuracy", {}),
        "probes": comparison["probes"],
        "probes_metrics_baseline": comparison.get("probes_metrics_baseline", {}),
        "reconstruction": {
            **{f"iou_{k}": v for k, v in ae_eval.iou.items()},
            **{f"f1_{k}": v for k, v in ae_eval.f1.items()},
            "recon_loss": ae_eval.recon_loss,
        },
        "reconstruction_metrics": {
            f"{k}_{stat}": getattr(fit, stat)
            for k, fit in ae_eval.urban_metrics.items()
            for stat in ("rel_error", "spearman")
        },
        "conditioning_error": conditioning,
        "band_overlap": {
            **{f"overlap_{k}": v for k, v in p2p_eval.overlap.items()},
            **{f"real_overlap_{k}": v for k, v in p2p_eval.real_overlap.items()},
        },
        # layouts as delivered against the real test tiles, beside the held-out real and retrieval baselines
        "realism": p2p_eval.realism,
        "retrieval_conditioning": p2p_eval.retrieval,
        "generation": {
            name: {"targets": r["targets"], "best": r["candidates"][0]["targets"], "diversity": r["diversity"]}
            for name, r in generated.items()
        },
        "metric_r2": comparison["metric_r2"],
        "timings_s": timings,
        "attribution": OSM_ATTRIBUTION,
    }
    write_json(out / "report.json", report)
    from citygen.workflows.probes import probe_table

    lines = ["# citygen demo report", "", f"Dataset: `{data}`. ![sample tiles]({Path(picture).name})", ""]
    lines += [
        "## City identity from the autoencoder's latent space",
        "",
        "Linear probes: trained on the train split and scored on the spatially held-out test split, and scored",
        "by 5-fold cross-validation over 1 km blocks (every tile predicted once; the less noisy figure); 95 %",
        "intervals in brackets. Houston vs Copenhagen compares drive networks with drive networks. Baseline rows:",
        "the same probes on each tile's urban metrics instead of its latent vector.",
        "",
    ]
    baseline = {f"{name} (urban-metrics baseline)": p for name, p in report["probes_metrics_baseline"].items()}
    lines += probe_table({**comparison["probes"], **baseline})
    lines += ["", "![tiles](compare/tiles_pca.png) ![neighbours](compare/nearest_neighbours.png)", ""]
    lines += ["## Reconstruction (test split)", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in report["reconstruction"].items()]
    lines += [
        "",
        "## Conditioning (pix2pix, test-split targets, layouts as delivered)",
        "",
        f"The measured targets of {p2p_eval.crops} test crops of the cities the model was trained",
        f"on are requested, {p2p_eval.candidates} candidates each: every candidate, and the "
        "candidate `citygen generate`",
        "ranks first among those made for one target. Achieved values are measured on the delivered layout "
        "(bands thresholded at 0.5, as the GeoJSON export draws them).",
        "",
        "| target | MAPE | Spearman | MAE | best-candidate MAPE | best-candidate Spearman |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {_fmt(v['mape'])} | {_fmt(v['spearman'])} | {_fmt(v['mae'])} | "
        f"{_fmt(v.get('best', {}).get('mape'))} | {_fmt(v.get('best', {}).get('spearman'))} |"
        for k, v in conditioning.items()
    ]
    overlaps = [
        f"{k.removeprefix('overlap_').replace('_', '-')} {_fmt(v)} (real {_fmt(report['band_overlap'].get('real_' + k))})"
        for k, v in report["band_overlap"].items()
        if k.startswith("overlap_")
    ]
    if overlaps:  # a share can be met by painting one band under another
        lines += ["", "Share of the area two bands cover at once: " + ", ".join(overlaps) + "."]
    alone = [
        f"{k} MAPE {_fmt(v['no_search']['mape'])} (Spearman {_fmt(v['no_search']['spearman'])})"
        for k, v in conditioning.items()
        if "no_search" in v
    ]
    if alone:
        lines += [
            "",
            "The street threshold of each candidate is searched to meet street-graph targets "
            "(`street_search`); the generator's own streets, before the search: " + ", ".join(alone) + ".",
        ]
    if p2p_eval.realism:
        lines += realism_lines(p2p_eval)
    lines += ["", "## Generated layouts", ""]
    first = next(iter(generated.values()), None)
    if first and first.get("size_px"):  # densities of counted things come in steps on a small canvas
        side_m = first["size_px"] * first["resolution_m"]
        lines += [
            f"Each candidate is {first['size_px']} px at {first['resolution_m']:g} m per pixel ({side_m:g} m "
            f"across): one intersection there is {1e6 / side_m**2:.1f} per km2, so achieved intersection "
            "densities come in steps of that size.",
            "",
        ]
    for name, r in generated.items():
        wanted = ", ".join(f"{k}={v:g}" for k, v in r["targets"].items())
        achieved = ", ".join(f"{k}={v['achieved']:.3g}" for k, v in r["candidates"][0]["targets"].items())
        lines += [
            f"### {name}: {wanted}",
            "",
            f"Best candidate: {achieved}.",
            "",
            f"![{name}](generate/{name}/contact_sheet.png)",
            "",
        ]
    lines += [
        "## Time per step (s)",
        "",
        *[f"- {k}: {v:.0f}" for k, v in timings.items()],
        "",
        f"Map data {OSM_ATTRIBUTION}.",
        "",
    ]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines))
    return report
