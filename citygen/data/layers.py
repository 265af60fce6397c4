"""How OpenStreetMap tags map to citygen layers, street widths and network types.

One table serves every reader (local files through pyosmium, downloads through OSMnx), so a city looks
the same whichever way it was fetched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from citygen.core.settings import STOREY_HEIGHT_M

# Highway classes drawn in the `paths` band; every other highway class is a street.
PATH_CLASSES = frozenset({"footway", "cycleway", "path", "pedestrian", "steps", "bridleway", "corridor"})

# Default carriageway widths in metres by highway class (kerb to kerb), used when neither `width` nor
# `lanes` is tagged. Paths get walking/cycling widths.
DEFAULT_WIDTH_M: dict[str, float] = {
    "motorway": 22.0,
    "trunk": 16.0,
    "primary": 14.0,
    "secondary": 12.0,
    "tertiary": 10.0,
    "unclassified": 7.0,
    "residential": 8.0,
    "living_street": 6.0,
    "service": 5.0,
    "road": 7.0,
    "busway": 7.0,
    "track": 3.5,
    "footway": 2.0,
    "cycleway": 2.5,
    "path": 2.0,
    "pedestrian": 6.0,
    "steps": 2.0,
    "bridleway": 2.5,
    "corridor": 2.0,
}
LINK_WIDTH_M = 7.0
FALLBACK_WIDTH_M = 6.0
LANE_WIDTH_M = 3.25
MAX_WIDTH_M = 60.0

# Highway values excluded from each network type, following OSMnx's network filters: ways that are not
# built (yet or any more) leave every network, and each type drops what it cannot use.
_NOT_BUILT = frozenset({"abandoned", "construction", "no", "planned", "platform", "proposed", "raceway", "razed"})
_MOTOR_ONLY = frozenset({"motor", "motorway", "motorway_link"})
_EXCLUDED: dict[str, frozenset[str]] = {
    "all": _NOT_BUILT,
    "drive": _NOT_BUILT
    | {"bridleway", "bus_guideway", "corridor", "cycleway", "elevator", "escalator", "footway", "path"}
    | {"pedestrian", "service", "steps", "track"},
    "walk": _NOT_BUILT | _MOTOR_ONLY | {"trunk", "trunk_link"},
    "bike": _NOT_BUILT | _MOTOR_ONLY | {"bus_guideway", "corridor", "elevator", "escalator", "footway", "steps"},
}
NETWORK_TYPES: tuple[str, ...] = tuple(_EXCLUDED)

GREEN_TAGS: dict[str, frozenset[str]] = {
    "leisure": frozenset({"park", "garden", "playground", "recreation_ground", "nature_reserve", "common"}),
    "landuse": frozenset({"grass", "forest", "meadow", "recreation_ground", "village_green", "allotments", "cemetery"}),
    "natural": frozenset({"wood", "scrub", "grassland", "heath"}),
}
WATER_TAGS: dict[str, frozenset[str]] = {
    "natural": frozenset({"water", "bay"}),
    "waterway": frozenset({"riverbank", "dock"}),
    "landuse": frozenset({"reservoir", "basin"}),
}
# Amenity values that are street furniture rather than destinations.
NON_DESTINATION_AMENITIES = frozenset(
    {
        "parking",
        "parking_space",
        "parking_entrance",
        "bench",
        "waste_basket",
        "waste_disposal",
        "recycling",
        "bicycle_parking",
        "motorcycle_parking",
        "vending_machine",
        "telephone",
        "post_box",
        "clock",
        "drinking_water",
        "grit_bin",
        "hunting_stand",
        "shelter",
        "toilets",
        "fountain",
    }
)
# The OSM keys any reader must keep to classify features.
FEATURE_KEYS = (
    "building",
    "building:levels",
    "building:min_level",
    "height",
    "min_height",
    "amenity",
    "shop",
    "leisure",
    "landuse",
    "natural",
    "waterway",
    "water",
    "parking",
    "place",
    "highway",
    "area",
    "name",
)

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def first_value(value: object) -> str | None:
    """OSM values can be lists (after graph simplification) or `a;b` strings; take the first.

    OSMnx merges the tags of simplified edges through a set, so a list's order changes with Python's hash
    seed; for lists this takes the smallest value, so builds are the same in every process."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple)):
        values = sorted(v for v in (first_value(item) for item in value) if v is not None)
        return values[0] if values else None
    text = str(value).strip()
    return text.split(";")[0].strip() or None


