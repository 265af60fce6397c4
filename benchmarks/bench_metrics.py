"""Benchmark the metric suite (a script that prints; not a timed test).

1. Pedestrian sheds (800 m) for every node of the largest shipped street sample: the compiled bounded
   Dijkstra (``citygen.metrics.sheds``) and the chunked ``scipy.sparse.csgraph.dijkstra`` versus a plain
   NetworkX loop of ``single_source_dijkstra_path_length(cutoff=800)``; the distances must be identical.
   Then the whole sheds (lengths and hull areas at 400 and 800 m) against the scipy + qhull loop. Every time
   is the fastest of three runs (one for the qhull loop), the NetworkX loop's as well.
2. Time to score one 256 x 256 tile with the whole raster suite (target < 50 ms) and with
   ``tile_targets``, and tiles per second over a batch.

Run: ``.venv/bin/python benchmarks/bench_metrics.py [--sample SAMPLE_ID] [--tiles N]``
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import networkx as nx
import numba
import numpy as np
from scipy.spatial import ConvexHull, QhullError

from citygen.data.build import build_city
from citygen.data.geotiff import read_raster
from citygen.data.samples import list_samples
from citygen.data.sources import load_city
from citygen.data.spec import parse_city
from citygen.metrics.raster import raster_metrics, tile_targets
from citygen.metrics.sheds import bounded_dijkstra
from citygen.metrics.skeleton import edges_to_csr
from citygen.metrics.walkability import graph_arrays, limited_distances, pedestrian_sheds

RADIUS = 800.0
REPEATS = 3


def best_of(run, repeats: int = REPEATS):
    """(fastest seconds of ``repeats`` runs, the last result): the usual timeit reading, the same for every contender."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def largest_sample() -> str:
    best, size = "", -1
    for s in list_samples():
        if "streets" not in s.layers:
            continue
        city = load_city(s.id)
        n = city.graph.number_of_nodes() if city.graph is not None else 0
        if n > size:
            best, size = s.id, n
    return best


def bench_sheds(sample_id: str) -> None:
    city = load_city(sample_id)
    G = city.graph
    edges, length, xy, nodes = graph_arrays(G)
    print(f"[sheds] {sample_id}: {len(nodes)} nodes, {len(edges)} undirected edges, radius {RADIUS:.0f} m")

    adj = edges_to_csr(edges, length, len(nodes))
    bounded_dijkstra(adj, np.arange(2), RADIUS)  # compile the numba kernels (cached on disk afterwards)
    pedestrian_sheds(edges=edges[:10], length_m=length[:10], node_xy=xy, radii_m=(RADIUS,), sources=np.arange(2))

    def scipy_pairs():
        chunks = []
        for idx, local, d in limited_distances(adjacency=adj, node_xy=xy, limit_m=RADIUS):
            rows, cols = np.nonzero(np.isfinite(d))  # keep the reachable pairs, as the sheds do
            chunks.append((idx[rows], local[cols], d[rows, cols]))
        return chunks

    t_scipy, chunks = best_of(scipy_pairs)
    scipy_d: dict[int, dict[int, float]] = {i: {} for i in range(len(nodes))}
    for src, dst, dist in chunks:
        for a, b, c in zip(src.tolist(), dst.tolist(), dist.tolist(), strict=True):
            scipy_d[a][b] = c

    t_one, _ = best_of(lambda: bounded_dijkstra(adj, np.arange(len(nodes)), RADIUS, threads=1))
    t_fast, (offsets, reached, dists) = best_of(lambda: bounded_dijkstra(adj, np.arange(len(nodes)), RADIUS))
    fast = {
        i: dict(
            zip(reached[offsets[i] : offsets[i + 1]].tolist(), dists[offsets[i] : offsets[i + 1]].tolist(), strict=True)
        )
        for i in range(len(nodes))
    }

    t_full, _ = best_of(lambda: pedestrian_sheds(edges=edges, length_m=length, node_xy=xy, radii_m=(400.0, 800.0)))

    # The plain NetworkX way: one Dijkstra per node on the undirected graph.
    Gu = nx.Graph()
    Gu.add_nodes_from(range(len(nodes)))
    for (u, v), w in zip(edges.tolist(), length.tolist(), strict=True):
        if u != v and (not Gu.has_edge(u, v) or w < Gu[u][v]["length"]):
            Gu.add_edge(u, v, length=w)
    t_slow, slow = best_of(
        lambda: {n: nx.single_source_dijkstra_path_length(Gu, n, cutoff=RADIUS, weight="length") for n in Gu.nodes}
    )

    # the full sheds the way they were computed before the compiled kernels: scipy distances, qhull per node
    def scipy_hulls() -> None:
        for r in (400.0, 800.0):
            for _, local, d in limited_distances(adjacency=adj, node_xy=xy, limit_m=r):
                for row in d:
                    points = xy[local[row <= r]]
                    if len(points) >= 3:
                        with contextlib.suppress(QhullError):
                            ConvexHull(points)

    t_full_scipy = best_of(scipy_hulls, 1)[0] + t_scipy  # plus the lengths' share, about one distance pass

    for name, other in (("scipy", scipy_d), ("compiled", fast)):
        assert slow.keys() == other.keys()
        for n in slow:
            assert slow[n].keys() == other[n].keys(), f"{name}, node {n}: different reachable sets"
            a = np.array([slow[n][k] for k in slow[n]])
            b = np.array([other[n][k] for k in slow[n]])
            assert np.allclose(a, b, rtol=1e-9, atol=1e-6), f"{name}, node {n}: different distances"
    print(f"[sheds] networkx loop        : {t_slow:8.3f} s")
    print(f"[sheds] scipy chunked        : {t_scipy:8.3f} s   ({t_slow / t_scipy:.0f}x faster, identical distances)")
    print(f"[sheds] compiled, 1 thread   : {t_one:8.3f} s   ({t_slow / t_one:.0f}x faster)")
    threads = numba.get_num_threads()
    print(
        f"[sheds] compiled, {threads} threads  : {t_fast:8.3f} s   ({t_slow / t_fast:.0f}x faster, identical distances)"
    )
    print(
        f"[sheds] full sheds (400 + 800 m: lengths, hull areas, ratios): compiled {t_full:.3f} s, "
        f"scipy + qhull loop at least {t_full_scipy:.3f} s ({t_full_scipy / t_full:.0f}x), "
        f"networkx distances alone {t_slow:.3f} s ({t_slow / t_full:.0f}x)"
    )


