"""Vector street-network metrics on the shipped samples, against published reference values."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import osmnx as ox
import pytest
import shapely
from test_metrics_helpers import GRAPHS, SAMPLES, load_graph

from citygen.core.errors import SourceError
from citygen.metrics._common import bearing_histogram, entropy_from_counts, orientation_order
from citygen.metrics.network import block_polygons, junction_counts, length_within, network_metrics, within_extent

# metrics_and_models.md, "Reference values on the shipped samples" (OSMnx 2.1.1, undirected, 36 bins); junction
# shares as OSMnx gives them, the raw node shares (prop_*_raw; prop_* merge junctions within 10 m as the raster does)
REFERENCE = {
    "houston_montrose": {
        "orientation_entropy_raw": 2.577,
        "prop_3way_raw": 0.460,
        "prop_4way_raw": 0.464,
        "k_avg": 5.375,
    },
    "houston_museum_district": {"orientation_entropy_raw": 2.971, "prop_3way_raw": 0.475, "prop_4way_raw": 0.439},
    "cph_vesterbro": {"orientation_entropy_raw": 3.204, "prop_3way_raw": 0.640, "prop_4way_raw": 0.186, "k_avg": 4.774},
    "nyc_lower_manhattan": {"orientation_entropy_raw": 2.776, "prop_3way_raw": 0.330, "prop_4way_raw": 0.635},
}
_CACHE: dict[str, object] = {}


def metrics_of(sample_id: str):
    if sample_id not in _CACHE:
        _CACHE[sample_id] = network_metrics(graph=load_graph(sample_id))
    return _CACHE[sample_id]


@pytest.mark.parametrize("sample_id", sorted(REFERENCE))
def test_reference_values(sample_id: str) -> None:
    m = metrics_of(sample_id)
    for key, expected in REFERENCE[sample_id].items():
        assert m[key] == pytest.approx(expected, abs=0.01), key


def test_houston_is_more_ordered_than_copenhagen() -> None:
    houston, cph = metrics_of("houston_montrose"), metrics_of("cph_vesterbro")
    assert houston["orientation_entropy"] < cph["orientation_entropy"] - 0.5
    assert houston["orientation_order"] > cph["orientation_order"]
    assert houston["prop_4way"] > cph["prop_4way"]
    assert cph["prop_3way"] > houston["prop_3way"]


def test_orientation_order_formula() -> None:
    assert orientation_order(math.log(4)) == pytest.approx(1.0)
    assert orientation_order(math.log(36)) == pytest.approx(0.0)
    # A perfect grid: bearings 0/90/180/270 only.
    assert entropy_from_counts(bearing_histogram([0, 90, 180, 270] * 5)) == pytest.approx(math.log(4))
    # Bins are centred on multiples of 10 degrees: 359.9 and 0.1 share a bin.
    assert bearing_histogram([359.9, 0.1])[0] == 2


def test_units_and_consistency() -> None:
    m = metrics_of("houston_montrose")
    assert m.units["street_density_km_km2"] == "km/km2"
    assert m["street_density_km_km2"] == pytest.approx(m["street_length_total_m"] / 1000 / m["area_km2"])
    assert m["intersection_density_km2"] == pytest.approx(m["intersection_count"] / m["area_km2"])
    # Consolidation within 10 m merges nodes: fewer intersections than the raw count.
    assert m["intersection_count"] < m["intersection_count_raw"]
    assert 0 < m["prop_deadend"] < 0.2
    assert m["block_count"] > 100 and 1000 < m["block_area_median_m2"] < 50000


def test_geographic_graph_is_projected() -> None:
    raw = ox.load_graphml(SAMPLES / GRAPHS["houston_museum_district"])
    assert raw.graph["crs"].lower() == "epsg:4326"
    m = network_metrics(graph=raw)
    assert m["street_length_total_m"] == pytest.approx(metrics_of("houston_museum_district")["street_length_total_m"])
    assert 5 < m["street_density_km_km2"] < 30  # metres, not degrees


def test_empty_graph_is_not_measurable() -> None:
    empty = nx.MultiDiGraph(crs="epsg:32615")
    m = network_metrics(graph=empty)
    assert math.isnan(m["intersection_density_km2"])
    assert m.notes["intersection_density_km2"].startswith("not measurable")
    assert math.isnan(network_metrics(graph=None)["orientation_entropy"])


def test_graph_without_crs_is_a_clear_error() -> None:
    g = load_graph("houston_museum_district").copy()
    del g.graph["crs"]
    with pytest.raises(SourceError, match="no CRS"):
        network_metrics(graph=g)


def test_blocks_are_closed_faces() -> None:
    blocks = block_polygons(graph=load_graph("houston_museum_district"))
    assert len(blocks) > 50
    assert np.all([b.is_valid for b in blocks])


def _highway_xml(pbf: Path, out: Path) -> Path:
    """The highway ways of a real extract as OSM XML, as an Overpass download of OSMnx's `all` network holds them."""
    import osmium
    from osmium.osm import mutable

    not_built = {"abandoned", "construction", "no", "planned", "platform", "proposed", "raceway", "razed"}
    ways, nodes = [], {}
    for obj in osmium.FileProcessor(str(pbf)).with_locations():
        if obj.is_way() and obj.tags.get("highway", "no") not in not_built and obj.tags.get("area") != "yes":
            refs = [n.ref for n in obj.nodes if n.location.valid()]
            nodes.update({n.ref: (n.location.lon, n.location.lat) for n in obj.nodes if n.location.valid()})
            ways.append((obj.id, refs, dict(obj.tags)))
    writer = osmium.SimpleWriter(str(out), overwrite=True)
    for i in sorted(nodes):
        writer.add_node(mutable.Node(id=i, location=nodes[i], version=1))
    for i, refs, tags in ways:
        writer.add_way(mutable.Way(id=i, nodes=refs, tags=tags, version=1))
    writer.close()
    return out


