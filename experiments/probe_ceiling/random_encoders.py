"""The city probes on encoders that were never trained: random weights, batch norms measured on the train tiles.

For each encoder shape (stages of ``widths``, latent channels per cell), an untrained `AutoencoderTask` is
given random weights by `feature_variants.random_weights` and its latent-map statistics (the shipped
``stats`` pooling) are scored with the probes of `citygen compare`. The embeddings table only supplies the
tiles' cities, splits and bounds, so any `citygen embed` output of the same dataset will do.

    python experiments/probe_ceiling/random_encoders.py --embeddings embeddings.parquet
"""

from __future__ import annotations

import argparse
import runpy
from pathlib import Path

import torch

from citygen.core import settings
from citygen.data.dataset import CityTileDataset
from citygen.learn.tasks import AutoencoderTask

VARIANTS = Path(__file__).with_name("feature_variants.py")
# (encoder widths, latent channels per cell): cells of 2, 4 and 8 pixels (4, 8 and 16 m at 2 m/px)
SHAPES = (((32,), 8), ((32, 64), 8), ((32, 64), 16), ((32, 64, 128), 8), ((32, 64, 128), 16))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", type=Path, required=True, help="`citygen embed` output of --data")
    parser.add_argument("--data", type=Path, default=settings.data_dir())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    variants = runpy.run_path(str(VARIANTS))
    torch.set_grad_enabled(False)
    dataset = CityTileDataset(args.data, bands=["streets", "buildings", "valid"])
    table, train = variants["probe_table"](args.embeddings, dataset)
    pixel_m = float(dataset.tiles["resolution"].iloc[0])
    print("| random encoder | H vs C test | H vs C block-CV | all test | all block-CV |\n|---|---|---|---|---|")
    for widths, channels in SHAPES:
        cells = 64 // 2 ** len(widths)
        task = AutoencoderTask(
            bands=["streets", "buildings"], input_size=64, widths=widths, bottleneck="spatial",
            latent_dim=cells * cells * channels,
        )  # fmt: skip
        stats, *_ = variants["encoded"](variants["random_weights"](task, dataset, train, seed=args.seed), dataset)
        cell_m = pixel_m * 2 ** len(widths)
        variants["print_rows"](table, {f"{cell_m:g} m cells x {channels} channels": stats})


if __name__ == "__main__":
    main()
