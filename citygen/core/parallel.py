"""One way to spread independent measurements over processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def process_map(fn: Callable[..., T], *args: Iterable[Any], workers: int = 0, chunksize: int = 1) -> list[T]:
    """``[fn(*items) for items in zip(*args)]``, in ``workers`` processes when ``workers`` > 1 and there is more
    than one item (``fn`` and the items must pickle), in this process otherwise."""
    columns = [list(a) for a in args]
    n = len(columns[0]) if columns else 0
    if workers > 1 and n > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, *columns, chunksize=chunksize))
    return [fn(*items) for items in zip(*columns, strict=True)]
