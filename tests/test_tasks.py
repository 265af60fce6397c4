"""Lightning tasks: steps on synthetic batches, overfitting real tiles, NaN guard, checkpoint checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader
from torchmetrics.classification import BinaryJaccardIndex

from citygen.core.errors import CheckpointError, ConfigError
from citygen.data.dataset import collate_tiles
from citygen.learn.datamodule import CityTileDataModule
from citygen.learn.tasks import AutoencoderTask, Pix2PixTask, TrainingDivergedError

TARGETS = ["building_coverage", "intersection_density_km2", "green_share"]


def fake_samples(n: int, bands: list[str], size: int, targets: list[str] | None = None, nan: bool = False) -> list:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        image = (torch.rand(len(bands), size, size, generator=g) > 0.8).float()
        if nan:
            image[0, 0, 0] = float("nan")
        s: dict[str, Any] = {
            "image": image,
            "mask": torch.ones(1, size, size, dtype=torch.bool),
            "present": torch.ones(len(bands), dtype=torch.bool),
            "bands": tuple(bands),
            "crs": "EPSG:32633",
            "bounds": torch.tensor([0.0, 0.0, 2.0 * size, 2.0 * size], dtype=torch.float64),
            "city": "x",
            "tile_id": f"x:{i}",
            "split": "train",
        }
        if targets:
            s["targets"] = torch.rand(len(targets), generator=g) * torch.tensor([1.0, 100.0, 1.0])[: len(targets)]
            s["target_names"] = tuple(targets)
        out.append(s)
    return out


def loader(samples: list) -> DataLoader:
    return DataLoader(samples, batch_size=2, collate_fn=collate_tiles)


def quiet_trainer(**kw: Any) -> L.Trainer:
    kw = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "accelerator": "cpu",
        "devices": 1,
        **kw,
    }
    return L.Trainer(**kw)


def test_autoencoder_step_masks_absent_bands() -> None:
    task = AutoencoderTask(bands=["streets", "buildings", "floor_area"], input_size=32, widths=[8, 16], latent_dim=8)
    batch = collate_tiles(fake_samples(2, ["buildings", "floor_area", "streets", "green"], 32))
    losses, x, _, raw, _ = task._step(batch)
    assert x.shape == (2, 3, 32, 32) and raw.shape == x.shape
    assert set(losses) >= {"bce", "dice", "l1", "loss"}
    batch["present"][:, 0] = False  # buildings absent in the source -> no loss on that channel
    assert channel_weights_sum(task, batch) == 2 * 2 * 32 * 32
    with pytest.raises(ConfigError, match="water"):
        AutoencoderTask(bands=["water"], input_size=32, widths=[8])._step(batch)


def channel_weights_sum(task: AutoencoderTask, batch: dict) -> float:
    from citygen.learn.tasks.base import channel_weights

    return channel_weights(batch, task.bands).sum().item()


def test_vae_and_predict_return_latents() -> None:
    task = AutoencoderTask(bands=["streets"], input_size=32, widths=[8, 16], latent_dim=6, variational=True)
    batch = collate_tiles(fake_samples(2, ["streets"], 32))
    losses, *_ = task._step(batch)
    assert "kl" in losses and torch.isfinite(losses["loss"])
    out = task.predict_step(batch, 0)
    assert out["embedding"].shape == (2, 6)
    assert out["city"] == ["x", "x"] and out["bounds"].shape == (2, 4) and out["split"] == ["train", "train"]


def test_contrastive_term_learns_to_pair_neighbours(built_samples: Path) -> None:
    """InfoNCE between two crops of each tile starts near chance (log of the number of pairs), reaches the
    encoder's first layer through the texture statistics, and falls as the model learns to pair the crops."""
    L.seed_everything(0)
    dm = CityTileDataModule(
        root=str(built_samples),
        bands=["streets", "buildings"],
        crop_size=32,
        batch_size=16,
        cities=["helsinki_center", "houston_montrose"],
        neighbour_crops=True,
        seed=0,
    )
    task = AutoencoderTask(
        bands=["streets", "buildings"],
        input_size=32,
        widths=[16, 32],
        bottleneck="spatial",
        latent_dim=128,
        lr=3e-3,
        contrastive_weight=1.0,
    )
    quiet_trainer(max_steps=2, limit_val_batches=0).fit(task, datamodule=dm)  # the training path runs
    batch = next(iter(dm.train_dataloader()))
    # crops with no street or building in one view (a park, a bayou) cannot be paired by any model: keep the rest
    drawn = (batch["image"][:, :2].sum((1, 2, 3)) > 0) & (batch["neighbour"][:, :2].sum((1, 2, 3)) > 0)
    assert int(drawn.sum()) >= 4
    batch = {k: v[drawn] if isinstance(v, torch.Tensor) and len(v) == len(drawn) else v for k, v in batch.items()}
    n = int(drawn.sum())
    task.eval()  # fixed BatchNorm statistics: the loss depends on the weights only

    def loss() -> torch.Tensor:
        return task.contrastive_loss(batch, task.net.encode(batch["image"]))

    first_loss = loss()
    first = first_loss.item()
    assert first == pytest.approx(torch.log(torch.tensor(float(n))).item(), rel=0.25)
    first_loss.backward()
    assert task.net.encoder.features[0].weight.grad.abs().sum() > 0
    optimizer = torch.optim.Adam(task.parameters(), lr=1e-3)
    for _ in range(100):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.4 * first
    with pytest.raises(ConfigError, match="neighbour_crops"):
        task.contrastive_loss({k: v for k, v in batch.items() if k != "neighbour"}, task.net.encode(batch["image"]))


