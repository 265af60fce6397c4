"""A torch Dataset over a built tile index: dict samples with named channels, CRS and bounds."""

# composite is re-exported here for notebooks: `from citygen.data.dataset import composite`

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from citygen import OSM_ATTRIBUTION, settings
from citygen.bands import BAND_NAMES
from citygen.errors import ConfigError, SourceError
from citygen.viz import composite

Sample = dict[str, Any]


def read_tile_index(root: str | Path) -> gpd.GeoDataFrame:
    """The tile index of a built dataset, with a clear error when the dataset is missing."""
    index = Path(root) / "tiles.parquet"
    if not index.is_file():
        raise SourceError(
            f"no tile index at {index}",
            f"build the dataset first: citygen data build --config configs/data/samples.yaml --out {root}",
        )
    return gpd.read_parquet(index)


class CityTileDataset(Dataset[Sample]):
    """Tiles of a dataset built by ``citygen data build``.

    Each sample is ``{"image": FloatTensor[C, H, W], "bands": tuple of channel names, "crs": str,
    "bounds": (minx, miny, maxx, maxy) in that CRS, "city": str, "tile_id": str, "split": str}``.
    Rasters are opened lazily, once per worker process, so the dataset works with ``num_workers > 0``.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        split: str | Sequence[str] | None = None,
        bands: Sequence[str] | None = None,
        cities: Sequence[str] | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else settings.data_dir()
        tiles = read_tile_index(self.root)
        self.bands = tuple(bands) if bands is not None else BAND_NAMES
        unknown = [b for b in self.bands if b not in BAND_NAMES]
        if unknown:
            raise ConfigError(f"unknown bands {unknown}", f"choose from: {', '.join(BAND_NAMES)}")
        if split is not None:
            splits = [split] if isinstance(split, str) else list(split)
            bad = [s for s in splits if s not in ("train", "val", "test")]
            if bad:
                raise ConfigError(f"unknown split {bad}", "use train, val or test")
            tiles = tiles[tiles["split"].isin(splits)]
        if cities is not None:
            missing = sorted(set(cities) - set(tiles["city"]))
            if missing:
                raise ConfigError(
                    f"cities {missing} have no tiles in {self.root}",
                    f"available: {', '.join(sorted(set(tiles['city'])))}",
                )
            tiles = tiles[tiles["city"].isin(list(cities))]
        self.tiles = tiles.reset_index(drop=True)
        self.transforms = transforms
        self._band_indexes: dict[str, list[int]] = {}
        self._handles: dict[str, rasterio.io.DatasetReader] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.tiles)

    def _open(self, name: str) -> rasterio.io.DatasetReader:
        import os

        if self._pid != os.getpid():  # new worker process: never share GDAL handles across a fork
            self._handles, self._pid = {}, os.getpid()
        if name not in self._handles:
            src = rasterio.open(self.root / name)
            self._handles[name] = src
            self._band_indexes[name] = [list(src.descriptions).index(b) + 1 for b in self.bands]
        return self._handles[name]

    def read_window(self, path: str, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Read any window (e.g. a random crop) of a city raster as a (C, H, W) float32 array."""
        src = self._open(path)
        return src.read(self._band_indexes[path], window=Window(col_off, row_off, width, height), out_dtype=np.float32)

    def __getitem__(self, index: int) -> Sample:
        tile = self.tiles.iloc[index]
        array = self.read_window(
            tile["path"], int(tile["row_off"]), int(tile["col_off"]), int(tile["height"]), int(tile["width"])
        )
        sample: Sample = {
            "image": torch.from_numpy(np.ascontiguousarray(array)),
            "bands": self.bands,
            "crs": tile["crs"],
            "bounds": (float(tile["minx"]), float(tile["miny"]), float(tile["maxx"]), float(tile["maxy"])),
            "city": tile["city"],
            "tile_id": tile["tile_id"],
            "split": tile["split"],
        }
        return self.transforms(sample) if self.transforms is not None else sample

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = {}, None
        return state

    def plot(self, sample: Sample, *, title: str | None = None):  # -> matplotlib Figure
        """Render a sample: a colour composite of the layout plus each channel."""
        return plot_layout(
            sample["image"], bands=sample["bands"], title=title or f"{sample['city']} {sample['tile_id']}"
        )


def plot_layout(image: torch.Tensor | np.ndarray, *, bands: Sequence[str], title: str | None = None):
    import matplotlib.pyplot as plt

    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    shown = [b for b in bands if b != "valid"]
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(2.6 * (len(shown) + 1), 3.0), squeeze=False)
    axes[0, 0].imshow(composite(array, bands))
    axes[0, 0].set_title("layout")
    for ax, name in zip(axes[0, 1:], shown, strict=True):
        ax.imshow(
            array[list(bands).index(name)],
            cmap="magma",
            vmin=0,
            vmax=max(1.0, float(array[list(bands).index(name)].max())),
        )
        ax.set_title(name)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.text(0.99, 0.01, f"Map data {OSM_ATTRIBUTION}", ha="right", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout()
    return fig
