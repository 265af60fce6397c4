"""Bad input to `citygen data build`: one clear message, exit code 2, no traceback, nothing half-written."""

from __future__ import annotations

import bz2
import shutil
from pathlib import Path

import pytest

from citygen.cli import main
from citygen.core.errors import ConfigError
from citygen.data import geotiff
from citygen.data.build import build_dataset
from citygen.data.samples import samples_dir
from citygen.data.spec import load_config, parse_city

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


def _write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cities.yaml"
    path.write_text(body)
    return path


def _assert_clean(out: Path) -> None:
    leftovers = [p.name for p in out.rglob("*")] if out.exists() else []
    assert not [name for name in leftovers if name.endswith(".tif") or name.endswith(".tmp")], leftovers


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("cities:\n  - {id: x, sample: houston_montrse}\n", "unknown sample id 'houston_montrse'"),
        ("cities:\n  - {id: x, files: [missing.osm.pbf]}\n", "file not found"),
        ("cities:\n  - {id: x, bbox: [-95.4, 29.7, -95.4, 29.8]}\n", "is empty or out of range"),
        ("cities:\n  - {id: x, sample: cph_vesterbro, resolution: -2}\n", "resolution must be positive"),
        ("cities:\n  - {id: x, sample: cph_vesterbro, tile_size: 4096}\n", "smaller than one 4096-px tile"),
        ("cities:\n  - {id: x, sample: cph_vesterbro, resolutoin: 2}\n", "unknown key 'resolutoin'"),
        (
            "defaults: {tile_sise: 128}\ncities:\n  - {id: x, sample: cph_vesterbro}\n",
            "unknown key 'tile_sise'",
        ),
        ("cities:\n  - {id: x, place: 'Houston, Texas'}\n", "network is unreachable"),
        ("cities:\n  - {id: x, sample: cph_vesterbro, place: 'Copenhagen'}\n", "exactly one source"),
        ("cities:\n  - {id: x, files: [{path: PARNASSUS, layers: [streets]}]}\n", "holds no streets"),
    ],
)
def test_bad_input_gets_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    body = body.replace("PARNASSUS", str(samples_dir() / "san_francisco" / "sf_parnassus_buildings_2017.osm.bz2"))
    out = tmp_path / "out"
    code, err = _run(
        ["data", "build", "--config", str(_write_config(tmp_path, body)), "--out", str(out), "--no-progress"],
        capsys,
    )
    assert code == 2
    assert expected in err
    assert "Traceback" not in err
    assert "fix:" in err or "FAILED" in err
    _assert_clean(out)


