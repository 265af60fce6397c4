"""AutoencoderTask: (variational) convolutional autoencoder of layout channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MetricCollection
from torchmetrics.classification import BinaryF1Score, BinaryJaccardIndex

from citygen.core.errors import ConfigError
from citygen.learn.losses import masked_bce, masked_l1, masked_mse, soft_dice
from citygen.learn.models import ConvAutoencoder, init_weights, kl_divergence
from citygen.learn.models.init import InitType
from citygen.learn.models.norm import NormType
from citygen.learn.models.texture import latent_statistics, mapped_cells, offsets_within, statistics_size
from citygen.learn.tasks.base import (
    BaseTask,
    channel_weights,
    check_bands,
    check_finite,
    is_fraction,
    select_channels,
    tile_identity,
)


class AutoencoderTask(BaseTask):
    """Reconstructs the selected bands through a latent vector of ``latent_dim`` values.

    Args:
        bands: input = output channels, by name.
        input_size: crop side in pixels (the data module's ``crop_size``).
        widths: channels of the encoder stages (each halves the resolution).
        bottleneck: ``dense`` (linear map to the latent vector) or ``spatial`` (a latent map on the
            bottleneck grid, flattened to ``latent_dim`` values; see :mod:`citygen.learn.models.autoencoder`).
        variational: VAE with ``kl_weight`` times the KL term (latent = posterior mean at eval time).
        binary_loss: for fraction bands (streets, buildings, ...): BCE, soft Dice or their sum.
        continuous_loss: for the other bands (floor area, amenity counts).
        pos_weight: BCE weight of positive pixels (thin streets are rare).
        threshold: probability above which a pixel counts as street / building for IoU and F1.
        contrastive_weight: weight of a neighbour-contrastive term (InfoNCE, as Tile2Vec and SimCLR): the
            texture statistics of a crop's latent map (those `citygen embed` pools, see
            :mod:`citygen.learn.models.texture`), through a small projection head, must pick out a second crop of
            the same tile among the other crops of the batch. It asks the latent codes to carry what makes
            a neighbourhood recognisable, not only what rebuilds single pixels. Needs
            ``data.neighbour_crops: true``; 0 turns it off.
        contrastive_temperature: softmax temperature of the InfoNCE term.
        lr_schedule: constant, or cosine decay to 1 % of ``lr`` over ``trainer.max_epochs``.
    """

    def __init__(
        self,
        bands: Sequence[str] = ("streets", "buildings"),
        input_size: int = 128,
        widths: Sequence[int] = (32, 64, 128, 256),
        latent_dim: int = 128,
        bottleneck: Literal["dense", "spatial"] = "dense",
        variational: bool = False,
        kl_weight: float = 1e-3,
        norm: NormType = "batch",
        binary_loss: Literal["bce", "dice", "bce_dice"] = "bce_dice",
        continuous_loss: Literal["l1", "mse"] = "l1",
        pos_weight: float | None = None,
        threshold: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: Literal["constant", "cosine"] = "constant",
        init_type: InitType = "kaiming",
        init_gain: float = 0.02,
        contrastive_weight: float = 0.0,
        contrastive_temperature: float = 0.1,
    ) -> None:
        super().__init__()
        bands = check_bands(bands, "model bands")
        widths = [int(w) for w in widths]
        self.save_hyperparameters()
        self.hparams.update(bands=bands, widths=widths)  # normalised (the CLI saves the parsed config)
        self.bands = bands
        self.meta = {
            "bands": bands,
            "input_size": input_size,
            "widths": widths,
            "latent_dim": latent_dim,
            "variational": variational,
            "bottleneck": bottleneck,
        }
        self.binary_idx = [i for i, b in enumerate(bands) if is_fraction(b)]
        self.cont_idx = [i for i, b in enumerate(bands) if not is_fraction(b)]
        self.net = ConvAutoencoder(
            len(bands), len(bands), input_size, widths, latent_dim, variational, norm, bottleneck
        )
        init_weights(self.net, init_type, init_gain)
        self.projection: nn.Module | None = None
        if contrastive_weight > 0:
            shape = self.net.encoder.latent_shape
            self.contrast_offsets = offsets_within(shape[-1]) if len(shape) == 3 else ()
            size = statistics_size(shape[0], self.contrast_offsets) if len(shape) == 3 else latent_dim
            self.projection = nn.Sequential(nn.Linear(size, 256), nn.ReLU(inplace=True), nn.Linear(256, 64))
        metrics: dict[str, Any] = {}
        for i in self.binary_idx:
            metrics[f"iou_{bands[i]}"] = BinaryJaccardIndex(threshold=threshold, ignore_index=-1)
            metrics[f"f1_{bands[i]}"] = BinaryF1Score(threshold=threshold, ignore_index=-1)
        for i in self.cont_idx:
            metrics[f"mae_{bands[i]}"] = MeanAbsoluteError()
        self.val_metrics = MetricCollection(metrics, prefix="val/")
        self.test_metrics = self.val_metrics.clone(prefix="test/")

    # -- model ----------------------------------------------------------------------------------
    def activate(self, raw: Tensor) -> Tensor:
        """Network output -> band values: sigmoid for fraction bands, non-negative for the others."""
        out = raw.clone()
        if self.binary_idx:
            out[:, self.binary_idx] = torch.sigmoid(raw[:, self.binary_idx])
        if self.cont_idx:
            out[:, self.cont_idx] = raw[:, self.cont_idx].clamp_min(0)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction in band units."""
        return self.activate(self.net(x)[0])

    def encode(self, x: Tensor) -> Tensor:
        return self.net.encode(x)

    def _step(self, batch: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, Tensor]:
        """Losses, input, loss weights, raw output and latent (mean) of a batch."""
        x = select_channels(batch, self.bands)
        w = channel_weights(batch, self.bands)
        raw, mu, logvar = self.net(x)
        hp = self.hp
        losses: dict[str, Tensor] = {}
        total = raw.new_zeros(())
        if self.binary_idx:
            b = self.binary_idx
            if hp.binary_loss in ("bce", "bce_dice"):
                losses["bce"] = masked_bce(raw[:, b], x[:, b], w[:, b], hp.pos_weight)
                total = total + losses["bce"]
            if hp.binary_loss in ("dice", "bce_dice"):
                losses["dice"] = soft_dice(torch.sigmoid(raw[:, b]), x[:, b], w[:, b])
                total = total + losses["dice"]
        if self.cont_idx:
            c = self.cont_idx
            fn = masked_l1 if hp.continuous_loss == "l1" else masked_mse
            losses[hp.continuous_loss] = fn(raw[:, c], x[:, c], w[:, c])
            total = total + losses[hp.continuous_loss]
        losses["recon"] = total
        if hp.variational and logvar is not None:
            losses["kl"] = kl_divergence(mu, logvar)
            total = total + hp.kl_weight * losses["kl"]
        losses["loss"] = total
        return losses, x, w, raw, mu

    def _texture(self, mu: Tensor, mask: Tensor) -> Tensor:
        """A crop's latent -> the statistics `citygen embed` pools (spatial bottleneck) or the latent itself."""
        shape = self.net.encoder.latent_shape
        if len(shape) != 3:
            return mu
        valid = mapped_cells(mask[:, :1], mask.shape[-1] // shape[-1])
        return latent_statistics(mu.view(mu.shape[0], *shape), valid, offsets=self.contrast_offsets)

    def contrastive_loss(self, batch: dict[str, Any], mu: Tensor) -> Tensor:
        """Symmetric InfoNCE between each crop and the second crop of its tile (the other crops are negatives)."""
        if "neighbour" not in batch:
            raise ConfigError(
                "contrastive_weight > 0 needs a second crop of each tile in the batch",
                "set data.neighbour_crops: true (with random_crop: true and no targets)",
            )
        assert self.projection is not None
        near = select_channels({"image": batch["neighbour"], "bands": batch["bands"]}, self.bands)
        mu_near = self.net.encoder(near)[0]
        a = F.normalize(self.projection(self._texture(mu, batch["mask"])), dim=1)
        b = F.normalize(self.projection(self._texture(mu_near, batch["neighbour_mask"])), dim=1)
        logits = a @ b.T / self.hp.contrastive_temperature
        labels = torch.arange(len(a), device=a.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses, _, _, _, mu = self._step(batch)
        if self.projection is not None:
            losses["contrastive"] = self.contrastive_loss(batch, mu)
            losses["loss"] = losses["loss"] + self.hp.contrastive_weight * losses["contrastive"]
        check_finite(losses["loss"], "autoencoder loss", self.global_step)
        bs = batch["image"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False, batch_size=bs)
        self.log("train_loss", losses["loss"], prog_bar=True, logger=False, batch_size=bs)
        return losses["loss"]

    def _eval_step(self, batch: dict[str, Any], metrics: MetricCollection, stage: str) -> Tensor:
        losses, x, w, raw, _ = self._step(batch)
        pred = self.activate(raw)
        self._update_metrics(metrics, pred, x, w)
        self.log_dict(
            {f"{stage}/{k}": v for k, v in losses.items()},
            batch_size=x.shape[0],
            sync_dist=True,
            prog_bar=False,
        )
        self.log_dict(metrics, batch_size=x.shape[0])
        return pred

    def _update_metrics(self, metrics: MetricCollection, pred: Tensor, x: Tensor, w: Tensor) -> None:
        hp = self.hp
        for i, name in enumerate(self.bands):
            valid = w[:, i] > 0
            if i in self.binary_idx:
                target = (x[:, i] >= hp.threshold).long()
                target = torch.where(valid, target, torch.full_like(target, -1))
                metrics[f"iou_{name}"].update(pred[:, i], target)
                metrics[f"f1_{name}"].update(pred[:, i], target)
            elif valid.any():
                metrics[f"mae_{name}"].update(pred[:, i][valid], x[:, i][valid])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._eval_step(batch, self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Latent vectors with the crop's identity (city, tile, split, CRS, bounds)."""
        x = select_channels(batch, self.bands)
        return {"embedding": self.encode(x), **tile_identity(batch)}

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.hp.lr, weight_decay=self.hp.weight_decay)
        if self.hp.lr_schedule == "constant":
            return opt
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=self.hp.lr * 0.01)]

    # -- images ---------------------------------------------------------------------------------
    @torch.no_grad()
    def render_samples(self, batch: dict[str, Any], n: int = 4) -> tuple[Any, str]:
        from citygen.learn.tasks.render import grid, render_layout

        x = select_channels(batch, self.bands)[:n]
        was_training = self.training
        self.eval()
        pred = self(x).float().cpu().numpy()
        self.train(was_training)
        xs, mask = x.float().cpu().numpy(), batch["mask"][:n].cpu().numpy()
        rows = [[render_layout(xs[i], self.bands, mask[i]), render_layout(pred[i], self.bands)] for i in range(len(xs))]
        caption = "input | reconstruction: " + ", ".join(f"{t}" for t in batch["tile_id"][:n])
        return grid(rows), caption
