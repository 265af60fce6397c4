"""LightningModules ("tasks", as in torchgeo): thin training logic around the networks in citygen.models."""

from citygen.tasks.autoencoder import AutoencoderTask
from citygen.tasks.base import BaseTask, TrainingDivergedError
from citygen.tasks.pix2pix import Pix2PixTask

__all__ = ["AutoencoderTask", "BaseTask", "Pix2PixTask", "TrainingDivergedError"]
