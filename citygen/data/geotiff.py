"""Read and write citygen GeoTIFFs: multi-band, tiled, compressed, with band names and tags.

Layout for random crops: 128 x 128 blocks, one band per block (band interleave), ZSTD (deflate where GDAL
lacks it) with the floating-point predictor. A 64 px training crop of two bands then decompresses a few
small blocks of only those bands; this doubles the loader's first-epoch rate over 256 px deflate blocks
(benchmarks/RESULTS.md).

Writes are atomic: data goes to a temporary file in the target folder that is renamed into place only
when complete, so a crash or Ctrl-C never leaves a half-written GeoTIFF under the final name.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from citygen.core import __version__
from citygen.core.bands import BAND_NAMES, band
from citygen.core.errors import SourceError

BLOCK = 128


@functools.cache
def compression() -> str:
    """``zstd`` when this GDAL build writes it (rasterio's wheels do), else ``deflate``."""
    from rasterio.io import MemoryFile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with (
                MemoryFile() as mem,
                mem.open(driver="GTiff", width=16, height=16, count=1, dtype="float32", compress="zstd") as probe,
            ):
                probe.write(np.zeros((1, 16, 16), np.float32))
        return "zstd"
    except Exception:  # any refusal means: not available in this GDAL
        return "deflate"


@dataclass
class RasterData:
    """A citygen raster read into memory."""

    bands: dict[str, np.ndarray]
    crs: CRS
    transform: Affine
    present: dict[str, bool]
    tags: dict[str, str]

    @property
    def resolution_m(self) -> float:
        return float(self.transform.a)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def open_writer(
    path: Path,
    *,
    crs: CRS,
    transform: Affine,
    width: int,
    height: int,
    present: Mapping[str, bool],
    tags: Mapping[str, object],
) -> Iterator[rasterio.io.DatasetWriter]:
    """Open an atomic GeoTIFF writer holding every band of the vocabulary, with names and tags set."""
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": len(BAND_NAMES),
        "dtype": "float32",
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": compression(),
        "predictor": 3,
        **({"zstd_level": 1} if compression() == "zstd" else {"zlevel": 1}),
        "BIGTIFF": "IF_SAFER",
        "interleave": "band",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.update_tags(
            **{k: v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()},
            citygen_version=__version__,
        )
        for i, name in enumerate(BAND_NAMES, start=1):
            dst.set_band_description(i, name)
            dst.update_tags(i, name=name, unit=band(name).unit, present=str(bool(present.get(name, False))).lower())
        yield dst


def write_window(dst: rasterio.io.DatasetWriter, window: Window, arrays: Mapping[str, np.ndarray]) -> None:
    for i, name in enumerate(BAND_NAMES, start=1):
        dst.write(arrays[name].astype(np.float32, copy=False), i, window=window)


def write_raster(
    path: Path,
    arrays: Mapping[str, np.ndarray],
    *,
    crs: CRS,
    transform: Affine,
    present: Mapping[str, bool],
    tags: Mapping[str, object] | None = None,
) -> Path:
    """Write whole band arrays (e.g. a generated layout) as a citygen GeoTIFF. Missing bands are zeros."""
    shape = next(iter(arrays.values())).shape
    full = {name: arrays.get(name, np.zeros(shape, np.float32)) for name in BAND_NAMES}
    with open_writer(
        Path(path),
        crs=crs,
        transform=transform,
        width=shape[1],
        height=shape[0],
        present=present,
        tags=tags or {},
    ) as dst:
        write_window(dst, Window(0, 0, shape[1], shape[0]), full)
    return Path(path)


def band_presence(src: rasterio.io.DatasetReader) -> dict[str, bool]:
    return {src.descriptions[i - 1]: src.tags(i).get("present", "true") == "true" for i in range(1, src.count + 1)}


def read_raster(path: str | Path, *, window: Window | None = None, bands: list[str] | None = None) -> RasterData:
    """Read a citygen GeoTIFF (or a window of it) into named float32 arrays."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"raster not found: {path}", "build it with `citygen data build` or check the path")
    try:
        with rasterio.open(path) as src:
            names = list(src.descriptions)
            if any(name is None for name in names):
                raise SourceError(
                    f"{path.name} has unnamed bands",
                    "read rasters written by citygen (band descriptions name the bands)",
                )
            wanted = bands or names
            missing = [name for name in wanted if name not in names]
            if missing:
                raise SourceError(f"{path.name} lacks bands {missing}", f"it has: {', '.join(names)}")
            indexes = [names.index(name) + 1 for name in wanted]
            data = src.read(indexes, window=window, out_dtype=np.float32)
            transform = src.window_transform(window) if window is not None else src.transform
            return RasterData(
                bands=dict(zip(wanted, data, strict=True)),
                crs=CRS(src.crs),
                transform=transform,
                present={k: v for k, v in band_presence(src).items() if k in wanted},
                tags=src.tags(),
            )
    except rasterio.errors.RasterioIOError as exc:
        raise SourceError(f"cannot read {path}: {exc}", "the file is corrupt or not a GeoTIFF; rebuild it") from exc
