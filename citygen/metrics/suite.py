"""One entry point: measure cities (vector) and rasters (whole or tiled) into one tidy table.

``compute_metrics(["houston_montrose", "cph_vesterbro"])`` returns a DataFrame with one row per source
(or tile), one column per metric, ``patterns`` (a list of rule results) and ``notes`` (metric -> why
it is NaN, or a caveat). Units are in ``df.attrs["units"]``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
import osmnx as ox
import pandas as pd

from citygen.core.errors import ConfigError, SourceError
from citygen.metrics import density as D
from citygen.metrics import network as N
from citygen.metrics import patterns as P
from citygen.metrics import raster as R
from citygen.metrics import walkability as W
from citygen.metrics._common import MetricSet
from citygen.metrics.skeleton import StreetGraph

log = logging.getLogger(__name__)
RASTER_SUFFIXES = (".tif", ".tiff")
ID_COLUMNS = ("source", "kind", "city_id", "tile_row", "tile_col")


@dataclass
class SourceResult:
    """Everything measured on one source: the metrics, the pattern rules, and what a card draws."""

    source: str
    kind: str  # "vector", "raster" or "tile"
    city_id: str
    metrics: MetricSet
    patterns: list[P.PatternResult]
    orientation_hist: np.ndarray
    layers: Any = None  # CityLayers (vector) or RasterData (raster)
    street_graph: StreetGraph | None = None
    tile: tuple[int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """A flat JSON-ready record: ids, every metric, ``patterns`` and ``notes``."""
        rec: dict[str, Any] = {"source": self.source, "kind": self.kind, "city_id": self.city_id}
        if self.tile is not None:
            rec["tile_row"], rec["tile_col"] = self.tile
        rec.update(self.metrics.values)
        rec["patterns"] = [p.to_dict() for p in self.patterns]
        rec["notes"] = dict(self.metrics.notes)
        return rec


# ----------------------------------------------------------------------------- loading
def _is_layers(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("graph", "features", "extent", "present"))


def _is_raster(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("bands", "transform", "crs"))


def load_source(source: Any) -> tuple[str, Any]:
    """Resolve a sample id, a file path, a CityLayers or a RasterData into (label, object)."""
    if _is_layers(source):
        return str(source.city_id), source
    if _is_raster(source):
        return "raster", source
    if not isinstance(source, (str, Path)):
        raise ConfigError(f"cannot measure a {type(source).__name__}", "pass a sample id, a file path, or CityLayers")
    text = str(source)
    path = Path(text).expanduser()
    from citygen.data.sources import load_city

    if path.is_file():
        if path.name.lower().endswith(RASTER_SUFFIXES):
            from citygen.data.geotiff import read_raster

            return text, read_raster(path)
        from citygen.data.spec import parse_city

        city_id = re.sub(r"[^A-Za-z0-9_-]", "_", path.name.split(".")[0]) or "city"
        return text, load_city(parse_city({"id": city_id, "files": [str(path)]}))
    if path.suffix or "/" in text:
        raise SourceError(f"file not found: {text}", "check the path, or give a sample id (`citygen data samples`)")
    return text, load_city(text)


# ----------------------------------------------------------------------------- vector
def street_network(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """The street part of a graph (footways, cycleways and other paths removed), re-simplified so
    nodes left with two streets are not counted as intersections."""
    G = N.ensure_projected(graph)
    sub = N.street_subgraph(G)
    if sub.number_of_edges() == G.number_of_edges():
        return G
    sub.graph["simplified"] = False
    for _, _, data in sub.edges(data=True):  # simplification cannot merge list-valued attributes
        for key in [k for k, v in data.items() if isinstance(v, list)]:
            data[key] = tuple(data[key])
    try:
        sub = ox.simplify_graph(sub, edge_attrs_differ=None)
    except Exception as exc:  # already-merged edges can trip simplification; keep the plain subgraph
        log.info("could not re-simplify the street subgraph (%s); using it as is", exc)
    nx.set_node_attributes(sub, ox.stats.count_streets_per_node(sub), "street_count")
    return sub


Network = Literal["streets", "osmnx"]
NETWORKS: dict[str, str] = {
    "streets": "citygen street network: every highway but footway, cycleway, path, pedestrian, steps, bridleway "
    "and corridor (the raster's paths band), re-simplified",
    "osmnx": "the graph as OSMnx loads the file (graph_from_xml), nothing removed: reproduces osmnx.basic_stats",
}
NETWORK_NOTED = ("street_length_total_m", "street_density_km_km2", "intersection_count", "prop_3way", "k_avg")


def _name_network(m: MetricSet, network: str, graph: nx.MultiDiGraph) -> None:
    """Say which network the street metrics describe, and how much path length the street network leaves out
    (``graph``: projected, as :func:`vector_result` holds it)."""
    paths = N.street_subgraph(graph, N.NON_STREET_HIGHWAYS)
    excluded = float(W.graph_arrays(paths)[1].sum()) / 1000.0  # both directions of a two-way edge count once
    note = NETWORKS[network] + (f"; {excluded:.1f} km of path classes excluded" if network == "streets" else "")
    m.set("path_length_km", excluded, "km", "length of the path-class edges (footway, cycleway, ...) in the file")
    for key in NETWORK_NOTED:
        if key in m.values:
            m.notes[key] = note


def vector_result(label: str, city: Any, *, sheds: bool = True, network: Network = "streets") -> SourceResult:
    """Every metric of a CityLayers-like object; ``network`` names the graph the street metrics are taken on
    (:data:`NETWORKS`)."""
    present = dict(city.present)
    whole = None if city.graph is None else N.ensure_projected(city.graph)
    graph = None if whole is None else N.within_extent(whole, city.extent)
    has_graph = graph is not None and graph.number_of_edges() > 0
    m = MetricSet()
    # the network metrics take the whole graph: streets crossing the extent's edge count up to it
    streets = (street_network(whole) if network == "streets" else whole) if has_graph else None
    m.update(N.network_metrics(graph=streets, extent=city.extent))
    if has_graph:
        _name_network(m, network, graph)
    m.update(D.density_metrics(features=city.features, extent=city.extent, present=present))
    m.update(D.density_pattern_inputs(features=city.features, extent=city.extent, present=present))
    arrays = None
    if has_graph:
        edges, length, xy, _ = W.graph_arrays(graph)
        arrays = (edges, length, xy)
        if sheds:
            m.update(W.shed_metrics(edges=edges, length_m=length, node_xy=xy))
    if not sheds:
        _skip_sheds(m)
    m.update(
        W.amenity_metrics(
            graph_edges=arrays[0] if arrays else np.zeros((0, 2), np.int64),
            length_m=arrays[1] if arrays else np.zeros(0),
            node_xy=arrays[2] if arrays else np.zeros((0, 2)),
            buildings=city.features.get("buildings") if present.get("buildings") else None,
            amenities=city.features.get("amenities") if present.get("amenities") else None,
        )
    )
    network_type = getattr(city, "network_type", None)
    m.update(
        P.vector_pattern_inputs(
            graph=graph if has_graph else None,
            street_graph_arrays=arrays,
            features=city.features,
            present=present,
            network_type=network_type,
        )
    )
    return _finish(
        label,
        "vector",
        str(city.city_id),
        m,
        N.orientation_histogram(graph=N.within_extent(streets, city.extent)) if streets else np.zeros(36),
        layers=city,
    )


def _skip_sheds(m: MetricSet) -> None:
    keys = [f"ped_shed_{k}_{int(r)}m" for r in W.SHED_RADII_M for k in ("length_km", "area_km2", "ratio")]
    for key in keys:
        m.set(key, None, W.shed_unit(key), note="not computed: pedestrian sheds were skipped (--no-sheds)")


def _finish(label: str, kind: str, city_id: str, m: MetricSet, hist: np.ndarray, **kw: Any) -> SourceResult:
    m.update(P.derived_pattern_inputs(m.values, m.notes))
    m.update(W.walkability_index(m.values))
    return SourceResult(label, kind, city_id, m, P.evaluate_patterns(m.values, m.notes), hist, **kw)


# ----------------------------------------------------------------------------- raster
def raster_result(
    label: str,
    raster: Any,
    *,
    city_id: str | None = None,
    kind: str = "raster",
    tile: tuple[int, int] | None = None,
    sheds: bool = True,
) -> SourceResult:
    """Every metric measurable on a RasterData-like object (bands, crs, transform, present)."""
    res = float(raster.transform.a)
    if not math.isclose(abs(raster.transform.e), res, rel_tol=1e-6):
        raise SourceError(f"{label}: pixels are not square ({raster.transform.a} x {raster.transform.e})")
    m, graph = R.raster_metrics(
        bands=raster.bands,
        resolution_m=res,
        present=getattr(raster, "present", None),
        crs=raster.crs,
        transform=raster.transform,
        tags=getattr(raster, "tags", None),
        sheds=sheds,
    )
    if not sheds:
        _skip_sheds(m)
    _raster_paths(m, raster, res)
    for key, reason in P.RASTER_NOT_MEASURABLE.items():
        m.missing(key, P.PATTERN_UNITS.get(key, ""), reason)
    m.missing(
        [
            "amenity_hill_q0",
            "amenity_hill_q1",
            "amenity_hill_q2",
            "amenity_mix_entropy",
            "amenity_access_mean",
        ],
        "",
        "the amenities band holds counts, not amenity classes",
    )
    hist = R.orientation_histogram_raster(graph, crs=raster.crs, transform=raster.transform)
    tags = getattr(raster, "tags", None) or {}
    cid = city_id or str(tags.get("city", Path(label).stem))
    return _finish(label, kind, cid, m, hist, layers=raster, street_graph=graph, tile=tile)


def _raster_paths(m: MetricSet, raster: Any, res: float) -> None:
    present = getattr(raster, "present", None) or {}
    if "paths" not in raster.bands or present.get("paths") is False:
        m.missing("path_street_length_ratio", "ratio", "the raster has no paths band (or it is flagged absent)")
        return
    if _network_type(raster) == "drive":
        m.missing("path_street_length_ratio", "ratio", "the raster was built from a drive network (no paths)")
        return
    arrays, valid, _ = R.clean_bands(
        {
            "paths": raster.bands["paths"],
            **({"valid": raster.bands["valid"]} if "valid" in raster.bands else {}),
        }
    )
    from citygen.metrics.skeleton import recover_street_graph

    paths = recover_street_graph(arrays["paths"], resolution_m=res, valid=valid, threshold=0.25)
    street_len = m.get("street_length_total_m")
    if not street_len > 0:
        m.missing("path_street_length_ratio", "ratio", "no street length to compare with")
    else:
        m.set("path_street_length_ratio", paths.length_m.sum() / street_len, "ratio")


def _network_type(raster: Any) -> str | None:
    """The network type recorded in a citygen GeoTIFF's ``spec`` tag, if any."""
    spec = (getattr(raster, "tags", None) or {}).get("spec")
    try:
        return json.loads(spec).get("network_type") if spec else None
    except (ValueError, AttributeError):
        return None


