"""LightningModules ("tasks", as in torchgeo): thin training logic around the networks in citygen.learn.models."""

from citygen.learn.tasks.autoencoder import AutoencoderTask
from citygen.learn.tasks.base import BaseTask, TrainingDivergedError
from citygen.learn.tasks.pix2pix import Pix2PixTask

__all__ = ["AutoencoderTask", "BaseTask", "Pix2PixTask", "TrainingDivergedError"]
