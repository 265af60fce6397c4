"""Convolutional (variational) autoencoder with a latent *vector* bottleneck.

Two bottlenecks, both giving a latent vector of ``latent_dim`` values:

- ``dense``: a linear map from the flattened last feature map (every latent value sees the whole crop);
- ``spatial``: a 1x1 convolution to ``latent_dim / (h * w)`` channels on the ``h x w`` bottleneck grid,
  flattened. Each value describes one cell of the crop, which keeps street positions exact and trains
  several times faster on thin layout channels; the encoder stays fully convolutional, so a whole tile
  can be encoded at once (:meth:`ConvAutoencoder.encode_map`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from citygen.learn.models.norm import NormType, norm_layer, uses_bias

Bottleneck = Literal["dense", "spatial"]


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
        bottleneck: Bottleneck = "dense",
    ) -> None:
        super().__init__()
        factor = 2 ** len(widths)
        if input_size % factor:
            raise ValueError(f"input_size {input_size} must be divisible by 2**len(widths) = {factor}")
        self.input_size = input_size
        self.variational = variational
        self.bottleneck = bottleneck
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
        side = input_size // factor
        self.bottleneck_shape = (prev, side, side)
        factor_out = 2 if variational else 1
        if bottleneck == "spatial":
            if latent_dim % (side * side):
                raise ValueError(
                    f"a spatial bottleneck on a {side}x{side} grid needs latent_dim divisible by {side * side}, "
                    f"got {latent_dim}"
                )
            self.latent_shape: tuple[int, ...] = (latent_dim // (side * side), side, side)
            self.head: nn.Module = nn.Conv2d(prev, self.latent_shape[0] * factor_out, 1)
        else:
            self.latent_shape = (latent_dim,)
            self.head = nn.Linear(prev * side * side, latent_dim * factor_out)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Return ``(mu, logvar)``; ``logvar`` is None for a plain autoencoder."""
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(
                f"the autoencoder was built for {self.input_size}x{self.input_size} inputs, got "
                f"{tuple(x.shape[-2:])}; set data crop_size to the model's input_size"
            )
        features = self.features(x)
        if self.bottleneck == "spatial":
            h = self.head(features)
            if self.variational:
                mu, logvar = h.chunk(2, dim=1)
                return mu.flatten(1), logvar.clamp(-20.0, 10.0).flatten(1)
            return h.flatten(1), None
        h = self.head(features.flatten(1))
        if self.variational:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar.clamp(-20.0, 10.0)
        return h, None

    def encode_map(self, x: Tensor) -> Tensor:
        """Spatial bottleneck only: the latent map ``[B, C, H / 2**n, W / 2**n]`` of an input of any size
        divisible by ``2**len(widths)`` (the mean for a VAE)."""
        if self.bottleneck != "spatial":
            raise ValueError("encode_map needs a spatial bottleneck")
        h = self.head(self.features(x))
        return h.chunk(2, dim=1)[0] if self.variational else h


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`; returns logits / raw values per output channel."""

    def __init__(
        self,
        out_channels: int,
        bottleneck_shape: tuple[int, int, int],
        widths: Sequence[int] = (32, 64, 128, 256),
        latent_dim: int = 128,
        norm: NormType = "batch",
        latent_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.bottleneck_shape = bottleneck_shape
        c, h, w = bottleneck_shape
        self.latent_shape = latent_shape or (latent_dim,)
        if len(self.latent_shape) == 3:  # spatial: 1x1 convolution back to the bottleneck width
            self.head: nn.Module = nn.Sequential(nn.Conv2d(self.latent_shape[0], c, 1), nn.ReLU(inplace=True))
        else:
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
        if len(self.latent_shape) == 3:
            return self.features(self.head(z.view(z.shape[0], *self.latent_shape)))
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
        bottleneck: Bottleneck = "dense",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.variational = variational
        self.encoder = ConvEncoder(in_channels, input_size, widths, latent_dim, variational, norm, bottleneck)
        self.decoder = ConvDecoder(
            out_channels or in_channels,
            self.encoder.bottleneck_shape,
            widths,
            latent_dim,
            norm,
            self.encoder.latent_shape,
        )

    def encode(self, x: Tensor) -> Tensor:
        """The latent vector (the mean for a VAE)."""
        return self.encoder(x)[0]

    def encode_map(self, x: Tensor) -> Tensor:
        return self.encoder.encode_map(x)

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
