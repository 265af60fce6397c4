"""The data pipeline: city specs -> OpenStreetMap layers -> projected vectors -> GeoTIFFs -> tiles."""
