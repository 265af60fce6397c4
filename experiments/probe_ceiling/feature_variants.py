"""Other tile vectors from the same autoencoder, scored with the probes of `citygen compare`.

Each variant replaces (or extends) the `latent` column of an embeddings table and runs the shipped probes
(`citygen.workflows.probes.linear_probe`: train -> test split, and block cross-validation):

- the shipped vector (latent-map statistics, `--pooling stats`);
- the same statistics of the tile at half resolution (2 x 2 max-pooled, 32 m latent cells), appended;
- mean and spread of every encoder stage's activations (as a supervised network's global pooling);
- a bag of latent codes: k-means (k = 128) on the latent cells of train tiles, a histogram per tile;
- the probe trained on all 8 rotations and flips of each train tile, with predictions averaged over the 8
  views of a test tile;
- a control: the shipped statistics from an encoder of the same architecture with random weights (the
  checkpoint's initialisation, seed 0), its batch-norm statistics measured on the train tiles: how much of
  each probe the training itself earns.

    python experiments/probe_ceiling/feature_variants.py --ckpt CKPT --embeddings embeddings.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.cluster import MiniBatchKMeans
from sklearn.model_selection import GroupKFold

from citygen.core import settings
from citygen.data.dataset import CityTileDataset
from citygen.learn.models.texture import latent_statistics, mapped_cells, offsets_within
from citygen.workflows import compare, probes
from citygen.workflows.checkpoints import load_task
from citygen.workflows.embed import random_control as random_weights


def encoded(task, dataset: CityTileDataset, *, scale: int = 1, view: int = 0, batch: int = 32):
    """Per tile: latent-map statistics, encoder-stage mean/spread, the latent map and its mapped cells."""
    encoder, factor = task.net.encoder, 2 ** len(task.hparams.widths)
    relus = [m for m in encoder.features if isinstance(m, torch.nn.LeakyReLU)]
    stage_ends = {id(m) for m in relus[1::2]}  # the activation closing each strided stage
    stats, stages, maps, cells = [], [], [], []
    for start in range(0, len(dataset), batch):
        images = torch.stack([dataset[i]["image"] for i in range(start, min(start + batch, len(dataset)))])
        images = torch.rot90(images, view // 2, (2, 3))
        images = images.flip(3) if view % 2 else images
        x, valid = images[:, :-1], images[:, -1:]
        if scale > 1:
            x, valid = F.max_pool2d(x, scale), (F.avg_pool2d(valid, scale) >= 1 - 1e-6).float()
        h, parts = x, []
        for layer in encoder.features:
            h = layer(h)
            if id(layer) in stage_ends:  # mean and spread over the mapped cells (no code products)
                parts.append(latent_statistics(h, mapped_cells(valid, x.shape[-1] // h.shape[-1]), offsets=()))
        latent_map = encoder.head(h)
        mapped = mapped_cells(valid, factor)
        stats.append(latent_statistics(latent_map, mapped, offsets=offsets_within(latent_map.shape[-1])).numpy())
        stages.append(torch.cat(parts, 1).numpy())
        maps.append(latent_map.numpy())
        cells.append(mapped[:, 0].numpy())
    return tuple(np.concatenate(a).astype(np.float64) for a in (stats, stages, maps, cells))


def bag_of_codes(maps: np.ndarray, cells: np.ndarray, train: np.ndarray, k: int = 128) -> np.ndarray:
    tiles, channels = maps.shape[:2]
    codes = maps.transpose(0, 2, 3, 1).reshape(tiles, -1, channels)
    mapped = cells.reshape(tiles, -1) > 0
    kmeans = MiniBatchKMeans(k, random_state=0, n_init=3).fit(codes[train][mapped[train]])
    words = kmeans.predict(codes.reshape(-1, channels)).reshape(tiles, -1)
    hist = np.stack([np.bincount(w[m] if m.any() else w, minlength=k) for w, m in zip(words, mapped, strict=True)])
    return np.sqrt(hist / hist.sum(1, keepdims=True))  # Hellinger


def view_probe(table: pd.DataFrame, views: np.ndarray, groups) -> tuple[float, float]:
    """Test and block-CV accuracy of a probe trained on 8 views per tile, predictions averaged over views."""
    frame, labels = probes.probe_tiles(table, groups)
    frame = frame[frame["group"].isin(labels)]
    rows, y = frame["_row"].to_numpy(), frame["group"].to_numpy()

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        x = np.concatenate([v[rows[train]] for v in views])
        model = probes.probe_model().fit(x, np.concatenate([y[train]] * len(views)))
        return model.classes_[np.mean([model.predict_proba(v[rows[test]]) for v in views], 0).argmax(1)]

    split = frame["split"].to_numpy()
    test_accuracy = float((fit_predict(split == "train", split == "test") == y[split == "test"]).mean())
    predicted = np.empty(len(frame), dtype=object)
    for train, test in GroupKFold(5).split(frame, groups=probes.spatial_blocks(frame)):
        predicted[test] = fit_predict(np.isin(np.arange(len(frame)), train), np.isin(np.arange(len(frame)), test))
    return test_accuracy, float((predicted == y).mean())


def probe_table(embeddings: Path, dataset: CityTileDataset) -> tuple[pd.DataFrame, np.ndarray]:
    """The embeddings table of ``dataset`` (in its tile order) with each tile's city group, and its train rows."""
    table = compare.load_embeddings(embeddings).reset_index(drop=True)
    if list(table["tile_id"]) != list(dataset.tiles["tile_id"]):
        raise SystemExit("the embeddings were not written from --data")
    table["group"] = table["city"].map(probes.city_name)
    return table, (table["split"] == "train").to_numpy()


