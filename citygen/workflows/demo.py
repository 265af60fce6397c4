"""`citygen demo`: the main job on the shipped sample cities, end to end, on a CPU in minutes.

1. build every sample city into rasters and a tile dataset;
2. train the demo autoencoder and the demo pix2pix model (configs/experiments/*_demo.yaml);
3. evaluate both on the spatially held-out test split;
4. embed every tile and compare the cities (distances, maps, probes, nearest neighbours);
5. generate candidate layouts for a few target densities and score them with the metric suite;
6. write runs/demo/report.md and report.json, with the figures, checkpoints and embeddings.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from citygen.core import OSM_ATTRIBUTION, settings
from citygen.workflows.demo_report import demo_report, fmt_value
from citygen.workflows.results import (
    AutoencoderEvaluation,
    Evaluation,
    Pix2PixEvaluation,
    write_json,
)

# Target sets for the generation step: a low-, a mid- and a high-density layout.
TARGET_SWEEP: dict[str, dict[str, float]] = {
    "low_density": {"building_coverage": 0.10, "intersection_density_km2": 40.0, "green_share": 0.15},
    "mid_density": {"building_coverage": 0.25, "intersection_density_km2": 80.0, "green_share": 0.10},
    "high_density": {"building_coverage": 0.40, "intersection_density_km2": 120.0, "green_share": 0.05},
}
# the sample cities with complete buildings, streets and green (configs/experiments/pix2pix_demo.yaml)
PIX2PIX_DEMO_CITIES = ["helsinki_center", "kotka_karhula", "nyc_west_village", "piedmont", "monaco"]


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
        print(f"\n[{len(timings) + 1}/8] {message}", flush=True)
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
    start = step("generate_pretrained", "generating the same with the shipped two-stage weights ...")
    # scored against the demo dataset's real test tiles of the cities the demo pix2pix trains on
    reference, n = (data, PIX2PIX_DEMO_CITIES), 4 if quick else 8
    pretrained = {
        name: generate(
            "pretrained",
            targets,
            out / "generate_pretrained" / name,
            n=n,
            seed=i,
            reference=reference,
            street_search=False if quick else None,  # a smoke test: the search is the slow part
        )
        for i, (name, targets) in enumerate(TARGET_SWEEP.items())
    }
    timings["generate_pretrained"] = time.perf_counter() - start

    print(f"\n[8/8] writing the report to {out}/ ...", flush=True)
    report = demo_report(
        data, out, picture, ae_ckpt, p2p_ckpt, ae_eval, p2p_eval, comparison, generated, timings, pretrained
    )
    print(
        f"\nDone in {sum(timings.values()) / 60:.1f} min. Look at:\n"
        f"  {out}/report.md            the summary (figures linked)\n"
        f"  {out}/report.json          probe accuracies, reconstruction IoU, conditioning errors\n"
        f"  {out}/compare/             city distances, tile maps, nearest neighbours\n"
        f"  {out}/generate/            candidate GeoTIFFs, GeoJSON, contact sheets, pattern cards\n"
        f"  {out}/runs/                checkpoints and training logs\n"
        f"  {data}/                    rasters, tiles.parquet, manifest.json\n"
        f"Probe accuracy Houston vs Copenhagen: {fmt_value(report['probe_accuracy'].get('houston_vs_copenhagen'))} "
        f"(block CV {fmt_value(report['probe_cv_accuracy'].get('houston_vs_copenhagen'))}), all cities: "
        f"{fmt_value(report['probe_accuracy'].get('all_cities'))} (block CV "
        f"{fmt_value(report['probe_cv_accuracy'].get('all_cities'))}). Map data {OSM_ATTRIBUTION}."
    )
    return 0
