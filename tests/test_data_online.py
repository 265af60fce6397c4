"""The OSMnx download path, offline: HTTP is intercepted and answered with recorded Overpass responses.

The two responses in tests/data/overpass are real Overpass API answers (2017, San Francisco) that OSMnx's
own test suite recorded.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import responses

from citygen.core.errors import NetworkUnavailableError
from citygen.data.build import build_dataset
from citygen.data.geotiff import read_raster
from citygen.data.sources import load_city
from citygen.data.spec import parse_city

RECORDED = Path(__file__).parent / "data" / "overpass"
STREETS_BBOX = [-122.4571, 37.7710, -122.3964, 37.8008]  # the area of the recorded street response
BUILDINGS_BBOX = [-122.4668, 37.7614, -122.4593, 37.7661]  # the area of the recorded building response


# The Overpass /api/status page as the server words it (the fifth line carries the free slots).
STATUS = (
    "Connected as: 1\nCurrent time: 2017-10-20T00:00:00Z\nAnnounced endpoint: none\nRate limit: 2\n"
    "2 slots available now.\nCurrently running queries (pid, space limit, time limit, start time):\n"
)


def _recorded(name: str) -> dict:
    with gzip.open(RECORDED / name) as handle:
        return json.load(handle)


@pytest.fixture
def overpass() -> responses.RequestsMock:
    """Answer OSMnx's HTTP calls: DNS-over-HTTPS, the Overpass status endpoint, and queries."""
    streets = _recorded("sf_downtown_streets_2017.overpass.json.gz")
    buildings = _recorded("sf_parnassus_buildings_2017.overpass.json.gz")
    queries: list[str] = []

    def interpreter(request):
        query = parse_qs(request.body)["data"][0] if isinstance(request.body, str) else request.body.decode()
        queries.append(query)
        body = streets if '["highway"]' in query else buildings
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.GET,
            "https://8.8.8.8/resolve?name=overpass-api.de",
            json={"Status": 0, "Answer": [{"data": "127.0.0.1"}]},
        )
        mock.add(responses.GET, "https://overpass-api.de/api/status", body=STATUS)
        mock.add_callback(responses.POST, "https://overpass-api.de/api/interpreter", callback=interpreter)
        mock.queries = queries  # type: ignore[attr-defined]
        yield mock


def _interpreter_calls(mock: responses.RequestsMock) -> int:
    return sum(1 for call in mock.calls if call.request.url.endswith("/interpreter"))


def test_bbox_download_builds_and_is_cached(overpass: responses.RequestsMock, tmp_path: Path) -> None:
    spec = parse_city({"id": "sf_download", "bbox": STREETS_BBOX, "layers": ["streets"], "network_type": "drive"})
    results = build_dataset([spec], tmp_path, progress=False)
    assert results[0].status == "built", results[0].error
    assert _interpreter_calls(overpass) == 1
    assert "highway" in overpass.queries[0] and "37.77" in overpass.queries[0]
    raster = read_raster(tmp_path / "sf_download.tif")
    assert raster.crs.to_epsg() == 32610 and raster.bands["streets"].mean() > 0.02
    # a second build, even a forced rebuild, reads the download cache: no HTTP request at all
    before = len(overpass.calls)
    again = build_dataset([spec], tmp_path, progress=False, force=True)
    assert again[0].status == "built" and len(overpass.calls) == before


def test_features_download_gives_buildings_with_levels(overpass: responses.RequestsMock) -> None:
    spec = parse_city(
        {
            "id": "parnassus",
            "bbox": BUILDINGS_BBOX,
            "layers": ["buildings", "amenities"],
            "osm_date": "2017-10-20T00:00:00Z",
        }
    )
    city = load_city(spec)
    assert _interpreter_calls(overpass) == 1
    assert '[date:"2017-10-20T00:00:00Z"]' in overpass.queries[0]
    buildings = city.features["buildings"]
    assert len(buildings) > 500 and buildings["levels"].notna().sum() > 400  # heights are tagged at UCSF
    assert city.crs.to_epsg() == 32610 and city.present["buildings"] and not city.present["streets"]


def test_place_name_while_offline_says_what_to_do() -> None:
    spec = parse_city({"id": "houston", "place": "Houston, Texas, USA"})
    with pytest.raises(NetworkUnavailableError) as info:
        load_city(spec)
    assert "network is unreachable" in info.value.problem
    assert "citygen data samples" in (info.value.fix or "")
