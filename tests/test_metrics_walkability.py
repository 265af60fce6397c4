"""Pedestrian sheds, amenity access, diversity and the composite index."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from test_metrics_helpers import load_graph, measured

from citygen.metrics._common import hill_numbers, normalized_entropy
from citygen.metrics.skeleton import edges_to_csr
from citygen.metrics.walkability import (
    graph_arrays,
    limited_distances,
    network_distance_to_targets,
    pedestrian_sheds,
    reference_table,
    walkability_index,
)


@pytest.fixture(scope="module")
def museum():
    return graph_arrays(load_graph("houston_museum_district"))


def test_limited_distances_match_networkx(museum) -> None:
    edges, length, xy, _ = museum
    G = nx.Graph()
    G.add_nodes_from(range(len(xy)))
    for (u, v), w in zip(edges.tolist(), length.tolist(), strict=True):
        if u != v and (not G.has_edge(u, v) or w < G[u][v]["w"]):
            G.add_edge(u, v, w=w)
    sources = np.arange(0, len(xy), 7)
    adj = edges_to_csr(edges, length, len(xy))
    seen = 0
    for idx, local, dist in limited_distances(adjacency=adj, node_xy=xy, limit_m=800.0, sources=sources, chunk=16):
        for i, s in enumerate(idx):
            expected = nx.single_source_dijkstra_path_length(G, int(s), cutoff=800.0, weight="w")
            got = {int(local[j]): dist[i, j] for j in np.flatnonzero(np.isfinite(dist[i]))}
            assert got.keys() == expected.keys()
            assert np.allclose([got[k] for k in expected], list(expected.values()))
            seen += 1
    assert seen == len(sources)


def test_compiled_search_matches_scipy(museum) -> None:
    """The compiled bounded Dijkstra (citygen.metrics.sheds) reaches the nodes scipy's reaches, at its distances."""
    from citygen.metrics.sheds import bounded_dijkstra

    edges, length, xy, _ = museum
    adj = edges_to_csr(edges, length, len(xy))
    offsets, nodes, dist = bounded_dijkstra(adj, np.arange(len(xy)), 800.0)
    for idx, local, d in limited_distances(adjacency=adj, node_xy=xy, limit_m=800.0):
        for i, s in enumerate(idx):
            a, b = offsets[s], offsets[s + 1]
            got = dict(zip(nodes[a:b].tolist(), dist[a:b].tolist(), strict=True))
            want = {int(local[j]): d[i, j] for j in np.flatnonzero(np.isfinite(d[i]))}
            assert got.keys() == want.keys()
            assert np.allclose([got[k] for k in want], list(want.values()), rtol=1e-12, atol=1e-9)
            assert np.all(np.diff(dist[a:b]) >= 0), "nodes come in order of distance"


def _reference_sheds(edges, length, xy, r):
    """Shed length and hull area the plain way: scipy distances, the reach formula per edge, scipy's qhull."""
    from scipy.spatial import ConvexHull, QhullError

    adj = edges_to_csr(edges, length, len(xy))
    out_len, out_area = np.zeros(len(xy)), np.zeros(len(xy))
    for idx, local, d in limited_distances(adjacency=adj, node_xy=xy, limit_m=r):
        full = np.full((len(idx), len(xy)), np.inf)
        full[:, local] = d
        du, dv = full[:, edges[:, 0]], full[:, edges[:, 1]]
        reach = np.minimum(length, np.maximum(r - du, 0.0) + np.maximum(r - dv, 0.0))
        loops = edges[:, 0] == edges[:, 1]
        reach[:, loops] = np.where(du[:, loops] <= r, length[loops], 0.0)
        out_len[idx] = reach.sum(axis=1)
        for i, s in enumerate(idx):
            points = xy[full[i] <= r]
            try:
                out_area[s] = ConvexHull(points).volume if len(points) >= 3 else 0.0
            except QhullError:
                out_area[s] = 0.0
    return out_len, out_area


def test_pedestrian_sheds_match_the_plain_computation(museum) -> None:
    edges, length, xy, _ = museum
    sheds = pedestrian_sheds(edges=edges, length_m=length, node_xy=xy, radii_m=(400.0, 800.0))
    for r in (400.0, 800.0):
        want_len, want_area = _reference_sheds(edges, length, xy, r)
        assert np.allclose(sheds[r]["length_m"], want_len, rtol=1e-9, atol=1e-6)
        assert np.allclose(sheds[r]["area_m2"], want_area, rtol=1e-9, atol=1e-6)


def test_pedestrian_sheds_are_plausible(museum) -> None:
    edges, length, xy, _ = museum
    sheds = pedestrian_sheds(edges=edges, length_m=length, node_xy=xy)
    for r in (400.0, 800.0):
        ratio = sheds[r]["ratio"]
        assert np.all((ratio >= 0) & (ratio <= 1.0))
        assert np.all(sheds[r]["length_m"] <= length.sum() + 1e-6)
    # Twice the radius reaches more street, at every node.
    assert np.all(sheds[800.0]["length_m"] >= sheds[400.0]["length_m"])
    assert 0.2 < sheds[800.0]["ratio"].mean() < 0.8


def test_network_distance_to_targets_adds_snapping(museum) -> None:
    edges, length, xy, _ = museum
    origin = xy[:1] + np.array([3.0, 4.0])  # 5 m off node 0
    d = network_distance_to_targets(
        edges=edges, length_m=length, node_xy=xy, origins_xy=origin, targets_xy=xy[:1], limit_m=100.0
    )
    assert d[0] == pytest.approx(5.0)
    far = network_distance_to_targets(
        edges=edges, length_m=length, node_xy=xy, origins_xy=xy[:1], targets_xy=xy[:1] + 1e5, limit_m=100.0
    )
    assert np.isinf(far[0])


def test_hill_numbers() -> None:
    assert hill_numbers([5, 5, 5, 5]) == pytest.approx((4, 4, 4))
    q0, q1, q2 = hill_numbers([97, 1, 1, 1])
    assert q0 == 4 and 1 < q2 < q1 < q0
    assert all(math.isnan(v) for v in hill_numbers([]))
    assert normalized_entropy([1, 1, 1], 3) == pytest.approx(1.0)


def test_walkability_index_on_a_complete_city() -> None:
    m = measured("helsinki_center").metrics
    assert math.isfinite(m["walkability_index"])
    ref = reference_table()
    expected = sum(
        w * (m[k] - ref[k]["mean"]) / ref[k]["std"]
        for k, w in {"intersection_density_km2": 2, "floor_area_ratio": 1, "amenity_mix_entropy": 1}.items()
    )
    assert m["walkability_index"] == pytest.approx(expected)
    assert 0 <= m["amenity_access_mean"] <= 1
    assert m["amenity_hill_q0"] >= m["amenity_hill_q1"] >= m["amenity_hill_q2"] >= 1


def test_walkability_index_names_missing_components() -> None:
    out = walkability_index({"intersection_density_km2": 80.0, "floor_area_ratio": float("nan")})
    assert math.isnan(out["walkability_index"])
    assert "floor_area_ratio" in out.notes["walkability_index"]
    assert math.isfinite(out["walkability_z_intersection_density_km2"])
