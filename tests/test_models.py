"""Shapes, initialisation and noise behaviour of the plain networks (random tensors, no data)."""

from __future__ import annotations

import pytest
import torch

from citygen.models import (
    ConvAutoencoder,
    PatchGANDiscriminator,
    UnetGenerator,
    init_weights,
    kl_divergence,
    receptive_field,
)


@pytest.mark.parametrize("variational", [False, True])
def test_autoencoder_shapes(variational: bool) -> None:
    net = ConvAutoencoder(3, input_size=32, widths=(8, 16), latent_dim=10, variational=variational)
    x = torch.rand(2, 3, 32, 32)
    out, mu, logvar = net(x)
    assert out.shape == x.shape
    assert mu.shape == (2, 10)
    assert (logvar is not None) == variational
    assert net.encode(x).shape == (2, 10)
    net.eval()
    assert torch.equal(net(x)[0], net(x)[0]), "eval mode must be deterministic (VAE uses the mean)"


def test_autoencoder_rejects_wrong_size() -> None:
    net = ConvAutoencoder(1, input_size=32, widths=(8, 16), latent_dim=4)
    with pytest.raises(ValueError, match="32x32"):
        net(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="divisible"):
        ConvAutoencoder(1, input_size=30, widths=(8, 16))


def test_kl_zero_for_standard_normal() -> None:
    assert kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)).item() == pytest.approx(0.0)
    assert kl_divergence(torch.ones(3, 5), torch.zeros(3, 5)).item() == pytest.approx(2.5)


def test_unet_shapes_and_noise_changes_output() -> None:
    torch.manual_seed(0)
    g = UnetGenerator(4, 2, num_downs=5, ngf=8, noise_dim=4, dropout=0.0)
    init_weights(g, "normal", 0.02)
    g.eval()
    x = torch.rand(2, 4, 64, 64)
    z1, z2 = torch.randn(2, 4), torch.randn(2, 4)
    y1, y2 = g(x, z1), g(x, z2)
    assert y1.shape == (2, 2, 64, 64)
    assert torch.equal(g(x, z1), y1), "same code, same output"
    assert not torch.allclose(y1, y2), "a different code must change the output"
    with pytest.raises(ValueError, match="divisible"):
        g(torch.rand(1, 4, 48, 48))


def test_unet_256_matches_reference_size() -> None:
    g = UnetGenerator(3, 3, num_downs=8, ngf=64, noise_dim=0)
    n = sum(p.numel() for p in g.parameters())
    assert 54.0e6 < n < 54.6e6  # the reference unet_256 has 54.4 M parameters


def test_patchgan_70x70() -> None:
    assert receptive_field(3) == 70
    d = PatchGANDiscriminator(5, ndf=8, n_layers=3)
    assert d(torch.rand(2, 5, 256, 256)).shape == (2, 1, 30, 30)


def test_init_weights_normal() -> None:
    net = init_weights(PatchGANDiscriminator(3, ndf=64), "normal", 0.02)
    w = net.model[0].weight
    assert abs(w.mean().item()) < 0.005
    assert w.std().item() == pytest.approx(0.02, rel=0.1)
