"""`citygen embed`, `citygen compare` and `citygen generate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from citygen import OSM_ATTRIBUTION, settings


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
    args = parser.parse_args(argv)
    from citygen.workflows.embed import embed

    table = embed(args.ckpt, args.out, data=args.data, batch_size=args.batch_size, workers=args.workers)
    latent_dim = len(table["latent"].iloc[0])
    print(f"wrote {args.out}: {len(table)} tiles from {table['city'].nunique()} cities, latent vectors of {latent_dim}")
    return 0


def compare_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="citygen compare",
        description="Compare cities in latent space: distance matrix and heatmap, 2-D maps of all tiles (PCA, t-SNE), "
        "nearest neighbours across cities, linear probes of city identity (train -> spatially held-out test), "
        "and R2 of urban metrics predicted from the latent vector. Writes PNGs, report.json and report.md.",
    )
    parser.add_argument("--embeddings", type=Path, required=True, help="GeoParquet from `citygen embed`")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--data", type=Path, help="dataset folder for the neighbour images (default: from the embeddings)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from citygen.workflows.compare import compare

    report = compare(args.embeddings, args.out, data_root=args.data, seed=args.seed)
    for name, probe in report["probes"].items():
        if probe["accuracy"] is None:
            print(f"probe {name}: not measurable ({probe['reason']})")
        else:
            print(f"probe {name}: accuracy {probe['accuracy']:.3f} (chance {probe['chance']:.3f}) on {probe['n_test']} held-out tiles")
    for name, value in report["metric_r2"].items():
        print(f"R2 {name}: {value['r2']:.3f}")
    print(f"wrote {args.out}/report.md, report.json and {len(report['figures'])} figures. Map data {OSM_ATTRIBUTION}.")
    return 0


def default_out(name: str) -> Path:
    return settings.runs_dir() / name
