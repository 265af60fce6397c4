"""Download a city from OpenStreetMap through OSMnx, with an on-disk cache keyed by the request.

The first build of a place/bbox/point spec queries Nominatim (place names) and Overpass; the result is
stored under ``cache_dir()/downloads/<request hash>/`` (written to a temporary folder and renamed when
complete), so a second build makes no network request. OSMnx's own HTTP cache sits beside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import networkx as nx
import osmnx as ox
import requests
import shapely

from citygen.core.errors import EmptyAreaError, NetworkUnavailableError, PlaceNotFoundError
from citygen.core.settings import cache_dir
from citygen.data import layers as L
from citygen.data.osmfile import split_layers
from citygen.data.raw import RawSource
from citygen.data.spec import CitySpec

log = logging.getLogger(__name__)

# The OSM tags requested for the feature layers (one Overpass query per city).
FEATURE_TAGS: dict[str, bool | str | list[str]] = {
    "building": True,
    "amenity": True,
    "shop": True,
    "leisure": sorted(L.GREEN_TAGS["leisure"]),
    "landuse": sorted(L.GREEN_TAGS["landuse"] | L.WATER_TAGS["landuse"]),
    "natural": sorted(L.GREEN_TAGS["natural"] | L.WATER_TAGS["natural"]),
    "waterway": sorted(L.WATER_TAGS["waterway"]),
}
_OFFLINE_FIX = (
    "work offline with local files (`files: [city.osm.pbf]` or GraphML) or a shipped sample "
    "(`citygen data samples`), or connect to the internet and retry"
)


@contextlib.contextmanager
def osmnx_settings(spec: CitySpec) -> Iterator[None]:
    """Point OSMnx's HTTP cache into citygen's cache and pin the OSM date, restoring settings after."""
    saved = {name: getattr(ox.settings, name) for name in ("cache_folder", "use_cache", "overpass_settings")}
    ox.settings.cache_folder = str(cache_dir() / "osmnx-http")
    ox.settings.use_cache = True
    if spec.osm_date:
        ox.settings.overpass_settings = f'[out:json][timeout:{{timeout}}][date:"{spec.osm_date}"]{{maxsize}}'
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(ox.settings, name, value)


ONLINE_CHECK_TIMEOUT_S = 5.0


def check_online() -> None:
    """Fail within seconds when OpenStreetMap's servers cannot be reached, before OSMnx's retries and pauses
    (about a minute offline) start: one GET of the Overpass status page, which OSMnx reads anyway."""
    url = ox.settings.overpass_url.rstrip("/") + "/status"
    try:
        requests.get(url, timeout=ONLINE_CHECK_TIMEOUT_S)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise NetworkUnavailableError(
            f"cannot reach the Overpass API ({url}) within {ONLINE_CHECK_TIMEOUT_S:g} s: the network is unreachable",
            _OFFLINE_FIX,
        ) from exc


def request_area(spec: CitySpec) -> shapely.Polygon:
    """The requested area in lon/lat: the geocoded place polygon, the bbox, or the square around the point."""
    if spec.bbox is not None:
        return shapely.box(*spec.bbox)
    if spec.point is not None:
        assert spec.dist is not None  # parse_city gives every point a distance
        return shapely.box(*ox.utils_geo.bbox_from_point(spec.point, dist=spec.dist))
    assert spec.place is not None  # a spec names a place, a bbox or a point
    try:
        gdf = ox.geocode_to_gdf(spec.place)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise NetworkUnavailableError(
            f"cannot reach Nominatim to geocode {spec.place!r}: the network is unreachable", _OFFLINE_FIX
        ) from exc
    except (ox._errors.InsufficientResponseError, TypeError, ValueError) as exc:
        raise PlaceNotFoundError(
            f"OpenStreetMap's geocoder found no area named {spec.place!r}",
            "check the spelling, add the country (e.g. 'Frederiksberg, Denmark'), or give a bbox instead",
        ) from exc
    geometry = gdf.geometry.iloc[0]
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise PlaceNotFoundError(f"{spec.place!r} geocodes to a point, not an area", "use `point` + `dist`, or a bbox")
    return geometry


def _fetch(spec: CitySpec, area: shapely.Polygon) -> tuple[object, gpd.GeoDataFrame | None]:
    graph = None
    if "streets" in spec.layers:
        try:
            if spec.place is not None:
                graph = ox.graph_from_polygon(area, network_type=spec.network_type, retain_all=True)
            else:
                graph = ox.graph_from_bbox(area.bounds, network_type=spec.network_type, retain_all=True)
        except ox._errors.InsufficientResponseError:
            graph = None
    features = None
    if set(spec.layers) - {"streets"}:
        try:
            features = ox.features_from_polygon(area, tags=FEATURE_TAGS)
        except ox._errors.InsufficientResponseError:
            features = None
    return graph, features


def download(spec: CitySpec) -> RawSource:
    """Fetch (or read from the cache) a place, bbox or point spec's layers, in lon/lat."""
    folder = cache_dir() / "downloads" / spec.request_key()
    if not (folder / "request.json").is_file():
        with osmnx_settings(spec):
            check_online()
            try:
                area = request_area(spec)
                graph, features = _fetch(spec, area)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                raise NetworkUnavailableError(
                    "cannot reach the Overpass API: the network is unreachable", _OFFLINE_FIX
                ) from exc
        if graph is None and features is None:
            raise EmptyAreaError(
                f"OpenStreetMap has no {list(spec.layers)} data in the area of {spec.id!r}",
                "check the area, or widen it",
            )
        _store(folder, spec, area, graph, features)
    return _load_cached(folder, spec)


def _store(
    folder: Path,
    spec: CitySpec,
    area: shapely.Polygon,
    graph: nx.MultiDiGraph | None,
    features: gpd.GeoDataFrame | None,
) -> None:
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if graph is not None:
            ox.save_graphml(graph, tmp / "streets.graphml")
        if features is not None and len(features):
            keep = [c for c in features.columns if c in L.FEATURE_KEYS or c == "geometry"]
            frame = features[keep].reset_index()
            frame.astype({c: str for c in frame.columns if c != "geometry" and frame[c].dtype == object}).to_parquet(
                tmp / "features.parquet"
            )
        gpd.GeoSeries([area], crs=4326).to_file(tmp / "area.geojson", driver="GeoJSON")
        (tmp / "request.json").write_text(json.dumps({"spec": spec.to_dict(), "key": spec.request_key()}, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_cached(folder: Path, spec: CitySpec) -> RawSource:
    graph = ox.load_graphml(folder / "streets.graphml") if (folder / "streets.graphml").is_file() else None
    features: dict[str, gpd.GeoDataFrame] = {}
    if (folder / "features.parquet").is_file():
        frame = gpd.read_parquet(folder / "features.parquet")
        tag_columns = [c for c in L.FEATURE_KEYS if c in frame.columns]
        records = frame[tag_columns].to_dict("records")
        frame["layers"] = [
            [
                name
                for name in L.feature_layers(
                    {k: v for k, v in tags.items() if v not in (None, "None", "nan")},
                    is_point=kind == "Point",
                )
                if name in spec.layers
            ]
            for tags, kind in zip(records, frame.geom_type, strict=True)
        ]
        features = split_layers(frame[frame["layers"].map(len) > 0])
    area = gpd.read_file(folder / "area.geojson").geometry.iloc[0]
    record: dict[str, object] = {"download": spec.request_key(), "cache": str(folder), "layers": list(spec.layers)}
    return RawSource(graph=graph, features=features, layers=tuple(spec.layers), record=record, extent_lonlat=area)
