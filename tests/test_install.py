"""A plain `pip install .` into a fresh virtual environment runs `citygen demo --quick` from an empty folder (issue 19):
the configs and the sample registry install with the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_quick_runs_after_a_plain_pip_install(tmp_path: Path) -> None:
    # what the package is built from; copied so the build leaves nothing in the checkout
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "citygen", "configs"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"

    def run(*args: str | Path, cwd: Path = tmp_path, timeout: int = 1800) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CITYGEN_", "PYTHONPATH", "VIRTUAL_ENV"))}
        done = subprocess.run([str(a) for a in args], cwd=cwd, env={**env, "WANDB_MODE": "disabled"},
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])

    # the CPU build of torch first, as the Makefile does (a bare `torch` would pull the CUDA build)
    run(python, "-m", "pip", "install", "--quiet", "torch==2.13.0")
    run(python, "-m", "pip", "install", "--quiet", source)
    empty = tmp_path / "empty"
    empty.mkdir()
    run(venv / "bin" / "citygen", "configs", "export", "my_configs", cwd=empty)
    assert (empty / "my_configs" / "experiments" / "pix2pix_demo.yaml").is_file()
    run(venv / "bin" / "citygen", "demo", "--quick", cwd=empty, timeout=3600)
    assert (empty / "runs" / "demo" / "report.json").is_file() and (
        empty / "data" / "processed" / "tiles.parquet"
    ).is_file()
