"""The tile index: fixed-size pixel windows over each city raster, split spatially into train/val/test.

Splits are assigned to square blocks of tiles, never to single tiles, by location: builds snap every raster
to a grid of the tile stride in its UTM zone, and a block's split is a hash of the zone, the block's place
on that grid and the seed (:func:`block_split`). Overlapping extracts (central Copenhagen and Vesterbro, say)
therefore put one place in one split. A tile is kept only if every block it reaches into has its split, and
a last pass drops any tile that still shares pixels with a tile of another split, so splits never overlap
(also with stride < size). Across cities, :func:`drop_cross_city_conflicts` removes what is left (cities in
different zones or with other block sizes) when the dataset index is written.
"""

from __future__ import annotations

import hashlib
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely

from citygen.core.bands import LAYERS
from citygen.data.geotiff import band_presence
from citygen.data.spec import CitySpec, SplitSpec


def block_split(crs_key: str, block_m: float, ix: int, iy: int, split: SplitSpec) -> str:
    """The split of one block of the shared grid: a pure function of where it is (CRS, block size, column,
    row) and the seed, so every extract that covers a place gives it the same split."""
    u = _block_draw(crs_key, block_m, ix, iy, split.seed)
    f_train, f_val, _ = split.fractions
    return "train" if u < f_train else ("val" if u < f_train + f_val else "test")


def _block_draw(crs_key: str, block_m: float, ix: int, iy: int, seed: int) -> float:
    """A uniform number in [0, 1) that depends only on the block's place and the seed."""
    text = f"{crs_key}:{block_m:g}:{ix}:{iy}:{seed}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16) / float(1 << 60)


def _ensure_every_split(label: dict[tuple[int, int], str], split: SplitSpec, crs_key: str, block_m: float) -> None:
    """A city of three blocks or more that drew no val (or test) block gets one: the train block whose hash
    lies nearest that split's range. Where such a block overlaps another city's tiles of another split, the
    dataset's cross-city pass (:func:`drop_cross_city_conflicts`) removes the conflict."""
    if len(label) < 3:
        return
    for wanted, fraction in (("val", split.fractions[1]), ("test", split.fractions[2])):
        train = [b for b, v in label.items() if v == "train"]
        if fraction <= 0 or wanted in label.values() or len(train) < 2:
            continue
        score = [_block_draw(crs_key, block_m, *b, split.seed) for b in train]
        label[train[int(np.argmax(score))]] = wanted


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
    # Blocks of `block_tiles` x `block_tiles` tile strides on the grid shared by every city of the UTM zone
    # (builds snap their rasters to it), labelled by location.
    res = float(transform.a)
    origin_col, origin_row = round(transform.c / (stride * res)), round(transform.f / (stride * res))

    def block_of(row: int, col: int, block_tiles: int) -> tuple[int, int]:
        gx = origin_col + col // stride  # tile column of the shared grid (x grows with col)
        gy = origin_row - row // stride - 1  # tile row of the shared grid from the south (y falls with row)
        return gx // block_tiles, gy // block_tiles

    block_tiles = spec.split.block_tiles
    if block_tiles > 1 and len({block_of(row, col, block_tiles) for row, col, _ in candidates}) < 3:
        block_tiles = 1  # a small city: one-tile blocks, so it can still hold tiles of every split
    block_m, crs_key = block_tiles * stride * res, crs.to_string()
    blocks = sorted({block_of(row, col, block_tiles) for row, col, _ in candidates})
    label = {b: block_split(crs_key, block_m, *b, spec.split) for b in blocks}
    _ensure_every_split(label, spec.split, crs_key, block_m)

    def label_of(row: int, col: int) -> str:
        b = block_of(row, col, block_tiles)
        return label[b] if b in label else block_split(crs_key, block_m, *b, spec.split)

    kept: list[tuple[int, int, float, str]] = []
    for row, col, fraction in candidates:
        # every stride cell the tile covers must lie in blocks of one split (stride < size reaches over)
        labels = {label_of(r, c) for r in range(row, row + size, stride) for c in range(col, col + size, stride)}
        if len(labels) == 1:
            kept.append((row, col, fraction, labels.pop()))
    kept = _drop_cross_split_overlaps(kept, size)
    records = []
    for row, col, fraction, tile_split in kept:
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
                "split": tile_split,
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
    "tile_id",
    "city",
    "path",
    "row_off",
    "col_off",
    "height",
    "width",
    "split",
    "valid_fraction",
    "crs",
    "resolution",
    "minx",
    "miny",
    "maxx",
    "maxy",
    *[f"present_{layer}" for layer in LAYERS],
]


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


def drop_cross_city_conflicts(tiles: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, int]:
    """Drop tiles that overlap a tile of another city in another split (a place in two splits).

    Of each conflicting pair the tile of the city with fewer tiles goes. Returns the kept tiles and the
    number dropped. Tiles that merely touch (shared edges on the common grid) do not conflict.
    """
    if tiles.empty or tiles["city"].nunique() < 2:
        return tiles, 0
    geometry = tiles.geometry.values
    tree = shapely.STRtree(geometry)
    left, right = tree.query(geometry, predicate="intersects")
    cities, splits = tiles["city"].to_numpy(), tiles["split"].to_numpy()
    pairs = (left < right) & (cities[left] != cities[right]) & (splits[left] != splits[right])
    left, right = left[pairs], right[pairs]
    if not len(left):
        return tiles, 0
    overlap = shapely.area(shapely.intersection(geometry[left], geometry[right]))
    real = overlap > 1e-6 * np.minimum(shapely.area(geometry[left]), shapely.area(geometry[right]))
    size = tiles["city"].map(tiles["city"].value_counts()).to_numpy()
    drop = np.zeros(len(tiles), dtype=bool)
    for i, j in zip(left[real], right[real], strict=True):
        if drop[i] or drop[j]:
            continue
        drop[j if (size[j], cities[j]) < (size[i], cities[i]) else i] = True
    return tiles[~drop].reset_index(drop=True), int(drop.sum())
