"""Compiled kernels for pedestrian sheds: a bounded Dijkstra with sparse per-source output, and the shed
lengths and convex-hull areas computed from it, over CSR arrays (numba, installed with skan).

``scipy.sparse.csgraph.dijkstra`` with ``limit`` returns a dense row per source; cutting local submatrices
and scanning dense rows cost more than the search itself on street networks, where a shed reaches a few
hundred of many thousand nodes. Here each source's search touches only the nodes it reaches, and its result
is a list of (node, distance) pairs. :func:`citygen.metrics.walkability.limited_distances` (scipy) stays the
reference the tests and ``benchmarks/bench_metrics.py`` check these distances against.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numba
import numpy as np
from numba import njit
from scipy import sparse

T = TypeVar("T")
# A 4-ary heap: half the levels of a binary one, its children side by side in memory (27 % faster here).
ARITY = 4


@njit(cache=True, inline="always")
def _sift_up(keys: np.ndarray, items: np.ndarray, where: np.ndarray, i: int, key: float, item: int) -> None:
    """Place ``item`` with ``key`` at heap slot ``i`` or above (``where``: each item's slot)."""
    while i > 0:
        parent = (i - 1) // ARITY
        if keys[parent] <= key:
            break
        keys[i], items[i] = keys[parent], items[parent]
        where[items[i]] = i
        i = parent
    keys[i], items[i] = key, item
    where[item] = i


@njit(cache=True, inline="always")
def _pop(keys: np.ndarray, items: np.ndarray, where: np.ndarray, size: int) -> int:
    """Remove the root (read it before calling); returns the new size."""
    size -= 1
    if size == 0:
        return 0
    key, item = keys[size], items[size]
    i = 0
    while True:  # sift down to the smallest of up to ARITY children
        first = ARITY * i + 1
        if first >= size:
            break
        child, smallest = first, keys[first]
        for c in range(first + 1, min(first + ARITY, size)):
            if keys[c] < smallest:
                child, smallest = c, keys[c]
        if smallest >= key:
            break
        keys[i], items[i] = smallest, items[child]
        where[items[i]] = i
        i = child
    keys[i], items[i] = key, item
    where[item] = i
    return size


@njit(cache=True, nogil=True)
def _bounded_dijkstra(
    indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, sources: np.ndarray, limit: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dijkstra from each source up to ``limit``, with an indexed 4-ary heap (a node's key decreases in place, so
    the heap holds each node at most once) and a reset of only the nodes a search touched."""
    n = len(indptr) - 1
    dist = np.full(n, np.inf)
    where = np.full(n, -1, np.int64)  # slot in the heap; -1: not yet reached, -2: settled
    offsets = np.zeros(len(sources) + 1, np.int64)
    capacity = max(16, 8 * n)
    nodes_out = np.empty(capacity, np.int64)
    dist_out = np.empty(capacity, np.float64)
    touched = np.empty(n, np.int64)
    heap_keys = np.empty(n, np.float64)
    heap_items = np.empty(n, np.int64)
    k = 0
    for s in range(len(sources)):
        src = sources[s]
        dist[src] = 0.0
        touched[0] = src
        n_touched = 1
        heap_keys[0], heap_items[0], where[src] = 0.0, src, 0
        size = 1
        while size > 0:
            d, u = heap_keys[0], heap_items[0]
            size = _pop(heap_keys, heap_items, where, size)
            where[u] = -2
            if k >= len(nodes_out):  # grow the output
                nodes_out = np.concatenate((nodes_out, np.empty(len(nodes_out), np.int64)))
                dist_out = np.concatenate((dist_out, np.empty(len(dist_out), np.float64)))
            nodes_out[k] = u
            dist_out[k] = d
            k += 1
            for j in range(indptr[u], indptr[u + 1]):
                v = indices[j]
                nd = d + weights[j]
                if nd <= limit and nd < dist[v]:
                    slot = where[v]
                    if slot == -1:  # first reached: a new heap entry
                        touched[n_touched] = v
                        n_touched += 1
                        slot = size
                        size += 1
                    dist[v] = nd
                    _sift_up(heap_keys, heap_items, where, slot, nd, v)
        offsets[s + 1] = k
        for t in range(n_touched):  # reset only what this search touched
            dist[touched[t]] = np.inf
            where[touched[t]] = -1
    return offsets, nodes_out[:k], dist_out[:k]


def bounded_dijkstra(
    adjacency: sparse.csr_matrix, sources: np.ndarray, limit_m: float, *, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network distances up to ``limit_m`` from each source over a symmetric CSR matrix of edge lengths.

    Returns ``(offsets, nodes, dist)``: the nodes reached from ``sources[i]`` (itself included) and their
    distances are ``nodes[offsets[i]:offsets[i + 1]]`` and ``dist[...]``, in order of distance. ``threads``
    (default: numba's thread count, the CPU cores) search disjoint runs of sources at once (the kernel
    releases the GIL).
    """
    adjacency = sparse.csr_matrix(adjacency)
    arrays = (
        adjacency.indptr.astype(np.int64),
        adjacency.indices.astype(np.int64),
        adjacency.data.astype(np.float64),
    )
    sources = np.asarray(sources, dtype=np.int64)
    found = _in_threads(
        lambda lo, hi: _bounded_dijkstra(*arrays, sources[lo:hi], float(limit_m)), len(sources), threads
    )
    if len(found) == 1:
        return found[0]
    shifts = np.cumsum([0] + [len(nodes) for _, nodes, _ in found[:-1]])
    offsets = np.concatenate([[0]] + [o[1:] + shift for (o, _, _), shift in zip(found, shifts, strict=True)])
    return offsets, np.concatenate([f[1] for f in found]), np.concatenate([f[2] for f in found])


@njit(cache=True)
def _hull_area(x: np.ndarray, y: np.ndarray) -> float:
    """Area of the convex hull of points (Andrew's monotone chain; 0 for fewer than 3 or collinear points)."""
    m = len(x)
    if m < 3:
        return 0.0
    by_y = np.argsort(y, kind="mergesort")
    order = by_y[np.argsort(x[by_y], kind="mergesort")]  # by x, then y
    px, py = x[order], y[order]
    hx = np.empty(2 * m, np.float64)
    hy = np.empty(2 * m, np.float64)
    h = 0
    for i in range(m):  # lower hull
        while (
            h >= 2
            and (hx[h - 1] - hx[h - 2]) * (py[i] - hy[h - 2]) - (hy[h - 1] - hy[h - 2]) * (px[i] - hx[h - 2]) <= 0
        ):
            h -= 1
        hx[h], hy[h] = px[i], py[i]
        h += 1
    lower = h + 1
    for i in range(m - 2, -1, -1):  # upper hull
        while (
            h >= lower
            and (hx[h - 1] - hx[h - 2]) * (py[i] - hy[h - 2]) - (hy[h - 1] - hy[h - 2]) * (px[i] - hx[h - 2]) <= 0
        ):
            h -= 1
        hx[h], hy[h] = px[i], py[i]
        h += 1
    area = 0.0
    for i in range(h - 1):  # shoelace, relative to the first vertex (projected coordinates are large)
        ax, ay, bx, by = hx[i] - hx[0], hy[i] - hy[0], hx[i + 1] - hx[0], hy[i + 1] - hy[0]
        area += ax * by - bx * ay
    return abs(area) / 2.0


@njit(cache=True, nogil=True)
def _shed_figures(
    offsets: np.ndarray,
    nodes: np.ndarray,
    dist: np.ndarray,
    incidence_ptr: np.ndarray,
    incidence: np.ndarray,
    edges: np.ndarray,
    length: np.ndarray,
    xy: np.ndarray,
    radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    m = len(offsets) - 1
    out_length = np.zeros(m)
    out_area = np.zeros(m)
    reached = np.full(len(xy), np.inf)
    for s in range(m):
        a, b = offsets[s], offsets[s + 1]
        for k in range(a, b):
            reached[nodes[k]] = dist[k]
        total = 0.0
        inside = a
        for k in range(a, b):
            du = dist[k]
            if du > radius:
                break  # nodes come in order of distance
            inside = k + 1
            u = nodes[k]
            for j in range(incidence_ptr[u], incidence_ptr[u + 1]):
                e = incidence[j]
                v = edges[e, 1] if edges[e, 0] == u else edges[e, 0]
                if v == u:  # a loop is listed once and lies in reach with its node
                    total += length[e]
                    continue
                dv = reached[v]
                if dv <= radius:  # reached from both ends: each end adds half
                    total += min(length[e], (radius - du) + (radius - dv)) / 2.0
                else:
                    total += min(length[e], radius - du)
        out_length[s] = total
        sel = nodes[a:inside]
        out_area[s] = _hull_area(xy[sel, 0].copy(), xy[sel, 1].copy())
        for k in range(a, b):
            reached[nodes[k]] = np.inf
    return out_length, out_area


def incidence_lists(edges: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists of the edges at each node (a self-loop listed once)."""
    u, v = edges[:, 0], edges[:, 1]
    ids = np.arange(len(edges))
    keep = u != v
    owner = np.concatenate([u, v[keep]])
    edge_ids = np.concatenate([ids, ids[keep]])
    order = np.argsort(owner, kind="stable")
    ptr = np.zeros(n_nodes + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=n_nodes), out=ptr[1:])
    return ptr, edge_ids[order].astype(np.int64)


def shed_figures(
    *,
    reach: tuple[np.ndarray, np.ndarray, np.ndarray],
    edges: np.ndarray,
    length_m: np.ndarray,
    node_xy: np.ndarray,
    radius_m: float,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per source of ``reach`` (:func:`bounded_dijkstra` run to at least ``radius_m``): the street length within
    ``radius_m`` (edges partly reached count with their reached part) and the convex-hull area of the nodes
    reached."""
    offsets, nodes, dist = reach
    ptr, incidence = incidence_lists(edges, len(node_xy))
    fixed = (
        ptr,
        incidence,
        np.asarray(edges, dtype=np.int64),
        np.asarray(length_m, dtype=np.float64),
        np.ascontiguousarray(node_xy, dtype=np.float64),
        float(radius_m),
    )

    def run(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = offsets[lo], offsets[hi]
        return _shed_figures(offsets[lo : hi + 1] - a, nodes[a:b], dist[a:b], *fixed)

    parts = _in_threads(run, len(offsets) - 1, threads)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _in_threads(run: Callable[[int, int], T], n_sources: int, threads: int | None) -> list[T]:
    """``run(lo, hi)`` over consecutive runs of the sources, one per thread (default: numba's thread count, at most
    one per 64 sources); the kernels release the GIL, so the threads work at once."""
    threads = max(1, min(threads or numba.get_num_threads(), n_sources // 64 or 1))
    if threads == 1:
        return [run(0, n_sources)]
    bounds = np.linspace(0, n_sources, threads + 1).astype(int)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, bounds[:-1], bounds[1:]))
