"""`citygen embed`, `citygen compare` and `citygen generate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from citygen.core import OSM_ATTRIBUTION


def embed_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="citygen embed",
        description="Embed every tile of a dataset with a trained autoencoder: one row per tile with city, split, "
        "bounds, CRS, tile geometry, the latent vector (`latent`) and urban metrics of the tile (`metric_*`).",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="autoencoder checkpoint (.ckpt from `citygen fit`)")
    parser.add_argument("--data", type=Path, help="dataset folder (default: the one the checkpoint was trained on)")
    parser.add_argument("--out", type=Path, required=True, help="output GeoParquet, e.g. embeddings.parquet")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="processes measuring tile metrics (cached)")
    parser.add_argument(
        "--pooling",
        choices=["auto", "stats", "mean"],
        default="auto",
        help="tile vector: statistics of the whole-tile latent map (stats; spatial bottleneck) or the mean of "
        "input-sized crop latents (mean); auto picks stats where possible",
    )
    parser.add_argument(
        "--control",
        choices=["random"],
        help="embed with a randomly initialised encoder of the checkpoint's architecture (batch norms measured on "
        "the train tiles): the control baseline for `citygen compare --control`",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the --control weights")
    args = parser.parse_args(argv)
    from citygen.workflows.embed import embed

    table = embed(
        args.ckpt,
        args.out,
        data=args.data,
        batch_size=args.batch_size,
        workers=args.workers,
        pooling=args.pooling,
        control=args.control,
        seed=args.seed,
    )
    latent_dim = len(table["latent"].iloc[0])
    print(f"wrote {args.out}: {len(table)} tiles from {table['city'].nunique()} cities, latent vectors of {latent_dim}")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def compare_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="citygen compare",
        description="Compare cities in latent space: distance matrix and heatmap, 2-D maps of all tiles (PCA, t-SNE), "
        "nearest neighbours across cities, linear probes of city identity (train -> spatially held-out test), "
        "and R2 of urban metrics predicted from the latent vector. Writes PNGs, report.json and report.md.",
    )
    parser.add_argument("--embeddings", type=Path, required=True, help="GeoParquet from `citygen embed`")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument(
        "--data", type=Path, help="dataset folder for the neighbour images (default: from the embeddings)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--groups",
        type=Path,
        help="groups file (default: configs/compare/groups.yaml of the checkout): named city pairs and the groups "
        "of the leave-one-city-out probe",
    )
    parser.add_argument(
        "--control",
        type=Path,
        help="embeddings of the same tiles by a random encoder (`citygen embed --control random`)",
    )
    args = parser.parse_args(argv)
    from citygen.workflows.compare import compare

    report = compare(
        args.embeddings, args.out, data_root=args.data, seed=args.seed, groups=args.groups, control=args.control
    )
    for name, probe in report["probes"].items():
        if probe["accuracy"] is None:
            print(f"probe {name}: not measurable ({probe['reason']})")
        else:
            print(
                f"probe {name}: accuracy {probe['accuracy']:.3f} (chance {probe['chance']:.3f}) on {probe['n_test']} "
                f"held-out test tiles; spatial-block cross-validation {_fmt(probe.get('cv_accuracy'))} on "
                f"{probe.get('n_cv', 0)} tiles"
            )
    for name, reason in report.get("probes_skipped", {}).items():
        print(f"note: probe {name} skipped: {reason}")
    for name, probe in report.get("group_probe", {}).items():
        if probe.get("accuracy") is None:
            print(f"group probe ({name}): not measurable ({probe.get('reason')})")
        else:
            right = sum(r["correct"] for r in probe["cities"])
            print(
                f"group probe, leave one city out ({name}): {right} of {probe['n_cities']} cities right, accuracy "
                f"{probe['accuracy']:.3f} (balanced {probe['balanced_accuracy']:.3f}, chance {probe['chance']:.3f})"
            )
    for name, value in report["metric_r2"].items():
        print(f"R2 {name}: {value['r2']:.3f}")
    print(f"wrote {args.out}/report.md, report.json and {len(report['figures'])} figures. Map data {OSM_ATTRIBUTION}.")
    return 0


def generate_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="citygen generate",
        description="Generate candidate layouts from target parameters with a trained pix2pix model. Writes "
        "candidate_<k>.tif (citygen bands, UTM CRS), candidate_<k>.geojson (streets as lines, buildings as "
        "polygons), contact_sheet.png, pattern_card.png (best candidate) and report.json (requested vs achieved "
        "values per candidate and target, candidates ranked by mean relative error).",
    )
    parser.add_argument(
        "--ckpt",
        type=Path,
        required=True,
        help="pix2pix checkpoint (.ckpt from `citygen fit`), an export of one, or `pretrained` (the shipped "
        "two-stage model: streets from targets, then buildings and green on them)",
    )
    parser.add_argument(
        "--then", type=Path, help="a second stage drawn on the first one's streets (a streets-to-buildings model)"
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a target, e.g. building_coverage=0.35 (repeatable)",
    )
    parser.add_argument("--n", type=int, default=8, help="number of candidates (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--at", help="LON,LAT of the layout centre (default 12.5683,55.6761, Copenhagen City Hall Square)"
    )
    parser.add_argument(
        "--streets",
        type=Path,
        help="GeoTIFF (built by citygen) whose street network a streets-to-buildings stage dresses; with two "
        "stages, stage 1 is skipped",
    )
    parser.add_argument(
        "--allow-extrapolation", action="store_true", help="accept targets outside the training range with a warning"
    )
    parser.add_argument(
        "--no-street-search",
        action="store_true",
        help="skip the model's street search: faster, but intersection density is left to the generator alone",
    )
    parser.add_argument(
        "--no-realism", action="store_true", help="skip the realism block (candidates against the real test tiles)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, item in enumerate(argv[:-1]):  # "--at -95.39,29.75": argparse would take the value for an option
        if item == "--at":
            argv[i : i + 2] = [f"--at={argv[i + 1]}"]
            break
    args = parser.parse_args(argv)
    from citygen.core.errors import ConfigError
    from citygen.workflows.generate import generate, parse_targets

    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    at = None
    if args.at:
        try:
            lon, lat = (float(v) for v in args.at.split(","))
        except ValueError as exc:
            raise ConfigError(
                f"cannot read --at {args.at!r}", "write LON,LAT in degrees, e.g. --at -95.39,29.75"
            ) from exc
        at = (lon, lat)
    report = generate(
        args.ckpt,
        parse_targets(args.target),
        args.out,
        then=args.then,
        n=args.n,
        seed=args.seed,
        at=at,
        streets=args.streets,
        strict=not args.allow_extrapolation,
        street_search=False if args.no_street_search else None,
        realism=not args.no_realism,
    )
    names = [n + ("*" if n in report["filled_targets"] else "") for n in report["candidates"][0]["targets"]]
    print(f"{'rank':<6}{'candidate':<11}" + "".join(f"{name:>28}" for name in names) + f"{'mean error':>12}")
    for c in report["candidates"]:
        values = "".join(f"{v['achieved']:>14.3g} (want {v['requested']:<6.3g})" for v in c["targets"].values())
        print(f"{c['rank']:<6}{c['candidate']:<11}{values}{c['mean_relative_error']:>12.1%}")
    if report["filled_targets"]:
        print("* not requested: filled in from the training crops nearest the request; the mean error leaves it out")
    if report["realism"]:
        from citygen.cli.realism import print_table

        print("realism (layouts as delivered, against the real test tiles of the training dataset):")
        print_table(report["realism"])
    print(
        f"wrote {len(report['candidates'])} candidates, {report['contact_sheet']}, {report['pattern_card']} and report.json to {args.out}/"
    )
    return 0


def export_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="citygen export-weights",
        description="Write the generator-only weights of a pix2pix checkpoint (half precision, no discriminator or "
        "optimizer state) with the training crops' targets, so `citygen generate --ckpt FILE` runs without the "
        "dataset. The shipped `pretrained` stages are such files.",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="pix2pix checkpoint (.ckpt from `citygen fit`)")
    parser.add_argument("--data", type=Path, help="the dataset it was trained on (default: the recorded root)")
    parser.add_argument("--out", type=Path, required=True, help="the file to write, e.g. stage1.pt")
    args = parser.parse_args(argv)
    from citygen.workflows.weights import export_weights

    path = export_weights(args.ckpt, args.out, data=args.data)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
