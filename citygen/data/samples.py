"""The registry of sample cities shipped in ``citygen/samples`` (real OSM extracts, ODbL)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from citygen.bands import LAYERS
from citygen.errors import ConfigError


def samples_dir() -> Path:
    return Path(str(resources.files("citygen") / "samples"))


@dataclass(frozen=True)
class Sample:
    id: str
    city: str
    area: str
    network_type: str
    files: tuple[tuple[str, tuple[str, ...] | None], ...]  # (path relative to samples_dir, layers)
    source: str
    extent_km: tuple[float, float]  # width, height of the covered area (checked by the tests)

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id,
            "city": self.city,
            "area": self.area,
            "layers": list(self.layers),
            "extent_km": list(self.extent_km),
            "network_type": self.network_type,
            "files": [path for path, _ in self.files],
            "source": self.source,
        }

    def file_sources(self) -> tuple:
        from citygen.data.spec import FileSource

        return tuple(FileSource(path=str(samples_dir() / path), layers=layers) for path, layers in self.files)

    @property
    def layers(self) -> tuple[str, ...]:
        """Layers the sample's files provide (an unrestricted OSM extract provides every layer)."""
        provided: set[str] = set()
        for _, layers in self.files:
            provided.update(layers or LAYERS)
        return tuple(layer for layer in LAYERS if layer in provided)


@cache
def list_samples() -> tuple[Sample, ...]:
    raw = yaml.safe_load((samples_dir() / "registry.yaml").read_text())
    out = []
    for entry in raw["samples"]:
        files = []
        for item in entry["files"]:
            item = {"path": item} if isinstance(item, str) else item
            files.append((item["path"], tuple(item["layers"]) if item.get("layers") else None))
        out.append(
            Sample(
                id=entry["id"],
                city=entry["city"],
                area=entry["area"],
                network_type=entry["network_type"],
                files=tuple(files),
                source=entry["source"],
                extent_km=tuple(float(v) for v in entry.get("extent_km", (float("nan"), float("nan")))),
            )
        )
    return tuple(out)


def get_sample(sample_id: str) -> Sample:
    for sample in list_samples():
        if sample.id == sample_id:
            return sample
    ids = [s.id for s in list_samples()]
    close = difflib.get_close_matches(sample_id, ids, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"unknown sample id {sample_id!r}", f"{hint}run `citygen data samples` to list the {len(ids)} samples"
    )
