"""City specs: what to fetch for a city and how to rasterize it, validated from YAML.

A build config holds optional ``defaults`` and a list of ``cities``. Each city names exactly one source:
``sample`` (a shipped sample id), ``place`` (an OSM place name), ``bbox`` ([west, south, east, north] in
degrees), ``point`` ([lat, lon]) with ``dist`` (metres), or ``files`` (local OSM/GraphML/GeoJSON files).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from citygen.core.bands import LAYERS
from citygen.core.errors import ConfigError
from citygen.core.settings import DEFAULT_RESOLUTION_M, DEFAULT_SUPERSAMPLE, DEFAULT_TILE_SIZE
from citygen.data.layers import NETWORK_TYPES

SOURCE_KEYS = ("sample", "place", "bbox", "point", "files")


@dataclass(frozen=True)
class FileSource:
    """A local file and the layers to take from it (None: every layer it can provide)."""

    path: str
    layers: tuple[str, ...] | None = None
    sha256: str | None = None  # registered files: the bytes the registry vouches for
    origin: str | None = None  # registered files: the place and repository they came from


@dataclass(frozen=True)
class SplitSpec:
    """Spatial split: square blocks of ``block_tiles`` x ``block_tiles`` tiles go whole to one split."""

    block_tiles: int = 4
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0


@dataclass(frozen=True)
class CitySpec:
    id: str
    sample: str | None = None
    place: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    point: tuple[float, float] | None = None
    dist: float | None = None
    files: tuple[FileSource, ...] = ()
    network_type: str = "all"
    layers: tuple[str, ...] = LAYERS
    resolution: float = DEFAULT_RESOLUTION_M
    tile_size: int = DEFAULT_TILE_SIZE
    stride: int | None = None
    min_valid_fraction: float = 0.5
    supersample: int = DEFAULT_SUPERSAMPLE
    osm_date: str | None = None
    # [west, south, east, north] in degrees: local files are cut to this box (huge extracts, documented extents)
    clip: tuple[float, float, float, float] | None = None
    split: SplitSpec = field(default_factory=SplitSpec)

    @property
    def tile_stride(self) -> int:
        return self.stride or self.tile_size

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def key(self) -> str:
        """A stable hash of the spec (first 16 hex digits of SHA-256)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def request_key(self) -> str:
        """A hash of what is downloaded (source, network type, layers, date): keys the download cache."""
        request = {
            k: self.to_dict()[k] for k in ("place", "bbox", "point", "dist", "network_type", "layers", "osm_date")
        }
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]


_CITY_KEYS = tuple(f.name for f in dataclasses.fields(CitySpec))
_DEFAULT_KEYS = tuple(k for k in _CITY_KEYS if k not in ("id", *SOURCE_KEYS, "dist"))
_SPLIT_KEYS = tuple(f.name for f in dataclasses.fields(SplitSpec))


def _check_keys(mapping: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown key {key!r} in {where}", f"{hint}allowed keys: {', '.join(allowed)}")


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} in {where} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} in {where} must be a finite number, got {value!r}")
    return float(value)


