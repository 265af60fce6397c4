"""Embed every tile of a dataset with a trained autoencoder (`citygen embed`).

Two ways to turn a tile into one vector (``pooling``):

- ``stats`` (default for a spatial bottleneck): the encoder is fully convolutional, so the whole tile is
  encoded at once into a latent map (one latent code per 16 m cell at 2 m/px). The tile's vector holds
  the per-channel mean and standard deviation of that map and the channel-by-channel products of codes
  at offsets of 1, 2, 4 and 8 cells in four directions (signed square roots): texture statistics of the latent codes (as the
  Gram matrices of Gatys et al. 2015), which say how streets and blocks repeat and turn, wherever they
  lie in the tile. They are taken over the latent cells inside the mapped area (the ``valid`` band), so
  a tile cut by the edge of its extract is described by what is mapped, not by the blank beyond it.
- ``mean`` (the only choice for a dense bottleneck): the tile is cut into input-sized crops on a grid and
  the vector is the mean of the crops' latents.

Each row also carries urban metrics of the whole tile (`metric_*`), measured once with the metric suite
and cached beside the dataset, so `citygen compare` can ask how well the latent space predicts them.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from citygen.core import OSM_ATTRIBUTION, settings
from citygen.core.errors import ConfigError
from citygen.data.dataset import CityTileDataset
from citygen.data.geotiff import atomic_path
from citygen.learn.models.texture import latent_statistics, mapped_cells
from citygen.learn.tasks import AutoencoderTask
from citygen.workflows.checkpoints import load_task

log = logging.getLogger(__name__)
METRICS = (
    "building_coverage",
    "street_density_km_km2",
    "intersection_density_km2",
    "green_share",
    "orientation_entropy",
)


Pooling = Literal["auto", "stats", "mean"]


def resolve_pooling(task: AutoencoderTask, pooling: Pooling) -> Literal["stats", "mean"]:
    spatial = task.hparams.get("bottleneck", "dense") == "spatial"
    if pooling == "auto":
        return "stats" if spatial else "mean"
    if pooling == "stats" and not spatial:
        raise ConfigError(
            "stats pooling needs an autoencoder with a spatial bottleneck",
            "use --pooling mean, or train with model.init_args.bottleneck: spatial",
        )
    return pooling


@torch.no_grad()
def embed_tiles(
    task: AutoencoderTask, dataset: CityTileDataset, *, batch_size: int = 32, pooling: Pooling = "auto"
) -> np.ndarray:
    """One vector per tile (see the module docstring for the two poolings). The model's bands are taken from
    ``dataset`` by name; its ``valid`` band, when it reads one, marks the mapped area the statistics cover."""
    size = int(task.hp.input_size)
    pooling = resolve_pooling(task, pooling)
    names = list(dataset.bands)
    missing = [b for b in task.bands if b not in names]
    if missing:
        raise ConfigError(
            f"the model encodes bands {missing}, which the dataset is not read with ({names})",
            "read the dataset with the model's bands (and valid)",
        )
    model_bands = [names.index(b) for b in task.bands]
    valid_band = names.index("valid") if "valid" in names else None
    latents = []
    for start in range(0, len(dataset), batch_size):
        images = torch.stack([dataset[i]["image"] for i in range(start, min(start + batch_size, len(dataset)))])
        _, _, height, width = images.shape
        if height < size or width < size:
            raise ConfigError(
                f"tiles of {height}x{width} px are smaller than the model input {size}",
                "embed a dataset with larger tiles",
            )
        if pooling == "stats":
            factor = 2 ** len(task.hp.widths)
            if height % factor or width % factor:
                raise ConfigError(f"tiles of {height}x{width} px are not divisible by {factor}", "use --pooling mean")
            latent_map = task.net.encode_map(images[:, model_bands])
            valid = None
            if valid_band is not None:  # pooled to the latent cells that lie wholly inside the mapped area
                valid = mapped_cells(images[:, valid_band : valid_band + 1], factor)
            latents.append(latent_statistics(latent_map, valid).cpu().numpy())
            continue
        crops = [
            images[:, model_bands, r : r + size, c : c + size]
            for r in range(0, height - size + 1, size)
            for c in range(0, width - size + 1, size)
        ]
        encoded = torch.stack([task.encode(crop) for crop in crops])  # [crops, batch, latent]
        latents.append(encoded.mean(0).cpu().numpy())
    return np.concatenate(latents).astype(np.float32)


def check_bands_present(tiles: pd.DataFrame, bands: list[str], root: Path) -> None:
    """Refuse a dataset in which no tile has a band the model was trained on (it would embed zeros); name
    the places that lack a band the others have."""
    missing = [b for b in bands if f"present_{b}" in tiles and not tiles[f"present_{b}"].astype(bool).any()]
    if missing:
        raise ConfigError(
            f"no tile of {root} has the band(s) {missing} this model was trained on (their sources lack them)",
            "embed a dataset built from sources that hold those layers, or a model trained on the bands present",
        )
    for band in bands:
        column = f"present_{band}"
        if column in tiles:
            lacking = sorted(tiles.loc[~tiles[column].astype(bool), "city"].unique())
            if lacking:
                log.warning(
                    "%s lack the %s band: their tiles embed it as empty (citygen compare leaves them "
                    "out of the group probe)",
                    ", ".join(lacking),
                    band,
                )


def random_control(
    task: AutoencoderTask, dataset: CityTileDataset, train: np.ndarray, *, seed: int = 0, batch: int = 32
) -> AutoencoderTask:
    """A copy of ``task`` with freshly initialised weights: the control an embedding must beat (an untrained
    encoder of the same architecture). Its batch norms get the mean and variance of their inputs over the
    ``train`` tiles (one pass in batches of ``batch``), as a trained model's hold those of its training
    crops: random weights with the checkpoint's running statistics would scale every layer wrongly."""
    from citygen.learn.models import init_weights

    torch.manual_seed(seed)
    control = copy.deepcopy(task)
    init_weights(control.net, task.hp.init_type, task.hp.init_gain)
    norms = [m for m in control.net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over every batch seen
    rows = np.flatnonzero(train)
    control.net.encoder.train()
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            images = torch.stack([dataset[int(i)]["image"] for i in rows[start : start + batch]])
            control.net.encode_map(images[:, :-1])
    return control.eval()


def tile_metrics(root: Path, tiles: pd.DataFrame, *, workers: int = 2) -> pd.DataFrame:
    """Whole-tile urban metrics (cached in the dataset folder by the conditioning code)."""
    from citygen.learn.conditioning import ensure_targets

    size = int(tiles["height"].max())
    cache = ensure_targets(root, size, list(METRICS), tiles, workers=workers)
    cache = cache[(cache["cell_size"] == size) & (cache["row"] == 0) & (cache["col"] == 0)].set_index("tile_id")
    return cache.reindex(tiles["tile_id"])[list(METRICS)]


def embed(
    ckpt: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    batch_size: int = 32,
    workers: int = 2,
    pooling: Pooling = "auto",
    control: Literal["random"] | None = None,
    seed: int = 0,
) -> gpd.GeoDataFrame:
    """Write one row per tile: city, split, bounds, CRS, tile geometry (EPSG:4326), `latent`, `metric_*`.

    ``control="random"`` embeds with :func:`random_control` of the checkpoint's architecture instead of its
    trained weights (seeded by ``seed``): the baseline `citygen compare --control` scores beside the model.
    """
    trained = load_task(ckpt, expected="AutoencoderTask")
    task = trained.task
    root = Path(data) if data is not None else (trained.data_root or settings.data_dir())
    extra = [] if "valid" in task.bands else ["valid"]
    dataset = CityTileDataset(root, bands=[*task.bands, *extra])
    check_bands_present(dataset.tiles, list(task.bands), root)
    pooling = resolve_pooling(task, pooling)
    if control == "random":
        task = random_control(task, dataset, (dataset.tiles["split"] == "train").to_numpy(), seed=seed)
    latents = embed_tiles(task, dataset, batch_size=batch_size, pooling=pooling)
    tiles = dataset.tiles
    keep = [
        "tile_id",
        "city",
        "split",
        "crs",
        "minx",
        "miny",
        "maxx",
        "maxy",
        *[c for c in tiles.columns if c.startswith("present_")],
        "geometry",
    ]
    table = gpd.GeoDataFrame(tiles[keep].copy(), geometry="geometry", crs=tiles.crs)
    table["latent"] = list(latents)
    metrics = tile_metrics(root, tiles, workers=workers)
    for name in METRICS:
        table[f"metric_{name}"] = metrics[name].to_numpy()
    out = Path(out)
    with atomic_path(out) as tmp:
        table.to_parquet(tmp)
        _add_metadata(
            tmp,
            {
                "citygen_data_root": str(Path(root).resolve()),
                "citygen_checkpoint": str(Path(ckpt).resolve()),
                "citygen_bands": ",".join(task.bands),
                "citygen_pooling": pooling,
                "citygen_control": f"random weights, seed {seed}" if control else "",
                "attribution": OSM_ATTRIBUTION,
            },
        )
    return table


def _add_metadata(path: Path, extra: dict[str, str]) -> None:
    table = pq.read_table(path)
    metadata = {**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in extra.items()}}
    pq.write_table(table.replace_schema_metadata(metadata), path)
