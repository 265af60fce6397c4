"""The 70 x 70 PatchGAN discriminator of pix2pix (``n_layers=3``)."""

from __future__ import annotations

from torch import Tensor, nn

from citygen.learn.models.norm import NormType, norm_layer, uses_bias


class PatchGANDiscriminator(nn.Module):
    """C64-C128-C256-C512 -> 1 channel of logits, one per overlapping patch.

    For a conditional GAN pass ``in_channels = condition channels + output channels`` and feed
    ``torch.cat([condition, output], dim=1)``.
    """

    def __init__(
        self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: NormType = "batch", spectral_norm: bool = False
    ) -> None:
        """``spectral_norm``: every convolution spectrally normalised (Miyato et al. 2018), which keeps the
        discriminator Lipschitz and the GAN stable on small data; it then takes no batch norm."""
        super().__init__()
        if spectral_norm:
            norm = "none"
        bias = uses_bias(norm)
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                sn(nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias)),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(sn(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def receptive_field(n_layers: int = 3) -> int:
    """Receptive field in pixels of one output logit (70 for ``n_layers=3``)."""
    rf = 1
    # walk back from the last conv: kernel 4 everywhere; strides 1, 1 (last two), then 2s
    for stride in [1, 1] + [2] * n_layers:
        rf = (rf - 1) * stride + 4
    return rf