def test_pix2pix_trains_and_candidates_differ() -> None:
    torch.manual_seed(0)
    task = Pix2PixTask(output_bands=["streets", "buildings"], conditions=TARGETS, input_size=32, ngf=8, ndf=8)
    samples = fake_samples(4, ["streets", "buildings"], 32, TARGETS)
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=1)
    trainer.fit(task, train_dataloaders=loader(samples), val_dataloaders=loader(samples))
    assert trainer.global_step == 4, "manual optimisation: two optimizer steps per batch"
    assert {"train/loss_d", "train/loss_g", "train/l1", "val/l1", "val/iou_streets"} <= set(trainer.logged_metrics)
    task.eval()
    targets = torch.tensor([[0.3, 80.0, 0.1]])
    cands = task.generate(targets, num_candidates=3, seed=0)
    assert cands.shape == (1, 3, 2, 32, 32)
    assert cands.min() >= 0 and cands.max() <= 1
    assert (cands[0, 0] - cands[0, 1]).abs().mean() > 1e-4, "noise must make candidates differ"
    assert torch.equal(cands, task.generate(targets, num_candidates=3, seed=0))


def test_pix2pix_streets_to_buildings_mode() -> None:
    task = Pix2PixTask(
        output_bands=["buildings"],
        input_bands=["streets"],
        conditions=["building_coverage"],
        input_size=32,
        ngf=8,
        ndf=8,
    )
    batch = collate_tiles(fake_samples(2, ["streets", "buildings"], 32, ["building_coverage"]))
    assert task.batch_condition(batch).shape == (2, 2, 32, 32)
    with pytest.raises(ConfigError, match="both input and output"):
        Pix2PixTask(output_bands=["streets"], input_bands=["streets"])
    with pytest.raises(ConfigError, match="targets"):
        Pix2PixTask(input_size=32, ngf=8).batch_condition(collate_tiles(fake_samples(1, ["streets"], 32)))


@pytest.mark.parametrize("task_name", ["ae", "pix2pix"])
def test_nan_loss_stops_training(task_name: str) -> None:
    if task_name == "ae":
        task: L.LightningModule = AutoencoderTask(bands=["streets"], input_size=32, widths=[8], latent_dim=4)
        samples = fake_samples(2, ["streets"], 32, nan=True)
    else:
        task = Pix2PixTask(output_bands=["streets"], conditions=TARGETS, input_size=32, ngf=8, ndf=8)
        samples = fake_samples(2, ["streets"], 32, TARGETS)
        samples[0]["targets"][0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="diverged"):
        quiet_trainer(max_epochs=1).fit(task, train_dataloaders=loader(samples))


