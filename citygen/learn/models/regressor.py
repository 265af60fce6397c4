"""A small CNN that predicts urban metrics of a layout (the auxiliary regressor of the pix2pix task)."""

from __future__ import annotations

from torch import Tensor, nn


class MetricRegressor(nn.Module):
    """Strided convolutions, global average pooling and a linear map to ``n_outputs`` values.

    The pix2pix task trains it to predict the measured (scaled) metrics of real layouts, and of generated
    ones measured by the metric suite, and asks the generator for layouts whose predicted metrics match
    the requested targets, as the auxiliary classifier / regressor of AC-GAN-style conditional GANs. Metrics that are plain band shares
    (building coverage, green share) need no regressor: they are computed exactly from the output.
    """

    def __init__(self, in_channels: int, n_outputs: int, width: int = 32, n_layers: int = 4) -> None:
        super().__init__()
        if width % 8:
            raise ValueError(f"the regressor width must be a multiple of 8 (GroupNorm of 8 groups), got {width}")
        layers: list[nn.Module] = []
        prev = in_channels
        for i in range(n_layers):
            out = width * min(2**i, 8)
            layers += [nn.Conv2d(prev, out, 4, stride=2, padding=1), nn.GroupNorm(8, out), nn.LeakyReLU(0.2, True)]
            prev = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))
