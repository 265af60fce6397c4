"""Recover a street graph from the ``streets`` band: threshold, skeletonize, trace, prune, consolidate.

The skeleton (``skimage.morphology.skeletonize``) is traced into junctions and segments with ``skan``;
short spurs (skeleton artefacts at street corners and ends) are pruned; chains through degree-2 points
are merged, so every edge runs between junctions or dead ends as in a simplified OSMnx graph.
Coordinates are in metres from the raster's top-left corner, x east and y north.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

# The streets band is a coverage fraction; pixels more than this fraction covered count as street.
STREET_THRESHOLD = 0.3
# Tip branches shorter than this are skeleton artefacts (corners of wide junctions), not dead ends.
SPUR_LENGTH_M = 12.0
# Enclosed non-street holes up to this size (e.g. gaps between overlapping buffers) are filled.
HOLE_AREA_M2 = 100.0
# Isolated street fragments shorter than this are dropped (stray pixels, cut-off corners).
MIN_FRAGMENT_M = 12.0
# A street that leaves the data ends at its edge: an end this close to the edge is a cut, not a dead end.
CUT_END_M = 10.0


@dataclass
class StreetGraph:
    """An undirected street graph recovered from a raster.

    ``edges`` holds node index pairs; ``length_m`` the skeleton path length of each edge.
    """

    node_xy: np.ndarray  # (n, 2) float, metres: x east, y north (negative rows)
    edges: np.ndarray  # (m, 2) int
    length_m: np.ndarray  # (m,) float
    resolution_m: float
    shape: tuple[int, int]

    @property
    def n_nodes(self) -> int:
        return len(self.node_xy)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def degrees(self) -> np.ndarray:
        return np.bincount(self.edges.ravel(), minlength=self.n_nodes) if self.n_edges else np.zeros(0, int)

    def adjacency(self) -> sparse.csr_matrix:
        """Symmetric sparse matrix of edge lengths (shortest parallel edge kept), for csgraph routines."""
        return edges_to_csr(self.edges, self.length_m, self.n_nodes)


def edges_to_csr(edges: np.ndarray, length: np.ndarray, n_nodes: int) -> sparse.csr_matrix:
    """Symmetric CSR matrix of lengths; parallel edges keep the shortest, self-loops are dropped."""
    if len(edges) == 0:
        return sparse.csr_matrix((n_nodes, n_nodes))
    u, v = edges[:, 0], edges[:, 1]
    keep = u != v
    rows = np.concatenate([u[keep], v[keep]])
    cols = np.concatenate([v[keep], u[keep]])
    w = np.concatenate([length[keep], length[keep]])
    # Zero lengths would read as "no edge" in csgraph; give them a tiny positive length.
    w = np.maximum(w, 1e-6)
    order = np.lexsort((w, cols, rows))
    rows, cols, w = rows[order], cols[order], w[order]
    first = np.ones(len(rows), bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return sparse.csr_matrix((w[first], (rows[first], cols[first])), shape=(n_nodes, n_nodes))


def street_mask(
    streets: np.ndarray,
    *,
    resolution_m: float,
    valid: np.ndarray | None = None,
    threshold: float = STREET_THRESHOLD,
    hole_area_m2: float = HOLE_AREA_M2,
) -> np.ndarray:
    """Boolean street mask with small enclosed holes filled (they would make loops in the skeleton)."""
    mask = np.asarray(streets) > threshold
    if valid is not None:
        mask &= valid
    holes, n = ndi.label(~mask)
    if n:
        sizes = np.bincount(holes.ravel())
        small = sizes * resolution_m**2 <= hole_area_m2
        small[0] = False
        # Regions touching the border are not enclosed.
        border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        small[border] = False
        mask |= small[holes]
    return mask


def _skan_branches(skel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Branches of a skeleton: (src, dst) node ids, path lengths in pixels, node (row, col) coords."""
    import skan  # numba-compiled; imported lazily so importing citygen.metrics stays fast

    empty = np.zeros((0, 2), np.int64), np.zeros(0, float), np.zeros((0, 2), float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = skan.Skeleton(skel, keep_images=False)
    except ValueError:  # skan cannot build a path graph (e.g. only isolated pixels): no streets to trace
        return empty
    if sk.paths.shape[0] == 0:
        return empty
    lengths = sk.path_lengths()
    indptr, indices = sk.paths.indptr, sk.paths.indices
    src = indices[indptr[:-1]]
    dst = indices[indptr[1:] - 1]
    return np.stack([src, dst], axis=1).astype(np.int64), np.asarray(lengths, float), sk.coordinates


def prune_spurs(edges: np.ndarray, length: np.ndarray, n: int, spur: float, fragment: float) -> np.ndarray:
    """Indices of edges kept after removing tips shorter than ``spur`` (three passes) and isolated pieces shorter
    than ``fragment`` (``length``'s unit); the vector junction shares prune OSM graphs the same way."""
    keep = np.ones(len(edges), bool)
    for _ in range(3):
        deg = np.bincount(edges[keep].ravel(), minlength=n)
        du, dv = deg[edges[:, 0]], deg[edges[:, 1]]
        tip = (du == 1) ^ (dv == 1)
        isolated = (du == 1) & (dv == 1)
        drop = keep & ((tip & (length < spur)) | (isolated & (length < fragment)))
        if not drop.any():
            break
        keep &= ~drop
    return np.flatnonzero(keep)


def _merge_chains(edges: np.ndarray, length: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge edges through degree-2 nodes, so edges run between junctions and dead ends."""
    if len(edges) == 0:
        return edges, length
    deg = np.bincount(edges.ravel(), minlength=n)
    through = deg == 2
    loops = edges[:, 0] == edges[:, 1]
    through[edges[loops, 0]] = False
    # Edges that share a through-node belong to the same chain: connected components of an edge graph.
    m = len(edges)
    ends = np.concatenate([edges[:, 0], edges[:, 1]])
    eid = np.concatenate([np.arange(m), np.arange(m)])
    sel = through[ends]
    inc = sparse.csr_matrix((np.ones(sel.sum()), (eid[sel], ends[sel])), shape=(m, n))
    _, chain = csgraph.connected_components(inc @ inc.T, directed=False)
    n_chain = chain.max() + 1
    chain_len = np.bincount(chain, weights=length, minlength=n_chain)
    # Chain end nodes: endpoints that are not through-nodes (a pure cycle has none).
    not_through = ~through[ends]
    end_nodes: list[list[int]] = [[] for _ in range(n_chain)]
    for c, node in zip(np.concatenate([chain, chain])[not_through], ends[not_through], strict=True):
        end_nodes[c].append(node)
    new_edges, new_len = [], []
    for c in range(n_chain):
        e = end_nodes[c]
        if len(e) == 2:
            new_edges.append(e)
        elif len(e) == 0:  # closed loop of through-nodes: keep as a self-loop on one of its nodes
            node = edges[chain == c][0, 0]
            new_edges.append([node, node])
        else:  # a single edge that is a self-loop at a junction
            new_edges.append([e[0], e[0]])
        new_len.append(chain_len[c])
    return np.array(new_edges, dtype=np.int64).reshape(-1, 2), np.array(new_len, float)


def recover_street_graph(
    streets: np.ndarray,
    *,
    resolution_m: float,
    valid: np.ndarray | None = None,
    threshold: float = STREET_THRESHOLD,
    spur_length_m: float = SPUR_LENGTH_M,
) -> StreetGraph:
    """Street graph of junctions, dead ends and segments recovered from a ``streets`` band."""
    mask = street_mask(streets, resolution_m=resolution_m, valid=valid, threshold=threshold)
    shape = (int(mask.shape[0]), int(mask.shape[1]))
    empty = StreetGraph(np.zeros((0, 2)), np.zeros((0, 2), np.int64), np.zeros(0), resolution_m, shape)
    skel = skeletonize(mask)
    if skel.sum() < 2:
        return empty
    edges, length_px, coords = _skan_branches(skel)
    n = len(coords)
    kept = prune_spurs(edges, length_px, n, spur_length_m / resolution_m, MIN_FRAGMENT_M / resolution_m)
    edges, length_px = _merge_chains(edges[kept], length_px[kept], n)
    if len(edges) == 0:
        return empty
    used, inverse = np.unique(edges.ravel(), return_inverse=True)
    edges = inverse.reshape(-1, 2)
    rc = coords[used].astype(float)
    node_xy = np.stack([(rc[:, 1] + 0.5) * resolution_m, -(rc[:, 0] + 0.5) * resolution_m], axis=1)
    return StreetGraph(node_xy, edges, length_px * resolution_m, resolution_m, shape)


def cut_ends(graph: StreetGraph, valid: np.ndarray | None = None, *, cut_m: float = CUT_END_M) -> np.ndarray:
    """Which nodes lie within ``cut_m`` of the edge of the data (the array's border, or pixels outside ``valid``):
    a dead end there is where the data cuts a street."""
    res = graph.resolution_m
    h, w = graph.shape
    rows = np.clip(np.round(-graph.node_xy[:, 1] / res - 0.5).astype(int), 0, h - 1)
    cols = np.clip(np.round(graph.node_xy[:, 0] / res - 0.5).astype(int), 0, w - 1)
    r = int(np.ceil(cut_m / res))
    cut = (rows < r) | (rows >= h - r) | (cols < r) | (cols >= w - r)
    if valid is not None:
        outside = ~valid.astype(bool)
        if outside.any():  # any pixel outside the data within the (square) reach of the node
            near = ndi.maximum_filter(outside, size=2 * r + 1, mode="constant", cval=True)
            cut |= near[rows, cols]
    return cut


def consolidate_junctions(graph: StreetGraph, *, tolerance_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Cluster junctions (degree >= 3) lying within 2 x ``tolerance_m``, as osmnx's geometric
    consolidation (buffer each node by the tolerance, merge overlaps) does.

    Returns the cluster label of every node (-1 for non-junctions) and each cluster's street count:
    the number of edge ends leaving the cluster (edges inside one cluster do not count).
    """
    deg = graph.degrees()
    junction = deg >= 3
    labels = np.full(graph.n_nodes, -1, dtype=np.int64)
    idx = np.flatnonzero(junction)
    if idx.size == 0:
        return labels, np.zeros(0, dtype=np.int64)
    pairs = cKDTree(graph.node_xy[idx]).query_pairs(2.0 * tolerance_m, output_type="ndarray")
    adj = sparse.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(idx.size, idx.size))
    n_clusters, lab = csgraph.connected_components(adj, directed=False)
    labels[idx] = lab
    cu, cv = labels[graph.edges[:, 0]], labels[graph.edges[:, 1]]
    internal = (cu == cv) & (cu >= 0)
    ends = np.concatenate([cu[~internal], cv[~internal]])
    streets = np.bincount(ends[ends >= 0], minlength=n_clusters)
    return labels, streets
