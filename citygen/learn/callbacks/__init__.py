"""Lightning callbacks: logger-agnostic sample images and prediction writers."""

from citygen.learn.callbacks.images import ImageLogger
from citygen.learn.callbacks.writers import EmbeddingWriter

__all__ = ["EmbeddingWriter", "ImageLogger"]
