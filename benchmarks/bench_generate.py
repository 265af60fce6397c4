"""Generation speed of a trained pix2pix model, with and without the street search.

    python benchmarks/bench_generate.py --ckpt runs/demo/runs/demo_pix2pix/.../last.ckpt [--sizes 128 256]

For each canvas size, 8 candidates per target for a few targets inside the training range are generated
twice: by the network alone, and with ``street_search`` (each candidate's street threshold found by
bisection with the metric suite in the loop). It prints candidates per second, the layouts the search
measured per candidate, and how many intersections the candidates are off the request on average (a
requested density is rarely a whole number of intersections on the canvas, so about 0.25 is the floor). The search runs on the CPU whatever the device of the network, so on a GPU it is the larger cost.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

import citygen.learn.tasks.street_search as street_search
from citygen.learn.conditioning import measure_targets
from citygen.workflows.checkpoints import load_task

LayoutAt = Callable[[float], Mapping[str, np.ndarray]]
TARGETS = [  # building coverage, intersection density (per km2), green share
    (0.10, 30.0, 0.10),
    (0.20, 60.0, 0.05),
    (0.25, 90.0, 0.10),
    (0.15, 120.0, 0.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="a pix2pix checkpoint conditioned on the demo targets")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="canvas sides in pixels")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--resolution", type=float, default=2.0, help="metres per pixel")
    args = parser.parse_args()
    task = load_task(args.ckpt).task
    names = list(task.conditions)
    if names != ["building_coverage", "intersection_density_km2", "green_share"]:
        raise SystemExit(f"the benchmark asks for the demo targets; this model is conditioned on {names}")
    targets = torch.tensor(TARGETS, dtype=torch.float32)
    measured: list[tuple[int, float]] = []
    search = street_search.search_street_offset

    def counted(layout_at: LayoutAt, wanted: Mapping[str, float], **kwargs: Any) -> tuple[float, float]:
        calls = [0]

        def layout(offset: float) -> Mapping[str, np.ndarray]:
            calls[0] += 1
            return layout_at(offset)

        offset, error = search(layout, wanted, **kwargs)
        measured.append((calls[0], error))
        return offset, error

    street_search.search_street_offset = counted  # count the layouts each search measures
    print(f"{'canvas':>8} {'search':>7} {'candidates/s':>13} {'layouts measured':>17} {'off by (intersections)':>23}")
    for size in args.sizes:
        area_km2 = (size * args.resolution / 1000) ** 2
        for on in (False, True):
            task.street_search = on
            measured.clear()
            start = time.perf_counter()
            out = task.generate(
                targets, size=size, num_candidates=args.candidates, seed=0, resolution_m=args.resolution
            )
            rate = len(TARGETS) * args.candidates / (time.perf_counter() - start)
            calls = f"{np.mean([c for c, _ in measured]):.1f}" if measured else "-"
            gaps = [  # the requested density is rarely a whole number of intersections on the canvas
                abs(measure_targets(dict(zip(task.output_bands, layout.numpy(), strict=True)), args.resolution)
                    .get("intersection_density_km2", np.nan) - float(t[1])) * area_km2
                for t, layouts in zip(targets, out, strict=True) for layout in layouts
            ]  # fmt: skip
            print(f"{size:>6}px {'on' if on else 'off':>7} {rate:>13.1f} {calls:>17} {np.nanmean(gaps):>23.2f}")


if __name__ == "__main__":
    main()
