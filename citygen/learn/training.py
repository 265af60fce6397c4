"""``citygen fit|validate|test|predict``: LightningCLI over the citygen tasks and data module.

Configs compose: ``citygen fit --config configs/experiments/ae_demo.yaml [--config more.yaml] [--model.init_args.lr 1e-4]``,
or from parts: ``citygen fit --trainer configs/trainer/demo.yaml --model configs/model/autoencoder.yaml --data.crop_size 128``.
Unknown keys and invalid choices are rejected by jsonargparse. Defaults added here (unless the config sets its own):

- logger: W&B (offline unless ``WANDB_MODE=online``); a CSV logger when ``WANDB_MODE=disabled``;
- callbacks: best + last checkpoints on the task's validation metric, and sample images;
- the resolved config is written beside the checkpoints (``config.yaml``) and into the W&B run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, NoReturn

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

import citygen.learn.datamodule
import citygen.learn.tasks
from citygen.core.errors import CheckpointError
from citygen.core.settings import runs_dir
from citygen.learn.callbacks import ImageLogger
from citygen.learn.callbacks.images import run_dir
from citygen.learn.tasks.base import META_KEY, list_or_value, read_checkpoint

log = logging.getLogger(__name__)

MONITOR: dict[str, tuple[str, str]] = {"AutoencoderTask": ("val/loss", "min"), "Pix2PixTask": ("val/l1", "min")}


def default_logger(run_name: str, project: str, root: Path) -> list[Logger]:
    """W&B unless ``WANDB_MODE=disabled``, offline unless ``WANDB_MODE=online`` (``wandb sync`` later).

    A CSV logger always writes ``metrics.csv`` into the run folder (beside ``checkpoints/``) so figures can be
    read without W&B; with W&B disabled it is the only logger.
    """
    mode = os.environ.get("WANDB_MODE", "offline").lower()
    if mode == "disabled":
        return [CSVLogger(save_dir=str(root), name=run_name)]
    root.mkdir(parents=True, exist_ok=True)
    run_id = secrets.token_hex(4)  # os.urandom: does not shift the seeded random streams
    wandb_logger = WandbLogger(
        name=run_name, project=project, save_dir=str(root), offline=mode != "online", log_model=False, id=run_id
    )
    return [wandb_logger, CSVLogger(save_dir=str(root), name=project, version=run_id)]


def default_checkpoints(task_name: str) -> list[ModelCheckpoint]:
    """``best-*.ckpt`` on the task's validation metric and ``last.ckpt`` after every epoch.

    Two callbacks because Lightning's ``save_last`` only refreshes ``last.ckpt`` when a best checkpoint
    was written in the same step.
    """
    monitor, mode = MONITOR.get(task_name, ("val/loss", "min"))
    best = ModelCheckpoint(
        monitor=monitor, mode=mode, save_top_k=1, filename="best-{epoch:03d}-{step}", auto_insert_metric_name=False
    )
    # at the end of every training epoch (after its validation, if any), also when validation runs only every
    # few epochs or a `max_time` cuts the run short
    last = ModelCheckpoint(
        monitor=None, save_top_k=1, filename="last", enable_version_counter=False, save_on_train_epoch_end=True
    )
    return [best, last]


class CitygenSaveConfig(SaveConfigCallback):
    """Writes ``config.yaml`` into the run's own folder (never overwriting another run) and into W&B."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if self.already_saved:
            return
        path = run_dir(trainer) / self.config_filename
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=False)
            for lg in trainer.loggers:
                if isinstance(lg, WandbLogger):
                    cfg = self.parser.dump(self.config, skip_none=False, format="json")
                    lg.experiment.config.update({"cli_config": json.loads(cfg)}, allow_val_change=True)
                    # W&B keeps its own config.yaml in the run's files: ours goes beside it under another name
                    copy = Path(lg.experiment.dir) / "citygen_config.yaml"
                    copy.write_text(path.read_text())
                    lg.experiment.save(str(copy), base_path=str(copy.parent), policy="now")
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)