def tile_windows(shape: tuple[int, int], size: int) -> list[tuple[int, int]]:
    return [(r, c) for r in range(0, shape[0] - size + 1, size) for c in range(0, shape[1] - size + 1, size)]


def tile_results(
    label: str, raster: Any, *, size: int = 256, min_valid: float = 0.5, sheds: bool = True
) -> list[SourceResult]:
    """One result per full ``size`` x ``size`` tile with at least ``min_valid`` valid pixels."""
    from types import SimpleNamespace

    shape = next(iter(raster.bands.values())).shape
    out = []
    for r, c in tile_windows(shape, size):
        bands = {k: v[r : r + size, c : c + size] for k, v in raster.bands.items()}
        if "valid" in bands and float(np.mean(bands["valid"] > 0.5)) < min_valid:
            continue
        sub = SimpleNamespace(
            bands=bands,
            crs=raster.crs,
            transform=raster.transform * raster.transform.translation(c, r),
            present=getattr(raster, "present", None),
            tags=getattr(raster, "tags", None),
        )
        out.append(
            raster_result(
                f"{label}#{r // size}_{c // size}", sub, kind="tile", tile=(r // size, c // size), sheds=sheds
            )
        )
    if not out:
        raise SourceError(f"{label}: no {size} x {size} tile with at least {min_valid:.0%} valid pixels")
    return out


# ----------------------------------------------------------------------------- entry point
def measure(
    source: Any, *, tiles: bool = False, tile_size: int = 256, sheds: bool = True, network: Network = "streets"
) -> list[SourceResult]:
    """Measure one source (sample id, path, CityLayers or RasterData); a list because of tiles. ``network``:
    the graph vector street metrics are taken on (:data:`NETWORKS`; a raster always holds the street network)."""
    label, obj = load_source(source)
    if _is_raster(obj):
        if tiles:
            return tile_results(label, obj, size=tile_size, sheds=sheds)
        return [raster_result(label, obj, sheds=sheds)]
    if tiles:
        raise ConfigError(f"{label}: --tiles needs a GeoTIFF", "build one with `citygen data build` and pass the .tif")
    return [vector_result(label, obj, sheds=sheds, network=network)]


def results_table(results: Sequence[SourceResult]) -> pd.DataFrame:
    """Tidy table: one row per result, one column per metric, plus ``patterns`` and ``notes``."""
    df = pd.DataFrame([r.record() for r in results])
    units: dict[str, str] = {}
    for r in results:
        units.update(r.metrics.units)
    cols = [c for c in ID_COLUMNS if c in df] + sorted(units, key=list(units).index) + ["patterns", "notes"]
    df = df[[c for c in cols if c in df]]
    df.attrs["units"] = units
    return df


def compute_metrics(
    sources: Any | Sequence[Any],
    *,
    tiles: bool = False,
    tile_size: int = 256,
    sheds: bool = True,
    network: Network = "streets",
) -> pd.DataFrame:
    """Measure sources into one tidy table (see the module docstring)."""
    if isinstance(sources, (str, Path)) or _is_layers(sources) or _is_raster(sources):
        sources = [sources]
    results = [r for s in sources for r in measure(s, tiles=tiles, tile_size=tile_size, sheds=sheds, network=network)]
    return results_table(results)
