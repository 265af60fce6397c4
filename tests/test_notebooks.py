"""The example notebooks are stored without outputs and are exactly what ``notebooks/make_notebooks.py`` writes.

(They run as tests themselves: ``pytest --nbmake notebooks``.)"""

from __future__ import annotations

import runpy
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_notebooks_are_stored_without_outputs() -> None:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name[:3] for p in paths] == ["01_", "02_", "03_"]
    for path in paths:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {cell.id} has outputs"


def test_notebooks_match_their_generator(tmp_path: Path) -> None:
    generator = runpy.run_path(str(NOTEBOOKS / "make_notebooks.py"))
    generator["main"](tmp_path)
    for name in generator["NOTEBOOKS"]:
        written, stored = (tmp_path / name).read_text(), (NOTEBOOKS / name).read_text()
        assert written == stored, f"{name} differs from make_notebooks.py: edit the generator and rerun it"
