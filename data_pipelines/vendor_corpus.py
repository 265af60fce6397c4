"""Regenerate the research corpus in ``data_pipelines/corpus/`` from the OpenStreetMap extract collection.

Usage::

    python data_pipelines/vendor_corpus.py SOURCE_DIR

``SOURCE_DIR`` is the collection (one sub-folder per place, with its ``PROVENANCE.md``; section "Added"
describes the files used here). For every place in ``PLACES`` the script

1. copies the most compact loadable file byte for byte (``.osm.pbf``, ``.osm.gz``, Overpass ``.json.gz``,
   GeoParquet edge tables), or converts files that are not OSM-tagged (GeoJSON decoded from Mapbox vector
   tiles, the osmplotr R data) to ``.osm.pbf`` with ``citygen.data.convert.vector_to_osm``, mapping road
   classes to ``highway`` values and tagging footprints ``building=yes`` (with ``height``/``min_height``);
2. computes a documented extent (``clip``): the centre of the densest 1 km cell of building centroids (of
   street nodes where a file has no footprints), a box of ``CLIP_KM`` x ``CLIP_KM`` around it, cut to the
   1st-99th percentile box of the file's street nodes (far-away nodes of clipped ways inflate raw bboxes);
3. writes ``corpus/registry.yaml`` (id, city, country, area, layers, files with sha256, clip, source
   repository, commit, licence, OSM date) and ``corpus/PROVENANCE.md`` (the collection's record).

Places whose file is byte-identical to a shipped sample are registered as aliases (``same_as``), not
copied twice. The package never reads the collection; only this script does.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmium
import yaml

from citygen.data.convert import is_overpass_json, overpass_to_osm, vector_to_osm

CORPUS = Path(__file__).resolve().parent / "corpus"
CLIP_KM = 5.0

# id: (folder, [(file, layers or None, conversion)], city, area)
# layers None: what the file holds decides (a file without footprints is streets-only); written to the registry.
STREETS = ["streets"]
FEATURE_LAYERS = ["buildings", "green", "water", "parking", "amenities"]
PLACES: dict[str, tuple] = {
    "copenhagen_kbh": ("copenhagen_kbh", [("kbh.osm.pbf", None, None)], "Copenhagen, Denmark", "central Copenhagen: Indre By, Vesterbro, Norrebro, Amager North (2011)"),
    "lauf": ("lauf", [("lauf-200115.osm.pbf", None, None)], "Lauf an der Pegnitz, Germany", "small Bavarian town"),
    "dreieich": ("dreieich", [("dreieich.osm.pbf", None, None)], "Dreieich, Germany", "Hessian town centre"),
    "porto": ("porto", [("porto-2020.osm.pbf", None, None)], "Porto, Portugal", "central Porto"),
    "north_bayreuth": ("north_bayreuth", [("north-bayreuth.osm.pbf", None, None)], "Bayreuth, Germany", "Bayreuth north and villages"),
    "krems": ("krems", [("krems.osm.pbf", None, None)], "Krems an der Donau, Austria", "Krems town"),
    "liechtenstein": ("liechtenstein", [("liechtenstein-2021.osm.pbf", None, None)], "Vaduz, Liechtenstein", "Vaduz and Schaan"),
    "andorra": ("andorra", [("andorra-2021.osm.pbf", None, None)], "Andorra la Vella, Andorra", "Andorra la Vella and Escaldes"),
    "baltimore": ("baltimore", [("baltimore-2015.osm.pbf", STREETS, None)], "Baltimore, USA", "downtown and south/east Baltimore (buildings partial: streets only)"),
    "heidelberg": ("heidelberg", [("heidelberg_altstadt-2015.osm.pbf", None, None)], "Heidelberg, Germany", "Altstadt and Bergheim"),
    "munich": ("munich", [("munchen-2020.osm.pbf", None, None)], "Munich, Germany", "Altstadt (central cut of a routing extract)"),
    "london": ("london", [("london-2020.osm.pbf", None, None)], "London, United Kingdom", "City of London and Holborn (central cut of a routing extract)"),
    "london_covent_garden": ("london_covent_garden", [("london_streets.geojson.gz", None, "osmplotr"), ("london_buildings.geojson.gz", None, "osmplotr")], "London, United Kingdom", "Covent Garden, Strand, South Bank (osmplotr data)"),
    "astana": ("astana", [("astana_highways_buildings.geojson.gz", None, "osm_tags")], "Astana, Kazakhstan", "central Astana (OSM QA tiles)"),
    "malta": ("malta", [("malta-2016.osm.pbf", STREETS, None)], "Valletta, Malta", "Valletta, Sliema, Birkirkara (footprints incomplete in 2016: streets only)"),
    "moscow_center": ("moscow_center", [("moscow_center-2020.osm.pbf", None, None)], "Moscow, Russia", "Kitay-gorod and Basmanny"),
    "faurndau": ("faurndau", [("faurndau_destination.osm.gz", None, None)], "Goeppingen, Germany", "Faurndau, a small town"),
    "neudrossenfeld": ("neudrossenfeld", [("neudrossenfeld.osm.pbf", None, None)], "Neudrossenfeld, Germany", "Bavarian village"),
    "harsdorf": ("harsdorf", [("harsdorf.osm.pbf", None, None)], "Harsdorf, Germany", "Bavarian village area"),
    "bad_wildbad": ("bad_wildbad", [("badwildbad.osm.pbf", None, None)], "Bad Wildbad, Germany", "Black Forest valley town"),
    "helgoland": ("helgoland", [("helgoland.osm.pbf", None, None)], "Helgoland, Germany", "island town"),
    "hoyerswerda": ("hoyerswerda", [("hoyerswerda.osm.pbf", STREETS, None)], "Hoyerswerda, Germany", "road-focused cut (few buildings: streets only)"),
    "nyc_lower_east_side": ("nyc_lower_east_side", [("ny-access-restriction.osm.pbf", None, None)], "New York, USA", "Lower East Side, Bowery to Essex St (building heights)"),
    "reisterstown_md": ("reisterstown_md", [("reisterstown.osm.pbf", None, None)], "Reisterstown and Owings Mills, USA", "Baltimore County suburbs"),
    "imperial_county_ca": ("imperial_county_ca", [("imperial_county.osm.pbf", None, None)], "El Centro, USA", "El Centro in Imperial County, California"),
    "oakland_grand_lake": ("oakland_grand_lake", [("overpass_streets.json.gz", STREETS, None), ("overpass_buildings.json.gz", None, None)], "Piedmont and Oakland, USA", "Grand Lake and Piedmont Avenue, drive network (same footprints as the piedmont sample)"),
    "columbus_oh": ("columbus_oh", [("columbus.osm.pbf", STREETS, None)], "Columbus, USA", "Columbus, Ohio"),
    "yuba_county_ca": ("yuba_county_ca", [("yuba_county.osm.pbf", STREETS, None)], "Marysville and Yuba City, USA", "Marysville, Linda and Olivehurst"),
    "cobb_county_ga": ("cobb_county_ga", [("cobb-county.filtered.osm.pbf", STREETS, None)], "Marietta and Smyrna, USA", "Cobb County, Georgia suburbs"),
    "portland_or": ("portland_or", [("portland_small.osm.pbf", STREETS, None)], "Portland, USA", "Portland, Oregon"),
    "harrisburg_pa": ("harrisburg_pa", [("harrisburg-2015.osm.pbf", STREETS, None)], "Harrisburg, USA", "Harrisburg, Pennsylvania"),
    "washington_dc": ("washington_dc", [("washington_dc_nw.osm.pbf", STREETS, None)], "Washington, USA", "Cathedral Heights to downtown"),
    "boston_cambridge": ("boston_cambridge", [("boston_cambridge_somerville.osm.pbf", STREETS, None)], "Boston, USA", "Boston, Cambridge, Somerville"),
    "bangor_me": ("bangor_me", [("bangor_maine.osm.pbf", STREETS, None)], "Bangor, USA", "Bangor, Maine"),
    "beatty_nv": ("beatty_nv", [("beatty.osm.pbf", STREETS, None)], "Beatty, USA", "Beatty, Nevada, a desert town"),
    "apalachicola_fl": ("apalachicola_fl", [("apalachicola_original.parquet", STREETS, None)], "Apalachicola, USA", "small-town grid, Florida"),
    "sf_mission": ("sf_mission", [("overpass_streets.json.gz", STREETS, None)], "San Francisco, USA", "Mission, SoMa, Potrero (drive network)"),
    "sf_north_beach": ("sf_north_beach", [("overpass_streets.json.gz", STREETS, None)], "San Francisco, USA", "North Beach, Chinatown, Financial District (drive network)"),
    "sf_haight": ("sf_haight_mvt", [("sf_roads_buildings.geojson.gz", None, "mapbox")], "San Francisco, USA", "Haight-Ashbury, Cole Valley, Castro (Mapbox Streets tiles)"),
    "chicago": ("chicago_mvt", [("chicago_roads_buildings.geojson.gz", STREETS, "mapbox")], "Chicago, USA", "Loop and West/South Side grid (z13 vector tiles, generalised)"),
    "salt_lake_city": ("salt_lake_city", [("slc_4881_original.parquet", STREETS, None)], "Salt Lake City, USA", "urban area street network (neatnet)"),
    "reno_nv": ("reno_nv", [("reno_east3.pbf", STREETS, None)], "Reno, USA", "east Reno and Sparks"),
    "aleppo": ("aleppo", [("aleppo_1133_original.parquet", STREETS, None)], "Aleppo, Syria", "urban area street network (neatnet)"),
    "bucaramanga": ("bucaramanga", [("bucaramanga_4617_original.parquet", STREETS, None)], "Bucaramanga, Colombia", "urban area street network (neatnet)"),
    "douala": ("douala", [("douala_809_original.parquet", STREETS, None)], "Douala, Cameroon", "urban area street network (neatnet)"),
    "wuhan": ("wuhan", [("wuhan_8989_original.parquet", STREETS, None)], "Wuhan, China", "urban area street network (neatnet)"),
    "liege": ("liege", [("liege_1656_original.parquet", STREETS, None)], "Liege, Belgium", "urban area street network (neatnet)"),
    "milan": ("milan", [("milan_italy_small.osm.pbf", STREETS, None)], "Milan, Italy", "metro street network"),
    "rhein_neckar": ("rhein_neckar", [("rnv-2016.osm.pbf", STREETS, None)], "Mannheim, Germany", "Mannheim in the Rhein-Neckar street network"),
    "oslo": ("oslo", [("oslo-east-filtered.osm.pbf", STREETS, None)], "Oslo, Norway", "Oslo east street network"),
    "maribor": ("maribor", [("maribor_clean.osm.gz", STREETS, None)], "Maribor, Slovenia", "street network"),
    "porto_alegre": ("porto_alegre", [("poa_osm.pbf", STREETS, None)], "Porto Alegre, Brazil", "central street network"),
    "sao_paulo": ("sao_paulo", [("spo_osm.pbf", STREETS, None)], "Sao Paulo, Brazil", "central street network"),
}  # fmt: skip
# Byte-identical to a shipped sample's file: registered as an alias, built once (as the sample).
ALIASES = {
    "nyc_manhattan": "nyc_west_village",
    "oakland_hills": "piedmont",
    "sf_inner_sunset": "sf_parnassus",
    "sf_pacific_heights": "sf_downtown",
    "brooklyn_park_slope": "brooklyn",
}


def _rows(provenance: str) -> dict[str, dict[str, str]]:
    """The rows of the "Added" tables of PROVENANCE.md, keyed by file path."""
    out = {}
    for line in provenance.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 14 and "/" in cells[1] and not cells[0].startswith("-"):
            out[cells[1]] = {
                "source": cells[2],
                "licence": cells[3],
                "sha16": cells[5],
                "osm_date": cells[12],
                "notes": cells[13],
            }
    return out


def _original_row(rows: dict[str, dict[str, str]], folder: str) -> dict[str, str]:
    return next(row for path, row in rows.items() if path.startswith(f"{folder}/") and "@" in row["source"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mapbox_frame(path: Path) -> gpd.GeoDataFrame:
    frame = gpd.read_file(f"/vsigzip/{path}")
    buildings = frame["layer_name"] == "building"
    frame = frame[buildings | (frame["layer_name"] == "road")].copy()
    frame["building"] = np.where(frame["layer_name"] == "building", "yes", None)
    frame.loc[frame["layer_name"] == "building", "class"] = None  # a footprint's class is no road class
    return frame


def _osmplotr_frame(path: Path) -> gpd.GeoDataFrame:
    frame = gpd.read_file(f"/vsigzip/{path}")
    if "bldg_class" in frame:
        frame["building"] = "yes"
    return frame


def _convert(source: Path, kind: str, out: Path) -> None:
    if kind == "mapbox":
        frame = _mapbox_frame(source)
        vector_to_osm(frame, out, tag_columns=("building", "height", "min_height"))
    elif kind == "osmplotr":
        vector_to_osm(_osmplotr_frame(source), out, tag_columns=("building",))
    elif kind == "osm_tags":
        frame = gpd.read_file(f"/vsigzip/{source}")
        keep = [c for c in frame.columns if not c.startswith("@") and c != "geometry"]
        vector_to_osm(frame, out, tag_columns=keep)
    else:
        raise ValueError(kind)


def _points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(street node lon/lat, building lon/lat) of an OSM file, an Overpass response or a line table."""
    with tempfile.TemporaryDirectory() as tmp:
        if is_overpass_json(path):
            converted = Path(tmp) / "x.osm"
            overpass_to_osm(path, converted)
            path = converted
        elif path.name.endswith(".parquet"):
            frame = gpd.read_parquet(path).to_crs(4326)
            xy = np.concatenate([np.asarray(g.coords) for g in frame.geometry.explode().values])
            return xy, np.empty((0, 2))
        streets, buildings = [], []
        for way in osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations():
            if not way.is_way():
                continue
            locations = [(n.location.lon, n.location.lat) for n in way.nodes if n.location.valid()]
            if not locations:
                continue
            if "highway" in way.tags:
                streets += locations
            elif way.tags.get("building", "no") != "no":
                buildings.append(np.mean(locations, axis=0))
        return np.array(streets).reshape(-1, 2), np.array(buildings).reshape(-1, 2)


