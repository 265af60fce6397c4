"""`citygen demo`: the main job on the shipped sample cities, end to end.

Builds the sample datasets (all 19 shipped cities) into the default data folder, draws a preview of
Houston and Copenhagen tiles, and prints where everything is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from citygen import OSM_ATTRIBUTION, settings

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "data" / "samples.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citygen demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=CONFIG, help="build config (default: every shipped sample)")
    parser.add_argument("--data", type=Path, default=None, help=f"dataset folder (default {settings.data_dir()})")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"report folder (default {settings.runs_dir() / 'demo'})"
    )
    parser.add_argument("--workers", type=int, default=2, help="cities built in parallel (default 2)")
    return parser


def preview(
    data: Path,
    out: Path,
    *,
    cities: tuple[str, ...] = ("houston_montrose", "cph_vesterbro", "helsinki_center"),
) -> Path:
    """A PNG with a few training tiles of each city side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from citygen.data.dataset import CityTileDataset, composite

    dataset = CityTileDataset(data, split="train", cities=[c for c in cities])
    fig, axes = plt.subplots(len(cities), 4, figsize=(12, 3.2 * len(cities)), squeeze=False)
    for row, city in enumerate(cities):
        indexes = dataset.tiles.index[dataset.tiles["city"] == city][:4]
        for ax, index in zip(axes[row], indexes, strict=False):
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from citygen.data.build import build_dataset
    from citygen.data.spec import load_config

    data = args.data or settings.data_dir()
    out = args.out or settings.runs_dir() / "demo"
    print(f"[1/2] building the sample cities into {data}/ ...")
    results = build_dataset(load_config(args.config), data, workers=args.workers, progress=False)
    for result in results:
        print("  " + result.summary())
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"{len(failed)} cities failed to build", flush=True)
        return 2
    print(f"[2/2] drawing a preview into {out}/ ...")
    picture = preview(data, out)
    manifest = json.loads((data / "manifest.json").read_text())
    tiles = sum(sum(record["tiles"].values()) for record in manifest["cities"].values())
    print(
        f"\nDone. {len(results)} cities, {tiles} tiles of 256 px.\n"
        f"  GeoTIFFs (one per city):   {data}/<city>.tif\n"
        f"  tile index (GeoParquet):   {data}/tiles.parquet\n"
        f"  manifest (sources, hashes, versions, timings): {data}/manifest.json\n"
        f"  preview:                   {picture}\n"
        f"Map data {OSM_ATTRIBUTION}."
    )
    return 0
