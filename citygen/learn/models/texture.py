"""Translation-invariant texture statistics of a latent map (``stats`` pooling of `citygen embed`).

A tile's vector holds the per-channel mean and standard deviation of its latent map and the
channel-by-channel products of codes at offsets of a few cells in four directions (signed square roots):
texture statistics of the latent codes, as the Gram matrices of Gatys et al. (2015), which say how streets
and blocks repeat and turn, wherever they lie in the tile. The autoencoder's optional neighbour-contrastive
term trains on the same statistics of single crops (:class:`citygen.learn.tasks.AutoencoderTask`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from citygen.core.errors import ConfigError

# (rows, columns) offsets, in latent cells, of the code products in ``stats`` pooling
STAT_OFFSETS: tuple[tuple[int, int], ...] = (
    (0, 0),
    *((r * dy, r * dx) for r in (1, 2, 4, 8) for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1))),
)


def offsets_within(side: int, offsets: Sequence[tuple[int, int]] = STAT_OFFSETS) -> tuple[tuple[int, int], ...]:
    """The offsets that fit in a latent map of ``side`` x ``side`` cells."""
    return tuple((dy, dx) for dy, dx in offsets if max(abs(dy), abs(dx)) < side)


def statistics_size(channels: int, offsets: Sequence[tuple[int, int]] = STAT_OFFSETS) -> int:
    return 2 * channels + len(offsets) * channels * channels


def mapped_cells(valid_pixels: torch.Tensor, factor: int) -> torch.Tensor:
    """``[B, 1, H, W]`` valid-pixel mask -> ``[B, 1, H / factor, W / factor]`` latent cells that lie wholly
    inside the mapped area (the ``valid`` argument of :func:`latent_statistics`)."""
    return F.avg_pool2d(valid_pixels.float(), factor) >= 1.0 - 1e-6


def latent_statistics(
    latent_map: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    offsets: Sequence[tuple[int, int]] = STAT_OFFSETS,
) -> torch.Tensor:
    """``[B, C, h, w]`` latent maps -> ``[B, 2C + len(offsets) C^2]`` translation-invariant statistics.

    ``valid`` ``[B, 1, h, w]`` (0/1) marks the latent cells inside the mapped area: statistics are taken over
    those cells (and pairs of them) only, so a tile at the edge of an extract describes its mapped part rather
    than looking emptier than its city. A tile without a valid cell falls back to all cells.
    """
    batch, _, h, w = latent_map.shape
    weight = torch.ones_like(latent_map[:, :1]) if valid is None else valid.to(latent_map)
    weight = torch.where(weight.sum(dim=(1, 2, 3), keepdim=True) > 0, weight, torch.ones_like(weight))
    count = weight.sum(dim=(2, 3))
    mean = (latent_map * weight).sum(dim=(2, 3)) / count
    spread = ((latent_map - mean[:, :, None, None]) ** 2 * weight).sum(dim=(2, 3)) / count
    parts = [mean, spread.clamp_min(1e-12).sqrt()]  # clamped: finite gradients where a map is constant
    for dy, dx in offsets:
        first = (slice(None), slice(None), slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx)))
        second = (slice(None), slice(None), slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx)))
        a, b = latent_map[first], latent_map[second]
        if a.shape[2] == 0 or a.shape[3] == 0:
            raise ConfigError(
                f"tiles of {h}x{w} latent cells are too small for code offsets of {max(abs(dy), abs(dx))} cells",
                "embed larger tiles or use --pooling mean",
            )
        pairs = weight[first] * weight[second]  # both cells of a pair in the mapped area
        products = torch.einsum("bcyx,bdyx->bcd", a * pairs, b).reshape(batch, -1)
        products = products / pairs.sum(dim=(1, 2, 3)).clamp_min(1.0)[:, None]
        # signed square root ("power normalisation" of bilinear features, Lin et al. 2015): products back to
        # the scale of the codes, so a few tiles with strong codes do not dominate distances and PCA maps
        parts.append(products.sign() * products.abs().clamp_min(1e-12).sqrt())
    return torch.cat(parts, dim=1)
