"""The tile index: fixed-size pixel windows over each city raster, split spatially into train/val/test.

Splits are assigned to square blocks of tiles (blocks that hold tile origins), never to single tiles. A
tile is kept only if every such block it reaches into has its split, and a last pass drops any tile that
still shares pixels with a tile of another split, so splits never overlap (also with stride < size).
"""

from __future__ import annotations

import hashlib
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely

from citygen.bands import LAYERS
from citygen.data.geotiff import band_presence
from citygen.data.spec import CitySpec, SplitSpec


def assign_block_splits(n_blocks: int, split: SplitSpec, *, city_id: str) -> np.ndarray:
    """Split labels for ``n_blocks`` blocks: a seeded shuffle, at least one val and test block when possible."""
    salt = int(hashlib.sha256(city_id.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([split.seed, salt])
    order = rng.permutation(n_blocks)
    f_train, f_val, f_test = split.fractions
    n_val = round(f_val * n_blocks)
    n_test = round(f_test * n_blocks)
    if n_blocks >= 3:
        n_val = max(n_val, 1 if f_val > 0 else 0)
        n_test = max(n_test, 1 if f_test > 0 else 0)
    n_val, n_test = min(n_val, n_blocks), min(n_test, max(0, n_blocks - n_val))
    labels = np.empty(n_blocks, dtype=object)
    labels[order[:n_val]] = "val"
    labels[order[n_val : n_val + n_test]] = "test"
    labels[order[n_val + n_test :]] = "train" if f_train > 0 or n_blocks < 3 else "test"
    return labels


def _block_sums(mask: np.ndarray, step: int) -> np.ndarray:
    rows, cols = math.ceil(mask.shape[0] / step), math.ceil(mask.shape[1] / step)
    padded = np.zeros((rows * step, cols * step), dtype=np.uint32)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(rows, step, cols, step).sum(axis=(1, 3))


def _drop_cross_split_overlaps(
    tiles: list[tuple[int, int, float, str]], size: int
) -> list[tuple[int, int, float, str]]:
    """Remove tiles that share pixels with a tile of another split (only possible with stride < size)."""
    if len(tiles) < 2 or all(t[0] % size == 0 and t[1] % size == 0 for t in tiles):
        return tiles  # tiles on a grid of their own size cannot overlap
    rows = np.array([t[0] for t in tiles])
    cols = np.array([t[1] for t in tiles])
    labels = np.array([t[3] for t in tiles])
    overlap = (np.abs(rows[:, None] - rows[None]) < size) & (np.abs(cols[:, None] - cols[None]) < size)
    conflict = overlap & (labels[:, None] != labels[None])
    keep = np.ones(len(tiles), dtype=bool)
    for i in np.argsort(-conflict.sum(axis=1)):  # drop the most conflicting first
        if keep[i] and (conflict[i] & keep).any():
            keep[i] = False
    return [tile for tile, k in zip(tiles, keep, strict=True) if k]


def city_tiles(path: str, spec: CitySpec) -> gpd.GeoDataFrame:
    """Tile rows for one city raster (geometry in EPSG:4326, bounds in the city CRS)."""
    size, stride = spec.tile_size, spec.tile_stride
    with rasterio.open(path) as src:
        valid = src.read(list(src.descriptions).index("valid") + 1) > 0.5
        transform, crs, presence = src.transform, src.crs, band_presence(src)
    height, width = valid.shape
    step = math.gcd(size, stride)
    sums = _block_sums(valid, step)
    per_tile = size // step
    candidates = [
        (
            row,
            col,
            float(sums[row // step : row // step + per_tile, col // step : col // step + per_tile].sum())
            / (size * size),
        )
        for row in range(0, height - size + 1, stride)
        for col in range(0, width - size + 1, stride)
    ]
    candidates = [c for c in candidates if c[2] > 0 and c[2] >= spec.min_valid_fraction]
    block_tiles = spec.split.block_tiles
    occupied = sorted({(row // (block_tiles * stride), col // (block_tiles * stride)) for row, col, _ in candidates})
    if len(occupied) < 3 and block_tiles > 1:
        # A small city: fall back to one-tile blocks so it still gets val and test tiles.
        block_tiles = 1
        occupied = sorted({(row // stride, col // stride) for row, col, _ in candidates})
    block_px = block_tiles * stride
    block_label = dict(zip(occupied, assign_block_splits(len(occupied), spec.split, city_id=spec.id), strict=True))
    kept: list[tuple[int, int, float, str]] = []
    for row, col, fraction in candidates:
        label = block_label[(row // block_px, col // block_px)]
        touched = {
            block_label.get((r, c), label)  # blocks holding no tile origin constrain nothing here
            for r in range(row // block_px, (row + size - 1) // block_px + 1)
            for c in range(col // block_px, (col + size - 1) // block_px + 1)
        }
        if touched == {label}:
            kept.append((row, col, fraction, label))
    kept = _drop_cross_split_overlaps(kept, size)
    records = []
    for row, col, fraction, label in kept:
        minx, maxy = transform @ (col, row)
        maxx, miny = transform @ (col + size, row + size)
        records.append(
            {
                "tile_id": f"{spec.id}:{row}:{col}",
                "city": spec.id,
                "path": f"{spec.id}.tif",
                "row_off": row,
                "col_off": col,
                "height": size,
                "width": size,
                "split": label,
                "valid_fraction": fraction,
                "crs": crs.to_string(),
                "resolution": float(transform.a),
                "minx": minx,
                "miny": miny,
                "maxx": maxx,
                "maxy": maxy,
                **{f"present_{layer}": presence.get(layer, False) for layer in LAYERS},
            }
        )
    frame = pd.DataFrame.from_records(records, columns=_COLUMNS)
    boxes = shapely.box(frame["minx"], frame["miny"], frame["maxx"], frame["maxy"]) if len(frame) else []
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(boxes, crs=crs).to_crs(4326).values, crs=4326)


_COLUMNS = [
    "tile_id", "city", "path", "row_off", "col_off", "height", "width", "split", "valid_fraction", "crs",
    "resolution", "minx", "miny", "maxx", "maxy", *[f"present_{layer}" for layer in LAYERS],
]  # fmt: skip


def tiles_overlap_across_splits(tiles: pd.DataFrame) -> bool:
    """True if any two tiles of the same city but different splits share pixels (a leakage check)."""
    for _, group in tiles.groupby("city"):
        by_split = {name: g for name, g in group.groupby("split")}
        names = list(by_split)
        for i, a_name in enumerate(names):
            a = by_split[a_name]
            for b_name in names[i + 1 :]:
                b = by_split[b_name]
                rows = (a["row_off"].to_numpy()[:, None] < (b["row_off"] + b["height"]).to_numpy()[None]) & (
                    b["row_off"].to_numpy()[None] < (a["row_off"] + a["height"]).to_numpy()[:, None]
                )
                cols = (a["col_off"].to_numpy()[:, None] < (b["col_off"] + b["width"]).to_numpy()[None]) & (
                    b["col_off"].to_numpy()[None] < (a["col_off"] + a["width"]).to_numpy()[:, None]
                )
                if (rows & cols).any():
                    return True
    return False
