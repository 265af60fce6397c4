"""Shapes, initialisation and noise behaviour of the plain networks (random tensors, no data)."""

from __future__ import annotations

import pytest
import torch

from citygen.learn.models import (
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


@pytest.mark.parametrize("variational", [False, True])
def test_spatial_bottleneck_latent_vector_and_map(variational: bool) -> None:
    net = ConvAutoencoder(2, 2, input_size=64, widths=[8, 16, 32], latent_dim=256, variational=variational,
                          bottleneck="spatial")  # fmt: skip
    net.eval()
    x = torch.rand(3, 2, 64, 64)
    out, mu, _ = net(x)
    assert out.shape == x.shape and mu.shape == (3, 256) and net.encode(x).shape == (3, 256)
    # fully convolutional: a 256 px tile gives a 32 x 32 map of 4-channel codes, equal to the crop codes
    tile = torch.rand(1, 2, 256, 256)
    latent_map = net.encode_map(tile)
    assert latent_map.shape == (1, 4, 32, 32)
    crop_code = net.encode(tile[:, :, 64:128, 128:192]).view(1, 4, 8, 8)
    assert torch.allclose(latent_map[:, :, 10:14, 18:22], crop_code[:, :, 2:6, 2:6], atol=1e-4)
    with pytest.raises(ValueError, match="divisible by 64"):
        ConvAutoencoder(2, 2, input_size=64, widths=[8, 16, 32], latent_dim=100, bottleneck="spatial")
    with pytest.raises(ValueError, match="spatial bottleneck"):
        ConvAutoencoder(2, 2, input_size=64, widths=[8, 16, 32], latent_dim=64).encode_map(tile)


def test_unet_condition_vector_reaches_the_output() -> None:
    torch.manual_seed(0)
    net = UnetGenerator(3, 2, num_downs=5, ngf=8, noise_dim=4, cond_dim=3).eval()
    x, z = torch.rand(1, 3, 32, 32), torch.randn(1, 4)
    a = net(x, z, torch.tensor([[0.1, 0.2, 0.3]]))
    b = net(x, z, torch.tensor([[0.9, 0.2, 0.3]]))
    assert (a - b).abs().mean() > 1e-4
    with pytest.raises(ValueError, match="conditioning vector of 3"):
        net(x, z)


def test_unet_noise_maps_vary_layouts_for_one_code() -> None:
    torch.manual_seed(0)
    x = torch.full((1, 2, 32, 32), 0.3)  # a target-only condition is constant over the image
    noisy = UnetGenerator(2, 1, num_downs=5, ngf=8, noise_dim=4, noise_maps=2, noise_cell=4).eval()
    first = noisy.sample_maps(1, (32, 32), torch.device("cpu"), torch.Generator().manual_seed(0))
    second = noisy.sample_maps(1, (32, 32), torch.device("cpu"), torch.Generator().manual_seed(1))
    assert first.shape == (1, 2, 8, 8)
    z = torch.zeros(1, 4)
    a, b = noisy(x, z, maps=first), noisy(x, z, maps=second)
    assert (a - b).abs().mean() > 1e-4, "the same code with other noise maps gives another layout"
    assert torch.equal(a, noisy(x, z, maps=first))
