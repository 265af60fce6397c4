"""Test setup: offline, no W&B, headless plots, temporary data and cache folders.

`built_samples` builds a few real sample cities once per test session; tests that need a dataset use it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ["WANDB_MODE"] = "disabled"
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("CITYGEN_RUNS_DIR", "/tmp/citygen-test-runs")

# Cities of the shared test dataset: Houston and Copenhagen street networks, Helsinki with every layer,
# Copenhagen footprints for building coverage, Kotka (every layer) so the pix2pix demo has full tiles to train on.
SAMPLE_CITIES = ("houston_montrose", "cph_vesterbro", "helsinki_center", "cph_indre_by_buildings", "kotka_karhula")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else address
    if self.family == socket.AF_UNIX or (
        isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1"))
    ):
        return _real_connect(self, address)
    raise OSError(f"tests must not use the network (tried to connect to {address})")


@pytest.fixture(autouse=True)
def _offline_and_isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
    monkeypatch.setenv("CITYGEN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def built_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset built from real sample cities at 2 m (see SAMPLE_CITIES)."""
    from citygen.data.build import build_dataset
    from citygen.data.spec import load_config

    root = Path(__file__).resolve().parents[1]
    specs = [s for s in load_config(root / "configs" / "data" / "samples.yaml") if s.id in SAMPLE_CITIES]
    out = tmp_path_factory.mktemp("built_samples")
    results = build_dataset(specs, out, progress=False)
    failed = [r.summary() for r in results if r.status == "failed"]
    assert not failed, failed
    return out