def clip_box(streets: np.ndarray, buildings: np.ndarray) -> list[float]:
    """CLIP_KM x CLIP_KM around the densest 1 km cell (of footprints, else street nodes), cut to the
    1st-99th percentile box of the street nodes (of the footprints where a file has no streets)."""
    core_points = streets if len(streets) else buildings
    lo, hi = np.percentile(core_points, 1, axis=0), np.percentile(core_points, 99, axis=0)
    density = buildings if len(buildings) >= 50 else streets
    lat0 = float(np.median(density[:, 1]))
    deg_lon, deg_lat = 1.0 / (111.32 * np.cos(np.radians(lat0))), 1.0 / 110.57  # degrees per km
    cells = np.floor(density / [deg_lon, deg_lat]).astype(np.int64)
    keys, counts = np.unique(cells, axis=0, return_counts=True)
    centre = (keys[np.argmax(counts)] + 0.5) * [deg_lon, deg_lat]
    half = np.array([deg_lon, deg_lat]) * CLIP_KM / 2
    west, south = np.maximum(centre - half, lo)
    east, north = np.minimum(centre + half, hi)
    return [round(float(v), 5) for v in (west, south, east, north)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source_dir", type=Path, help="folder of the OSM extract collection")
    source = parser.parse_args().source_dir
    provenance = (source / "PROVENANCE.md").read_text()
    rows = _rows(provenance)
    CORPUS.mkdir(parents=True, exist_ok=True)
    entries = []
    for place_id, (folder, files, city, area) in PLACES.items():
        (CORPUS / place_id).mkdir(exist_ok=True)
        registered, streets, buildings, origin = [], [], [], None
        for name, layers, kind in files:
            original = source / folder / name
            row = rows.get(f"{folder}/{name}")
            if row is None:
                raise SystemExit(f"{folder}/{name} has no row in PROVENANCE.md")
            if "@" not in row["source"]:  # a file the collection derived: its original's row has the source
                row = {**row, **{k: v for k, v in _original_row(rows, folder).items() if k in ("source", "licence")}}
            origin = origin or row
            if _sha256(original)[:16] != row["sha16"]:
                raise SystemExit(f"{folder}/{name}: sha256 differs from PROVENANCE.md")
            if kind is None:
                target = CORPUS / place_id / name
                shutil.copyfile(original, target)
            else:
                target = CORPUS / place_id / (name.split(".")[0] + ".osm.pbf")
                target.unlink(missing_ok=True)
                _convert(original, kind, target)
            s, b = _points(target)
            streets.append(s)
            buildings.append(b)
            entry = {"path": f"{place_id}/{target.name}", "sha256": _sha256(target)}
            # what the file holds, when not declared: footprints mean a complete extract (every layer)
            found = (["streets"] if len(s) else []) + (FEATURE_LAYERS if len(b) else [])
            entry["layers"] = layers or found
            if kind is not None:
                entry["derived_from"] = f"{folder}/{name} (sha256 {_sha256(original)[:16]}), converted ({kind})"
            registered.append(entry)
        repo, _, path = origin["source"].partition(":")
        repository, _, commit = repo.partition("@")
        entries.append(
            {
                "id": place_id,
                "city": city,
                "area": area,
                "network_type": "all",
                "files": registered,
                "clip": clip_box(np.concatenate(streets), np.concatenate(buildings)),
                "source": f"{repository} test data",
                "repository": repository,
                "commit": commit,
                "repository_path": path,
                "repository_licence": origin["licence"],
                "osm_date": origin["osm_date"],
                "licence": "ODbL-1.0",
            }
        )
        print(place_id, entries[-1]["clip"], [f["path"] for f in registered])
    header = (
        "# The citygen research corpus: real OpenStreetMap extracts, (c) OpenStreetMap contributors, ODbL 1.0.\n"
        "# Written by data_pipelines/vendor_corpus.py from the extract collection (PROVENANCE.md beside this file).\n"
        f"# clip: the documented extent built, [west, south, east, north] in degrees: {CLIP_KM:g} x {CLIP_KM:g} km\n"
        "# around the densest 1 km cell of footprints (of street nodes without footprints), cut to the 1st-99th\n"
        "# percentile box of the street nodes. `layers`: what a file provides (a file without footprints is\n"
        "# streets only). `same_as`: the same bytes as a shipped sample, built once as that sample.\n"
    )
    aliases = [{"id": alias, "same_as": sample} for alias, sample in ALIASES.items()]
    text = yaml.safe_dump({"corpus": entries, "aliases": aliases}, sort_keys=False, width=120, allow_unicode=True)
    (CORPUS / "registry.yaml").write_text(header + text)
    shutil.copyfile(source / "PROVENANCE.md", CORPUS / "PROVENANCE.md")


if __name__ == "__main__":
    main()
