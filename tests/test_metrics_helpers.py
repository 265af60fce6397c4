"""Helpers for the metrics tests (no tests here): sample graphs, built rasters, cached results."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import osmnx as ox

import citygen

SAMPLES = Path(citygen.__file__).parent / "samples"
GRAPHS = {
    "houston_montrose": "houston/houston_montrose_fourth_ward_drive.graphml.gz",
    "houston_museum_district": "houston/houston_museum_district_drive.graphml.gz",
    "cph_vesterbro": "copenhagen/cph_vesterbro_frederiksberg_drive.graphml.gz",
    "nyc_lower_manhattan": "new_york/nyc_lower_manhattan_drive.graphml.gz",
}
# Built rasters: the data pipeline's session fixture when it has these, else built here with the same code.
AGREEMENT_SAMPLES = ("houston_montrose", "cph_vesterbro")
RASTER_SAMPLES = (*AGREEMENT_SAMPLES, "helsinki_center")


def load_graph(sample_id: str) -> nx.MultiDiGraph:
    """A shipped street graph exactly as published (the reference values are on these), projected to UTM."""
    return ox.project_graph(ox.load_graphml(SAMPLES / GRAPHS[sample_id]))


def built_raster_dir(request, tmp_path_factory) -> Path:
    import pytest

    try:
        built = Path(request.getfixturevalue("built_samples"))
        if all((built / f"{s}.tif").is_file() for s in RASTER_SAMPLES):
            return built
    except pytest.FixtureLookupError:
        pass
    from citygen.data.build import build_city
    from citygen.data.spec import parse_city

    out = tmp_path_factory.mktemp("metrics_built")
    for sid in RASTER_SAMPLES:
        result = build_city(parse_city({"id": sid, "sample": sid}), out)
        assert result.status == "built", result.error
    return out


_RESULTS: dict[str, object] = {}


def measured(source: str | Path):
    """``citygen.metrics.suite.measure`` of a source, computed once per test session."""
    from citygen.metrics.suite import measure

    key = str(source)
    if key not in _RESULTS:
        (_RESULTS[key],) = measure(source)
    return _RESULTS[key]
