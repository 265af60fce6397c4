"""Package-wide defaults. Every value can be overridden by an environment variable.

- ``CITYGEN_DATA_DIR``: where ``citygen data build`` writes when no ``--out`` is given, and where the
  experiment configs read from (default ``./data/processed``).
- ``CITYGEN_CACHE_DIR``: downloads from OpenStreetMap (default ``~/.cache/citygen``).
- ``CITYGEN_RUNS_DIR``: training runs and reports (default ``./runs``).
- ``CITYGEN_MAX_PIXELS``: the largest city raster a build accepts (default 2e9 pixels, e.g. 89 km x 89 km at
  2 m: 72 GB of float32 bands); larger requests are refused before anything is allocated.
- ``CITYGEN_CONFIGS_DIR``: the configs the demo and ``citygen configs export`` use (default: the installed
  package data ``citygen.configs``, which is the checkout's top-level ``configs/`` folder).
- ``CITYGEN_CORPUS_DIR``: the research corpus registry and files (default: ``data_pipelines/corpus`` of the
  checkout citygen runs from, else of the working directory).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DEFAULT_RESOLUTION_M = 2.0
DEFAULT_TILE_SIZE = 256
# Sub-pixels per pixel side when burning polygons: 4 gives coverage fractions in steps of 1/16.
DEFAULT_SUPERSAMPLE = 4
# Pixels per side of the windows in which a city is rasterized (bounds peak memory).
RASTER_WINDOW_PX = 2048
# Storey height used to turn a `height` tag into levels, and levels assumed where none are tagged.
STOREY_HEIGHT_M = 3.0
DEFAULT_LEVELS = 1.0


def data_dir() -> Path:
    return Path(os.environ.get("CITYGEN_DATA_DIR", "data/processed"))


def cache_dir() -> Path:
    return Path(os.environ.get("CITYGEN_CACHE_DIR", Path.home() / ".cache" / "citygen"))


def runs_dir() -> Path:
    return Path(os.environ.get("CITYGEN_RUNS_DIR", "runs"))


def repo_root() -> Path | None:
    """The repository checkout holding the package (editable installs), else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "data_pipelines").is_dir() else None


def configs_dir() -> Path:
    """The shipped configs (``data/``, ``experiments/``, ``model/``, ``trainer/``, ``compare/``)."""
    if "CITYGEN_CONFIGS_DIR" in os.environ:
        return Path(os.environ["CITYGEN_CONFIGS_DIR"])
    try:
        installed = Path(str(resources.files("citygen.configs")))
    except ModuleNotFoundError:  # a source tree on sys.path, not installed
        root = repo_root()
        return (root if root is not None else Path.cwd()) / "configs"
    return installed


def corpus_dir() -> Path:
    if "CITYGEN_CORPUS_DIR" in os.environ:
        return Path(os.environ["CITYGEN_CORPUS_DIR"])
    root = repo_root()
    return (root if root is not None else Path.cwd()) / "data_pipelines" / "corpus"


def max_pixels() -> int:
    return int(float(os.environ.get("CITYGEN_MAX_PIXELS", "2e9")))
