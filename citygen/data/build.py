"""Build datasets: city specs -> GeoTIFF per city, tile index, manifest.

A rerun skips cities whose GeoTIFF is complete and was built from the same spec and source files.
Cities build in parallel processes (``workers``) or on a Dask cluster (``executor="dask"``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator, Sequence
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

from citygen import OSM_ATTRIBUTION, __version__, settings
from citygen.bands import BAND_NAMES, LAYER_BANDS
from citygen.data.geotiff import atomic_path, open_writer, write_window
from citygen.data.rasterize import CityRasterizer, grid_for
from citygen.data.sources import load_city, sha256_file
from citygen.data.spec import CitySpec
from citygen.data.tiles import city_tiles, drop_cross_city_conflicts
from citygen.errors import CitygenError, ConfigError, EmptyAreaError

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


def check_raster_size(city: str, width: int, height: int, resolution: float) -> None:
    """Refuse a raster above ``settings.max_pixels()`` before anything is allocated for it."""
    pixels = width * height
    limit = settings.max_pixels()
    if pixels > limit:
        gigabytes = pixels * len(BAND_NAMES) * 4 / 1e9
        raise EmptyAreaError(
            f"city {city!r}: the raster would be {width:,} x {height:,} px at {resolution:g} m ({gigabytes:,.1f} GB of "
            f"float32 bands), above the limit of {limit:,} px",
            "use a coarser --resolution, a smaller area (bbox, dist or `clip`), or raise the limit with "
            "CITYGEN_MAX_PIXELS",
        )


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
            specs, out_dir, workers=workers, executor=executor, scheduler=scheduler, force=force,
            progress=progress, on_result=on_result,
        )  # fmt: skip


def _build_locked(
    specs, out_dir: Path, *, workers, executor, scheduler, force, progress, on_result
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


@contextlib.contextmanager
def dataset_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``DIR/.citygen-build.lock`` (an advisory lock that the OS drops when the process dies) while
    building, so two builds never write one dataset folder at once."""
    path = out_dir / ".citygen-build.lock"
    while True:
        handle = open(path, "a+")  # noqa: SIM115 - held for the duration of the build
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                f"another build is writing {out_dir} (pid {owner})",
                "wait for it to finish, or build into another --out",
            ) from exc
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # the previous holder removed the file between our open and our lock: take the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # nothing left behind; removed while still held (see the loop above)
        handle.close()


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Delete ``.NAME.PID.tmp`` files that a killed build left behind (their process is gone)."""
    removed = []
    for tmp in out_dir.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    if removed:
        log.warning("removed %d temporary files left by an interrupted build in %s", len(removed), out_dir)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Settings every city of one dataset folder shares: tiles of one size and resolution, or `embed` and training
# would mix them.
_SHARED = ("resolution", "tile_size", "stride")


def _source_of(spec: dict[str, Any]) -> dict[str, Any]:
    keys = ("sample", "clip") if spec.get("sample") else ("place", "bbox", "point", "dist", "files", "clip")
    source = {k: spec.get(k) for k in keys if spec.get(k) not in (None, [], "")}
    if "files" in source:
        source["files"] = sorted(f["path"] if isinstance(f, dict) else str(f) for f in source["files"])
    return source


def check_compatible(specs: Sequence[CitySpec], previous: dict[str, Any], out_dir: Path, *, force: bool) -> None:
    """Refuse, before anything is built, a build that would mix tile sizes or resolutions in one folder, or
    silently replace a city built from another source (allowed with ``force``)."""
    cities = previous.get("cities", {})
    if not cities:
        return
    existing = {k: next(iter(cities.values()))["spec"].get(k) for k in _SHARED}
    for spec in specs:
        asked = {"resolution": spec.resolution, "tile_size": spec.tile_size, "stride": spec.tile_stride}
        if existing.get("stride") is None:
            existing["stride"] = existing.get("tile_size")
        if any(existing.get(k) is not None and float(existing[k]) != float(v) for k, v in asked.items()):
            raise ConfigError(
                f"{out_dir} holds tiles of {existing['tile_size']} px (stride {existing['stride']}) at "
                f"{existing['resolution']:g} m; city {spec.id!r} asks {spec.tile_size} px (stride {spec.tile_stride}) "
                f"at {spec.resolution:g} m",
                "build into another --out (one dataset folder holds one tile size and resolution)",
            )
        before = cities.get(spec.id, {}).get("spec")
        if before is not None and not force and _source_of(before) != _source_of(spec.to_dict()):
            raise ConfigError(
                f"city {spec.id!r} in {out_dir} was built from {_source_of(before)}; this build asks {_source_of(spec.to_dict())}",
                "give the new source another id, build into another --out, or pass --force to replace it",
            )


def split_warnings(tiles: pd.DataFrame, cities: Sequence[str]) -> list[str]:
    """One line per city and split that holds no tile (a small city, or one whose blocks all drew train)."""
    out = []
    for city in cities:
        mine = tiles[tiles["city"] == city]
        for split in ("train", "val", "test"):
            if not (mine["split"] == split).any():
                out.append(f"{city}: no {split} tiles ({len(mine)} tiles in all)")
    return out


def _run(specs, out_dir, *, workers, executor, scheduler, force, progress, on_result) -> list[CityResult]:
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
