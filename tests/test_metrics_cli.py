"""The `citygen metrics` command, its JSON/CSV outputs, the table and the pattern card."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from citygen.cli.metrics import main
from citygen.core.errors import CitygenError

REQUIRED_KEYS = (
    "intersection_count",
    "intersection_density_km2",
    "street_density_km_km2",
    "street_length_total_m",
    "k_avg",
    "circuity_avg",
    "prop_3way",
    "prop_4way",
    "prop_deadend",
    "orientation_entropy",
    "orientation_order",
    "building_coverage",
    "floor_area_ratio",
    "green_share",
    "walkability_index",
    "patterns",
)


def test_two_samples_side_by_side_with_outputs(tmp_path, capsys) -> None:
    out_json, out_csv, card = tmp_path / "m.json", tmp_path / "m.csv", tmp_path / "card.png"
    code = main(
        [
            "houston_montrose",
            "cph_vesterbro",
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
            "--card",
            str(card),
            "--no-sheds",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[0]
    assert "houston_montrose" in header and "cph_vesterbro" in header
    assert "Orientation entropy" in printed and "2.577" in printed and "3.204" in printed
    records = json.loads(out_json.read_text())
    assert [r["city_id"] for r in records] == ["houston_montrose", "cph_vesterbro"]
    for key in REQUIRED_KEYS:
        assert key in records[0], key
    assert records[0]["building_coverage"] is None  # not measurable -> null, with a reason
    assert records[0]["notes"]["building_coverage"].startswith("not measurable")
    assert {p["number"] for p in records[0]["patterns"]} >= {11, 14, 50, 96}
    df = pd.read_csv(out_csv)
    assert len(df) == 2 and "orientation_entropy" in df
    for name in ("card_houston_montrose.png", "card_cph_vesterbro.png"):
        assert (tmp_path / name).stat().st_size > 20_000


def test_unknown_source_is_a_user_error() -> None:
    with pytest.raises(CitygenError):
        main(["no_such_city_anywhere"])
    with pytest.raises(CitygenError, match="not found"):
        main(["missing/file.tif"])


def test_tiles_need_a_raster() -> None:
    with pytest.raises(CitygenError, match="GeoTIFF"):
        main(["houston_museum_district", "--tiles"])
