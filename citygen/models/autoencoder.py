"""Convolutional (variational) autoencoder with a latent *vector* bottleneck."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from citygen.models.norm import NormType, norm_layer, uses_bias


class ConvEncoder(nn.Module):
    """Strided convolutions down to ``input_size / 2**len(widths)`` pixels, then a linear map to the latent."""

    def __init__(
        self,
        in_channels: int,
        input_size: int,
        widths: Sequence[int] = (32, 64, 128, 256),
        latent_dim: int = 128,
        variational: bool = False,
        norm: NormType = "batch",
    ) -> None:
        super().__init__()
        factor = 2 ** len(widths)
        if input_size % factor:
            raise ValueError(f"input_size {input_size} must be divisible by 2**len(widths) = {factor}")
        self.input_size = input_size
        self.variational = variational
        layers: list[nn.Module] = []
        prev = in_channels
        bias = uses_bias(norm)
        for i, width in enumerate(widths):
            layers += [
                nn.Conv2d(prev, width, 3, padding=1, bias=bias or i == 0),
                norm_layer(norm, width) if i else nn.Identity(),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(width, width, 4, stride=2, padding=1, bias=bias),
                norm_layer(norm, width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            prev = width
        self.features = nn.Sequential(*layers)
        self.bottleneck_shape = (prev, input_size // factor, input_size // factor)
        flat = prev * (input_size // factor) ** 2
        self.head = nn.Linear(flat, latent_dim * (2 if variational else 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Return ``(mu, logvar)``; ``logvar`` is None for a plain autoencoder."""
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(
                f"the autoencoder was built for {self.input_size}x{self.input_size} inputs, got "
                f"{tuple(x.shape[-2:])}; set data crop_size to the model's input_size"
            )
        h = self.head(self.features(x).flatten(1))
        if self.variational:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar.clamp(-20.0, 10.0)
        return h, None


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`; returns logits / raw values per output channel."""

    def __init__(
        self,
        out_channels: int,
        bottleneck_shape: tuple[int, int, int],
        widths: Sequence[int] = (32, 64, 128, 256),
        latent_dim: int = 128,
        norm: NormType = "batch",
    ) -> None:
        super().__init__()
        self.bottleneck_shape = bottleneck_shape
        c, h, w = bottleneck_shape
        self.head = nn.Sequential(nn.Linear(latent_dim, c * h * w), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        rev = list(widths)[::-1]
        bias = uses_bias(norm)
        prev = c
        for width in [*rev[1:], rev[-1]]:
            layers += [
                nn.ConvTranspose2d(prev, width, 4, stride=2, padding=1, bias=bias),
                norm_layer(norm, width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=bias),
                norm_layer(norm, width),
                nn.ReLU(inplace=True),
            ]
            prev = width
        layers.append(nn.Conv2d(prev, out_channels, 3, padding=1))
        self.features = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.features(self.head(z).view(z.shape[0], *self.bottleneck_shape))


class ConvAutoencoder(nn.Module):
    """Encoder + decoder. ``forward`` returns ``(output, mu, logvar)``; ``encode`` gives the latent vector.

    With ``variational=True`` the latent is sampled with the reparameterisation trick in training mode
    and taken as the mean in eval mode, so embeddings and evaluation are deterministic.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        input_size: int = 128,
        widths: Sequence[int] = (32, 64, 128, 256),
        latent_dim: int = 128,
        variational: bool = False,
        norm: NormType = "batch",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.variational = variational
        self.encoder = ConvEncoder(in_channels, input_size, widths, latent_dim, variational, norm)
        self.decoder = ConvDecoder(out_channels or in_channels, self.encoder.bottleneck_shape, widths, latent_dim, norm)

    def encode(self, x: Tensor) -> Tensor:
        """The latent vector (the mean for a VAE)."""
        return self.encoder(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        mu, logvar = self.encoder(x)
        z = mu
        if self.variational and self.training and logvar is not None:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z|x) || N(0, I)), summed over latent dimensions and averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
