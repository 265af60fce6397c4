"""pix2pix U-Net generator with a noise code injected at every encoder level.

pix2pix relies on dropout for stochasticity, which in practice gives nearly identical outputs for the
same input. Here a latent code ``z`` (``noise_dim`` values per sample) is broadcast to a spatial map and
concatenated to the input of *every* encoder block (BicycleGAN's "add to all" variant), so candidates
for the same conditioning differ. A conditioning vector ``c`` (``cond_dim`` values, e.g. the requested
urban metrics) can be injected the same way, so every level knows the targets directly instead of through
constant input maps that convolutions and normalisation layers dilute.

When the condition is spatially constant (target values only), the code is constant over the image too,
and zero padding at the borders is the only thing that tells one place from another: the generator can
only draw frames and periodic patterns anchored at the edges. ``noise_maps`` channels of coarse Gaussian
noise (one value per ``noise_cell`` pixels, bilinearly upsampled) are then concatenated to the input, so
streets and blocks can be placed anywhere and differ between candidates.

``upsample="resize"`` replaces the decoder's transposed convolutions by resizing and a convolution (no
checkerboard artifacts, Odena et al. 2016).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from citygen.learn.models.norm import NormType, norm_layer, uses_bias


def _upsampling(kind: str, cin: int, cout: int, *, bias: bool) -> list[nn.Module]:
    """Double the resolution: a stride-2 transposed convolution (pix2pix), or nearest-neighbour resizing and a
    3 x 3 convolution, which cannot imprint the transposed convolution's checkerboard (Odena et al. 2016)."""
    if kind == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1, bias=bias)]
    return [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=bias)]


class UnetGenerator(nn.Module):
    """U-Net: C64-C128-C256-C512-C512... encoder, mirrored decoder with skip connections.

    ``num_downs`` halvings need inputs divisible by ``2**num_downs`` (8 for 256 x 256, as ``unet_256``).
    Returns logits / raw values (no output activation) so the task chooses the activation per channel.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_downs: int = 8,
        ngf: int = 64,
        norm: NormType = "batch",
        dropout: float = 0.5,
        noise_dim: int = 8,
        cond_dim: int = 0,
        noise_maps: int = 0,
        noise_cell: int = 8,
        upsample: Literal["transposed", "resize"] = "transposed",
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError("num_downs must be at least 2")
        self.num_downs = num_downs
        self.noise_dim = noise_dim
        self.cond_dim = cond_dim
        self.noise_maps = noise_maps
        self.noise_cell = noise_cell
        code_dim = noise_dim + cond_dim
        bias = uses_bias(norm)
        ch = [ngf * min(2**i, 8) for i in range(num_downs)]
        self.down = nn.ModuleList()
        prev = in_channels + noise_maps
        for i, c in enumerate(ch):
            innermost = i == num_downs - 1
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            layers.append(nn.Conv2d(prev + code_dim, c, 4, stride=2, padding=1, bias=bias or i == 0 or innermost))
            if 0 < i < num_downs - 1:
                layers.append(norm_layer(norm, c))
            self.down.append(nn.Sequential(*layers))
            prev = c
        self.up = nn.ModuleList()
        for i in range(num_downs):
            cin = ch[i] if i == num_downs - 1 else 2 * ch[i]
            layers = [nn.ReLU(inplace=False)]
            if i == 0:
                layers += _upsampling(upsample, cin, out_channels, bias=True)
            else:
                layers += _upsampling(upsample, cin, ch[i - 1], bias=bias)
                layers.append(norm_layer(norm, ch[i - 1]))
                if dropout > 0 and i >= num_downs - 3:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def sample_noise(self, batch: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(batch, self.noise_dim, device=device, generator=generator)

    def sample_maps(
        self, batch: int, size: tuple[int, int], device: torch.device, generator: torch.Generator | None = None
    ) -> Tensor:
        """Coarse noise ``[B, noise_maps, ceil(H / noise_cell), ceil(W / noise_cell)]``."""
        h, w = (math.ceil(n / self.noise_cell) for n in size)
        return torch.randn(batch, self.noise_maps, h, w, generator=generator).to(device)

    def forward(
        self, x: Tensor, z: Tensor | None = None, c: Tensor | None = None, maps: Tensor | None = None
    ) -> Tensor:
        factor = 2**self.num_downs
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be divisible by 2**num_downs = {factor}")
        if self.noise_dim and z is None:
            z = self.sample_noise(x.shape[0], x.device)
        if self.cond_dim and (c is None or c.shape[1] != self.cond_dim):
            raise ValueError(f"the generator needs a conditioning vector of {self.cond_dim} values")
        if self.noise_maps:
            if maps is None:
                maps = self.sample_maps(x.shape[0], (x.shape[-2], x.shape[-1]), x.device)
            up = F.interpolate(maps.to(x.dtype), size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([x, up], dim=1)
        parts = [v for v, n in ((z, self.noise_dim), (c, self.cond_dim)) if n and v is not None]
        code = torch.cat(parts, dim=1) if parts else None
        skips: list[Tensor] = []
        h = x
        for block in self.down:
            if code is not None:
                zmap = code[:, :, None, None].expand(-1, -1, h.shape[-2], h.shape[-1]).contiguous()
                h = torch.cat([h, zmap.to(h.dtype)], dim=1)
            h = block(h)
            skips.append(h)
        out = self.up[-1](skips[-1])
        for i in range(self.num_downs - 2, -1, -1):
            out = self.up[i](torch.cat([out, skips[i]], dim=1))
        return out
