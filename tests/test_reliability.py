"""Issue 18: every user path survives bad input, concurrency and interruption, with nothing lost.

Each bad input gives exit status 2, one clear line on stderr, no traceback and no half-written file, and an
index that still lists every city it listed before. Concurrency and kill tests run real `citygen`
processes. Inputs are the shipped samples and corpus files.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from citygen.cli import main
from citygen.data import geotiff
from citygen.data.samples import samples_dir

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--sample", "cph_indre_by_streets", "--tile-size", "128"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def _one_clear_line(err: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("error: ") or "\nerror: " in err, err


def _index_cities(out: Path) -> set[str]:
    return set(gpd.read_parquet(out / "tiles.parquet")["city"]) if (out / "tiles.parquet").is_file() else set()


def _citygen(*args: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "CI": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "citygen", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


# 2. presence comes from what a file holds


def test_streets_only_file_builds_a_streets_only_city(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = samples_dir() / "mountain_view_ca" / "mountain_view_los_altos_streets_2017.osm.bz2"
    out = tmp_path / "out"
    code, _ = _run(["data", "build", "--id", "mv", "--file", str(path), "--tile-size", "128", "--clip",
                    "-122.10", "37.38", "-122.07", "37.40", "--out", str(out), "--no-progress"], capsys)  # fmt: skip
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    present = manifest["cities"]["mv"]["present"]
    assert present["streets"] and not present["buildings"] and not present["green"]
    tiles = gpd.read_parquet(out / "tiles.parquet")
    assert not tiles["present_buildings"].any()
    assert main(["metrics", str(out / "mv.tif"), "--no-sheds"]) == 0
    table = capsys.readouterr().out
    for line in ("Building coverage", "Floor area ratio", "Green share"):
        assert next(row for row in table.splitlines() if row.startswith(line)).split()[-1] == "n/m", line
    code, _ = _run(["data", "build", "--id", "mv_streets", "--file", str(path), "--layers", "streets",
                    "--tile-size", "128", "--clip", "-122.10", "37.38", "-122.07", "37.40", "--out",
                    str(tmp_path / "o2"), "--no-progress"], capsys)  # fmt: skip
    assert code == 0


# 3. two builds into one folder


def test_second_concurrent_build_refuses_without_harm(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _citygen("data", "build", "--id", "mv", "--sample", "mountain_view", "--out", str(out), "--no-progress")
    lock = out / ".citygen-build.lock"
    for _ in range(200):  # wait until the first build holds the folder
        if lock.is_file() and lock.read_text().strip():
            break
        time.sleep(0.05)
    second = _citygen("data", "build", "--id", "cph", *SMALL, "--out", str(out), "--no-progress")
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2 and "another build is writing" in err and f"pid {first.pid}" in err
    assert "Traceback" not in err
    first.communicate(timeout=600)
    assert first.returncode == 0 and _index_cities(out) == {"mv"}
    again = _citygen("data", "build", "--id", "cph", *SMALL[:2], "--out", str(out), "--no-progress")
    again.communicate(timeout=300)
    assert again.returncode == 0 and _index_cities(out) == {"mv", "cph"}


# 4. a failing city keeps its previous outputs; 5. mixed settings are refused up front


def test_failed_rebuild_keeps_the_city_and_mixed_builds_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    source = samples_dir() / "copenhagen" / "cph_indre_by_streets_all.graphml.gz"
    local = tmp_path / "streets.graphml.gz"
    local.write_bytes(source.read_bytes())
    assert _run(["data", "build", "--id", "cph", "--file", str(local), "--tile-size", "128", "--out", str(out),
                 "--no-progress"], capsys)[0] == 0  # fmt: skip
    before = (out / "cph.tif").read_bytes()
    local.write_bytes(b"not a graph")  # the source goes bad
    code, err = _run(["data", "build", "--id", "cph", "--file", str(local), "--tile-size", "128", "--out", str(out),
                      "--no-progress"], capsys)  # fmt: skip
    assert code == 2 and "cannot read streets.graphml.gz" in err
    assert (out / "cph.tif").read_bytes() == before and _index_cities(out) == {"cph"}
    # another tile size into the same folder
    code, err = _run(["data", "build", "--id", "other", *SMALL[:2], "--tile-size", "64", "--out", str(out),
                      "--no-progress"], capsys)  # fmt: skip
    assert code == 2 and "holds tiles of 128 px" in err and "asks 64 px" in err
    _one_clear_line(err)
    # the same id from another source
    code, err = _run(["data", "build", "--id", "cph", "--sample", "grenoble_center", "--tile-size", "128", "--out",
                      str(out), "--no-progress"], capsys)  # fmt: skip
    assert code == 2 and "was built from" in err and "--force" in err
    assert _index_cities(out) == {"cph"} and (out / "cph.tif").read_bytes() == before


# 6. killed builds leave nothing behind, and the rerun gives the same bytes


def test_sigterm_leaves_no_temporary_files_and_rerun_gives_the_same_bytes(tmp_path: Path) -> None:
    out, reference = tmp_path / "out", tmp_path / "reference"
    build = ["data", "build", "--id", "mv", "--sample", "mountain_view", "--no-progress"]
    process = _citygen(*build, "--out", str(out))
    for _ in range(600):  # until the GeoTIFF is being written
        if list(out.glob(".mv.tif.*.tmp")):
            break
        time.sleep(0.05)
    assert list(out.glob(".mv.tif.*.tmp")), "the build never started writing"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0 and "Traceback" not in err
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp")) and not (out / "mv.tif").exists()
    # a leftover of a process killed with SIGKILL is cleaned by the next build
    stale = out / ".mv.tif.999999.tmp"
    stale.write_bytes(b"partial")
    assert _citygen(*build, "--out", str(out)).wait(timeout=600) == 0
    assert not stale.exists()
    assert _citygen(*build, "--out", str(reference)).wait(timeout=600) == 0
    assert (out / "mv.tif").read_bytes() == (reference / "mv.tif").read_bytes()


# 7. a raster too large to allocate; 12. numbers that make no sense


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--resolution", "0.01"], "above the limit of"),
        (["--resolution", "nan"], "must be a finite number"),
        (["--resolution", "inf"], "must be a finite number"),
        (["--resolution", "0"], "resolution must be positive"),
        (["--resolution", "-1"], "resolution must be positive"),
    ],
)
def test_impossible_resolutions_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    out = tmp_path / "out"
    code, err = _run(["data", "build", "--id", "x", *SMALL, *args, "--out", str(out), "--no-progress"], capsys)
    assert code == 2 and expected in err
    _one_clear_line(err)
    assert not list(out.glob("*.tif")) and not list(out.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ("{fractions: 0}", "list of three numbers"),
        ("{fractions: [0.5, 0.2, 0.2]}", "summing to 1"),
        ("{fractions: [0.7, .nan, 0.3]}", "finite number"),
        ("{block_tiles: 0}", "at least 1"),
        ("{block_tiles: -2}", "at least 1"),
        ("{block_tiles: 1.5}", "whole number"),
    ],
)
def test_bad_split_settings_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], split: str, expected: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"cities:\n  - {{id: x, sample: cph_indre_by_streets, split: {split}}}\n")
    out = tmp_path / "out"
    code, err = _run(["data", "build", "--config", str(config), "--out", str(out), "--no-progress"], capsys)
    assert code == 2 and expected in err
    _one_clear_line(err)
    assert not out.exists() or not list(out.iterdir())


# 8. the same file twice counts each building once


def test_same_file_twice_does_not_double_buildings() -> None:
    from citygen.data.sources import load_city
    from citygen.data.spec import parse_city

    path = str(samples_dir() / "kotka" / "kotka_karhula.osm.pbf")
    once = load_city(parse_city({"id": "k", "files": [path]}))
    twice = load_city(parse_city({"id": "k", "files": [path, path]}))
    assert len(twice.features["buildings"]) == len(once.features["buildings"]) > 2000
    assert len(twice.features["amenities"]) == len(once.features["amenities"]) > 5


# 11. a city without val or test tiles is named


def test_small_city_without_test_tiles_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["data", "build", "--id", "tiny", "--sample", "sf_parnassus", "--tile-size", "256", "--out", str(out),
                 "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["warnings"]
    for line in manifest["warnings"]:
        assert line.startswith("tiny: no ") and f"warning: {line}" in err


# 13. unwritable folders and a full disk


def test_read_only_output_folder_and_full_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        code, err = _run(["data", "build", "--id", "x", *SMALL, "--out", str(locked / "out"), "--no-progress"], capsys)
        assert code == 2 and "cannot create the output folder" in err
    blocked = tmp_path / "a_file"  # root ignores permissions; a file where a folder must go stops anyone
    blocked.write_text("not a folder")
    code, err = _run(["data", "build", "--id", "x", *SMALL, "--out", str(blocked / "out"), "--no-progress"], capsys)
    assert code == 2 and "cannot create the output folder" in err
    _one_clear_line(err)
    full = tmp_path / "full"

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(geotiff, "write_window", no_space)
    from citygen.data import build

    monkeypatch.setattr(build, "write_window", no_space)
    code, err = _run(["data", "build", "--id", "x", *SMALL, "--out", str(full), "--no-progress"], capsys)
    assert code == 2 and "No space left on device" in err and err.count("\n") <= 4
    _one_clear_line(err)
    assert not list(full.glob("*.tif")) and not list(full.glob(".*.tmp")) and not (full / "tiles.parquet").exists()


# 19. coordinates in metres without a CRS


def test_geojson_in_metres_without_crs_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    footprints = gpd.read_file(samples_dir() / "copenhagen" / "cph_indre_by_buildings.geojson").to_crs(32633)
    path = tmp_path / "metres.geojson"
    footprints.set_crs(None, allow_override=True).to_file(path, driver="GeoJSON")
    code, err = _run(
        ["data", "build", "--id", "m", "--file", str(path), "--out", str(tmp_path / "o"), "--no-progress"], capsys
    )
    assert code == 2 and "has no CRS" in err and "write the CRS into the file" in err
    _one_clear_line(err)


def test_clip_box_is_checked() -> None:
    from citygen.core.errors import ConfigError
    from citygen.data.spec import parse_city

    with pytest.raises(ConfigError, match="clip"):
        parse_city({"id": "x", "sample": "monaco", "clip": [7.5, 43.7, 7.4, 43.8]})
    assert parse_city({"id": "x", "sample": "monaco", "clip": [7.40, 43.72, 7.44, 43.75]}).clip == (
        7.40,
        43.72,
        7.44,
        43.75,
    )
    assert shapely.box(7.40, 43.72, 7.44, 43.75).area > 0


# 20. a bad key in a training config: one line, last, with the closest valid spelling


def test_unknown_config_key_is_one_line_with_the_closest_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    text = (ROOT / "configs" / "experiments" / "ae_demo.yaml").read_text()
    config.write_text(text.replace("max_epochs: 12", "max_epoch: 12"))
    assert main(["fit", "--config", str(config)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert "trainer.max_epoch" in lines[-1] and "did you mean 'trainer.max_epochs'" in lines[-1]
    assert not any(line.lstrip().startswith("usage:") for line in lines), "no 70 lines of usage text"


# 17. an offline download fails at once, before OSMnx's retries


def test_offline_download_fails_fast_pointing_to_local_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(["data", "build", "--id", "x", "--bbox", "-95.40", "29.70", "-95.39", "29.71", "--out",
                      str(tmp_path / "o"), "--no-progress"], capsys)  # fmt: skip
    assert code == 2 and "cannot reach the Overpass API" in err and "local files" in err
    _one_clear_line(err)


def test_process_map_gives_the_same_list_in_processes() -> None:
    """The helper behind every many-tile measurement (target caches, realism statistics, evaluation): the same
    results, in order, whether measured here or in two processes."""
    import math

    from citygen.core.parallel import process_map

    xs, ys = list(range(50)), list(range(50, 100))
    here = process_map(math.hypot, xs, ys)
    assert here == [math.hypot(x, y) for x, y in zip(xs, ys, strict=True)]
    assert process_map(math.hypot, xs, ys, workers=2, chunksize=4) == here
    assert process_map(math.hypot, [], [], workers=2) == []
