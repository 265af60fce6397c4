"""Lightning data module over a dataset built by ``citygen data build`` (tile index + one GeoTIFF per city).

Randomness of training samples (crop offset, flips) is a pure function of ``(seed, epoch, index)``: the
:class:`EpochSampler` hands ``(index, epoch)`` pairs to the dataset. That makes a run repeatable with any
number of workers and lets a run resumed from a checkpoint see exactly the batches it would have seen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from citygen.bands import BAND_NAMES, LAYER_BANDS
from citygen.errors import ConfigError, SourceError
from citygen.settings import data_dir

log = logging.getLogger(__name__)

BAND_LAYER: dict[str, str] = {b: layer for layer, bands in LAYER_BANDS.items() for b in bands}
Split = Literal["train", "val", "test"]


def band_layer(name: str) -> str | None:
    """The vector layer a band is burnt from (None for ``valid``)."""
    return BAND_LAYER.get(name)


def read_tile_index(root: Path) -> pd.DataFrame:
    """The tile index as a plain DataFrame (the polygons are not needed for training)."""
    from citygen.data.dataset import read_tile_index as read_geo_index

    df = read_geo_index(root)
    return pd.DataFrame(df.drop(columns=["geometry"], errors="ignore")).reset_index(drop=True)


class EpochSampler(Sampler):
    """Yields ``(index, epoch)``; shuffles with a generator seeded by ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` every epoch (also through its DDP sampler wrapper).
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True) -> None:
        self.length, self.seed, self.shuffle, self.epoch = length, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.arange(self.length)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        return iter([(int(i), self.epoch) for i in order])


class TileCrops(Dataset):
    """Crops of tiles, read lazily with rasterio (one open file handle per city and process).

    ``index`` is an int (deterministic grid crop ``cells[index]``) or ``(index, epoch)`` from
    :class:`EpochSampler` (random crop and flips drawn from ``(seed, epoch, index)``).
    """

    def __init__(
        self,
        root: Path,
        tiles: pd.DataFrame,
        bands: Sequence[str],
        crop_size: int,
        *,
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
    ) -> None:
        if neighbours and (not augment or aligned):
            raise ConfigError(
                "neighbour crops need random training crops",
                "set data.random_crop: true and no data.targets (grid-aligned crops have no neighbours)",
            )
        self.root = Path(root)
        self.tiles = tiles.reset_index(drop=True)
        self.bands = tuple(bands)
        self.crop_size = crop_size
        self.augment, self.hflip, self.vflip, self.rotate90 = augment, hflip, vflip, rotate90
        self.aligned = aligned
        self.neighbours = neighbours
        self.samples_per_tile = samples_per_tile
        self.target_names = tuple(target_names)
        self.seed = seed
        # cells: (tile row in self.tiles, row offset, col offset) of every grid crop
        cells = []
        for i, t in enumerate(self.tiles.itertuples()):
            for r in range(0, int(t.height) - crop_size + 1, crop_size):
                for c in range(0, int(t.width) - crop_size + 1, crop_size):
                    cells.append((i, r, c))
        self.cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
        self._rows = list(self.tiles.itertuples(index=False))  # plain tuples: pandas row access is slow
        self.targets = targets  # one row per cell, or None
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
        cell = int(index) % len(self.cells)  # plain ints (e.g. a replaced sampler): the fixed grid
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

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        tile, r, c, cell, rng = self._pick(index)
        t = self._rows[tile]
        s = self.crop_size
        image, mask = self._read(t, r, c, rng)
        res_x = (float(t.maxx) - float(t.minx)) / float(t.width)
        res_y = (float(t.maxy) - float(t.miny)) / float(t.height)
        minx = float(t.minx) + c * res_x
        maxy = float(t.maxy) - r * res_y
        present = [bool(getattr(t, f"present_{band_layer(b)}", True)) if band_layer(b) else True for b in self.bands]
        sample: dict[str, Any] = {
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
        return sample


def collate_tiles(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep band / target names once; lists for strings."""
    out: dict[str, Any] = {}
    for key, value in samples[0].items():
        if key in ("bands", "target_names"):
            out[key] = tuple(value)
        elif isinstance(value, torch.Tensor):
            out[key] = torch.stack([s[key] for s in samples])
        else:
            out[key] = [s[key] for s in samples]
    return out


class CityTileDataModule(L.LightningDataModule):
    """Tiles of a built dataset, by split, with random crops and flips for training.

    Args:
        root: dataset directory (default: ``citygen.settings.data_dir()``).
        bands: channels by name, in order (default: every band but ``valid``); ``valid`` is always
            read separately as ``batch["mask"]``.
        crop_size: side of the square crops in pixels (must not exceed the tile size).
        random_crop: training crops at random offsets inside each tile; if False, the fixed grid of
            ``crop_size`` cells (as in evaluation), still with random flips.
        require_bands: drop tiles whose source did not provide the layer of any of these bands;
            otherwise absent bands stay in the batch, flagged in ``batch["present"]``.
        targets: urban-metric targets (``citygen.metrics.raster.tile_targets`` keys) to attach per crop as
            ``batch["targets"]``; computed once and cached in ``ROOT/tile_targets.parquet``. Training crops
            are then grid-aligned so each crop's targets are exact.
        min_valid_fraction: drop tiles with less data coverage.
        max_tiles: keep at most this many tiles per split (first by tile_id), for quick experiments.
        samples_per_tile: random crops drawn from every training tile per epoch.
        neighbour_crops: training samples also hold a second random crop of the same tile
            (``batch["neighbour"]``, ``batch["neighbour_mask"]``), for the autoencoder's
            ``contrastive_weight``.
        predict_split: tiles ``predict`` embeds (``all`` = every split).
    """

    def __init__(
        self,
        root: str | None = None,
        bands: list[str] | None = None,
        crop_size: int = 256,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        hflip: bool = True,
        vflip: bool = True,
        rotate90: bool = False,
        random_crop: bool = True,
        samples_per_tile: int = 1,
        neighbour_crops: bool = False,
        min_valid_fraction: float = 0.5,
        cities: list[str] | None = None,
        require_bands: list[str] | None = None,
        targets: list[str] | None = None,
        max_tiles: int | None = None,
        predict_split: Literal["train", "val", "test", "all"] = "all",
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        bands = list(bands) if bands is not None else [b for b in BAND_NAMES if b != "valid"]
        unknown = [b for b in [*bands, *(require_bands or [])] if b not in BAND_NAMES]
        if unknown:
            raise ConfigError(f"unknown band(s) {unknown}", f"choose from {', '.join(BAND_NAMES)}")
        if crop_size < 8:
            raise ConfigError(f"crop_size {crop_size} is too small")
        # store the root as text so checkpoints stay loadable with weights_only=True
        root = str(Path(root if root is not None else data_dir()).resolve())
        self.save_hyperparameters()
        # LightningCLI saves the parsed config (root may be null there): record the resolved values
        self.hparams.update(root=root, bands=bands)
        self.root = Path(root)
        self.bands = bands
        self.datasets: dict[str, TileCrops] = {}

    # -- tile selection -------------------------------------------------------------------------
    def tiles(self, split: str) -> pd.DataFrame:
        hp = self.hparams
        df = read_tile_index(self.root)
        df = df[df["split"] == split] if split != "all" else df
        if hp.cities:
            df = df[df["city"].isin(hp.cities)]
        if "valid_fraction" in df.columns:
            df = df[df["valid_fraction"] >= hp.min_valid_fraction]
        for b in hp.require_bands or []:
            col = f"present_{band_layer(b)}"
            if band_layer(b) and col in df.columns:
                df = df[df[col].astype(bool)]
        df = df[(df["height"] >= hp.crop_size) & (df["width"] >= hp.crop_size)]
        df = df.sort_values("tile_id")
        if hp.max_tiles is not None:
            df = df.head(hp.max_tiles)
        return df.reset_index(drop=True)

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints: where and what the model was trained on (``citygen evaluate`` reads it)."""
        hp = self.hparams
        return {"root": str(self.root.resolve()), "bands": list(self.bands), "crop_size": int(hp.crop_size),
                "targets": list(hp.targets or []), "require_bands": list(hp.require_bands or []),
                "cities": list(hp.cities or []), "min_valid_fraction": float(hp.min_valid_fraction)}  # fmt: skip

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the data module is configured from the config, not the checkpoint."""

    def prepare_data(self) -> None:
        if self.hparams.targets:
            from citygen.tasks.conditioning import ensure_targets

            hp = self.hparams
            ensure_targets(self.root, hp.crop_size, hp.targets, self.tiles("all"), workers=hp.num_workers)

    def _dataset(self, split: str) -> TileCrops:
        if split in self.datasets:
            return self.datasets[split]
        hp = self.hparams
        df = self.tiles(split)
        if df.empty:
            raise SourceError(
                f"no {split} tiles in {self.root} (cities={hp.cities}, min_valid_fraction={hp.min_valid_fraction}, "
                f"require_bands={hp.require_bands}, crop_size={hp.crop_size})",
                "build more cities or relax the data filters",
            )
        ds = TileCrops(
            self.root, df, self.bands, hp.crop_size, augment=split == "train", hflip=hp.hflip, vflip=hp.vflip,
            rotate90=hp.rotate90, aligned=bool(hp.targets) or not hp.random_crop, samples_per_tile=hp.samples_per_tile,
            target_names=hp.targets or (), neighbours=hp.neighbour_crops and split == "train", seed=hp.seed,
        )  # fmt: skip
        if hp.targets:
            from citygen.tasks.conditioning import cell_targets

            ds.targets = cell_targets(self.root, df, ds.cells, hp.crop_size, hp.targets)
            ok = np.isfinite(ds.targets).all(axis=1)
            if not ok.all():
                log.info("%s: %d of %d crops have unmeasurable targets; dropped", split, (~ok).sum(), len(ok))
                ds.keep_cells(ok)
            if len(ds.cells) == 0:
                raise SourceError(f"no {split} crops with measurable targets {hp.targets} in {self.root}")
        self.datasets[split] = ds
        return ds

    def setup(self, stage: str) -> None:
        splits = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": []}[stage]
        for split in splits:
            self._dataset(split)
        log.info("data %s: %s", self.root, {k: len(v) for k, v in self.datasets.items()})

    # -- loaders --------------------------------------------------------------------------------
    def _loader(self, ds: TileCrops, batch_size: int, sampler: Sampler | None, drop_last: bool = False) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=hp.num_workers,
            collate_fn=collate_tiles,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
            # a private generator: worker seeds do not draw from (and shift) the global torch RNG
            generator=torch.Generator().manual_seed(hp.seed),
        )

    def train_dataloader(self) -> DataLoader:
        ds = self._dataset("train")
        sampler = EpochSampler(len(ds), seed=self.hparams.seed, shuffle=True)
        # a last batch of one would break BatchNorm; drop the remainder when there is a full batch
        return self._loader(ds, self.hparams.batch_size, sampler, drop_last=len(ds) > self.hparams.batch_size)

    def _eval_loader(self, split: str) -> DataLoader:
        return self._loader(self._dataset(split), self.hparams.eval_batch_size or self.hparams.batch_size, None)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.hparams.predict_split)