def parse_number(value: object) -> float | None:
    """Parse numeric OSM values such as ``"12"``, ``"12.5 m"``, ``"4;5"`` or ``"3,5"``; None if absent.
    Of a list (merged edges), the largest."""
    if isinstance(value, (list, tuple)):
        numbers = [n for n in (parse_number(item) for item in value) if n is not None]
        return max(numbers) if numbers else None
    text = first_value(value)
    if text is None:
        return None
    match = _NUMBER.search(text)
    if match is None:
        return None
    number = float(match.group().replace(",", "."))
    if "ft" in text or "'" in text:
        number *= 0.3048
    return number if math.isfinite(number) else None


def highway_class(value: object) -> str | None:
    """The highway class; of a list (merged edges), the widest by default width, so a simplified edge
    that is partly a primary road is drawn as one whatever the order of the list."""
    if isinstance(value, (list, tuple)):
        classes = sorted({c for c in (first_value(item) for item in value) if c is not None})
        if not classes:
            return None
        return max(classes, key=lambda c: (c not in PATH_CLASSES, DEFAULT_WIDTH_M.get(c, FALLBACK_WIDTH_M)))
    return first_value(value)


def is_path(highway: object) -> bool:
    return highway_class(highway) in PATH_CLASSES


def street_width_m(*, highway: object, width: object = None, lanes: object = None) -> float:
    """Street surface width: the `width` tag, else `lanes` x 3.25 m, else the class default."""
    tagged = parse_number(width)
    if tagged is not None and 0.5 <= tagged <= MAX_WIDTH_M:
        return tagged
    lane_count = parse_number(lanes)
    if lane_count is not None and 1 <= lane_count <= 12:
        return lane_count * LANE_WIDTH_M
    cls = highway_class(highway) or ""
    if cls.endswith("_link"):
        return LINK_WIDTH_M
    return DEFAULT_WIDTH_M.get(cls, FALLBACK_WIDTH_M)


def in_network(tags: Mapping[str, str], network_type: str) -> bool:
    """Whether a way with these tags belongs to a network type (OSMnx's filters, simplified)."""
    highway = tags.get("highway")
    if not highway or highway in _EXCLUDED[network_type]:
        return False
    if tags.get("area") == "yes" and network_type != "walk":
        return False
    if network_type == "drive":
        if tags.get("motor_vehicle") == "no" or tags.get("motorcar") == "no":
            return False
        if tags.get("access") == "private":
            return False
    if network_type == "walk" and tags.get("foot") == "no":
        return False
    return not (network_type == "bike" and tags.get("bicycle") == "no")


def levels_from_tags(tags: Mapping[str, object]) -> float:
    """Storeys of floor area a building holds: `building:levels` above `building:min_level`, else `height` above
    `min_height` / 3 m; NaN where neither is tagged. A part that starts high up (a sky bridge at level 55 of
    `building:levels=57`) holds only its own storeys; a minimum at or above the top is ignored as a tagging error."""
    levels = parse_number(tags.get("building:levels"))
    if levels is not None and 0 < levels < 200:
        low = parse_number(tags.get("building:min_level")) or 0.0
        return max(1.0, levels - low) if 0 <= low < levels else levels
    height = parse_number(tags.get("height"))
    if height is not None and 0 < height < 1000:
        low = parse_number(tags.get("min_height")) or 0.0
        span = height - low if 0 <= low < height else height
        return max(1.0, round(span / STOREY_HEIGHT_M))
    return math.nan


def feature_layers(tags: Mapping[str, object], *, is_point: bool) -> list[str]:
    """The citygen layers an OSM feature belongs to (a feature may be in several)."""
    found: list[str] = []

    def has(key: str, allowed: frozenset[str] | None = None) -> bool:
        value = first_value(tags.get(key))
        return value is not None and value != "no" and (allowed is None or value in allowed)

    if not is_point:
        if has("building"):
            found.append("buildings")
        if any(has(key, values) for key, values in GREEN_TAGS.items()):
            found.append("green")
        if any(has(key, values) for key, values in WATER_TAGS.items()) or has("water"):
            found.append("water")
        if first_value(tags.get("amenity")) == "parking":
            found.append("parking")
    amenity = first_value(tags.get("amenity"))
    if (amenity is not None and amenity not in NON_DESTINATION_AMENITIES) or has("shop"):
        found.append("amenities")
    return found


def amenity_class(tags: Mapping[str, object]) -> str:
    """The class used for amenity access and mix: the `amenity` value, or `shop`."""
    amenity = first_value(tags.get("amenity"))
    if amenity is not None and amenity not in NON_DESTINATION_AMENITIES:
        return amenity
    return "shop"
