"""citygen: generative urban-layout research on OpenStreetMap data.

Sample data shipped in ``citygen/samples`` is (c) OpenStreetMap contributors, ODbL 1.0.
The packages form layers that import only downward: core -> data -> metrics -> learn -> workflows -> cli
(docs/architecture.md).
"""

from citygen.core import OSM_ATTRIBUTION, __version__

__all__ = ["OSM_ATTRIBUTION", "__version__"]