def print_rows(table: pd.DataFrame, variants: dict[str, np.ndarray]) -> None:
    for name, z in variants.items():
        found = {p: probes.linear_probe(table, z, g) for p, g in compare.PROBES.items()}
        figures = [found[p][k] for p in compare.PROBES for k in ("accuracy", "cv_accuracy")]
        print(f"| {name} | " + " | ".join(f"{f:.3f}" for f in figures) + " |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--embeddings", type=Path, required=True, help="`citygen embed` output of --ckpt")
    parser.add_argument("--data", type=Path, default=settings.data_dir())
    parser.add_argument("--control-only", action="store_true", help="the shipped vector and the random control")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    task = load_task(args.ckpt, expected="AutoencoderTask").task
    dataset = CityTileDataset(args.data, bands=[*task.bands, "valid"])
    table, train = probe_table(args.embeddings, dataset)
    print("| tile vector | H vs C test | H vs C block-CV | all test | all block-CV |\n|---|---|---|---|---|")
    print_rows(table, {"shipped (latent-map statistics)": probes.latent_matrix(table)})
    control, *_ = encoded(random_weights(task, dataset, train), dataset)
    print_rows(table, {"control: same architecture, random weights": control})
    if args.control_only:
        return
    stats, stages, maps, cells = encoded(task, dataset)
    half, *_ = encoded(task, dataset, scale=2)
    codes = bag_of_codes(maps, cells, train)
    print_rows(
        table,
        {
            "+ statistics at half resolution": np.hstack([stats, half]),
            "encoder-stage mean and spread": stages,
            "+ encoder-stage mean and spread": np.hstack([stats, stages]),
            "bag of codes (k=128)": codes,
            "+ bag of codes (k=128)": np.hstack([stats, codes]),
        },
    )
    views = np.stack([stats] + [encoded(task, dataset, view=v)[0] for v in range(1, 8)])
    figures = [f for g in compare.PROBES.values() for f in view_probe(table, views, g)]
    print("| probe on 8 rotations/flips, averaged | " + " | ".join(f"{f:.3f}" for f in figures) + " |")


if __name__ == "__main__":
    main()
