"""``citygen demo``: the main job on the shipped sample cities, end to end, on a CPU in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

from citygen.core import settings
from citygen.workflows import demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="citygen demo", description=demo.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="build config (default: every shipped sample, data/samples.yaml of `citygen configs`)",
    )
    parser.add_argument("--data", type=Path, default=None, help=f"dataset folder (default {settings.data_dir()})")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"report folder (default {settings.runs_dir() / 'demo'})"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for building and measuring (default 2)")
    parser.add_argument("--quick", action="store_true", help="tiny training runs (a smoke test of the whole chain)")
    args = parser.parse_args(argv)
    return demo.run_demo(config=args.config, data=args.data, out=args.out, workers=args.workers, quick=args.quick)
