"""citygen: generative urban-layout research on OpenStreetMap data.

Sample data shipped in ``citygen/samples`` is (c) OpenStreetMap contributors, ODbL 1.0.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("citygen")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

OSM_ATTRIBUTION = "(c) OpenStreetMap contributors, ODbL 1.0"

__all__ = ["OSM_ATTRIBUTION", "__version__"]
