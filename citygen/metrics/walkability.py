"""Walkability: pedestrian sheds, amenity access, amenity mix and a Frank-style composite index.

Network distances come from ``scipy.sparse.csgraph.dijkstra`` over a sparse node-edge matrix with a
distance ``limit``, in chunks of source nodes (bounded memory), rather than a Python loop of NetworkX
Dijkstra calls; pedestrian sheds, one bounded search from every node, use the compiled kernels of
:mod:`citygen.metrics.sheds` (checked against the scipy path). The same functions serve the vector graph and
the street graph recovered from a raster.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib import resources

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from citygen.metrics._common import MetricSet, hill_numbers, normalized_entropy
from citygen.metrics.sheds import bounded_dijkstra, shed_figures
from citygen.metrics.skeleton import edges_to_csr

SHED_RADII_M: tuple[float, ...] = (400.0, 800.0)
ACCESS_DISTANCE_M = 400.0
CHUNK = 256
# Frank et al. (2010): intersection density counts twice, then density and mix.
WALKABILITY_WEIGHTS: dict[str, float] = {
    "intersection_density_km2": 2.0,
    "floor_area_ratio": 1.0,
    "amenity_mix_entropy": 1.0,
}
REFERENCE_FILE = "reference_cities.json"
# Amenity values grouped into Walk-Score-like categories for access shares; other values -> "other".
AMENITY_CATEGORIES: dict[str, frozenset[str]] = {
    "food": frozenset({"restaurant", "cafe", "fast_food", "bar", "pub", "food_court", "ice_cream", "biergarten"}),
    "shop": frozenset({"shop", "marketplace"}),
    "education": frozenset({"school", "kindergarten", "college", "university", "library", "childcare"}),
    "health": frozenset({"pharmacy", "doctors", "clinic", "hospital", "dentist"}),
    "services": frozenset({"bank", "atm", "post_office", "townhall", "police", "fire_station", "community_centre"}),
    "culture": frozenset({"theatre", "cinema", "arts_centre", "nightclub", "place_of_worship", "museum"}),
}


def amenity_category(value: str) -> str:
    for name, members in AMENITY_CATEGORIES.items():
        if value in members:
            return name
    return "other"


# ----------------------------------------------------------------------------- network as sparse matrix
def graph_arrays(graph: nx.MultiDiGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Undirected edges (index pairs), lengths (m), node xy (m) and node ids of a projected graph.

    The two directions of a two-way street (same end nodes, same length) become one edge, as in
    ``osmnx.convert.to_undirected`` but without comparing geometries (much faster on large graphs).
    """
    nodes = list(graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    xy = np.array([(graph.nodes[n]["x"], graph.nodes[n]["y"]) for n in nodes], dtype=float).reshape(-1, 2)
    seen: set[tuple[int, int, float]] = set()
    pairs, lengths = [], []
    for u, v, d in graph.edges(data=True):
        a, b = sorted((index[u], index[v]))
        w = float(d.get("length", np.nan))
        key = (a, b, round(w, 2))
        if key in seen:
            continue
        seen.add(key)
        pairs.append((a, b))
        lengths.append(w)
    edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    length = np.array(lengths, dtype=float)
    missing = ~np.isfinite(length)
    if missing.any():  # fall back to straight-line length
        length[missing] = np.hypot(*(xy[edges[missing, 0]] - xy[edges[missing, 1]]).T)
    return edges, length, xy, nodes


def spatial_chunks(node_xy: np.ndarray, *, cell_m: float, chunk: int = CHUNK) -> list[np.ndarray]:
    """Node indices grouped by square cells of ``cell_m`` (at most ``chunk`` per group)."""
    if len(node_xy) == 0:
        return []
    keys = np.floor((node_xy - node_xy.min(axis=0)) / cell_m).astype(np.int64)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    k = keys[order]
    breaks = np.flatnonzero((k[1:] != k[:-1]).any(axis=1)) + 1
    groups: list[np.ndarray] = []
    for g in np.split(order, breaks):
        groups.extend(g[i : i + chunk] for i in range(0, len(g), chunk))
    return groups


def limited_distances(
    *,
    adjacency: sparse.csr_matrix,
    node_xy: np.ndarray,
    limit_m: float,
    sources: np.ndarray | None = None,
    chunk: int = CHUNK,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Network distances up to ``limit_m`` from every source, chunk by chunk.

    Yields ``(sources, local_nodes, dist)`` with ``dist[i, j]`` the distance from ``sources[i]`` to
    ``local_nodes[j]`` (inf beyond the limit). Sources are grouped by location, and each group's
    Dijkstra runs on the nodes within ``limit_m`` (straight line) of the group's bounding box only:
    exact, because a network path never ends farther away than its length.
    """
    n = len(node_xy)
    src_all = np.arange(n) if sources is None else np.asarray(sources)
    for group in spatial_chunks(node_xy[src_all], cell_m=max(2.0 * limit_m, 1.0), chunk=chunk):
        idx = src_all[group]
        lo = node_xy[idx].min(axis=0) - limit_m
        hi = node_xy[idx].max(axis=0) + limit_m
        local = np.flatnonzero(((node_xy >= lo) & (node_xy <= hi)).all(axis=1))
        pos = np.full(n, -1)
        pos[local] = np.arange(len(local))
        sub = adjacency[local][:, local]
        # The matrix is symmetric already: directed=True skips scipy's symmetrising copy.
        yield idx, local, dijkstra(sub, directed=True, indices=pos[idx], limit=limit_m)


def pedestrian_sheds(
    *,
    edges: np.ndarray,
    length_m: np.ndarray,
    node_xy: np.ndarray,
    radii_m: Sequence[float] = SHED_RADII_M,
    sources: np.ndarray | None = None,
) -> dict[float, dict[str, np.ndarray]]:
    """Pedestrian sheds of every node (or of ``sources``).

    For each radius: ``length_m`` is the street length reachable within the radius (edges partly
    reachable count with their reachable part), ``area_m2`` the convex hull of the reachable nodes,
    and ``ratio`` that area over the circle of the radius (the ped-shed ratio). Compiled kernels
    (:mod:`citygen.metrics.sheds`): one bounded search per source to the largest radius.
    """
    n = len(node_xy)
    src = np.arange(n) if sources is None else np.asarray(sources)
    reach = bounded_dijkstra(edges_to_csr(edges, length_m, n), src, float(max(radii_m)))
    out: dict[float, dict[str, np.ndarray]] = {}
    for r in radii_m:
        length, area = shed_figures(reach=reach, edges=edges, length_m=length_m, node_xy=node_xy, radius_m=r)
        out[r] = {"length_m": length, "area_m2": area, "ratio": area / (math.pi * r * r)}
    return out


def shed_metrics(*, edges: np.ndarray, length_m: np.ndarray, node_xy: np.ndarray) -> MetricSet:
    """Mean pedestrian-shed length, area and ratio at 400 m and 800 m over all nodes."""
    out = MetricSet()
    keys = [f"ped_shed_{k}_{int(r)}m" for r in SHED_RADII_M for k in ("length_km", "area_km2", "ratio")]
    if len(node_xy) == 0 or len(edges) == 0:
        out.missing(keys, {k: shed_unit(k) for k in keys}, "no street network")
        return out
    sheds = pedestrian_sheds(edges=edges, length_m=length_m, node_xy=node_xy)
    for r, res in sheds.items():
        out.set(f"ped_shed_length_km_{int(r)}m", res["length_m"].mean() / 1000.0, "km")
        out.set(f"ped_shed_area_km2_{int(r)}m", res["area_m2"].mean() / 1e6, "km2")
        out.set(f"ped_shed_ratio_{int(r)}m", res["ratio"].mean(), "ratio")
    return out


def shed_unit(key: str) -> str:
    return "km" if "length" in key else "km2" if "area" in key else "ratio"


def network_distance_to_targets(
    *,
    edges: np.ndarray,
    length_m: np.ndarray,
    node_xy: np.ndarray,
    origins_xy: np.ndarray,
    targets_xy: np.ndarray,
    target_offset_m: np.ndarray | None = None,
    limit_m: float,
) -> np.ndarray:
    """Walking distance from each origin to its nearest target: snap to the nearest node, walk the
    network, snap off (straight-line snap distances included). Inf beyond ``limit_m``.

    A virtual node joined to every target's node (with its snap distance plus ``target_offset_m``)
    turns the multi-target search into one Dijkstra run.
    """
    n = len(node_xy)
    res = np.full(len(origins_xy), np.inf)
    if n == 0 or len(targets_xy) == 0 or len(origins_xy) == 0:
        return res
    tree = cKDTree(node_xy)
    t_snap, t_node = tree.query(targets_xy)
    offset = t_snap + (0.0 if target_offset_m is None else np.asarray(target_offset_m, float))
    adj = edges_to_csr(edges, length_m, n).tolil()
    adj.resize((n + 1, n + 1))
    for node, w in zip(t_node, offset, strict=True):
        w = max(float(w), 1e-6)
        if adj[n, node] == 0 or w < adj[n, node]:
            adj[n, node] = w
            adj[node, n] = w
    dist = dijkstra(adj.tocsr(), directed=False, indices=n, limit=limit_m)
    o_snap, o_node = tree.query(origins_xy)
    return np.where(dist[o_node] + o_snap <= limit_m, dist[o_node] + o_snap, np.inf)


def amenity_metrics(
    *,
    graph_edges: np.ndarray,
    length_m: np.ndarray,
    node_xy: np.ndarray,
    buildings: gpd.GeoDataFrame | None,
    amenities: gpd.GeoDataFrame | None,
    distance_m: float = ACCESS_DISTANCE_M,
) -> MetricSet:
    """Access shares per amenity category (buildings within ``distance_m`` walk) and the amenity mix."""
    out = MetricSet()
    mix_keys = [
        "amenity_count",
        "amenity_hill_q0",
        "amenity_hill_q1",
        "amenity_hill_q2",
        "amenity_mix_entropy",
    ]
    units = dict.fromkeys(mix_keys, "effective classes")
    units["amenity_count"], units["amenity_mix_entropy"] = "count", "0-1"
    if amenities is None:
        out.missing([*mix_keys, "amenity_access_mean"], {**units, "amenity_access_mean": "share"}, "no amenity layer")
        return out
    classes = amenities["amenity_class"].astype(str) if "amenity_class" in amenities else None
    out.set("amenity_count", len(amenities), "count")
    if classes is None or len(amenities) == 0:
        reason = "no amenities in the area" if len(amenities) == 0 else "amenities carry no amenity_class"
        out.missing(mix_keys[1:], units, reason)
    else:
        counts = classes.value_counts().to_numpy()
        q0, q1, q2 = hill_numbers(counts)
        out.set("amenity_hill_q0", q0, units["amenity_hill_q0"])
        out.set("amenity_hill_q1", q1, units["amenity_hill_q1"])
        out.set("amenity_hill_q2", q2, units["amenity_hill_q2"])
        out.set(
            "amenity_mix_entropy",
            normalized_entropy(counts, len(counts)) if len(counts) > 1 else 0.0,
            "0-1",
        )
    if buildings is None or len(buildings) == 0 or len(node_xy) == 0 or classes is None:
        reason = "no buildings" if buildings is None or len(buildings) == 0 else "no street network"
        out.missing("amenity_access_mean", "share", reason)
        return out
    b_xy = shapely.get_coordinates(buildings.geometry.representative_point().values)
    a_xy = shapely.get_coordinates(amenities.geometry.representative_point().values)
    cats = np.array([amenity_category(c) for c in classes])
    shares = []
    for cat in sorted(set(cats)):
        d = network_distance_to_targets(
            edges=graph_edges,
            length_m=length_m,
            node_xy=node_xy,
            origins_xy=b_xy,
            targets_xy=a_xy[cats == cat],
            limit_m=distance_m,
        )
        share = float(np.isfinite(d).mean())
        shares.append(share)
        out.set(f"access_{cat}_{int(distance_m)}m", share, "share of buildings")
    out.set(
        "amenity_access_mean",
        float(np.mean(shares)) if shares else None,
        "share",
        None if shares else "not measurable: no amenity category present",
    )
    return out


# ----------------------------------------------------------------------------- composite index
@cache
def reference_table() -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each index component over the shipped reference cities."""
    text = (resources.files("citygen.metrics") / REFERENCE_FILE).read_text()
    return json.loads(text)["components"]


def walkability_index(
    values: Mapping[str, float], *, reference: Mapping[str, Mapping[str, float]] | None = None
) -> MetricSet:
    """Frank-style index: 2 z(intersection density) + z(floor area ratio) + z(amenity mix entropy).

    z-scores are against the reference cities shipped in ``reference_cities.json``
    (regenerate with ``python -m citygen.metrics.reference``). The index is NaN, with the missing
    components named, unless every component is measurable; the component z-scores are reported anyway.
    """
    ref = reference_table() if reference is None else reference
    out = MetricSet()
    total, missing = 0.0, []
    for key, weight in WALKABILITY_WEIGHTS.items():
        val = values.get(key, float("nan"))
        stats = ref.get(key)
        if stats is None or not math.isfinite(val) or not stats.get("std", 0) > 0:
            missing.append(key)
            out.missing(f"walkability_z_{key}", "z", f"{key} is not available")
            continue
        z = (val - stats["mean"]) / stats["std"]
        out.set(f"walkability_z_{key}", z, "z")
        total += weight * z
    if missing:
        out.missing("walkability_index", "z-sum", f"needs {', '.join(missing)}")
    else:
        out.set("walkability_index", total, "z-sum")
    return out
