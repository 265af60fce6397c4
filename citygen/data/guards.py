"""What keeps a dataset folder whole: one build at a time (an OS lock), no temporaries of killed builds, one tile
size and resolution per folder, no silent replacement of a city from another source, no raster above the size
limit. ``citygen data build`` runs every guard before it writes anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from citygen.core import settings
from citygen.core.bands import BAND_NAMES
from citygen.core.errors import ConfigError, EmptyAreaError
from citygen.data.spec import CitySpec

log = logging.getLogger(__name__)


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
        source["files"] = sorted(f["path"] if isinstance(f, dict) else str(f) for f in source["files"] or [])
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
