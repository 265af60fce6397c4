"""The `citygen` command: one entry point, one subcommand per job.

`main(args)` can be called in-process (tests, notebooks) and returns the exit status.
"""

from __future__ import annotations

import importlib
import logging
import sys

from citygen import OSM_ATTRIBUTION, __version__
from citygen.core.errors import CitygenError

# subcommand -> ("module" or "module:function" taking argv and returning the exit status, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": (
        "citygen.cli.data",
        "build rasters and tile datasets from OpenStreetMap (samples, build, info, bands)",
    ),
    "metrics": (
        "citygen.cli.metrics",
        "urban metrics and A Pattern Language rules for samples, files or GeoTIFFs",
    ),
    "fit": ("citygen.learn.training", "train a model from YAML configs (LightningCLI)"),
    "validate": ("citygen.learn.training", "validate a model (LightningCLI)"),
    "test": ("citygen.learn.training", "test a model on the test split (LightningCLI)"),
    "predict": ("citygen.learn.training", "predict with a model (LightningCLI)"),
    "evaluate": ("citygen.cli.evaluate", "evaluate a checkpoint on the test split and print figures"),
    "embed": ("citygen.cli.workflows:embed_main", "embed every tile of a dataset with a trained autoencoder"),
    "compare": (
        "citygen.cli.workflows:compare_main",
        "compare cities in latent space: distances, maps, probes, neighbours",
    ),
    "generate": ("citygen.cli.workflows:generate_main", "generate candidate layouts from target parameters"),
    "export-weights": (
        "citygen.cli.workflows:export_main",
        "write the generator-only weights of a pix2pix checkpoint (what citygen/weights ships)",
    ),
    "realism": ("citygen.cli.realism", "score generated layouts against a dataset's real test tiles"),
    "demo": ("citygen.cli.demo", "run the main job on the shipped sample cities"),
    "configs": ("citygen.cli.configs", "list the installed configs or export them into a folder to edit"),
}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _usage() -> str:
    lines = [
        f"usage: citygen COMMAND [options]   (citygen {__version__})",
        "",
        "Generative urban-layout research on OpenStreetMap data.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "`citygen COMMAND --help` explains each command's options.", f"Map data {OSM_ATTRIBUTION}."]
    return "\n".join(lines)


def _terminate_as_interrupt() -> None:
    """SIGTERM (a scheduler's kill, `kill PID`) unwinds like Ctrl-C, so every atomic write removes its
    temporary file on the way out."""
    import contextlib
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread (citygen.cli.main called from a worker thread)
        signal.signal(signal.SIGTERM, interrupt)


def main(args: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"citygen {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"citygen: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _terminate_as_interrupt()
    module_name, _, function_name = COMMANDS[command][0].partition(":")
    try:
        entry = getattr(importlib.import_module(module_name), function_name or "main")
        if command in LIGHTNING_COMMANDS:
            return int(entry([command, *rest]) or 0)
        return int(entry(rest) or 0)
    except CitygenError as exc:
        print(f"error: {exc.problem}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial outputs were kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and friends: stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit as exc:  # argparse/jsonargparse exit on bad options
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
