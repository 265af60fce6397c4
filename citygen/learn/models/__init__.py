"""Plain ``nn.Module`` networks (no Lightning imports): autoencoder, U-Net generator, PatchGAN, metric regressor."""

from citygen.learn.models.autoencoder import ConvAutoencoder, ConvDecoder, ConvEncoder, kl_divergence
from citygen.learn.models.init import init_weights
from citygen.learn.models.norm import norm_layer
from citygen.learn.models.patchgan import PatchGANDiscriminator, receptive_field
from citygen.learn.models.regressor import MetricRegressor
from citygen.learn.models.unet import UnetGenerator

__all__ = [
    "ConvAutoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "MetricRegressor",
    "PatchGANDiscriminator",
    "UnetGenerator",
    "init_weights",
    "kl_divergence",
    "norm_layer",
    "receptive_field",
]
