"""Regenerate ``citygen/samples/`` from the OpenStreetMap extract collection.

Usage::

    python data_pipelines/vendor_samples.py SOURCE_DIR

``SOURCE_DIR`` is the folder holding the extract collection (one sub-folder per city, with its own
``PROVENANCE.md``). Most files are copied byte for byte; two are converted so that the package ships one
loadable format per source:

* the Copenhagen Indre By footprints lose their ``height`` column (it comes from the Danish elevation
  model, not from OpenStreetMap);
* the Grenoble OSMnx node/edge GeoJSON pair becomes one GraphML file (``osmnx.graph_from_gdfs``).

Run it only when the collection changes; the package never reads the collection at run time.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

import geopandas as gpd
import osmnx as ox

SAMPLES = Path(__file__).resolve().parents[1] / "citygen" / "samples"
TEST_OVERPASS = Path(__file__).resolve().parents[1] / "tests" / "data" / "overpass"

COPIES = {
    "houston": [
        "houston_montrose_fourth_ward_drive.graphml.gz",
        "houston_museum_district_drive.graphml.gz",
        "houston_meyerland_buildings.geojson",
    ],
    "copenhagen": ["cph_vesterbro_frederiksberg_drive.graphml.gz", "cph_indre_by_streets_all.graphml.gz"],
    "helsinki": ["helsinki_center.osm.pbf"],
    "kotka": ["kotka_karhula.osm.pbf"],
    "monaco": ["monaco.osm.pbf"],
    "aguascalientes_mx": ["aguascalientes_centro.osm.pbf"],
    "campo_grande_br": ["campo_grande.osm.gz"],
    "new_york": [
        "nyc_lower_manhattan_drive.graphml.gz",
        "manhattan_buildings_valhalla.osm.pbf",
        "brooklyn_streets_2017.osm.bz2",
    ],
    "san_francisco": ["sf_downtown_streets_2017.osm.bz2", "sf_parnassus_buildings_2017.osm.bz2"],
    "oakland_piedmont": ["piedmont_buildings_2017.osm.bz2", "piedmont_oakland_streets_2017.osm.bz2"],
    "mountain_view_ca": ["mountain_view_los_altos_streets_2017.osm.bz2"],
}
# Real recorded Overpass responses, used by the tests of the online download path.
RECORDED_RESPONSES = {
    "san_francisco": [
        "sf_downtown_streets_2017.overpass.json.gz",
        "sf_parnassus_buildings_2017.overpass.json.gz",
    ]
}


def _unwrap(value: object) -> object:
    values = (
        [v for v in list(value) if v is not None and str(v) != "nan"]
        if hasattr(value, "__len__") and not isinstance(value, str)
        else [value]
    )
    if not values:
        return None
    return values[0] if len(values) == 1 else [str(v) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source_dir", type=Path, help="folder of the OSM extract collection")
    source = parser.parse_args().source_dir
    for city, names in COPIES.items():
        (SAMPLES / city).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(source / city / name, SAMPLES / city / name)
    TEST_OVERPASS.mkdir(parents=True, exist_ok=True)
    for city, names in RECORDED_RESPONSES.items():
        for name in names:
            shutil.copyfile(source / city / name, TEST_OVERPASS / name)

    footprints = gpd.read_file(source / "copenhagen" / "cph_indre_by_building_footprints.geojson")
    footprints = footprints.drop(columns=["height"]).assign(building="yes")
    footprints.to_file(SAMPLES / "copenhagen" / "cph_indre_by_buildings.geojson", driver="GeoJSON")

    nodes = gpd.read_file(source / "grenoble" / "grenoble_streets_500_nodes.geojson")
    nodes = nodes.assign(x=nodes["x"].astype(float), y=nodes["y"].astype(float)).set_index("id")
    edges = gpd.read_file(source / "grenoble" / "grenoble_streets_500_edges.geojson")
    for column in ("osmid", "name", "highway"):  # one-element arrays -> scalar, as OSMnx writes them
        edges[column] = edges[column].map(_unwrap)
    edges["key"] = edges.groupby(["u", "v"]).cumcount()
    edges = edges.set_index(["u", "v", "key"])
    graph = ox.graph_from_gdfs(nodes[["x", "y", "geometry"]], edges)
    (SAMPLES / "grenoble").mkdir(exist_ok=True)
    plain = SAMPLES / "grenoble" / "grenoble_center_streets_all.graphml"
    ox.save_graphml(graph, plain)
    with open(plain, "rb") as src, gzip.open(plain.with_suffix(".graphml.gz"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain.unlink()
    shutil.copyfile(source / "PROVENANCE.md", SAMPLES / "PROVENANCE_SOURCE.md")


if __name__ == "__main__":
    main()
