"""CityTileDataModule on the real sample dataset (``built_samples``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from citygen.core.errors import ConfigError, SourceError
from citygen.data.dataset import CityTileDataset, tile_frame
from citygen.learn.datamodule import CityTileDataModule, EpochSampler

TARGETS = ["building_coverage", "intersection_density_km2", "green_share"]


def test_batches_select_bands_by_name(built_samples: Path) -> None:
    dm = CityTileDataModule(root=str(built_samples), bands=["buildings", "streets"], crop_size=64, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 2, 64, 64)
    assert batch["image"].dtype == torch.float32
    assert batch["bands"] == ("buildings", "streets")
    assert batch["mask"].shape == (4, 1, 64, 64) and batch["mask"].dtype == torch.bool
    assert batch["bounds"].shape == (4, 4)
    assert set(batch["split"]) == {"train"}
    # present flags follow the tile index: Houston / Vesterbro samples have streets but no buildings
    index = tile_frame(built_samples).set_index("tile_id")
    for i, tile in enumerate(batch["tile_id"]):
        assert batch["present"][i].tolist() == [bool(index.loc[tile, "present_buildings"]), True]
    # crop bounds lie inside the tile bounds and span crop_size pixels
    for i, tile in enumerate(batch["tile_id"]):
        minx, miny, maxx, maxy = batch["bounds"][i].tolist()
        t = index.loc[tile]
        assert t.minx <= minx < maxx <= t.maxx and t.miny <= miny < maxy <= t.maxy
        assert maxx - minx == pytest.approx(64 * (t.maxx - t.minx) / t.width)


def test_splits_do_not_overlap(built_samples: Path) -> None:
    dm = CityTileDataModule(root=str(built_samples), bands=["streets"], crop_size=256)
    ids = {s: set(dm.tiles(s)["tile_id"]) for s in ("train", "val", "test")}
    assert all(ids.values())
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])


def test_training_crops_are_deterministic_per_epoch_and_flips_are_shared(built_samples: Path) -> None:
    dm = CityTileDataModule(root=str(built_samples), bands=["streets", "paths"], crop_size=96, seed=3)
    dm.setup("fit")
    ds = dm.datasets["train"]
    a, b, c = ds[(5, 0)], ds[(5, 0)], ds[(5, 1)]
    assert torch.equal(a["image"], b["image"])
    assert not torch.equal(a["image"], c["image"]) or not torch.equal(a["bounds"], c["bounds"])
    # the augmented crop is the raw window up to one flip pattern applied to every channel and the mask
    t = ds.tiles[ds.tiles["tile_id"] == a["tile_id"]].iloc[0]
    row, col, h, w = a["window"].tolist()
    with rasterio.open(built_samples / t.path) as src:
        names = list(src.descriptions)
        raw = src.read([names.index("streets") + 1, names.index("paths") + 1], window=Window(col, row, w, h))
    raw = torch.from_numpy(raw)
    variants = [raw, raw.flip(-1), raw.flip(-2), raw.flip(-1).flip(-2)]
    assert any(torch.equal(a["image"], v) for v in variants)


def test_neighbour_crops_come_from_the_same_tile(built_samples: Path) -> None:
    dm = CityTileDataModule(
        root=str(built_samples), bands=["streets"], crop_size=64, batch_size=4, neighbour_crops=True, seed=1
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["neighbour"].shape == batch["image"].shape == (4, 1, 64, 64)
    assert batch["neighbour_mask"].shape == batch["mask"].shape
    ds = dm.datasets["train"]
    sample = ds[(7, 0)]
    without = CityTileDataset(ds.root, tiles=ds.tiles, bands=ds.bands, crop_size=64, augment=True, seed=1)[(7, 0)]
    assert torch.equal(sample["image"], without["image"])  # the neighbour draw does not move the crop itself
    tile = ds.tiles[ds.tiles["tile_id"] == sample["tile_id"]].iloc[0]
    with rasterio.open(built_samples / tile.path) as src:  # the neighbour is a flipped window of the same tile
        whole = torch.from_numpy(src.read(list(src.descriptions).index("streets") + 1, window=Window(
            int(tile.col_off), int(tile.row_off), int(tile.width), int(tile.height))))  # fmt: skip
    near = sample["neighbour"][0]
    windows = whole.unfold(0, 64, 1).unfold(1, 64, 1)  # [rows, cols, 64, 64]
    found = any(
        bool((windows == v).flatten(2).all(-1).any())
        for v in (near, near.flip(-1), near.flip(-2), near.flip(-1).flip(-2))
    )
    assert found
    assert "neighbour" not in dm._dataset("val")[0]
    with pytest.raises(ConfigError, match="random training crops"):
        CityTileDataset(
            ds.root, tiles=ds.tiles, bands=ds.bands, crop_size=64, augment=True, aligned=True, neighbours=True
        )


def test_sampler_shuffles_by_epoch() -> None:
    s = EpochSampler(10, seed=1)
    first = list(s)
    assert sorted(i for i, _ in first) == list(range(10)) and {e for _, e in first} == {0}
    assert list(s) == first
    s.set_epoch(1)
    assert [i for i, _ in s] != [i for i, _ in first]


def test_eval_grid_covers_tiles(built_samples: Path) -> None:
    dm = CityTileDataModule(root=str(built_samples), bands=["streets"], crop_size=128, eval_batch_size=8)
    dm.setup("test")
    ds = dm.datasets["test"]
    assert len(ds) == 4 * len(ds.tiles)  # 256 px tiles, 128 px crops
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape[0] == 8 and set(batch["split"]) == {"test"}


def test_workers_open_rasters_lazily(built_samples: Path) -> None:
    dm = CityTileDataModule(root=str(built_samples), bands=["streets"], crop_size=64, batch_size=8, num_workers=2)
    dm.setup("fit")
    assert not dm.datasets["train"]._handles
    batches = [b["image"] for b, _ in zip(dm.train_dataloader(), range(3), strict=False)]
    assert len(batches) == 3 and all(b.shape == (8, 1, 64, 64) for b in batches)
    # same batches in the main process: augmentation depends on (seed, epoch, index) only
    single = CityTileDataModule(root=str(built_samples), bands=["streets"], crop_size=64, batch_size=8)
    single.setup("fit")
    again = [b["image"] for b, _ in zip(single.train_dataloader(), range(3), strict=False)]
    assert all(torch.equal(x, y) for x, y in zip(batches, again, strict=True))


def test_targets_are_measured_once_and_cached(built_samples: Path) -> None:
    dm = CityTileDataModule(
        root=str(built_samples), bands=["streets", "buildings", "green"], crop_size=256, batch_size=2,
        require_bands=["streets", "buildings"], targets=TARGETS,
    )  # fmt: skip
    dm.prepare_data()
    cache = built_samples / "tile_targets.parquet"
    assert cache.exists()
    mtime = cache.stat().st_mtime_ns
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["targets"].shape == (2, 3) and batch["target_names"] == tuple(TARGETS)
    assert torch.isfinite(batch["targets"]).all()
    assert set(batch["city"]) <= {"helsinki_center", "kotka_karhula"}  # the samples with streets and buildings
    cov = batch["image"][:, 1].mean(dim=(1, 2))  # building coverage of a fully valid 256 px tile
    valid = batch["mask"].float().mean(dim=(1, 2, 3))
    for i in range(2):
        if valid[i] == 1:
            assert cov[i].item() == pytest.approx(batch["targets"][i, 0].item(), rel=1e-3)
    dm.prepare_data()
    assert cache.stat().st_mtime_ns == mtime, "second prepare_data must reuse the cache"


def test_bad_settings_fail_clearly(tmp_path: Path, built_samples: Path) -> None:
    with pytest.raises(ConfigError, match="unknown band"):
        CityTileDataModule(root=str(built_samples), bands=["street"])
    with pytest.raises(SourceError, match="citygen data build"):
        CityTileDataModule(root=str(tmp_path)).setup("fit")
    with pytest.raises(SourceError, match="no train tiles"):
        CityTileDataModule(root=str(built_samples), cities=["atlantis"]).setup("fit")


def test_dataset_pickles_without_handles(built_samples: Path) -> None:
    import pickle

    df = tile_frame(built_samples).head(2)
    ds = CityTileDataset(built_samples, tiles=df, bands=["streets"], crop_size=128)
    _ = ds[0]
    assert ds._handles
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {}
    assert np.array_equal(clone[0]["image"].numpy(), ds[0]["image"].numpy())
