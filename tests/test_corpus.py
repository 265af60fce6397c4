"""The research corpus: registry and provenance, the formats it brings (Overpass JSON, GeoParquet edge tables,
unsorted OSM files), documented extents, presence of layers, location-based splits across overlapping
extracts, and clear errors for missing or corrupt files. All on the real files of data_pipelines/corpus."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
import yaml

from citygen.cli import main
from citygen.data import samples as registry
from citygen.data.build import build_dataset
from citygen.data.sources import load_city
from citygen.data.spec import load_config, parse_city
from citygen.data.tiles import drop_cross_city_conflicts

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data_pipelines" / "corpus"


def test_registry_lists_every_place_with_provenance() -> None:
    corpus, everything = registry.list_corpus(), registry.list_registered()
    assert len(corpus) >= 50 and len(everything) >= 60
    assert len([s for s in everything if "buildings" in s.layers]) >= 25
    for place in corpus:
        assert place.repository and place.commit and len(place.commit) == 40 and place.repository_licence
        assert place.licence == "ODbL-1.0" and place.clip is not None
        for item in place.files:
            path = CORPUS / item.path
            assert hashlib.sha256(path.read_bytes()).hexdigest() == item.sha256, item.path
            assert item.layers, f"{item.path}: the registry says what each file provides"
    assert registry.get_sample("sf_pacific_heights").id == "sf_downtown", "an alias builds as its sample"
    config = load_config(ROOT / "configs" / "data" / "corpus.yaml")
    assert {s.id for s in config} >= {s.id for s in everything}
    variants = [s for s in config if s.id not in {p.id for p in everything}]
    assert all(s.sample for s in variants), "extra entries are variants of registered places"
    provenance = (CORPUS / "PROVENANCE.md").read_text() + (CORPUS / "README.md").read_text()
    assert "OpenStreetMap contributors" in provenance and "ODbL" in provenance


def test_groups_file_labels_every_registered_place() -> None:
    from citygen.workflows.groups import load_groups

    groups = load_groups(ROOT / "configs" / "compare" / "groups.yaml")
    assert {s.id for s in registry.list_registered()} <= set(groups.of_place)
    assert groups.probe == ("car_centric", "walkable") and groups.pairs["houston_vs_copenhagen"] == (
        "Houston",
        "Copenhagen",
    )
    assert all(rule["rule"] and rule["source"] for rule in groups.rules.values())
    assert groups.of_place["houston_montrose"] == "car_centric" and groups.of_place["copenhagen_kbh"] == "walkable"


def test_samples_json_lists_samples_and_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "samples", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_id = {row["id"]: row for row in rows}
    assert not by_id["houston_montrose"]["corpus"] and by_id["copenhagen_kbh"]["corpus"]
    for key in ("city", "country", "group", "layers", "area_km2", "source", "licence"):
        assert key in by_id["copenhagen_kbh"], key
    assert by_id["copenhagen_kbh"]["group"] == "walkable" and by_id["copenhagen_kbh"]["country"] == "Denmark"
    assert by_id["salt_lake_city"]["layers"] == ["streets"], "a street-only file is a streets-only city"
    assert main(["data", "samples", "--json", "--corpus"]) == 0
    assert all(row["corpus"] for row in json.loads(capsys.readouterr().out))


def test_overpass_json_reads_as_the_same_graph_in_out_body_and_out_geom_form(tmp_path: Path) -> None:
    """The recorded response lists nodes then ways (`out body`); `out geom` inlines each way's coordinates
    and has no node elements. Both must give one graph."""
    source = CORPUS / "oakland_grand_lake" / "overpass_streets.json.gz"
    body = load_city(parse_city({"id": "a", "files": [{"path": str(source), "layers": ["streets"]}]}))
    data = json.loads(gzip.decompress(source.read_bytes()))
    nodes = {e["id"]: e for e in data["elements"] if e["type"] == "node"}
    geom = [
        {**e, "geometry": [{"lat": nodes[n]["lat"], "lon": nodes[n]["lon"]} for n in e["nodes"]]}
        for e in data["elements"]
        if e["type"] == "way"
    ]
    inline = tmp_path / "geom.json"
    inline.write_text(json.dumps({"version": 0.6, "elements": geom}))
    geo = load_city(parse_city({"id": "b", "files": [{"path": str(inline), "layers": ["streets"]}]}))
    assert body.graph.number_of_edges() > 500
    assert geo.graph.number_of_edges() == body.graph.number_of_edges()
    assert abs(geo.area_km2 - body.area_km2) < 1e-6


def test_geoparquet_edge_table_is_a_streets_only_city() -> None:
    city = load_city("apalachicola_fl")
    assert city.graph.number_of_edges() > 1000 and city.crs.to_epsg() == 32616
    assert city.present["streets"] and not city.present["buildings"] and not city.present["green"]


def test_clip_cuts_a_whole_urban_area_to_its_documented_extent() -> None:
    clip = (-111.90, 40.74, -111.88, 40.76)  # about 1.7 x 2.2 km of Salt Lake City
    spec = parse_city(
        {"id": "slc", "files": [str(CORPUS / "salt_lake_city" / "slc_4881_original.parquet")], "clip": list(clip)}
    )
    city = load_city(spec)
    box = gpd.GeoSeries([shapely.box(*clip)], crs=4326).to_crs(city.crs).iloc[0]
    assert 0 < city.extent.area <= box.area * 1.0001
    nodes = [shapely.Point(d["x"], d["y"]) for _, d in city.graph.nodes(data=True)]
    assert all(box.buffer(1).contains(p) for p in nodes)


def test_unsorted_osm_file_is_sorted_on_the_fly() -> None:
    city = load_city("faurndau")  # a JOSM-style .osm.gz with ways out of id order
    assert len(city.features["buildings"]) > 1500 and city.graph.number_of_edges() > 300


def _corrupt_copy(tmp_path: Path, place: str, damage: str) -> Path:
    corpus = tmp_path / "corpus"
    raw = yaml.safe_load((CORPUS / "registry.yaml").read_text())
    entry = next(e for e in raw["corpus"] if e["id"] == place)
    for item in entry["files"]:
        (corpus / Path(item["path"]).parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / item["path"], corpus / item["path"])
        if damage == "missing":
            (corpus / item["path"]).unlink()
        else:
            data = bytearray((corpus / item["path"]).read_bytes())
            data[len(data) // 2] ^= 0xFF
            (corpus / item["path"]).write_bytes(bytes(data))
    (corpus / "registry.yaml").write_text(yaml.safe_dump({"corpus": [entry]}))
    return corpus


@pytest.mark.parametrize(
    ("damage", "expected"), [("missing", "registered file missing"), ("corrupt", "corrupt or changed")]
)
def test_missing_or_corrupt_corpus_file_names_the_file_and_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str, expected: str
) -> None:
    monkeypatch.setenv("CITYGEN_CORPUS_DIR", str(_corrupt_copy(tmp_path, "neudrossenfeld", damage)))
    for cached in (registry.list_corpus, registry.aliases):
        cached.cache_clear()
    try:
        code = main(
            [
                "data",
                "build",
                "--id",
                "n",
                "--sample",
                "neudrossenfeld",
                "--out",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
    finally:
        monkeypatch.undo()
        for cached in (registry.list_corpus, registry.aliases):
            cached.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert expected in err and "neudrossenfeld.osm.pbf" in err and "graphhopper/graphhopper@" in err
    assert not (tmp_path / "out" / "n.tif").exists()


def test_overlapping_extracts_keep_each_place_in_one_split(tmp_path: Path) -> None:
    """London (City and Holborn) and Covent Garden overlap: the shared grid gives a place one split whichever
    extract it comes from, and no tile of one split overlaps a tile of another split of any city."""
    specs = [
        parse_city({"id": c, "sample": c, "tile_size": 128, "stride": 128}) for c in ("london", "london_covent_garden")
    ]
    results = build_dataset(specs, tmp_path, progress=False)
    assert all(r.status == "built" for r in results), [r.summary() for r in results]
    tiles = gpd.read_parquet(tmp_path / "tiles.parquet").to_crs(32630)
    a, b = tiles[tiles["city"] == "london"], tiles[tiles["city"] == "london_covent_garden"]
    pairs = gpd.sjoin(a, b, predicate="intersects")
    shared = pairs[
        shapely.area(
            shapely.intersection(a.geometry.loc[pairs.index].values, b.geometry.loc[pairs["index_right"]].values)
        )
        > 1
    ]
    assert len(shared) >= 3, "the two extracts share ground"
    assert (shared["split_left"] == shared["split_right"]).all()
    for split in ("train", "val", "test"):
        mine, other = tiles[tiles["split"] == split], tiles[tiles["split"] != split]
        hits = gpd.sjoin(mine, other, predicate="intersects")
        areas = shapely.area(
            shapely.intersection(mine.geometry.loc[hits.index].values, other.geometry.loc[hits["index_right"]].values)
        )
        assert (areas < 1).all(), f"a {split} tile overlaps a tile of another split"


def test_cross_city_pass_drops_the_smaller_citys_conflicting_tile() -> None:
    boxes = [
        shapely.box(0, 0, 1, 1),
        shapely.box(1, 0, 2, 1),
        shapely.box(3, 0, 4, 1),
        shapely.box(0.5, 0, 1.5, 1),
        shapely.box(5, 5, 6, 6),
    ]
    tiles = gpd.GeoDataFrame(
        {"city": ["big", "big", "big", "small", "small"], "split": ["train", "train", "val", "test", "test"]},
        geometry=boxes,
    )
    kept, dropped = drop_cross_city_conflicts(tiles)
    assert dropped == 1 and list(kept["city"]) == ["big", "big", "big", "small"]
    touching = gpd.GeoDataFrame({"city": ["a", "b"], "split": ["train", "test"]}, geometry=boxes[:2])
    assert drop_cross_city_conflicts(touching)[1] == 0, "tiles that only share an edge do not conflict"


def test_registry_check_passes_and_catches_a_changed_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """data_pipelines/check_registries.py: every registered file matches its recorded checksum."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "data_pipelines" / "check_registries.py"
    spec = importlib.util.spec_from_file_location("check_registries", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main() == 0
    real = module.sha256_file
    monkeypatch.setattr(module, "sha256_file", lambda p: "0" * 64 if p.name == "monaco.osm.pbf" else real(p))
    assert module.main() == 1
    assert "monaco.osm.pbf" in capsys.readouterr().out
