"""The band vocabulary shared by every citygen raster (built cities and generated layouts).

Each band is float32, one value per pixel, in the units below. A band whose source layer was not
available is still written (all zeros) and carries the band tag ``present=false``; readers must check
:func:`citygen.data.geotiff.read_band_info` (or a dataset's ``present`` flags) rather than trust zeros.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    name: str
    unit: str
    description: str


BANDS: tuple[Band, ...] = (
    Band(
        "streets",
        "fraction",
        "Fraction of the pixel covered by street surface: drivable centre lines buffered by a width from "
        "the `width` tag, else `lanes` x 3.25 m, else a per-class default (see citygen.data.layers).",
    ),
    Band(
        "buildings",
        "fraction",
        "Fraction of the pixel covered by building footprints (area-weighted), so the band mean over "
        "valid pixels is the building coverage ratio.",
    ),
    Band(
        "floor_area",
        "m2 floor / m2 land",
        "Footprint fraction times storeys: `building:levels`, else `height` / 3 m, else 1 storey "
        "(the share of footprints with known levels is in the dataset tag `levels_known_share`).",
    ),
    Band("green", "fraction", "Parks, gardens, playgrounds, grass, woods, meadows, village greens."),
    Band("water", "fraction", "Water bodies, riverbanks, reservoirs and basins."),
    Band("parking", "fraction", "Surface and multi-storey parking areas (`amenity=parking`)."),
    Band(
        "paths",
        "fraction",
        "Fraction covered by footways, cycleways, paths, pedestrian streets and steps (buffered centre lines).",
    ),
    Band(
        "amenities",
        "count / pixel",
        "Number of amenity and shop points (polygon POIs as points) in the pixel.",
    ),
    Band("valid", "0/1", "1 inside the area every source covers (the convex hull of its data), 0 outside."),
)

BAND_NAMES: tuple[str, ...] = tuple(band.name for band in BANDS)
BAND_INDEX: dict[str, int] = {name: i for i, name in enumerate(BAND_NAMES)}
# The vector layers a city spec can ask for, and the bands each one fills.
LAYER_BANDS: dict[str, tuple[str, ...]] = {
    "streets": ("streets", "paths"),
    "buildings": ("buildings", "floor_area"),
    "green": ("green",),
    "water": ("water",),
    "parking": ("parking",),
    "amenities": ("amenities",),
}
LAYERS: tuple[str, ...] = tuple(LAYER_BANDS)
BAND_LAYER: dict[str, str] = {b: layer for layer, bands in LAYER_BANDS.items() for b in bands}


def band_layer(name: str) -> str | None:
    """The vector layer a band is burnt from (None for ``valid``)."""
    return BAND_LAYER.get(name)


def band(name: str) -> Band:
    """Look up a band by name, with the list of known names in the error."""
    for candidate in BANDS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown band {name!r}; known bands: {', '.join(BAND_NAMES)}")
