"""Logs sample images during validation with any logger.

The task provides ``render_samples(batch) -> (uint8 RGB array, caption)``. With a
:class:`~lightning.pytorch.loggers.WandbLogger` the image goes to W&B (``log_image``); otherwise it is a
PNG under ``<log dir>/images/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


def run_dir(trainer: L.Trainer) -> Path:
    """The run's own folder, where Lightning's ModelCheckpoint puts ``checkpoints/``: save_dir/name/version."""
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    lg = trainer.loggers[0]
    save_dir = lg.save_dir or trainer.default_root_dir
    version = lg.version if isinstance(lg.version, str) else f"version_{lg.version}"
    return Path(save_dir) / str(lg.name) / version


class ImageLogger(L.Callback):
    """Render the first validation batch every ``every_n_epochs`` epochs (up to ``num_samples`` rows)."""

    def __init__(self, every_n_epochs: int = 1, num_samples: int = 4, key: str = "val/samples") -> None:
        super().__init__()
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.key = key
        self.saved: list[Path] = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if trainer.current_epoch % self.every_n_epochs or not hasattr(pl_module, "render_samples"):
            return
        render: Any = getattr(pl_module, "render_samples")  # noqa: B009 - a task method LightningModule does not declare
        image, caption = render(batch, self.num_samples)
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        for lg in wandb_loggers:
            lg.log_image(key=self.key, images=[image], caption=[caption], step=trainer.global_step)
        if wandb_loggers:
            return
        root = run_dir(trainer) / "images"
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{self.key.replace('/', '_')}_epoch{trainer.current_epoch:03d}_step{trainer.global_step}.png"
        import matplotlib.image

        matplotlib.image.imsave(path, image)
        self.saved.append(path)
        log.info("sample images: %s (%s)", path, caption)