def test_suggestions_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        [
            "data",
            "build",
            "--config",
            str(_write_config(tmp_path, "cities:\n  - {id: x, sample: cph_vesterbro, tile_sise: 128}\n")),
        ],
        capsys,
    )
    assert code == 2 and "did you mean 'tile_size'" in err
    code, err = _run(["data", "build", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "config file not found" in err


def test_corrupt_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.osm.bz2"
    data = (samples_dir() / "san_francisco" / "sf_downtown_streets_2017.osm.bz2").read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    code, err = _run(
        ["data", "build", "--id", "broken", "--file", str(broken), "--out", str(out), "--no-progress"], capsys
    )
    assert code == 2 and "cannot read broken.osm.bz2" in err and "Traceback" not in err
    _assert_clean(out)


def test_crash_during_write_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_city({"id": "cph", "sample": "cph_vesterbro"})
    calls = {"n": 0}
    real_write = geotiff.write_window

    def crash_after_first_window(dst, window, arrays):  # simulates Ctrl-C in the middle of a raster
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real_write(dst, window, arrays)

    monkeypatch.setattr("citygen.data.build.write_window", crash_after_first_window)
    monkeypatch.setattr("citygen.core.settings.RASTER_WINDOW_PX", 512)
    with pytest.raises(KeyboardInterrupt):
        build_dataset([spec], tmp_path, progress=False)
    assert calls["n"] == 2
    assert list(tmp_path.iterdir()) == []


def test_rerun_skips_complete_cities_and_rebuilds_corrupt_ones(tmp_path: Path) -> None:
    specs = [
        s
        for s in load_config(ROOT / "configs" / "data" / "samples.yaml")
        if s.id in ("houston_museum_district", "cph_indre_by_buildings")
    ]
    first = build_dataset(specs, tmp_path, progress=False)
    assert [r.status for r in first] == ["built", "built"]
    second = build_dataset(specs, tmp_path, progress=False)
    assert [r.status for r in second] == ["skipped", "skipped"]
    target = tmp_path / "cph_indre_by_buildings.tif"
    target.write_bytes(target.read_bytes()[:5000])  # a truncated file from some other tool
    third = build_dataset(specs, tmp_path, progress=False)
    assert [r.status for r in third] == ["skipped", "built"]
    changed = [parse_city({"id": "houston_museum_district", "sample": "houston_museum_district", "resolution": 4.0})]
    with pytest.raises(ConfigError, match="holds tiles of 256 px"):  # one folder, one resolution (issue 18)
        build_dataset(changed, tmp_path, progress=False)
    assert build_dataset(changed, tmp_path / "at_4m", progress=False)[0].status == "built"


def test_cli_build_single_sample_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["data", "build", "--sample", "cph_indre_by_buildings", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "cph_indre_by_buildings: built" in printed and "EPSG:32633" in printed
    assert main(["data", "info", str(out / "cph_indre_by_buildings.tif")]) == 0
    assert "buildings" in capsys.readouterr().out
    assert main(["data", "info", str(out)]) == 0


def test_cli_help_and_samples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0 and "data" in capsys.readouterr().out
    assert main(["data", "--help"]) == 0
    assert "build" in capsys.readouterr().out
    assert main(["data", "build", "--help"]) == 0
    assert "--workers" in capsys.readouterr().out
    assert main(["data", "samples"]) == 0
    listing = capsys.readouterr().out
    assert "houston_montrose" in listing and "cph_vesterbro" in listing and "OpenStreetMap contributors" in listing


def test_local_file_formats(tmp_path: Path) -> None:
    """.osm (plain XML), .osm.bz2, .osm.pbf, .graphml.gz and GeoJSON all load."""
    from citygen.data.sources import load_city

    plain = tmp_path / "sf.osm"
    plain.write_bytes(
        bz2.decompress((samples_dir() / "san_francisco" / "sf_downtown_streets_2017.osm.bz2").read_bytes())
    )
    city = load_city(parse_city({"id": "sf", "files": [str(plain)]}))
    assert city.graph is not None and city.graph.number_of_nodes() > 500
    gz = tmp_path / "kotka.osm.pbf"
    shutil.copy(samples_dir() / "kotka" / "kotka_karhula.osm.pbf", gz)
    kotka = load_city(parse_city({"id": "k", "files": [str(gz)], "layers": ["streets", "buildings"]}))
    assert len(kotka.features["buildings"]) > 2000 and "green" not in kotka.features
    assert kotka.present["buildings"] and not kotka.present["green"]


def test_index_keeps_cities_of_earlier_runs_and_is_stable(tmp_path: Path) -> None:
    import geopandas as gpd

    first = [parse_city({"id": "houston_museum_district", "sample": "houston_museum_district"})]
    second = [parse_city({"id": "cph_indre_by_buildings", "sample": "cph_indre_by_buildings"})]
    build_dataset(first, tmp_path, progress=False)
    build_dataset(second, tmp_path, progress=False)
    tiles = gpd.read_parquet(tmp_path / "tiles.parquet")
    assert set(tiles["city"]) == {"houston_museum_district", "cph_indre_by_buildings"}
    manifest = (tmp_path / "manifest.json").read_bytes()
    build_dataset(second, tmp_path, progress=False)  # nothing to do: index and manifest untouched
    assert (tmp_path / "manifest.json").read_bytes() == manifest


def test_geojson_without_declared_layers_vouches_only_for_what_it_holds() -> None:
    from citygen.data.sources import load_city

    path = samples_dir() / "houston" / "houston_meyerland_buildings.geojson"
    city = load_city(parse_city({"id": "meyerland", "files": [str(path)]}))
    assert city.present["buildings"] and not city.present["streets"] and not city.present["green"]
    declared = load_city(parse_city({"id": "m", "files": [{"path": str(path), "layers": ["buildings", "green"]}]}))
    assert declared.present["green"]  # declared: an area with no green in it
