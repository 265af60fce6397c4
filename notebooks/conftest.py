"""When the notebooks run as tests (``pytest --nbmake notebooks``), each works in a folder of its own that is
removed afterwards; run by hand, a notebook keeps its ``citygen-nb-*`` folder for you to look at."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    work = tempfile.mkdtemp(prefix=f"citygen-nb-{item.name.split('.')[0]}-")
    previous = os.environ.get("CITYGEN_NOTEBOOK_DIR")
    os.environ["CITYGEN_NOTEBOOK_DIR"] = work  # the kernel nbmake starts inherits this environment
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CITYGEN_NOTEBOOK_DIR", None)
        else:
            os.environ["CITYGEN_NOTEBOOK_DIR"] = previous
        shutil.rmtree(work, ignore_errors=True)
