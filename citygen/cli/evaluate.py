"""``citygen evaluate --ckpt CKPT [--data DIR] [--json FILE]``: figures of a trained model on the test split."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

from citygen.cli.realism import print_table
from citygen.workflows import evaluate as E
from citygen.workflows.checkpoints import PRETRAINED, load_stages, load_task
from citygen.workflows.results import write_json


def _rows(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Flattened ``(name, value)`` rows of a result for the terminal (the JSON file keeps the nesting)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return [
            row
            for key, item in value.items()
            for row in _rows(item, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
        ]
    return [(prefix, value)]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return "n/a" if isinstance(value, float) and not math.isfinite(value) else f"{value:.4g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citygen evaluate", description=E.__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ckpt",
        type=Path,
        required=True,
        help="checkpoint written by `citygen fit`, an export of one, or `pretrained` (the shipped two stages, each "
        "on its own test split)",
    )
    parser.add_argument("--data", type=Path, default=None, help="dataset (default: the one the model was trained on)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument(
        "--max-crops",
        type=int,
        default=None,
        help="crops measured with the metric suite (default 256 for autoencoders, 64 for pix2pix)",
    )
    parser.add_argument("--candidates", type=int, default=8, help="pix2pix layouts generated per target (default 8)")
    parser.add_argument(
        "--crop-size",
        type=int,
        default=None,
        help="side of the test crops in pixels (default: "
        "the training crop size; pix2pix: targets are measured and requested on crops of this size)",
    )
    parser.add_argument(
        "--no-street-search",
        action="store_true",
        help="pix2pix: measure the generator's own streets only, without the model's street_search",
    )
    parser.add_argument(
        "--no-realism",
        action="store_true",
        help="pix2pix: skip the realism block (morphology statistics of every crop: minutes on a CPU)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="processes measuring urban metrics")
    args = parser.parse_args(argv)
    if str(args.ckpt) == PRETRAINED:  # the chain as users run it, and stage 2 alone on real streets
        from citygen.workflows.chain import chained

        stages = load_stages(PRETRAINED)
        runs = {"two_stage": chained(stages), "stage2_on_real_streets": stages[1]}
    else:
        runs = {"model": load_task(args.ckpt)}
    results = {}
    for run, trained in runs.items():
        result = E.evaluate(
            trained,
            data=args.data,
            max_crops=args.max_crops,
            candidates=args.candidates,
            crop_size=args.crop_size,
            street_search=False if args.no_street_search else None,
            batch_size=args.batch_size,
            workers=args.workers,
            realism=not args.no_realism,
        )
        label = "" if run == "model" else f"{run}: "
        print(f"{label}{trained.name} {trained.path} on the test split of {result.data}")
        for key, value in _rows(result):
            if key not in ("task", "checkpoint", "data") and not key.startswith("realism."):
                print(f"  {key:<50} {_fmt(value)}")
        realism = getattr(result, "realism", None)
        if realism:
            print(
                "realism (layouts as delivered, against the real test tiles; the generator alone is the primary set):"
            )
            print_table(realism)
        results[run] = result
    if args.json:  # one model: its figures; pretrained: {"two_stage": ..., "stage2_on_real_streets": ...}
        write_json(args.json, results.get("model", results))
    return 0
