"""Build datasets: city specs -> GeoTIFF per city, tile index, manifest.

A rerun skips cities whose GeoTIFF is complete and was built from the same spec and source files.
Cities build in parallel processes (``workers``) or on a Dask cluster (``executor="dask"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from citygen.core import OSM_ATTRIBUTION, __version__
from citygen.core.bands import BAND_NAMES, LAYER_BANDS
from citygen.core.errors import CitygenError, ConfigError, EmptyAreaError
from citygen.data.geotiff import atomic_path, open_writer, write_window
from citygen.data.guards import check_compatible, check_raster_size, dataset_lock, remove_stale_temporaries
from citygen.data.rasterize import CityRasterizer, grid_for
from citygen.data.sources import load_city, sha256_file
from citygen.data.spec import CitySpec
from citygen.data.tiles import city_tiles, drop_cross_city_conflicts

log = logging.getLogger(__name__)
Executor = Literal["process", "dask"]
# Bumped whenever the meaning of the rasters changes, so earlier builds are not reused.
RASTER_FORMAT_VERSION = "3"


@dataclass
class CityResult:
    """What building one city produced (or why it failed)."""

    city: str
    status: Literal["built", "skipped", "failed"]
    path: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def summary(self) -> str:
        if self.status == "failed":
            return f"{self.city}: FAILED: {self.error}"
        r = self.record
        size = f"{r['width']}x{r['height']} px at {r['resolution']:g} m ({r['area_km2']:.2f} km2 valid)"
        seconds = sum(r.get("timings_s", {}).values())
        layers = ", ".join(k for k, v in r["present"].items() if v and k != "valid") or "none"
        return f"{self.city}: {self.status} {size}, {r['crs']}, layers: {layers}, {seconds:.1f} s -> {self.path}"


def build_key(spec: CitySpec) -> str:
    """Spec hash plus the hashes of the local source files and the citygen version."""
    parts = [
        spec.key(),
        __version__,
        RASTER_FORMAT_VERSION,
        *(sha256_file(Path(f.path)) for f in spec.files if Path(f.path).is_file()),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def existing_record(path: Path, key: str) -> dict[str, Any] | None:
    """The build record of a complete raster built with ``key``, else None (missing, stale or corrupt)."""
    if not path.is_file():
        return None
    try:
        with rasterio.open(path) as src:
            tags = src.tags()
            if tags.get("build_key") != key or list(src.descriptions) != list(BAND_NAMES):
                return None
            src.read(1, window=((0, min(8, src.height)), (0, min(8, src.width))))
            return json.loads(tags["build_record"])
    except (rasterio.errors.RasterioError, KeyError, json.JSONDecodeError):
        return None


def build_city(spec: CitySpec, out_dir: str | Path, *, force: bool = False) -> CityResult:
    """Build one city's GeoTIFF; never raises for user errors (they come back as a failed result)."""
    out_dir = Path(out_dir)
    path = out_dir / f"{spec.id}.tif"
    try:
        key = build_key(spec)
        record = None if force else existing_record(path, key)
        if record is not None:
            return CityResult(spec.id, "skipped", str(path), record)
        return CityResult(spec.id, "built", str(path), _build(spec, path, key))
    except CitygenError as exc:
        return CityResult(spec.id, "failed", None, error=str(exc))
    except (OSError, rasterio.errors.RasterioError) as exc:  # disk full, permissions; no temporary file is left
        reason = getattr(exc, "strerror", None) or str(exc)
        return CityResult(spec.id, "failed", None, error=f"cannot write {path}: {reason}")


