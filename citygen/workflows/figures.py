"""Figures of the comparison report (matplotlib, written to PNG)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from citygen.core import OSM_ATTRIBUTION
from citygen.metrics import realism as R
from citygen.metrics.morphology import DELIVERED_THRESHOLD, DISTRIBUTION_STATISTICS, LOG_STATISTICS, statistic_matrix


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.text(0.99, 0.005, f"Map data {OSM_ATTRIBUTION}", ha="right", va="bottom", fontsize=6, color="0.4")
    from citygen.data.geotiff import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)
    return path


def distance_heatmap(distances: pd.DataFrame, path: Path) -> Path:
    plt = _plt()
    n = len(distances)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.6 + 0.45 * n))
    image = ax.imshow(distances.to_numpy(), cmap="viridis")
    ax.set_xticks(range(n), distances.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), distances.index, fontsize=8)
    fig.colorbar(image, ax=ax, label="distance between city centroids (standardised latent space)")
    ax.set_title("City-to-city distance in latent space")
    return _save(fig, path)


def tile_map(table: pd.DataFrame, z: np.ndarray, path: Path, *, method: str, seed: int = 0) -> Path:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    zs = (z - z.mean(0)) / (z.std(0) + 1e-9)
    if method == "pca":
        xy = PCA(n_components=2, random_state=seed).fit_transform(zs)
    else:
        reduced = PCA(n_components=min(30, zs.shape[1], len(zs) - 1), random_state=seed).fit_transform(zs)
        xy = TSNE(
            n_components=2, perplexity=min(30.0, max(5.0, len(zs) / 20)), random_state=seed, init="pca"
        ).fit_transform(reduced)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    cities = sorted(table["city"].unique())
    colours = plt.get_cmap("tab20", max(len(cities), 1))
    for i, city in enumerate(cities):
        rows = (table["city"] == city).to_numpy()
        ax.scatter(xy[rows, 0], xy[rows, 1], s=9, color=colours(i), label=city, alpha=0.8)
    ax.legend(fontsize=7, markerscale=2, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(f"All tiles in latent space ({method.upper()}), coloured by city")
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


def neighbour_grid(neighbours: list[dict[str, Any]], root: Path, path: Path) -> Path:
    from citygen.data.dataset import CityTileDataset, composite

    dataset = CityTileDataset(root, bands=["streets", "paths", "buildings", "green", "water", "valid"])
    by_id = {tile_id: i for i, tile_id in enumerate(dataset.tiles["tile_id"])}
    plt = _plt()
    columns = 1 + max(len(item["neighbours"]) for item in neighbours)
    fig, axes = plt.subplots(len(neighbours), columns, figsize=(2.3 * columns, 2.5 * len(neighbours)), squeeze=False)
    for row, item in enumerate(neighbours):
        ids = [item["query"], *item["neighbours"]]
        labels = ["query", *[f"{s:.2f}" for s in item["similarity"]]]
        for ax, tile_id, label in zip(axes[row], ids, labels, strict=False):
            if tile_id in by_id:
                sample = dataset[by_id[tile_id]]
                ax.imshow(composite(sample["image"], sample["bands"]))
            ax.set_title(f"{tile_id.split(':')[0]}\n{label}", fontsize=7)
        for ax in axes[row]:
            ax.set_axis_off()
    fig.suptitle("Which parts of other cities look alike? Query tile, then its nearest neighbours (cosine)")
    return _save(fig, path)


def realism_figure(reference: Any, sets: Mapping[str, Any], path: Path) -> Path:
    """``citygen realism``'s picture (``reference`` and ``sets``: :class:`citygen.workflows.realism.TileSet`).
    Real and generated crops side by side (the reference tile nearest each set's first tiles in statistic
    space), and each statistic's histogram, real vs every set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from citygen.core.viz import render_layout
    from citygen.data.geotiff import atomic_path

    names = list(DISTRIBUTION_STATISTICS)
    ref_matrix = statistic_matrix(reference.rows)
    shown = {name: s for name, s in sets.items() if len(s.rows)}
    rows, cols = 4, 1 + 3 * len(shown)
    fig = plt.figure(figsize=(max(1.5 * cols, 10), 1.5 * rows + 6.5), layout="constrained")
    parts: Any = fig.subfigures(2, 1, height_ratios=[1.5 * rows, 6.5])
    top, bottom = parts
    crops = top.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        col = 1
        for k, (name, tiles) in enumerate(shown.items()):
            matrix = statistic_matrix(tiles.rows)
            picks = list(range(r * 3, min(r * 3 + 3, len(tiles.rows))))
            if k == len(shown) - 1 and picks:  # the real tile closest (statistics) to the row's first candidate
                ref, oth = R.standardise(ref_matrix, matrix)
                nearest = int(np.argmin(np.linalg.norm(ref - oth[picks[0]], axis=1)))
                crops[r, 0].imshow(render_layout(reference.layouts[nearest], reference.bands, reference.valid[nearest]))
            for j, i in enumerate(picks):
                delivered = (tiles.layouts[i] >= DELIVERED_THRESHOLD).astype(np.float32)
                crops[r, col + j].imshow(render_layout(delivered, tiles.bands, tiles.valid[i]))
                crops[r, col + j].set_title(name if r == 0 and j == 0 else "", fontsize=8, loc="left")
            col += 3
    crops[0, 0].set_title("real (test), closest", fontsize=8, loc="left")
    for ax in crops.ravel():
        ax.set_axis_off()
    hists = bottom.subplots(3, 5, squeeze=False).ravel()
    for j, stat in enumerate(names):
        ax = hists[j]
        values = [ref_matrix[:, j], *(statistic_matrix(t.rows)[:, j] for t in shown.values())]
        bins = np.histogram_bin_edges(np.concatenate(values), bins=15).tolist()
        for label, v in zip(["real (test)", *shown], values, strict=True):
            ax.hist(v, bins=bins, histtype="step", density=True, label=label)
        ax.set_title(stat + (" (log1p)" if stat in LOG_STATISTICS else ""), fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in hists[len(names) :]:
        ax.set_axis_off()
    hists[0].legend(fontsize=6)
    fig.suptitle("Realism: layouts as delivered (bands thresholded at 0.5) against the real test tiles", fontsize=9)
    fig.text(0.99, 0.005, f"Map data {OSM_ATTRIBUTION}", ha="right", fontsize=6, color="0.4")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path


def contact_sheet(
    layouts: np.ndarray, bands: list[str], candidates: list[Any], targets: dict[str, float], path: Path
) -> Path:
    """Candidates side by side, as delivered (coverage bands thresholded at 0.5, as the GeoJSON draws them), with
    their achieved targets (``candidates``: generate's ``Candidate`` records)."""
    plt = _plt()

    from citygen.data.dataset import composite
    from citygen.metrics.morphology import delivered

    layouts = np.stack(
        [np.stack(list(delivered(dict(zip(bands, layout, strict=True))).values())) for layout in layouts]
    )

    columns = min(4, len(layouts))
    rows = math.ceil(len(layouts) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 4.0 * rows), squeeze=False, layout="constrained")
    for ax, layout, candidate in zip(axes.ravel(), layouts, candidates, strict=False):
        ax.imshow(composite(layout, bands))
        text = "\n".join(f"{name}: {candidate.achieved[name]:.3g}" for name in targets)
        ax.set_title(f"candidate {candidate.index} (error {candidate.error:.0%})\n{text}", fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    wanted = ", ".join(f"{k}={v:g}" for k, v in targets.items())
    title = textwrap.fill(f"Generated layouts for {wanted} (as delivered: bands at 0.5)", width=40 * columns)
    fig.suptitle(title, fontsize=10)
    from matplotlib.patches import Patch

    from citygen.core.viz import COLORS

    legend = [Patch(color=COLORS[b], label=b) for b in COLORS if b in bands]
    if legend:
        fig.legend(handles=legend, loc="lower left", ncol=len(legend), fontsize=7, frameon=False)
    fig.text(0.99, 0.005, f"Trained on map data {OSM_ATTRIBUTION}", ha="right", fontsize=6, color="0.4")
    from citygen.data.geotiff import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
