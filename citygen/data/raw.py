"""What every reader (local file, download) returns: one source's layers in its own CRS, before projection."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import shapely


@dataclass
class RawSource:
    """One source's layers in its own CRS, before projection."""

    graph: nx.MultiDiGraph | None
    features: dict[str, gpd.GeoDataFrame]
    layers: tuple[str, ...]
    record: dict[str, object]
    extent_lonlat: shapely.Polygon | None = None  # the requested area, for downloads