def bench_tiles(n_tiles: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        built = build_city(parse_city({"id": "helsinki_center", "sample": "helsinki_center"}), Path(tmp))
        raster = read_raster(built.path)
    bands = raster.bands
    h, w = next(iter(bands.values())).shape
    windows = [(r, c) for r in range(0, h - 255, 128) for c in range(0, w - 255, 128)]
    tiles = [{k: v[r : r + 256, c : c + 256] for k, v in bands.items()} for r, c in windows]
    tiles = (tiles * (n_tiles // len(tiles) + 1))[:n_tiles]
    raster_metrics(bands=tiles[0], resolution_m=2.0, crs=raster.crs, transform=raster.transform)  # warm-up
    tile_targets(tiles[0], resolution_m=2.0)
    times = []
    for t in tiles:
        start = time.perf_counter()
        raster_metrics(bands=t, resolution_m=2.0, crs=raster.crs, transform=raster.transform, tags=raster.tags)
        times.append(time.perf_counter() - start)
    times_tt = []
    for t in tiles:
        start = time.perf_counter()
        tile_targets(t, resolution_m=2.0)
        times_tt.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    print(f"[tiles] helsinki_center 256x256 tiles at 2 m, every band present, {len(tiles)} tiles")
    print(
        f"[tiles] whole raster suite : median {np.median(ms):6.1f} ms, p95 {np.percentile(ms, 95):6.1f} ms, "
        f"{len(tiles) / sum(times):6.1f} tiles/s  (target < 50 ms)"
    )
    tt = np.array(times_tt) * 1000
    print(
        f"[tiles] tile_targets       : median {np.median(tt):6.1f} ms, p95 {np.percentile(tt, 95):6.1f} ms, "
        f"{len(tiles) / sum(times_tt):6.1f} tiles/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", help="sample for the shed benchmark (default: the one with most nodes)")
    parser.add_argument("--tiles", type=int, default=100, help="tiles in the batch (default 100)")
    args = parser.parse_args()
    bench_sheds(args.sample or largest_sample())
    bench_tiles(args.tiles)


if __name__ == "__main__":
    main()
