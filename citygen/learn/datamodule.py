"""Lightning data module over a dataset built by ``citygen data build`` (tile index + one GeoTIFF per city).

Randomness of training samples (crop offset, flips) is a pure function of ``(seed, epoch, index)``: the
:class:`EpochSampler` hands ``(index, epoch)`` pairs to the dataset. That makes a run repeatable with any
number of workers and lets a run resumed from a checkpoint see exactly the batches it would have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Sampler

from citygen.core.bands import BAND_NAMES, band_layer
from citygen.core.errors import ConfigError, SourceError
from citygen.core.settings import data_dir
from citygen.data.dataset import CityTileDataset, collate_tiles, tile_frame

log = logging.getLogger(__name__)

Split = Literal["train", "val", "test"]


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


class CityTileDataModule(L.LightningDataModule):
    """Tiles of a built dataset, by split, with random crops and flips for training.

    Args:
        root: dataset directory (default: ``citygen.core.settings.data_dir()``).
        bands: channels by name, in order (default: every band but ``valid``); ``valid`` is always
            read separately as ``batch["mask"]``.
        crop_size: side of the square crops in pixels (must not exceed the tile size).
        random_crop: training crops at random offsets inside each tile; if False, the fixed grid of
            ``crop_size`` cells (as in evaluation), still with random flips.
        require_bands: drop tiles whose source did not provide the layer of any of these bands;
            otherwise absent bands stay in the batch, flagged in ``batch["present"]``.
        targets: urban-metric targets (names in :data:`citygen.metrics.targets.TARGETS`) to attach per crop as
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
        self.datasets: dict[str, CityTileDataset] = {}

    @property
    def hp(self) -> Any:
        """``hparams`` with attribute access (Lightning types it as a plain mapping)."""
        return self.hparams

    # -- tile selection -------------------------------------------------------------------------
    def tiles(self, split: str) -> pd.DataFrame:
        hp = self.hp
        df = tile_frame(self.root)
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
        hp = self.hp
        return {
            "root": str(self.root.resolve()),
            "bands": list(self.bands),
            "crop_size": int(hp.crop_size),
            "targets": list(hp.targets or []),
            "require_bands": list(hp.require_bands or []),
            "cities": list(hp.cities or []),
            "min_valid_fraction": float(hp.min_valid_fraction),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the data module is configured from the config, not the checkpoint."""

    def prepare_data(self) -> None:
        if self.hp.targets:
            from citygen.learn.conditioning import ensure_targets

            hp = self.hp
            ensure_targets(self.root, hp.crop_size, hp.targets, self.tiles("all"), workers=hp.num_workers)

    def _dataset(self, split: str) -> CityTileDataset:
        if split in self.datasets:
            return self.datasets[split]
        hp = self.hp
        df = self.tiles(split)
        if df.empty:
            raise SourceError(
                f"no {split} tiles in {self.root} (cities={hp.cities}, min_valid_fraction={hp.min_valid_fraction}, "
                f"require_bands={hp.require_bands}, crop_size={hp.crop_size})",
                "build more cities or relax the data filters",
            )
        ds = CityTileDataset(
            self.root,
            tiles=df,
            bands=self.bands,
            crop_size=hp.crop_size,
            augment=split == "train",
            hflip=hp.hflip,
            vflip=hp.vflip,
            rotate90=hp.rotate90,
            aligned=bool(hp.targets) or not hp.random_crop,
            samples_per_tile=hp.samples_per_tile,
            target_names=hp.targets or (),
            neighbours=hp.neighbour_crops and split == "train",
            seed=hp.seed,
        )
        if hp.targets:
            from citygen.learn.conditioning import cell_targets

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
    def _loader(
        self, ds: CityTileDataset, batch_size: int, sampler: Sampler | None, drop_last: bool = False
    ) -> DataLoader:
        hp = self.hp
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
        sampler = EpochSampler(len(ds), seed=self.hp.seed, shuffle=True)
        # a last batch of one would break BatchNorm; drop the remainder when there is a full batch
        return self._loader(ds, self.hp.batch_size, sampler, drop_last=len(ds) > self.hp.batch_size)

    def _eval_loader(self, split: str) -> DataLoader:
        return self._loader(self._dataset(split), self.hp.eval_batch_size or self.hp.batch_size, None)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.hp.predict_split)
