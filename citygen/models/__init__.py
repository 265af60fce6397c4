"""Plain ``nn.Module`` networks (no Lightning imports): autoencoder, U-Net generator, PatchGAN, metric regressor."""

from citygen.models.autoencoder import ConvAutoencoder, ConvDecoder, ConvEncoder, kl_divergence
from citygen.models.init import init_weights
from citygen.models.norm import norm_layer
from citygen.models.patchgan import PatchGANDiscriminator, receptive_field
from citygen.models.regressor import MetricRegressor
from citygen.models.unet import UnetGenerator

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
