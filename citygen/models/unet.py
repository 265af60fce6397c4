"""pix2pix U-Net generator with a noise code injected at every encoder level.

pix2pix relies on dropout for stochasticity, which in practice gives nearly identical outputs for the
same input. Here a latent code ``z`` (``noise_dim`` values per sample) is broadcast to a spatial map and
concatenated to the input of *every* encoder block (BicycleGAN's "add to all" variant), so candidates
for the same conditioning differ.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from citygen.models.norm import NormType, norm_layer, uses_bias


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
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError("num_downs must be at least 2")
        self.num_downs = num_downs
        self.noise_dim = noise_dim
        bias = uses_bias(norm)
        ch = [ngf * min(2**i, 8) for i in range(num_downs)]
        self.down = nn.ModuleList()
        prev = in_channels
        for i, c in enumerate(ch):
            innermost = i == num_downs - 1
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            layers.append(nn.Conv2d(prev + noise_dim, c, 4, stride=2, padding=1, bias=bias or i == 0 or innermost))
            if 0 < i < num_downs - 1:
                layers.append(norm_layer(norm, c))
            self.down.append(nn.Sequential(*layers))
            prev = c
        self.up = nn.ModuleList()
        for i in range(num_downs):
            cin = ch[i] if i == num_downs - 1 else 2 * ch[i]
            layers = [nn.ReLU(inplace=False)]
            if i == 0:
                layers.append(nn.ConvTranspose2d(cin, out_channels, 4, stride=2, padding=1))
            else:
                layers += [nn.ConvTranspose2d(cin, ch[i - 1], 4, stride=2, padding=1, bias=bias)]
                layers.append(norm_layer(norm, ch[i - 1]))
                if dropout > 0 and i >= num_downs - 3:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def sample_noise(self, batch: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(batch, self.noise_dim, device=device, generator=generator)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        factor = 2**self.num_downs
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be divisible by 2**num_downs = {factor}")
        if self.noise_dim and z is None:
            z = self.sample_noise(x.shape[0], x.device)
        skips: list[Tensor] = []
        h = x
        for block in self.down:
            if self.noise_dim and z is not None:
                zmap = z[:, :, None, None].expand(-1, -1, h.shape[-2], h.shape[-1]).contiguous()
                h = torch.cat([h, zmap.to(h.dtype)], dim=1)
            h = block(h)
            skips.append(h)
        out = self.up[-1](skips[-1])
        for i in range(self.num_downs - 2, -1, -1):
            out = self.up[i](torch.cat([out, skips[i]], dim=1))
        return out
