"""Lightning callbacks: logger-agnostic sample images and prediction writers."""

from citygen.callbacks.images import ImageLogger
from citygen.callbacks.writers import EmbeddingWriter

__all__ = ["EmbeddingWriter", "ImageLogger"]