def parse_city(
    raw: dict[str, Any], *, defaults: dict[str, Any] | None = None, base_dir: Path | None = None
) -> CitySpec:
    """Validate one city mapping (plus defaults) into a :class:`CitySpec`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"each city must be a mapping, got {raw!r}", "write `- id: my_city` plus one source key")
    where = f"city {raw.get('id', '?')!r}"
    _check_keys(raw, _CITY_KEYS, where)
    merged: dict[str, Any] = {**(defaults or {}), **raw}
    city_id = merged.get("id")
    if not isinstance(city_id, str) or not city_id or not city_id.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(
            f"{where}: `id` must be a name of letters, digits, '_' or '-'",
            "for example `id: houston_montrose`",
        )
    sources = [key for key in SOURCE_KEYS if merged.get(key) not in (None, [], "")]
    if len(sources) != 1:
        raise ConfigError(
            f"{where} must name exactly one source, found {sources or 'none'}",
            f"use one of: {', '.join(SOURCE_KEYS)}",
        )
    kwargs: dict[str, Any] = {"id": city_id}
    if merged.get("sample") is not None:
        kwargs.update(_sample_kwargs(str(merged["sample"])))
    if merged.get("place") is not None:
        kwargs["place"] = str(merged["place"])
    if merged.get("bbox") is not None:
        bbox = merged["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ConfigError(f"{where}: bbox must be [west, south, east, north] in degrees, got {bbox!r}")
        west, south, east, north = (_number(v, "bbox", where) for v in bbox)
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise ConfigError(
                f"{where}: bbox {list(bbox)} is empty or out of range",
                "give [west, south, east, north] with west < east and south < north (degrees)",
            )
        kwargs["bbox"] = (west, south, east, north)
    if merged.get("point") is not None:
        point = merged["point"]
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise ConfigError(f"{where}: point must be [lat, lon], got {point!r}")
        lat, lon = (_number(v, "point", where) for v in point)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ConfigError(f"{where}: point {list(point)} is not [lat, lon] in degrees")
        dist = _number(merged.get("dist", 1000), "dist", where)
        if dist <= 0:
            raise ConfigError(f"{where}: dist must be positive (metres), got {dist}")
        kwargs.update(point=(lat, lon), dist=dist)
    if merged.get("files"):
        kwargs["files"] = _parse_files(merged["files"], where, base_dir)
    for key in (
        "network_type",
        "layers",
        "resolution",
        "tile_size",
        "stride",
        "min_valid_fraction",
        "supersample",
        "osm_date",
        "split",
        "clip",
    ):
        if key in merged and merged[key] is not None:
            kwargs[key] = merged[key]
    return _validated(CitySpec(**_coerce(kwargs, where)), where)


def _parse_files(value: Any, where: str, base_dir: Path | None) -> tuple[FileSource, ...]:
    entries = value if isinstance(value, list) else [value]
    out = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or "path" not in entry:
            raise ConfigError(f"{where}: each file must be a path or {{path: ..., layers: [...]}}, got {entry!r}")
        _check_keys(entry, ("path", "layers"), f"{where} files")
        path = Path(str(entry["path"])).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        layers = tuple(entry["layers"]) if entry.get("layers") else None
        out.append(FileSource(path=str(path), layers=layers))
    return tuple(out)


def _sample_kwargs(sample_id: str) -> dict[str, Any]:
    from citygen.data.samples import get_sample  # the registry builds specs too

    sample = get_sample(sample_id)
    return {
        "sample": sample.id,
        "files": tuple(
            FileSource(
                path=str(Path(sample.root) / item.path),
                layers=item.layers,
                sha256=item.sha256,
                origin=f"{sample.id} ({sample.origin()})",
            )
            for item in sample.files
        ),
        "network_type": sample.network_type,
        "clip": sample.clip,
    }


def _coerce(kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    if "layers" in kwargs:
        layers = kwargs["layers"]
        if isinstance(layers, str):
            layers = [layers]
        kwargs["layers"] = tuple(layers)
    if kwargs.get("clip") is not None:
        clip = kwargs["clip"]
        if not isinstance(clip, (list, tuple)) or len(clip) != 4:
            raise ConfigError(f"{where}: clip must be [west, south, east, north] in degrees, got {clip!r}")
        west, south, east, north = (_number(v, "clip", where) for v in clip)
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise ConfigError(f"{where}: clip {list(clip)} is empty or out of range", "give west < east, south < north")
        kwargs["clip"] = (west, south, east, north)
    if "split" in kwargs and isinstance(kwargs["split"], dict):
        _check_keys(kwargs["split"], _SPLIT_KEYS, f"{where} split")
        split = dict(kwargs["split"])
        if "fractions" in split:
            fractions = split["fractions"]
            if not isinstance(fractions, (list, tuple)) or len(fractions) != 3:
                raise ConfigError(
                    f"{where}: split fractions must be a list of three numbers (train, val, test), got {fractions!r}",
                    "for example `fractions: [0.7, 0.15, 0.15]`",
                )
            split["fractions"] = tuple(_number(f, "split fractions", where) for f in fractions)
        if "block_tiles" in split:
            value = split["block_tiles"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"{where}: split block_tiles must be a whole number of tiles, at least 1, got {value!r}",
                    "for example `block_tiles: 2` (blocks of 2 x 2 tiles go whole to one split)",
                )
        if "seed" in split and (isinstance(split["seed"], bool) or not isinstance(split["seed"], int)):
            raise ConfigError(f"{where}: split seed must be a whole number, got {split['seed']!r}")
        kwargs["split"] = SplitSpec(**split)
    for key in ("resolution", "min_valid_fraction"):
        if key in kwargs:
            kwargs[key] = _number(kwargs[key], key, where)
    for key in ("tile_size", "stride", "supersample"):
        if key in kwargs:
            value = kwargs[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{key} in {where} must be a whole number of pixels, got {value!r}")
    return kwargs


def _validated(spec: CitySpec, where: str) -> CitySpec:
    if spec.resolution <= 0:
        raise ConfigError(
            f"{where}: resolution must be positive (metres per pixel), got {spec.resolution}",
            "for example `resolution: 2.0`",
        )
    if spec.tile_size <= 0 or spec.tile_stride <= 0:
        raise ConfigError(f"{where}: tile_size and stride must be positive, got {spec.tile_size}/{spec.tile_stride}")
    if spec.supersample < 1:
        raise ConfigError(f"{where}: supersample must be at least 1, got {spec.supersample}")
    if spec.network_type not in NETWORK_TYPES:
        raise ConfigError(
            f"{where}: unknown network_type {spec.network_type!r}", f"use one of: {', '.join(NETWORK_TYPES)}"
        )
    unknown = [layer for layer in spec.layers if layer not in LAYERS]
    if unknown or not spec.layers:
        raise ConfigError(f"{where}: unknown layers {unknown or '(none given)'}", f"choose from: {', '.join(LAYERS)}")
    for source in spec.files:
        bad = [layer for layer in source.layers or () if layer not in LAYERS]
        if bad:
            raise ConfigError(
                f"{where}: unknown layers {bad} for file {source.path}", f"choose from: {', '.join(LAYERS)}"
            )
    fractions = spec.split.fractions
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"{where}: split fractions must be three non-negative numbers summing to 1, got {fractions}")
    if not 0 <= spec.min_valid_fraction <= 1:
        raise ConfigError(f"{where}: min_valid_fraction must lie in [0, 1]")
    return spec


def load_config(path: str | Path) -> list[CitySpec]:
    """Read a build config (``defaults`` + ``cities``) and validate every city."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path}", "pass an existing YAML file, e.g. configs/data/samples.yaml"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or "cities" not in raw:
        raise ConfigError(f"{path} has no `cities` list", "write `cities:` followed by `- id: ...` entries")
    _check_keys(raw, ("defaults", "cities"), str(path))
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"`defaults` in {path} must be a mapping")
    _check_keys(defaults, _DEFAULT_KEYS, f"{path} defaults")
    cities = raw["cities"]
    if not isinstance(cities, list) or not cities:
        raise ConfigError(f"`cities` in {path} must be a non-empty list")
    specs = [parse_city(city, defaults=defaults, base_dir=path.parent) for city in cities]
    ids = [spec.id for spec in specs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"duplicate city ids in {path}: {duplicates}", "give every city its own id")
    return specs