def test_osmnx_network_reproduces_basic_stats(tmp_path: Path) -> None:
    """Issue 21: `--network osmnx` takes the graph as OSMnx loads the file, so its figures are osmnx.basic_stats'
    (within 1 %); the default street network leaves the path classes out and says so, with their length."""
    import networkx as nx
    import osmnx as ox

    from citygen.metrics.suite import compute_metrics

    root = Path(__file__).resolve().parents[1]
    xml = _highway_xml(root / "citygen" / "samples" / "helsinki" / "helsinki_center.osm.pbf", tmp_path / "hel.osm")
    G = ox.graph_from_xml(xml, retain_all=True, bidirectional=False)
    nx.set_node_attributes(G, ox.stats.count_streets_per_node(G), "street_count")
    stats = ox.stats.basic_stats(ox.project_graph(G))
    row = compute_metrics(xml, network="osmnx", sheds=False).iloc[0]
    pairs = {"n": "node_count", "m": "edge_count", "k_avg": "k_avg", "streets_per_node_avg": "streets_per_node_avg",
             "street_length_total": "street_length_total_m", "intersection_count": "intersection_count_raw",
             "circuity_avg": "circuity_avg"}  # fmt: skip
    for theirs, ours in pairs.items():
        assert row[ours] == pytest.approx(stats[theirs], rel=0.01), ours
    props = stats["streets_per_node_proportions"]
    assert row["prop_3way_raw"] == pytest.approx(props[3], rel=0.01)
    assert row["prop_4way_raw"] == pytest.approx(props[4], rel=0.01)
    streets = compute_metrics(xml, sheds=False).iloc[0]
    assert streets["street_length_total_m"] < 0.5 * row["street_length_total_m"], "the old town is mostly paths"
    assert streets["path_length_km"] == pytest.approx(row["path_length_km"]) and streets["path_length_km"] > 50
    assert "km of path classes excluded" in streets["notes"]["street_length_total_m"]
    assert "nothing removed" in row["notes"]["street_length_total_m"]


def test_orientation_weighted_by_length_is_osmnx_with_length_weights() -> None:
    """orientation_entropy weighs each edge by its length (issue 21: the raster's short junction connectors then
    weigh what they measure); OSMnx's own figure with weight="length" is the same number, the unweighted one
    stays as orientation_entropy_raw."""
    lonlat = ox.project_graph(load_graph("cph_vesterbro"), to_latlong=True)
    Gu = ox.add_edge_bearings(ox.convert.to_undirected(lonlat))
    m = metrics_of("cph_vesterbro")
    assert m["orientation_entropy"] == pytest.approx(ox.bearing.orientation_entropy(Gu, weight="length"), abs=1e-3)
    assert m["orientation_entropy_raw"] == pytest.approx(ox.bearing.orientation_entropy(Gu), abs=1e-3)
    assert m["orientation_entropy"] != pytest.approx(m["orientation_entropy_raw"], abs=1e-3)


def test_a_graph_beyond_the_extent_is_cut_at_it() -> None:
    """A box in the middle of Houston Montrose: nodes outside it are dropped as osmnx.graph_from_polygon drops them,
    street length is counted up to the box's edge, and the streets the box cuts are not dead ends."""
    G = load_graph("houston_montrose")
    xy = np.array([(d["x"], d["y"]) for _, d in G.nodes(data=True)])
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    box = shapely.box(x0 + (x1 - x0) / 4, y0 + (y1 - y0) / 4, x1 - (x1 - x0) / 4, y1 - (y1 - y0) / 4)
    inside = within_extent(G, box)
    assert 0 < inside.number_of_nodes() < G.number_of_nodes()
    assert all(box.covers(shapely.Point(d["x"], d["y"])) for _, d in inside.nodes(data=True))
    cut = network_metrics(graph=G, extent=box)
    kept = ox.stats.street_length_total(ox.convert.to_undirected(inside))
    lines = shapely.union_all(
        [d.get("geometry", shapely.LineString([(G.nodes[u]["x"], G.nodes[u]["y"]), (G.nodes[v]["x"], G.nodes[v]["y"])]))
         for u, v, d in G.edges(data=True)]
    )  # fmt: skip
    assert cut["street_length_total_m"] > kept  # the parts of the cut edges inside the box count
    whole = metrics_of("houston_montrose")
    # OSMnx's edge lengths are great-circle lengths, a little shorter than the UTM lines: compare in proportion
    scale = whole["street_length_total_m"] / lines.length
    clipped = scale * shapely.intersection(lines, box).length
    assert cut["street_length_total_m"] == pytest.approx(clipped, rel=0.03) and kept < 0.9 * clipped
    # Montrose's grid has few dead ends; counted naively the cut box would have dozens
    counts = junction_counts(inside, tolerance_m=10.0)
    naive = counts[1] / counts[0]
    assert cut["prop_deadend"] < 0.12 < naive
    assert cut["prop_deadend"] == pytest.approx(whole["prop_deadend"], abs=0.05)
    assert length_within(G, shapely.box(x0 - 1, y0 - 1, x1 + 1, y1 + 1)) == pytest.approx(
        whole["street_length_total_m"]
    )
