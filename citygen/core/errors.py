"""Errors that reach the user. Each names the problem and what to do about it.

The CLI prints them as one message (no traceback) and exits with status 2.
"""

from __future__ import annotations


class CitygenError(Exception):
    """A problem with the user's input or environment, with a hint on how to fix it."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


class ConfigError(CitygenError):
    """A config or city spec is malformed (unknown key, wrong type, impossible value)."""


class SourceError(CitygenError):
    """A data source is missing, unreadable, or holds no usable data."""


class NetworkUnavailableError(CitygenError):
    """OpenStreetMap servers (Overpass, Nominatim) cannot be reached."""


class PlaceNotFoundError(CitygenError):
    """A place name could not be geocoded."""


class EmptyAreaError(CitygenError):
    """An area has no extent, or is smaller than one tile."""


class CheckpointError(CitygenError):
    """A checkpoint is missing or does not fit the data or model it is used with."""