def _iou_and_loss(task: AutoencoderTask, data: Any) -> tuple[float, float]:
    task.eval()
    iou, losses = BinaryJaccardIndex(ignore_index=-1), []
    with torch.no_grad():
        for batch in DataLoader(data, batch_size=32, collate_fn=collate_tiles):
            out, x, w, raw, _ = task._step(batch)
            losses.append(out["loss"].item())
            iou.update(torch.sigmoid(raw[:, 0]), torch.where(w[:, 0] > 0, (x[:, 0] >= 0.5).long(), -1))
    task.train()
    return iou.compute().item(), sum(losses) / len(losses)


def test_autoencoder_overfits_real_tiles(built_samples: Path) -> None:
    """32 fixed 64 px crops of two Helsinki tiles: street IoU and loss must improve a lot."""
    L.seed_everything(0)
    dm = CityTileDataModule(
        root=str(built_samples),
        bands=["streets", "buildings"],
        crop_size=64,
        batch_size=8,
        cities=["helsinki_center"],
        max_tiles=2,
        random_crop=False,
        hflip=False,
        vflip=False,
    )
    dm.setup("fit")
    data = dm.datasets["train"]
    task = AutoencoderTask(bands=["streets", "buildings"], input_size=64, widths=[16, 32, 64], latent_dim=64, lr=3e-3)
    iou0, loss0 = _iou_and_loss(task, data)
    quiet_trainer(max_epochs=30, limit_val_batches=0).fit(task, train_dataloaders=dm.train_dataloader())
    iou1, loss1 = _iou_and_loss(task, data)
    assert loss1 < 0.5 * loss0, (loss0, loss1)
    assert iou1 > 0.6 and iou1 > iou0 + 0.3, (iou0, iou1)


def test_checkpoint_with_other_channels_is_refused(tmp_path: Path) -> None:
    task = AutoencoderTask(bands=["streets", "buildings"], input_size=32, widths=[8, 16], latent_dim=8)
    trainer = quiet_trainer(max_epochs=1, default_root_dir=str(tmp_path))
    trainer.fit(task, train_dataloaders=loader(fake_samples(2, ["streets", "buildings"], 32)))
    ckpt = tmp_path / "ae.ckpt"
    trainer.save_checkpoint(ckpt)
    raw = torch.load(ckpt, weights_only=True)  # plain types only
    assert raw["citygen_meta"]["bands"] == ["streets", "buildings"]
    same = AutoencoderTask.load_from_checkpoint(ckpt, weights_only=True)
    assert same.bands == ["streets", "buildings"]
    with pytest.raises(CheckpointError, match=r"bands: checkpoint \['streets', 'buildings'\], model \['streets'\]"):
        AutoencoderTask.load_from_checkpoint(ckpt, bands=["streets"])
    with pytest.raises(CheckpointError, match="AutoencoderTask"):
        Pix2PixTask.load_from_checkpoint(ckpt, input_size=32)


def test_share_constraint_meets_coverage_targets_exactly() -> None:
    torch.manual_seed(0)
    task = Pix2PixTask(
        output_bands=["streets", "buildings", "green"],
        conditions=TARGETS,
        input_size=32,
        ngf=8,
        ndf=8,
        share_constraint=True,
    ).eval()
    targets = torch.tensor([[0.05, 80.0, 0.4], [0.6, 20.0, 0.0]])
    # training: the soft band means meet the requests
    soft = task(task.condition(targets, None, 32))
    assert torch.allclose(soft[:, 1].mean(dim=(1, 2)), targets[:, 0], atol=1e-3)
    assert torch.allclose(soft[:, 2].mean(dim=(1, 2)), targets[:, 2], atol=1e-3)
    # generation: the delivered layout (pixels >= 0.5, as the GeoJSON export draws it) meets them
    out = task.generate(targets, num_candidates=2, seed=1)
    coverage, green = (out[:, :, 1] >= 0.5).float().mean(dim=(2, 3)), (out[:, :, 2] >= 0.5).float().mean(dim=(2, 3))
    assert torch.allclose(coverage, targets[:, :1].expand(-1, 2), atol=1e-3)
    assert torch.allclose(green, targets[:, 2:].expand(-1, 2), atol=1e-3)
    assert out[1, :, 2].max() == 0, "a green share of 0 gives no green at all"
    free = Pix2PixTask(
        output_bands=["streets", "buildings", "green"], conditions=TARGETS, input_size=32, ngf=8, ndf=8
    ).eval()
    assert not torch.allclose(free.generate(targets, seed=1)[:, 0, 1].mean(dim=(1, 2)), targets[:, 0], atol=1e-2)