class ConciseParser(LightningArgumentParser):
    """Report a bad option or config key on one line, with the closest valid key, instead of the ~70-line
    usage text jsonargparse prints first (the line that matters would scroll out of view)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        import difflib
        import re
        import sys

        if not getattr(self, "exit_on_error", True):
            super().error(message, ex)
        parsers = [self]
        for action in self._actions:  # the subcommands' parsers hold the keys of a config
            parsers += list(getattr(action, "_name_parser_map", {}).values())
        keys = sorted({o.lstrip("-") for p in parsers for o in p._option_string_actions if o.startswith("--")})
        text = " ".join(line.strip() for line in message.strip().splitlines() if line.strip()) or "invalid arguments"
        hint = ""
        unknown = re.search(r"does not accept option '([^']+)'|[Uu]nrecognized arguments?: (\S+)", message)
        if unknown:
            key = next(g for g in unknown.groups() if g).lstrip("-")
            close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
        command = "fit" if "'fit'" in message or " fit" in self.prog else "COMMAND"
        print(f"error: {text}{hint}; `citygen {command} --help` lists the valid keys", file=sys.stderr)
        raise SystemExit(2)


class CitygenCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str, default="citygen", help="Name of the run (folder under runs/).")
        parser.add_argument("--project", type=str, default="citygen", help="W&B project.")

    def _parse_ckpt_path(self) -> None:
        """Refuse a checkpoint whose channels differ from an explicitly configured model, then load its hparams."""
        sub = self.config.get("subcommand")
        if sub:
            ckpt_path = self.config[sub].get("ckpt_path")
            model_cfg = self.config[sub].get("model")
            if ckpt_path and Path(ckpt_path).is_file() and model_cfg is not None:
                _check_ckpt_against_config(Path(ckpt_path), model_cfg)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        trainer = cfg.trainer
        if str(trainer.precision) in ("16", "16-mixed") and not torch.cuda.is_available():
            rank_zero_warn(f"precision {trainer.precision} needs a GPU; no GPU found, training in 32-bit instead")
            trainer.precision = "32-true"
        if trainer.sync_batchnorm and not torch.cuda.is_available():
            rank_zero_warn("sync_batchnorm needs GPUs; no GPU found, using per-process BatchNorm")
            trainer.sync_batchnorm = False
        if trainer.default_root_dir is None:
            trainer.default_root_dir = str(runs_dir() / cfg.run_name)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        if trainer_cfg.get("logger") in (None, True):
            kwargs["logger"] = default_logger(cfg.run_name, cfg.project, Path(cfg.trainer.default_root_dir))
        callbacks = list(trainer_cfg.get("callbacks") or [])
        extra: list[Any] = []
        if (
            not any(isinstance(c, ModelCheckpoint) for c in callbacks)
            and trainer_cfg.get("enable_checkpointing", True) is not False
        ):
            extra += default_checkpoints(type(self.model).__name__)
        if not any(isinstance(c, ImageLogger) for c in callbacks):
            extra.append(ImageLogger())
        if extra:
            kwargs["callbacks"] = callbacks + extra
        return super().instantiate_trainer(**kwargs)


def _check_ckpt_against_config(ckpt_path: Path, model_cfg: Any) -> None:
    saved = read_checkpoint(ckpt_path).get(META_KEY, {})
    init_args = dict(model_cfg.get("init_args") or {}) if hasattr(model_cfg, "get") else {}
    cls = str(model_cfg.get("class_path", "")).rsplit(".", 1)[-1] if hasattr(model_cfg, "get") else ""
    if cls and saved.get("task") and cls != saved["task"]:
        raise CheckpointError(f"checkpoint {ckpt_path} holds a {saved['task']}, the config asks for a {cls}")
    for key, theirs in saved.items():
        mine = init_args.get(key)
        if mine is not None and theirs is not None and list_or_value(mine) != list_or_value(theirs):
            raise CheckpointError(
                f"checkpoint {ckpt_path} was trained with {key}={theirs!r}, the config asks for {mine!r}",
                "use the model settings the checkpoint was trained with, or drop --ckpt_path to train anew",
            )


def main(args: list[str] | None = None) -> int:
    """Run ``fit | validate | test | predict`` from configs (``args`` as on the command line)."""
    torch.set_float32_matmul_precision("high")
    try:
        CitygenCLI(
            model_class=citygen.learn.tasks.BaseTask,
            datamodule_class=citygen.learn.datamodule.CityTileDataModule,
            subclass_mode_model=True,
            subclass_mode_data=False,
            save_config_callback=CitygenSaveConfig,
            auto_configure_optimizers=False,
            parser_class=ConciseParser,
            args=args,
        )
    finally:
        _finish_wandb()
    return 0


def _finish_wandb() -> None:
    """Close the W&B run so in-process callers (tests, notebooks) start a fresh run next time.

    ``wandb.finish`` returns before the W&B service has closed the run's ``.wandb`` file; the teardown
    waits for the service to exit, so the run is complete on disk (ready for ``wandb sync``) when
    ``main`` returns, as it is after a command-line run.
    """
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
        wandb.teardown()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
