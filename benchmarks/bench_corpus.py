"""Benchmark building the whole research corpus (every registered place) as a user would. Prints figures.

Usage: python benchmarks/bench_corpus.py [--workers 2] [--config configs/data/corpus.yaml]

Runs `citygen data build --config configs/data/corpus.yaml --workers N` into a fresh folder and prints the
wall time (goal: under 5 minutes with 2 workers on 2 cores), then one row per place: seconds per stage
(load, project, rasterize, write, tile; as recorded in the manifest, measured inside the worker), km2 of
valid area, tiles per split, and the layers present.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "data" / "corpus.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="citygen-bench-corpus-") as tmp:
        command = [sys.executable, "-m", "citygen", "data", "build", "--config", str(args.config), "--out", tmp,
                   "--workers", str(args.workers), "--no-progress"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            raise SystemExit(f"build failed ({done.returncode})")
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
    cities = manifest["cities"]
    print(
        f"{'place':<24}{'load':>6}{'proj':>6}{'rast':>7}{'write':>7}{'tile':>6}{'km2':>7}  {'train/val/test':<15}layers"
    )
    totals = dict.fromkeys(("load", "project", "rasterize", "write", "tile"), 0.0)
    for name, record in cities.items():
        t = record.get("timings_s", {})
        for key in totals:
            totals[key] += t.get(key, 0.0)
        tiles = record.get("tiles", {})
        split = f"{tiles.get('train', 0)}/{tiles.get('val', 0)}/{tiles.get('test', 0)}"
        layers = ",".join(
            k for k, v in record["present"].items() if v and k in ("streets", "buildings", "green", "water")
        )
        print(
            f"{name:<24}{t.get('load', 0):>6.1f}{t.get('project', 0):>6.1f}{t.get('rasterize', 0):>7.2f}"
            f"{t.get('write', 0):>7.2f}{t.get('tile', 0):>6.2f}{record['area_km2']:>7.1f}  {split:<15}{layers}"
        )
    n_tiles = sum(sum(r.get("tiles", {}).values()) for r in cities.values())
    area = sum(r["area_km2"] for r in cities.values())
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in totals.items())
    print(
        f"\n{len(cities)} places, {area:.0f} km2 valid, {n_tiles} tiles; {manifest['tiles_dropped_cross_city']} tiles "
        f"dropped where overlapping extracts disagreed\nsum over places: {stages}\n"
        f"whole corpus with --workers {args.workers}: {wall:.1f} s wall (goal < 300 s on 2 cores)"
    )


if __name__ == "__main__":
    main()
