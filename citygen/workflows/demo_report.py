"""The demo's report: report.json and report.md, from what the demo's steps measured (:mod:`citygen.workflows.demo`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from citygen.core import OSM_ATTRIBUTION
from citygen.workflows.results import (
    AutoencoderEvaluation,
    CompareReport,
    GenerateReport,
    Pix2PixEvaluation,
    write_json,
)


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
        lines.append(f"| {label} | " + " | ".join(fmt_value(getattr(p2p_eval.realism[n], key)) for n in names) + " |")
    if p2p_eval.retrieval:
        fits = ", ".join(f"{k} {fmt_value(v.mape)}" for k, v in p2p_eval.retrieval.items())
        lines += ["", f"Retrieval baseline conditioning MAPE (delivered): {fits}."]
    return lines


def fmt_value(value: float | None) -> str:
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
    pretrained: dict[str, GenerateReport] | None = None,
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
        # the shipped two-stage weights on the same requests, scored against the demo's real test tiles
        "generation_pretrained": {
            name: {
                "targets": r["targets"],
                "filled_targets": r["filled_targets"],
                "best": r["candidates"][0]["targets"],
                "diversity": r["diversity"],
                "realism": r["realism"],
            }
            for name, r in (pretrained or {}).items()
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
    lines += [f"| {k} | {fmt_value(v)} |" for k, v in report["reconstruction"].items()]
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
        f"| {k} | {fmt_value(v['mape'])} | {fmt_value(v['spearman'])} | {fmt_value(v['mae'])} | "
        f"{fmt_value(v.get('best', {}).get('mape'))} | {fmt_value(v.get('best', {}).get('spearman'))} |"
        for k, v in conditioning.items()
    ]
    overlaps = [
        f"{k.removeprefix('overlap_').replace('_', '-')} {fmt_value(v)} (real {fmt_value(report['band_overlap'].get('real_' + k))})"
        for k, v in report["band_overlap"].items()
        if k.startswith("overlap_")
    ]
    if overlaps:  # a share can be met by painting one band under another
        lines += ["", "Share of the area two bands cover at once: " + ", ".join(overlaps) + "."]
    alone = [
        f"{k} MAPE {fmt_value(v['no_search']['mape'])} (Spearman {fmt_value(v['no_search']['spearman'])})"
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
    lines += pretrained_lines(pretrained or {}, generated)
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


def pretrained_lines(pretrained: dict[str, GenerateReport], demo: dict[str, GenerateReport]) -> list[str]:
    """The shipped weights' candidates beside the demo-trained model's, for the same requests."""
    if not pretrained:
        return []
    lines = [
        "## Generated layouts: shipped two-stage weights (`citygen generate --ckpt pretrained`)",
        "",
        "Stage 1 draws streets and paths from the targets, stage 2 buildings and green on those streets "
        "(citygen/weights/MODEL_CARD.md). Realism: the 8 candidates of each request against the demo dataset's",
        "real test tiles of similar targets (C2ST 0.5 = indistinguishable; Fréchet ratio 1 = as two halves of the "
        "real tiles), beside the demo-trained model's.",
        "",
        "| request | model | mean error (best) | C2ST | Fréchet ratio | held-out real C2ST / Fréchet |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in pretrained.items():
        for model, report in (("shipped", r), ("demo-trained", demo.get(name))):
            if report is None:
                continue
            real, cand = report["realism"].get("held-out real (val split)"), report["realism"].get("candidates")
            lines.append(
                f"| {name} | {model} | {fmt_value(report['candidates'][0]['mean_relative_error'])} | "
                f"{fmt_value(cand.c2st_accuracy if cand else None)} | {fmt_value(cand.frechet_ratio if cand else None)} | "
                f"{fmt_value(real.c2st_accuracy if real else None)} / {fmt_value(real.frechet_ratio if real else None)} |"
            )
    lines.append("")
    for name in pretrained:
        lines += [f"### {name} (shipped weights)", "", f"![{name}](generate_pretrained/{name}/contact_sheet.png)", ""]
    return lines
