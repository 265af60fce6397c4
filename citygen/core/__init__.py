"""The bottom layer: band vocabulary, errors, settings, figure helpers, the version and the data attribution.

Everything else in citygen may import from here; nothing here imports another citygen package.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("citygen")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

OSM_ATTRIBUTION = "(c) OpenStreetMap contributors, ODbL 1.0"

__all__ = ["OSM_ATTRIBUTION", "__version__"]