def test_delivered_shares_are_exact_for_exclusive_bands() -> None:
    """Exclusive bands compete for pixels, so per-band offsets alone can leave a band under its share once
    thresholded; the delivered layout must still hold every requested share, with no pixel in two bands."""
    torch.manual_seed(0)
    task = Pix2PixTask(
        output_bands=["buildings", "green"],
        conditions=["building_coverage", "green_share"],
        input_size=32,
        ngf=8,
        ndf=8,
        exclusive_bands=True,
        share_constraint=True,
    ).eval()
    targets = torch.tensor([[0.25, 0.1], [0.6, 0.3], [0.0, 0.5]])
    out = task.generate(targets, num_candidates=3, seed=2)
    delivered = out >= 0.5
    shares = delivered.float().mean(dim=(3, 4))
    assert torch.allclose(shares, targets[:, None, :].expand_as(shares), atol=1.5e-3)
    assert not (delivered[:, :, 0] & delivered[:, :, 1]).any()
    assert (out.sum(dim=2) <= 1 + 1e-6).all()


def test_target_consistency_trains_the_metric_regressor() -> None:
    torch.manual_seed(0)
    task = Pix2PixTask(
        output_bands=["streets", "buildings"], conditions=TARGETS, input_size=32, ngf=8, ndf=8, target_weight=10.0
    )
    assert task.regressor is not None and task.consistency.regressed == [1, 2], "green is not an output: regressed"
    samples = fake_samples(4, ["streets", "buildings"], 32, TARGETS)
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=1)
    before = [p.detach().clone() for p in task.regressor.parameters()]
    trainer.fit(task, train_dataloaders=loader(samples), val_dataloaders=loader(samples))
    logged = set(trainer.logged_metrics)
    assert {"train/target_l1", "train/regressor_l1", "val/target_error_building_coverage"} <= logged
    assert any(not torch.equal(a, b) for a, b in zip(before, task.regressor.parameters(), strict=True))


def test_share_offset_reaches_targets_from_saturated_logits() -> None:
    from citygen.learn.tasks.layout_head import share_offset

    logits = torch.cat([torch.full((1, 1, 8, 8), -200.0), torch.linspace(50, 90, 64).view(1, 1, 8, 8)])
    mask = torch.ones(2, 1, 8, 8)
    wanted = torch.tensor([0.3, 0.02])
    offset = share_offset(logits, mask, wanted)
    share = torch.sigmoid(logits + offset[:, None, None, None]).mean(dim=(1, 2, 3))
    assert torch.allclose(share, wanted, atol=1e-4)
    assert share_offset(logits, mask, torch.tensor([float("nan"), 0.5]))[0] == 0, "unknown target: no offset"


def test_overlap_term_counts_only_overlap_beyond_the_real_layout() -> None:
    """Green painted under buildings is penalised; the overlap the real crop has is not."""
    task = Pix2PixTask(output_bands=["streets", "buildings", "green"], input_size=32, ngf=8, ndf=8)
    layout = torch.zeros(1, 3, 4, 4)
    layout[:, 1, :2] = 1.0  # buildings on the top half
    hidden = layout.clone()
    hidden[:, 2, :2] = 1.0  # green exactly under the buildings
    apart = layout.clone()
    apart[:, 2, 2:] = 1.0  # green beside them
    assert torch.isclose(task.head.excess_overlap(hidden, apart), torch.tensor(0.5 / 3))
    assert task.head.excess_overlap(apart, apart) == 0
    assert task.head.excess_overlap(hidden, hidden) == 0  # the real layout overlaps as much


