"""Burn a city's projected layers into the band vocabulary of :mod:`citygen.core.bands`, window by window.

Coverage fractions come from supersampling: each pixel is burned as ``k x k`` sub-pixels by GDAL's
polygon burner (`rasterio.features.rasterize`) and averaged, so fractions are exact to ``1/k^2`` per pixel
and unbiased over areas. Work happens in windows of ``settings.RASTER_WINDOW_PX`` pixels, so memory grows with the
window, not with the city.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import scipy.ndimage as ndi
import shapely
from affine import Affine
from pyproj import CRS
from rasterio import features
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from citygen.core import settings
from citygen.core.bands import BAND_NAMES
from citygen.core.errors import EmptyAreaError
from citygen.core.settings import DEFAULT_LEVELS
from citygen.data.sources import CityLayers, street_surfaces


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid in a projected CRS."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def resolution(self) -> float:
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return (left, top - self.height * self.resolution, left + self.width * self.resolution, top)

    def windows(self, size: int | None = None) -> Iterator[Window]:
        size = size or settings.RASTER_WINDOW_PX
        for row in range(0, self.height, size):
            for col in range(0, self.width, size):
                yield Window(col, row, min(size, self.width - col), min(size, self.height - row))


def grid_for(extent: shapely.Geometry, *, crs: CRS, resolution: float, snap_m: float | None = None) -> Grid:
    """The grid covering ``extent``, its edges snapped outward to whole multiples of ``snap_m`` metres
    (default: the resolution). Builds snap to the tile stride, so the tiles of every city in one UTM zone
    lie on one shared grid and a place has one split whichever extract it comes from."""
    if not crs.is_projected:
        raise EmptyAreaError(
            f"cannot build a metric grid in a geographic CRS ({crs.name})", "project the layers to UTM first"
        )
    minx, miny, maxx, maxy = extent.bounds
    step = snap_m or resolution
    left, bottom = np.floor(minx / step) * step, np.floor(miny / step) * step
    right, top = np.ceil(maxx / step) * step, np.ceil(maxy / step) * step
    width, height = round((right - left) / resolution), round((top - bottom) / resolution)
    if width <= 0 or height <= 0:
        raise EmptyAreaError("the area has zero width or height", "give a larger bbox, distance or file extent")
    return Grid(crs=crs, transform=Affine(resolution, 0, left, 0, -resolution, top), width=width, height=height)


@dataclass
class _Layer:
    geometries: np.ndarray
    values: np.ndarray | None  # burn values (levels for buildings); None burns 1
    tree: shapely.STRtree


def _layer(geoms: gpd.GeoSeries | np.ndarray, values: np.ndarray | None = None) -> _Layer:
    array = np.asarray(geoms.values if isinstance(geoms, gpd.GeoSeries) else geoms, dtype=object)
    keep = ~shapely.is_empty(array) & ~shapely.is_missing(array)
    array = array[keep]
    return _Layer(geometries=array, values=None if values is None else values[keep], tree=shapely.STRtree(array))


class CityRasterizer:
    """Holds a city's burnable geometry and renders any window of its grid into band arrays."""

    def __init__(self, city: CityLayers, grid: Grid, *, supersample: int) -> None:
        self.grid = grid
        self.supersample = supersample
        self.extent = city.extent
        self.layers: dict[str, _Layer] = {}
        if city.graph is not None:
            streets, paths = street_surfaces(city.graph)
            self.layers["streets"] = _layer(streets)
            self.layers["paths"] = _layer(paths)
        buildings = city.features.get("buildings")
        if buildings is not None and len(buildings):
            levels = (
                buildings["levels"].to_numpy(dtype=float) if "levels" in buildings else np.full(len(buildings), np.nan)
            )
            levels = np.where(np.isfinite(levels) & (levels > 0), levels, DEFAULT_LEVELS).astype(np.float32)
            self.layers["buildings"] = _layer(buildings.geometry, levels)
        for name in ("green", "water", "parking"):
            gdf = city.features.get(name)
            if gdf is not None and len(gdf):
                self.layers[name] = _layer(gdf.geometry)
        amenities = city.features.get("amenities")
        self.amenity_xy = (
            shapely.get_coordinates(amenities.geometry.values)
            if amenities is not None and len(amenities)
            else np.empty((0, 2))
        )

    def render(self, window: Window) -> dict[str, np.ndarray]:
        """All bands of one window as float32 arrays of shape (height, width)."""
        height, width = int(window.height), int(window.width)
        transform = window_transform(window, self.grid.transform)
        bounds = shapely.box(
            transform.c,
            transform.f - height * self.grid.resolution,
            transform.c + width * self.grid.resolution,
            transform.f,
        )
        out = {name: np.zeros((height, width), dtype=np.float32) for name in BAND_NAMES}
        valid = features.rasterize(
            [self.extent],
            out_shape=(height, width),
            transform=transform,
            fill=0,
            default_value=1,
            dtype="uint8",
        )
        out["valid"] = valid.astype(np.float32)
        if not valid.any():
            return out
        for name in ("streets", "paths", "green", "water", "parking"):
            if name in self.layers:
                out[name] = self._coverage(self.layers[name], bounds, transform, height, width)
        if "buildings" in self.layers:
            out["buildings"], out["floor_area"] = self._buildings(bounds, transform, height, width)
        if len(self.amenity_xy):
            out["amenities"] = self._counts(transform, height, width)
        for name in BAND_NAMES:
            if name != "valid":
                out[name] *= out["valid"]
        return out

    def _burn(
        self, layer: _Layer, bounds: shapely.Polygon, transform: Affine, height: int, width: int, dtype: str
    ) -> list[tuple[np.ndarray, tuple[slice, slice]]]:
        """Burn the layer's geometries at k x k sub-pixels, only over the pixel boxes they touch: one box per group
        of geometries whose boxes touch (a few parks far apart are burned as a few small boxes, not one big one).
        No two groups touch the same pixel, so the parts can be written side by side."""
        index = layer.tree.query(bounds)
        if not len(index):
            return []
        if layer.values is not None:  # later shapes overwrite: the highest storey count wins where buildings overlap
            index = index[np.lexsort((index, layer.values[index]))]
        boxes = self._pixel_boxes(shapely.bounds(layer.geometries[index]), transform, height, width)
        on = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        index, boxes = index[on], boxes[on]
        if not len(index):  # the geometries only graze the window's edge
            return []
        parts = []
        for members in _touching_groups(boxes, height, width):
            geoms = layer.geometries[index[members]]
            row0, col0 = boxes[members, :2].min(axis=0)
            row1, col1 = boxes[members, 2:].max(axis=0)
            k = self.supersample
            shapes = geoms if layer.values is None else zip(geoms, layer.values[index[members]], strict=True)
            fine = features.rasterize(
                shapes,
                out_shape=(int(row1 - row0) * k, int(col1 - col0) * k),
                transform=transform @ Affine.translation(col0, row0) @ Affine.scale(1 / k),
                fill=0,
                default_value=1,
                dtype=dtype,
            )
            parts.append((fine, (slice(row0, row1), slice(col0, col1))))
        return parts

    def _pixel_boxes(self, bounds: np.ndarray, transform: Affine, height: int, width: int) -> np.ndarray:
        """(row0, col0, row1, col1) of the pixels each bounding box touches, clipped to the window."""
        res = self.grid.resolution
        col0 = np.floor((bounds[:, 0] - transform.c) / res)
        col1 = np.ceil((bounds[:, 2] - transform.c) / res)
        row0 = np.floor((transform.f - bounds[:, 3]) / res)
        row1 = np.ceil((transform.f - bounds[:, 1]) / res)
        box = np.stack([row0, col0, row1, col1], axis=1)
        return np.clip(box, 0, [height, width, height, width]).astype(np.int64)

    def _block_mean(self, fine: np.ndarray) -> np.ndarray:
        """Mean of each k x k block, as k^2 strided adds (several times faster than a reshaped reduce)."""
        k = self.supersample
        total = np.zeros(
            (fine.shape[0] // k, fine.shape[1] // k),
            np.uint16 if fine.dtype == np.uint8 and k * k < 256 else np.float32,
        )
        for i in range(k):
            for j in range(k):
                total += fine[i::k, j::k]
        return total.astype(np.float32) * np.float32(1 / (k * k))

    def _coverage(
        self, layer: _Layer, bounds: shapely.Polygon, transform: Affine, height: int, width: int
    ) -> np.ndarray:
        out = np.zeros((height, width), np.float32)
        for fine, box in self._burn(layer, bounds, transform, height, width, "uint8"):
            np.maximum(out[box], self._block_mean(fine), out=out[box])
        return out

    def _buildings(
        self, bounds: shapely.Polygon, transform: Affine, height: int, width: int
    ) -> tuple[np.ndarray, np.ndarray]:
        coverage, floor_area = np.zeros((height, width), np.float32), np.zeros((height, width), np.float32)
        for fine, box in self._burn(self.layers["buildings"], bounds, transform, height, width, "float32"):
            np.maximum(coverage[box], self._block_mean((fine > 0).astype(np.uint8)), out=coverage[box])
            np.maximum(floor_area[box], self._block_mean(fine), out=floor_area[box])
        return coverage, floor_area

    def _counts(self, transform: Affine, height: int, width: int) -> np.ndarray:
        cols, rows = ~transform @ (self.amenity_xy[:, 0], self.amenity_xy[:, 1])
        rows, cols = np.floor(rows).astype(int), np.floor(cols).astype(int)
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        counts = np.zeros((height, width), np.float32)
        np.add.at(counts, (rows[inside], cols[inside]), 1)
        return counts


def _touching_groups(boxes: np.ndarray, height: int, width: int, *, block: int = 32) -> list[np.ndarray]:
    """Indices of the boxes in each group whose ``block`` x ``block``-pixel cells touch (8-connected): boxes of
    different groups share no cell, so no pixel."""
    if len(boxes) == 1:
        return [np.zeros(1, np.int64)]
    cells = boxes.copy()
    cells[:, :2] //= block
    cells[:, 2:] = (cells[:, 2:] - 1) // block
    shape = (-(-height // block) + 1, -(-width // block) + 1)
    # mark every cell any box covers: a 2-D difference array, summed along both axes
    diff = np.zeros((shape[0] + 1, shape[1] + 1), np.int64)
    r0, c0, r1, c1 = cells.T
    np.add.at(diff, (r0, c0), 1)
    np.add.at(diff, (r0, c1 + 1), -1)
    np.add.at(diff, (r1 + 1, c0), -1)
    np.add.at(diff, (r1 + 1, c1 + 1), 1)
    covered = diff.cumsum(axis=0).cumsum(axis=1)[: shape[0], : shape[1]] > 0
    labels, n = ndi.label(covered, structure=np.ones((3, 3), bool))
    whole = [np.arange(len(boxes))]
    if n == 1:
        return whole
    group = labels[r0, c0] - 1
    order = np.argsort(group, kind="stable")  # keep the burn order (tallest last) within each group
    groups = np.split(order, np.flatnonzero(np.diff(group[order])) + 1)
    # groups interleaved in one area (a street network in several pieces) burn no less than the whole box
    area = sum(float(np.prod(boxes[g, 2:].max(axis=0) - boxes[g, :2].min(axis=0))) for g in groups)
    return groups if area < 0.5 * float(np.prod(boxes[:, 2:].max(axis=0) - boxes[:, :2].min(axis=0))) else whole
