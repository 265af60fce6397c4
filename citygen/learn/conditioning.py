"""Per-crop urban-metric targets of a dataset for conditional generation, measured once and cached.

Every target is measured with :func:`citygen.metrics.targets.measure_targets`. Targets are cached per dataset in
``ROOT/tile_targets.parquet`` (one row per tile and grid cell), keyed by a fingerprint of the tile index and
of :data:`~citygen.metrics.targets.MEASURE_VERSION`, so a rebuilt dataset or a changed measure is re-measured.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from citygen.core.errors import ConfigError
from citygen.core.parallel import process_map
from citygen.data.dataset import tile_frame
from citygen.metrics.targets import MEASURE_VERSION, get_target, measure_targets

log = logging.getLogger(__name__)

CACHE_NAME = "tile_targets.parquet"


def _fingerprint(root: Path) -> str:
    h = hashlib.sha1(f"measure {MEASURE_VERSION}".encode())
    for name in ("tiles.parquet", "manifest.json"):
        path = root / name
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _read_cache(root: Path) -> pd.DataFrame | None:
    path = root / CACHE_NAME
    if not path.exists():
        return None
    df = pd.read_parquet(path)
    if df.empty or df["fingerprint"].iloc[0] != _fingerprint(root):
        log.info("%s is stale (dataset rebuilt or the measures changed); re-measuring", path)
        return None
    return df


def _measure_tile(root: Path, tile: pd.Series, cell_size: int) -> list[dict[str, object]]:
    import rasterio
    from rasterio.windows import Window

    rows = []
    with rasterio.open(root / str(tile.path)) as ds:
        names = list(ds.descriptions)
        data = ds.read(window=Window(int(tile.col_off), int(tile.row_off), int(tile.width), int(tile.height)))
    resolution = (float(tile.maxx) - float(tile.minx)) / float(tile.width)
    for r in range(0, int(tile.height) - cell_size + 1, cell_size):
        for c in range(0, int(tile.width) - cell_size + 1, cell_size):
            bands = {n: data[i, r : r + cell_size, c : c + cell_size] for i, n in enumerate(names)}
            values = measure_targets(bands, resolution)
            for name in values:  # a target whose layer the source did not provide is not measurable
                if not bool(tile.get(f"present_{get_target(name).layer}", True)):
                    values[name] = float("nan")
            rows.append({"tile_id": str(tile.tile_id), "cell_size": cell_size, "row": r, "col": c, **values})
    return rows


def ensure_targets(
    root: Path, cell_size: int, names: Sequence[str], tiles: pd.DataFrame | None = None, workers: int = 0
) -> pd.DataFrame:
    """Measure (or load) targets of every grid cell of ``tiles`` (default: all); writes the cache atomically.

    ``workers > 1`` measures tiles in that many processes.
    """
    root = Path(root)
    cache = _read_cache(root)
    index = tile_frame(root) if tiles is None else tiles
    index = index[(index["height"] >= cell_size) & (index["width"] >= cell_size)]
    done: set[str] = set()
    if cache is not None:
        have = cache[cache["cell_size"] == cell_size]
        if all(n in have.columns for n in names):
            done = set(have["tile_id"])
    todo = index[~index["tile_id"].isin(done)]
    if todo.empty:
        assert cache is not None
        _check_names(cache, names)
        return cache
    log.info("measuring %s for %d tiles (cell %d px); cached in %s", list(names), len(todo), cell_size, root)
    tiles_todo = [tile for _, tile in todo.iterrows()]
    n = len(tiles_todo)
    parts = process_map(_measure_tile, [root] * n, tiles_todo, [cell_size] * n, workers=workers)
    rows = [row for part in parts for row in part]
    new = pd.DataFrame(rows)
    if cache is not None:
        cache = cache[~((cache["cell_size"] == cell_size) & cache["tile_id"].isin(set(new["tile_id"])))]
        new = pd.concat([cache.drop(columns=["fingerprint"]), new], ignore_index=True)
    new["fingerprint"] = _fingerprint(root)
    tmp = root / f".{CACHE_NAME}.{os.getpid()}.tmp"
    new.to_parquet(tmp, index=False)
    os.replace(tmp, root / CACHE_NAME)
    _check_names(new, names)
    return new


def _check_names(df: pd.DataFrame, names: Sequence[str]) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        known = [c for c in df.columns if c not in ("tile_id", "cell_size", "row", "col", "fingerprint")]
        raise ConfigError(f"unknown conditioning target(s) {missing}", f"the metric suite provides {known}")


def cell_targets(
    root: Path, tiles: pd.DataFrame, cells: np.ndarray, cell_size: int, names: Sequence[str]
) -> np.ndarray:
    """Targets ``[len(cells), len(names)]`` for grid cells ``(tile row, row offset, col offset)``."""
    cache = ensure_targets(root, cell_size, names, tiles)
    cache = cache[cache["cell_size"] == cell_size].set_index(["tile_id", "row", "col"])
    keys = [(str(tiles.iloc[int(t)].tile_id), int(r), int(c)) for t, r, c in cells]
    return cache.loc[keys, list(names)].to_numpy(dtype=np.float64)