def test_exclusive_bands_meet_shares_without_overlap() -> None:
    """With exclusive bands a pixel is street, building, green or open: the requested shares are met and the
    coverage bands never sum to more than 1."""
    task = Pix2PixTask(
        output_bands=["streets", "buildings", "green"],
        input_size=32,
        ngf=8,
        ndf=8,
        share_constraint=True,
        exclusive_bands=True,
    )
    torch.manual_seed(0)
    raw = 2 * torch.randn(3, 3, 32, 32)
    targets = torch.tensor([[0.25, 80.0, 0.1], [0.4, 50.0, 0.0], [0.05, 20.0, 0.3]])
    out = task.constrain(raw, task.condition(targets, None, 32))
    assert torch.allclose(out[:, 1].mean(dim=(1, 2)), targets[:, 0], atol=1e-3)
    assert torch.allclose(out[:, 2].mean(dim=(1, 2)), targets[:, 2], atol=1e-3)
    assert out.sum(dim=1).max() <= 1 + 1e-5
    loose = Pix2PixTask(output_bands=["streets", "buildings", "green"], input_size=32, ngf=8, ndf=8)
    assert loose.head.activate(raw).sum(dim=1).max() > 1.5  # independent sigmoids overlap freely


def test_pix2pix_predict_makes_layouts_as_generate_does() -> None:
    """`citygen predict` gives what `generate` gives: shares met over each crop's valid area on the delivered
    layout, and the
    street search (which needs the pixel size, taken from the crop bounds) runs when it is on."""
    torch.manual_seed(0)
    task = Pix2PixTask(
        output_bands=["streets", "buildings"],
        conditions=TARGETS,
        input_size=32,
        ngf=8,
        ndf=8,
        share_constraint=True,
        street_search=True,
    ).eval()
    samples = fake_samples(2, ["streets", "buildings"], 32, TARGETS)
    samples[1]["mask"][:, :, 20:] = False  # a crop cut by the edge of its extract
    batch = collate_tiles(samples)
    out = task.predict_step(batch, 0)
    assert out["generated"].shape == (2, 2, 32, 32) and out["tile_id"] == ["x:0", "x:1"]
    for i in range(2):
        valid = batch["mask"][i, 0]
        coverage = (out["generated"][i, 1][valid] >= 0.5).float().mean()  # the delivered layout
        assert torch.isclose(coverage, batch["targets"][i, 0].float(), atol=2e-3)


def test_gan_practice_options_train_and_draw_without_transposed_convolutions() -> None:
    """Issue 20: resize-convolution upsampling, a spectrally normalised discriminator, hinge loss, DiffAugment."""
    from citygen.learn.losses import GANLoss, diff_augment

    torch.manual_seed(0)
    task = Pix2PixTask(
        output_bands=["streets", "buildings"],
        conditions=TARGETS[:2],
        input_size=32,
        ngf=8,
        ndf=8,
        upsample="resize",
        spectral_norm=True,
        gan_mode="hinge",
        diffaugment=True,
        lambda_l1=0.0,
    )
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in task.generator.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in task.discriminator.modules())
    assert any(hasattr(m, "parametrizations") for m in task.discriminator.modules())
    samples = fake_samples(4, ["streets", "buildings"], 32, TARGETS[:2])
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=1)
    before = [p.detach().clone() for p in task.generator.parameters()]
    trainer.fit(task, train_dataloaders=loader(samples), val_dataloaders=loader(samples))
    assert any(not torch.equal(a, b) for a, b in zip(before, task.generator.parameters(), strict=True))
    hinge = GANLoss("hinge")
    logits = torch.tensor([2.0, -0.5])
    assert hinge(logits, True) == pytest.approx(0.75) and hinge(logits, False) == pytest.approx(1.75)
    assert hinge.generator(logits) == pytest.approx(-0.75)
    x = torch.rand(2, 3, 16, 16)
    y = diff_augment(x, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and ((y[:, 0] == 0) == (y[:, 1] == 0)).all(), "one cutout and shift for every channel"
