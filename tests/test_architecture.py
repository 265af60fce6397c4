"""The package's shape (issue 19): layers import only downward, no circles, small modules, every package installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "citygen"


def _pyproject() -> dict:
    """pyproject.toml as a dict (setuptools' reader: tomllib is Python 3.11+, citygen supports 3.10)."""
    from setuptools.config.pyprojecttoml import load_file

    return load_file(ROOT / "pyproject.toml")


def test_import_contracts_hold() -> None:
    """The import-linter contracts of pyproject (layers core -> data -> metrics -> learn -> workflows -> cli, plain
    networks, no circles), as `make check` runs them."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]


def test_an_upward_import_breaks_the_layer_contract() -> None:
    """The layer contract is not vacuous: a data module importing a workflow is reported."""
    import grimp
    from importlinter.contracts.layers import LayersContract

    graph = grimp.build_graph("citygen", cache_dir=None)
    config = _pyproject()["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    contract = LayersContract(name="layers", session_options={"root_packages": ["citygen"]},
                              contract_options={"layers": layers})  # fmt: skip
    assert contract.check(graph, verbose=False).kept
    graph.add_import(importer="citygen.data.tiles", imported="citygen.workflows.compare", line_number=1,
                     line_contents="from citygen.workflows.compare import compare")  # fmt: skip
    assert not contract.check(graph, verbose=False).kept


def _listed_packages() -> set[str]:
    return set(_pyproject()["tool"]["setuptools"]["packages"])


def test_every_package_is_installed() -> None:
    """pyproject lists the packages (so `configs/` can install as `citygen.configs`): the list must match the tree."""
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py") if "__pycache__" not in p.parts
    }
    assert _listed_packages() == on_disk | {"citygen.configs"}
    assert (ROOT / "configs" / "__init__.py").is_file()


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400, "split the module (docs/architecture.md says where)"


def test_pix2pix_task_is_thin() -> None:
    source = (PACKAGE / "learn" / "tasks" / "pix2pix.py").read_text()
    assert len(source.splitlines()) < 300
    tree = ast.parse(source)
    step = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "training_step")
    assert step.end_lineno is not None and step.end_lineno - step.lineno + 1 < 30
