"""The one torch Dataset over a built tile index: dict samples with named channels, a valid mask, CRS and bounds.

Every consumer reads tiles through :class:`CityTileDataset`: notebooks and ``citygen embed`` (whole tiles), the
data module (crops, flips, per-crop targets) and the experiments. A sample is::

    {"image": FloatTensor[C, H, W], "mask": BoolTensor[1, H, W] (the valid band), "present": BoolTensor[C]
     (did the source provide each channel's layer), "bands": channel names, "crs": str, "bounds": float64
     Tensor[4] (minx, miny, maxx, maxy of the crop in that CRS), "city", "tile_id", "split": str,
     "window": Tensor[4] (row, col, height, width in the city raster),
     + "targets": FloatTensor[K] and "target_names" when targets are attached,
     + "neighbour", "neighbour_mask" (a second crop of the same tile) when asked for}

Randomness (crop offset, flips) is a pure function of ``(seed, epoch, index)``: an index may be an int (the
fixed grid of crops) or an ``(index, epoch)`` pair from an epoch-aware sampler, so a run is repeatable with any
number of workers and a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from citygen.core import OSM_ATTRIBUTION, settings
from citygen.core.bands import BAND_NAMES, band_layer
from citygen.core.errors import ConfigError, SourceError
from citygen.core.viz import composite

Sample = dict[str, Any]
SPLITS = ("train", "val", "test")


def read_tile_index(root: str | Path) -> gpd.GeoDataFrame:
    """The tile index of a built dataset, with a clear error when the dataset is missing."""
    index = Path(root) / "tiles.parquet"
    if not index.is_file():
        raise SourceError(
            f"no tile index at {index}",
            f"build the dataset first: citygen data build --config configs/data/samples.yaml --out {root}",
        )
    return gpd.read_parquet(index)


def tile_frame(root: str | Path) -> pd.DataFrame:
    """The tile index as a plain DataFrame (training and target measurement need no polygons)."""
    frame = read_tile_index(root)
    return pd.DataFrame(frame.drop(columns=["geometry"], errors="ignore")).reset_index(drop=True)


def _filtered(
    tiles: pd.DataFrame, root: Path, split: str | Sequence[str] | None, cities: Sequence[str] | None
) -> pd.DataFrame:
    if split is not None:
        splits = [split] if isinstance(split, str) else list(split)
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise ConfigError(f"unknown split {bad}", "use train, val or test")
        tiles = tiles[tiles["split"].isin(splits)]
    if cities is not None:
        missing = sorted(set(cities) - set(tiles["city"]))
        if missing:
            raise ConfigError(
                f"cities {missing} have no tiles in {root}", f"available: {', '.join(sorted(set(tiles['city'])))}"
            )
        tiles = tiles[tiles["city"].isin(list(cities))]
    return tiles


class CityTileDataset(Dataset[Sample]):
    """Tiles (or square crops of them) of a dataset built by ``citygen data build``, read lazily with rasterio
    (one open file per city and worker process).

    Args:
        root: dataset folder (default ``citygen.core.settings.data_dir()``).
        tiles: rows of the tile index to read (default: the whole index), then filtered by ``split`` and
            ``cities``.
        bands: channels by name, in order (default: every band, ``valid`` included).
        crop_size: side of the crops in pixels (default: the tile size, one sample per tile).
        augment: random flips (and, unless ``aligned``, random crop offsets) drawn from ``(seed, epoch, index)``.
        aligned: with ``augment``, keep the fixed grid of crops (per-crop targets stay exact).
        samples_per_tile: random crops per tile and epoch when augmenting.
        targets: one row per grid crop (``self.cells``), attached as ``sample["targets"]``.
        neighbours: also return a second random crop of the same tile (Tile2Vec's neighbour).
        transforms: applied to each sample.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        tiles: pd.DataFrame | None = None,
        split: str | Sequence[str] | None = None,
        cities: Sequence[str] | None = None,
        bands: Sequence[str] | None = None,
        crop_size: int | None = None,
        augment: bool = False,
        hflip: bool = True,
        vflip: bool = True,
        rotate90: bool = False,
        aligned: bool = False,
        samples_per_tile: int = 1,
        targets: np.ndarray | None = None,
        target_names: Sequence[str] = (),
        neighbours: bool = False,
        seed: int = 0,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        if neighbours and (not augment or aligned):
            raise ConfigError(
                "neighbour crops need random training crops",
                "set data.random_crop: true and no data.targets (grid-aligned crops have no neighbours)",
            )
        self.root = Path(root) if root is not None else settings.data_dir()
        frame = read_tile_index(self.root) if tiles is None else tiles
        self.tiles = _filtered(frame, self.root, split, cities).reset_index(drop=True)
        self.bands = tuple(bands) if bands is not None else BAND_NAMES
        unknown = [b for b in self.bands if b not in BAND_NAMES]
        if unknown:
            raise ConfigError(f"unknown bands {unknown}", f"choose from: {', '.join(BAND_NAMES)}")
        self.crop_size = int(crop_size or (self.tiles["height"].max() if len(self.tiles) else 1))
        self.augment, self.hflip, self.vflip, self.rotate90 = augment, hflip, vflip, rotate90
        self.aligned, self.neighbours, self.samples_per_tile = aligned, neighbours, samples_per_tile
        self.target_names, self.seed, self.transforms = tuple(target_names), seed, transforms
        s = self.crop_size
        # cells: (tile row in self.tiles, row offset, col offset) of every grid crop
        cells = [
            (i, r, c)
            for i, (h, w) in enumerate(zip(self.tiles["height"], self.tiles["width"], strict=True))
            for r in range(0, int(h) - s + 1, s)
            for c in range(0, int(w) - s + 1, s)
        ]
        self.cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
        self.targets = targets  # one row per cell, or None
        self._rows = list(self.tiles.itertuples(index=False))  # plain tuples: pandas row access is slow
        self._handles: dict[str, Any] = {}
        self._band_idx: dict[str, tuple[list[int], int | None]] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        del state["_rows"]  # namedtuples of a dynamic class do not pickle (spawned workers)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rows = list(self.tiles.itertuples(index=False))

    def __len__(self) -> int:
        if self.augment and not self.aligned:
            return len(self.tiles) * self.samples_per_tile
        return len(self.cells) * (self.samples_per_tile if self.augment else 1)

    def keep_cells(self, keep: np.ndarray) -> None:
        """Drop grid cells (and their targets), e.g. where a conditioning target is not measurable."""
        self.cells = self.cells[keep]
        if self.targets is not None:
            self.targets = self.targets[keep]

    def _open(self, path: str) -> tuple[Any, list[int], int | None]:
        if self._pid != os.getpid():  # forked worker: never share GDAL handles across processes
            self._handles, self._pid = {}, os.getpid()
        ds = self._handles.get(path)
        if ds is None:
            import rasterio

            ds = rasterio.open(self.root / path)
            self._handles[path] = ds
            names = list(ds.descriptions)
            missing = [b for b in self.bands if b not in names]
            if missing:
                raise SourceError(
                    f"{self.root / path} has no band(s) {missing}; it has {names}",
                    "rebuild the dataset with `citygen data build` or choose other bands",
                )
            valid = names.index("valid") + 1 if "valid" in names else None
            self._band_idx[path] = ([names.index(b) + 1 for b in self.bands], valid)
        idx, valid = self._band_idx[path]
        return ds, idx, valid

    def _pick(self, index: int | tuple[int, int]) -> tuple[int, int, int, int, np.random.Generator | None]:
        if isinstance(index, (tuple, list)):
            i, epoch = int(index[0]), int(index[1])
            rng = np.random.default_rng([self.seed, epoch, i])
            if not self.augment or self.aligned:  # grid cells (per-cell targets stay exact), random flips
                cell = i % len(self.cells)
                tile, r, c = (int(v) for v in self.cells[cell])
                return tile, r, c, cell, rng if self.augment else None
            tile = i % len(self.tiles)
            t = self._rows[tile]
            r = int(rng.integers(0, int(t.height) - self.crop_size + 1))
            c = int(rng.integers(0, int(t.width) - self.crop_size + 1))
            return tile, r, c, -1, rng
        if not 0 <= int(index) < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        cell = int(index) % len(self.cells)  # plain ints: the fixed grid
        tile, r, c = (int(v) for v in self.cells[cell])
        return tile, r, c, cell, None

    def _read(self, t: Any, r: int, c: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """The crop at ``(r, c)`` of tile ``t`` and its valid mask, flipped as ``rng`` draws."""
        from rasterio.windows import Window

        ds, idx, valid_idx = self._open(str(t.path))
        s = self.crop_size
        window = Window(int(t.col_off) + c, int(t.row_off) + r, s, s)
        data = ds.read(idx + ([valid_idx] if valid_idx else []), window=window, boundless=False)
        data = np.nan_to_num(data.astype(np.float32, copy=False))
        image = data[: len(idx)]
        mask = data[len(idx) :] if valid_idx else np.ones((1, s, s), np.float32)
        if rng is not None:
            if self.hflip and rng.random() < 0.5:
                image, mask = image[:, :, ::-1], mask[:, :, ::-1]
            if self.vflip and rng.random() < 0.5:
                image, mask = image[:, ::-1, :], mask[:, ::-1, :]
            if self.rotate90:
                k = int(rng.integers(0, 4))
                image, mask = np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k, axes=(1, 2))
        return image, mask

    def __getitem__(self, index: int | tuple[int, int]) -> Sample:
        tile, r, c, cell, rng = self._pick(index)
        t = self._rows[tile]
        s = self.crop_size
        image, mask = self._read(t, r, c, rng)
        res_x = (float(t.maxx) - float(t.minx)) / float(t.width)
        res_y = (float(t.maxy) - float(t.miny)) / float(t.height)
        minx, maxy = float(t.minx) + c * res_x, float(t.maxy) - r * res_y
        present = [bool(getattr(t, f"present_{band_layer(b)}", True)) if band_layer(b) else True for b in self.bands]
        sample: Sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "mask": torch.from_numpy(np.ascontiguousarray(mask > 0.5)),
            "present": torch.tensor(present, dtype=torch.bool),
            "bands": self.bands,
            "crs": str(t.crs),
            "bounds": torch.tensor([minx, maxy - s * res_y, minx + s * res_x, maxy], dtype=torch.float64),
            "city": str(t.city),
            "tile_id": str(t.tile_id),
            "split": str(t.split),
            "window": torch.tensor([int(t.row_off) + r, int(t.col_off) + c, s, s]),
        }
        if self.neighbours and rng is not None:  # a second random crop of the same tile (Tile2Vec's neighbour)
            r2 = int(rng.integers(0, int(t.height) - s + 1))
            c2 = int(rng.integers(0, int(t.width) - s + 1))
            near, near_mask = self._read(t, r2, c2, rng)
            sample["neighbour"] = torch.from_numpy(np.ascontiguousarray(near))
            sample["neighbour_mask"] = torch.from_numpy(np.ascontiguousarray(near_mask > 0.5))
        if self.targets is not None:
            if cell < 0:
                raise ConfigError("conditioning targets need grid-aligned crops (internal: aligned=False)")
            sample["targets"] = torch.from_numpy(self.targets[cell].astype(np.float32))
            sample["target_names"] = self.target_names
        return self.transforms(sample) if self.transforms is not None else sample

    def plot(self, sample: Sample, *, title: str | None = None) -> Any:
        """A matplotlib figure of a sample: a colour composite of the layout plus each channel."""
        return plot_layout(
            sample["image"], bands=sample["bands"], title=title or f"{sample['city']} {sample['tile_id']}"
        )


def collate_tiles(samples: list[Sample]) -> Sample:
    """Stack tensors; keep band / target names once; lists for strings."""
    out: Sample = {}
    for key, value in samples[0].items():
        if key in ("bands", "target_names"):
            out[key] = tuple(value)
        elif isinstance(value, torch.Tensor):
            out[key] = torch.stack([s[key] for s in samples])
        else:
            out[key] = [s[key] for s in samples]
    return out


def plot_layout(image: torch.Tensor | np.ndarray, *, bands: Sequence[str], title: str | None = None) -> Any:
    """A matplotlib figure: the layout's colour composite and one panel per channel."""
    import matplotlib.pyplot as plt

    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    shown = [b for b in bands if b != "valid"]
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(2.6 * (len(shown) + 1), 3.0), squeeze=False)
    axes[0, 0].imshow(composite(array, bands))
    axes[0, 0].set_title("layout")
    for ax, name in zip(axes[0, 1:], shown, strict=True):
        channel = array[list(bands).index(name)]
        ax.imshow(channel, cmap="magma", vmin=0, vmax=max(1.0, float(channel.max())))
        ax.set_title(name)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.text(0.99, 0.01, f"Map data {OSM_ATTRIBUTION}", ha="right", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout()
    return fig
