"""The registry of real OpenStreetMap places citygen knows: the samples shipped in ``citygen/samples`` (small,
installed with the package, for the demo and tests) and the research corpus in the repository's
``data_pipelines/corpus`` (larger, not installed; see its ``registry.yaml``). (c) OpenStreetMap contributors, ODbL.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from citygen.core import settings
from citygen.core.bands import LAYERS
from citygen.core.errors import ConfigError, SourceError


def samples_dir() -> Path:
    return Path(str(resources.files("citygen") / "samples"))


@dataclass(frozen=True)
class RegisteredFile:
    path: str  # relative to the registry's folder
    layers: tuple[str, ...] | None  # None: the layers the file holds
    sha256: str | None = None


@dataclass(frozen=True)
class Sample:
    """A registered place: where its files are, what they hold, where they came from."""

    id: str
    city: str
    area: str
    network_type: str
    files: tuple[RegisteredFile, ...]
    source: str
    extent_km: tuple[float, float] = (float("nan"), float("nan"))  # width, height (samples; checked by tests)
    root: str = ""  # folder the file paths are relative to
    corpus: bool = False  # True: the research corpus (repository), False: a sample installed with the package
    clip: tuple[float, float, float, float] | None = None
    repository: str | None = None
    commit: str | None = None
    repository_licence: str | None = None
    osm_date: str | None = None
    licence: str = "ODbL-1.0"

    @property
    def country(self) -> str:
        return self.city.rsplit(",", 1)[-1].strip()

    @property
    def layers(self) -> tuple[str, ...]:
        """Layers the place's files are declared to provide (a file without a declaration: every layer it
        holds, decided when it is read)."""
        provided: set[str] = set()
        for item in self.files:
            provided.update(item.layers or LAYERS)
        return tuple(layer for layer in LAYERS if layer in provided)

    def origin(self) -> str:
        if self.repository:
            return f"{self.repository}@{self.commit}" if self.commit else self.repository
        return self.source

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "city": self.city,
            "country": self.country,
            "area": self.area,
            "corpus": self.corpus,
            "layers": list(self.layers),
            "extent_km": None if any(v != v for v in self.extent_km) else list(self.extent_km),
            "clip": list(self.clip) if self.clip else None,
            "network_type": self.network_type,
            "files": [item.path for item in self.files],
            "source": self.source,
            "repository": self.repository,
            "commit": self.commit,
            "osm_date": self.osm_date,
            "licence": self.licence,
        }


def _pair(values: Any) -> tuple[float, float]:
    a, b = (float(v) for v in values)
    return a, b


def _box(values: Any) -> tuple[float, float, float, float]:
    west, south, east, north = (float(v) for v in values)
    return west, south, east, north


def _files(entry: dict[str, Any]) -> tuple[RegisteredFile, ...]:
    out = []
    for item in entry["files"]:
        item = {"path": item} if isinstance(item, str) else item
        layers = tuple(item["layers"]) if item.get("layers") else None
        out.append(RegisteredFile(path=item["path"], layers=layers, sha256=item.get("sha256")))
    return tuple(out)


@cache
def list_samples() -> tuple[Sample, ...]:
    """The samples installed with the package."""
    raw = yaml.safe_load((samples_dir() / "registry.yaml").read_text())
    return tuple(
        Sample(
            id=entry["id"],
            city=entry["city"],
            area=entry["area"],
            network_type=entry["network_type"],
            files=_files(entry),
            source=entry["source"],
            extent_km=_pair(entry.get("extent_km", (float("nan"), float("nan")))),
            root=str(samples_dir()),
        )
        for entry in raw["samples"]
    )


def _corpus_raw() -> dict[str, Any]:
    path = settings.corpus_dir() / "registry.yaml"
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"the corpus registry {path} is not valid YAML: {exc}") from exc
    return raw if isinstance(raw, dict) else {}


@cache
def list_corpus() -> tuple[Sample, ...]:
    """The research corpus (empty outside a checkout of the repository unless $CITYGEN_CORPUS_DIR is set)."""
    root = settings.corpus_dir()
    out = []
    for entry in _corpus_raw().get("corpus", []):
        clip = entry.get("clip")
        out.append(
            Sample(
                id=entry["id"],
                city=entry["city"],
                area=entry["area"],
                network_type=entry.get("network_type", "all"),
                files=_files(entry),
                source=entry["source"],
                root=str(root),
                corpus=True,
                clip=_box(clip) if clip else None,
                repository=entry.get("repository"),
                commit=entry.get("commit"),
                repository_licence=entry.get("repository_licence"),
                osm_date=str(entry["osm_date"]) if entry.get("osm_date") else None,
                licence=entry.get("licence", "ODbL-1.0"),
            )
        )
    return tuple(out)


@cache
def aliases() -> dict[str, str]:
    """Places registered under a second name because their files are the same bytes as a sample's."""
    return {item["id"]: item["same_as"] for item in _corpus_raw().get("aliases", [])}


def list_registered() -> tuple[Sample, ...]:
    """Every registered place: the samples, then the corpus."""
    return list_samples() + list_corpus()


def get_sample(sample_id: str) -> Sample:
    sample_id = aliases().get(sample_id, sample_id)
    for sample in list_registered():
        if sample.id == sample_id:
            return sample
    ids = [s.id for s in list_registered()]
    close = difflib.get_close_matches(sample_id, ids, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"unknown sample id {sample_id!r}", f"{hint}run `citygen data samples` to list the {len(ids)} registered places"
    )


def check_file(path: Path, *, sha256: str | None, origin: str | None, actual_sha256: str | None = None) -> None:
    """Refuse a registered file that is missing or whose bytes differ from the registry."""
    where = f" (registered for {origin})" if origin else ""
    if not path.is_file():
        raise SourceError(
            f"registered file missing: {path}{where}",
            "restore it from the repository (git checkout -- PATH) or re-run its data_pipelines/ script",
        )
    if sha256 is not None and actual_sha256 is not None and actual_sha256 != sha256:
        raise SourceError(
            f"registered file corrupt or changed: {path}{where}: sha256 {actual_sha256[:16]} is not the registered {sha256[:16]}",
            "restore it from the repository (git checkout -- PATH) or re-run its data_pipelines/ script",
        )