def _build(spec: CitySpec, path: Path, key: str) -> dict[str, Any]:
    city = load_city(spec)
    timings = dict(city.timings_s)
    tight = grid_for(city.extent, crs=city.crs, resolution=spec.resolution)
    if tight.width < spec.tile_size or tight.height < spec.tile_size:
        raise EmptyAreaError(
            f"city {spec.id!r}: the area is {tight.width}x{tight.height} px, smaller than one {spec.tile_size}-px tile",
            f"use a smaller tile_size (at most {min(tight.width, tight.height)}), a finer resolution, or a larger area",
        )
    grid = grid_for(city.extent, crs=city.crs, resolution=spec.resolution, snap_m=spec.tile_stride * spec.resolution)
    check_raster_size(spec.id, grid.width, grid.height, spec.resolution)
    timings["rasterize"], timings["write"] = 0.0, 0.0
    start = time.perf_counter()
    rasterizer = CityRasterizer(city, grid, supersample=spec.supersample)
    timings["rasterize"] += time.perf_counter() - start
    present = {band: city.present[layer] for layer, bands in LAYER_BANDS.items() for band in bands}
    present["valid"] = True
    sums = dict.fromkeys(BAND_NAMES, 0.0)
    buildings = city.features.get("buildings")
    levels_known = (
        float(buildings["levels"].notna().mean()) if buildings is not None and len(buildings) else float("nan")
    )
    record: dict[str, Any] = {
        "city": spec.id,
        "spec": spec.to_dict(),
        "build_key": key,
        "crs": city.crs.to_string(),
        "resolution": spec.resolution,
        "width": grid.width,
        "height": grid.height,
        "bounds": list(grid.bounds),
        "area_km2": city.area_km2,
        "present": present,
        "sources": city.sources,
        "levels_known_share": levels_known,
        "attribution": OSM_ATTRIBUTION,
    }
    tags = {
        "city": spec.id,
        "build_key": key,
        "spec": spec.to_dict(),
        "levels_known_share": f"{levels_known:.4f}",
        "attribution": OSM_ATTRIBUTION,
    }
    with open_writer(
        path,
        crs=city.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        present=present,
        tags=tags,
    ) as dst:
        for window in grid.windows():
            start = time.perf_counter()
            arrays = rasterizer.render(window)
            for name in BAND_NAMES:
                sums[name] += float(arrays[name].sum(dtype=np.float64))
            middle = time.perf_counter()
            write_window(dst, window, arrays)
            timings["rasterize"] += middle - start
            timings["write"] += time.perf_counter() - middle
        valid_px = max(sums["valid"], 1.0)
        record["band_means"] = {name: sums[name] / valid_px for name in BAND_NAMES if name != "valid"}
        # the GeoTIFF carries what the build made, not how long it took: a rebuild gives the same bytes
        dst.update_tags(build_record=json.dumps(record))
    record["timings_s"] = timings
    # peak resident memory of the building process so far (KiB on Linux)
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return record


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "gdal": rasterio.__gdal_version__}
    for name in (
        "citygen",
        "osmnx",
        "geopandas",
        "shapely",
        "rasterio",
        "osmium",
        "numpy",
        "pyproj",
        "networkx",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_dataset(
    specs: Sequence[CitySpec],
    out_dir: str | Path,
    *,
    workers: int = 1,
    executor: Executor = "process",
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    on_result: Callable[[CityResult], None] | None = None,
) -> list[CityResult]:
    """Build every city, then the tile index and manifest of ``out_dir``.

    Cities that earlier runs built into ``out_dir`` stay in the index and manifest. When every city was
    already up to date, the index and manifest are left untouched.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output folder {out_dir}: {exc.strerror}", "choose a folder you can write to"
        ) from exc
    with dataset_lock(out_dir):
        return _build_locked(
            specs,
            out_dir,
            workers=workers,
            executor=executor,
            scheduler=scheduler,
            force=force,
            progress=progress,
            on_result=on_result,
        )


def _build_locked(
    specs: Sequence[CitySpec],
    out_dir: Path,
    *,
    workers: int,
    executor: Executor,
    scheduler: str | None,
    force: bool,
    progress: bool,
    on_result: Callable[[CityResult], None] | None,
) -> list[CityResult]:
    start = time.perf_counter()
    remove_stale_temporaries(out_dir)
    index_path, manifest_path = out_dir / "tiles.parquet", out_dir / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    check_compatible(specs, previous, out_dir, force=force)
    results = _run(
        specs,
        out_dir,
        workers=workers,
        executor=executor,
        scheduler=scheduler,
        force=force,
        progress=progress,
        on_result=on_result,
    )
    done = [r for r in results if r.status != "failed"]
    if not done:
        return results
    unchanged = index_path.is_file() and all(
        r.status == "skipped"
        and previous.get("cities", {}).get(r.city, {}).get("build_key") == r.record.get("build_key")
        for r in done
    )
    if unchanged:
        return results  # keep the index and manifest as they are (caches downstream are keyed on them)
    tile_start = time.perf_counter()
    frames = []
    for result in done:
        spec = next(s for s in specs if s.id == result.city)
        t0 = time.perf_counter()
        frames.append(city_tiles(str(result.path), spec))
        result.record.setdefault("timings_s", {})["tile"] = time.perf_counter() - t0
        result.record["tiles"] = {
            split: int((frames[-1]["split"] == split).sum()) for split in ("train", "val", "test")
        }
    # Cities built into this folder by earlier runs (other configs, --cities) stay in the index, and so does a
    # city that failed this time: its previous GeoTIFF was never touched (writes are atomic).
    current = {r.city for r in done}
    kept = {
        city: record
        for city, record in previous.get("cities", {}).items()
        if city not in current and (out_dir / f"{city}.tif").is_file()
    }
    if kept and index_path.is_file():
        old = gpd.read_parquet(index_path)
        frames.append(old[old["city"].isin(list(kept))])
    tiles = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326)
    tiles, dropped = drop_cross_city_conflicts(tiles)
    for result in done:
        mine = tiles[tiles["city"] == result.city]
        result.record["tiles"] = {split: int((mine["split"] == split).sum()) for split in ("train", "val", "test")}
    warnings = split_warnings(tiles, [r.city for r in done])
    with atomic_path(index_path) as tmp:
        tiles.to_parquet(tmp)
    manifest = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "attribution": OSM_ATTRIBUTION,
        "bands": list(BAND_NAMES),
        "versions": package_versions(),
        "cities": {**kept, **{r.city: r.record for r in done}},
        "failed": {r.city: r.error for r in results if r.status == "failed"},
        "tiles_dropped_cross_city": dropped,
        "warnings": warnings,
        "timings_s": {"total": time.perf_counter() - start, "tile_index": time.perf_counter() - tile_start},
    }
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
    return results


def split_warnings(tiles: pd.DataFrame, cities: Sequence[str]) -> list[str]:
    """One line per city and split that holds no tile (a small city, or one whose blocks all drew train)."""
    out = []
    for city in cities:
        mine = tiles[tiles["city"] == city]
        for split in ("train", "val", "test"):
            if not (mine["split"] == split).any():
                out.append(f"{city}: no {split} tiles ({len(mine)} tiles in all)")
    return out


def _run(
    specs: Sequence[CitySpec],
    out_dir: Path,
    *,
    workers: int,
    executor: Executor,
    scheduler: str | None,
    force: bool,
    progress: bool,
    on_result: Callable[[CityResult], None] | None,
) -> list[CityResult]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(specs), desc="cities", unit="city", disable=not progress)
    results: list[CityResult] = []

    def finish(result: CityResult) -> None:
        results.append(result)
        bar.update(1)
        bar.set_postfix_str(result.city)
        if on_result is not None:
            on_result(result)

    try:
        if executor == "dask":
            from distributed import Client, LocalCluster
            from distributed import as_completed as dask_completed

            cluster = (
                None
                if scheduler
                else LocalCluster(
                    n_workers=max(workers, 1), threads_per_worker=1, processes=True, dashboard_address=None
                )
            )
            with Client(scheduler or cluster) as client:
                futures = [client.submit(build_city, spec, out_dir, force=force, pure=False) for spec in specs]
                for future in dask_completed(futures):
                    finish(future.result())
            if cluster is not None:
                cluster.close()
        elif workers > 1 and len(specs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(build_city, spec, out_dir, force=force) for spec in specs]
                for future in as_completed(futures):
                    finish(future.result())
        else:
            for spec in specs:
                finish(build_city(spec, out_dir, force=force))
    finally:
        bar.close()
    order = {spec.id: i for i, spec in enumerate(specs)}
    return sorted(results, key=lambda r: order[r.city])
