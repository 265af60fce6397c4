"""Vector against raster: the metrics both sides name alike, on every shipped sample (issue 21).

Each sample is measured twice with ``citygen.metrics.compute_metrics``: on its vector layers, and on the
GeoTIFF ``citygen data build`` makes of them. The table prints both values and their relative difference for
street density, the junction shares, the floor-area ratio and the orientation order (and entropy, of which
the order is a steep function near 0), and marks every difference above 10 % (``!``). A sample without a
layer shows ``-`` for the metrics of that layer. The last lines count the samples within 10 % per metric.

Run: ``.venv/bin/python benchmarks/bench_agreement.py [--samples ID ...] [--out DIR]``
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from citygen.data.build import build_city
from citygen.data.samples import list_samples
from citygen.data.spec import parse_city
from citygen.metrics import compute_metrics

METRICS = (
    "street_density_km_km2",
    "prop_deadend",
    "prop_3way",
    "prop_4way",
    "floor_area_ratio",
    "orientation_order",
    "orientation_entropy",
)
SHORT = {
    "street_density_km_km2": "density",
    "prop_deadend": "dead",
    "prop_3way": "3way",
    "prop_4way": "4way",
    "floor_area_ratio": "FAR",
    "orientation_order": "order",
    "orientation_entropy": "entropy",
}
TOLERANCE = 0.10


def relative_difference(vector: float, raster: float) -> float:
    return abs(raster - vector) / abs(vector) if vector else (0.0 if raster == 0 else math.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", nargs="*", help="sample ids (default: every shipped sample)")
    parser.add_argument("--out", type=Path, help="keep the GeoTIFFs here (default: a temporary folder)")
    args = parser.parse_args()
    samples = [s for s in list_samples() if not args.samples or s.id in args.samples]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        header = f"{'sample':24s}" + "".join(f"{SHORT[k]:>22s}" for k in METRICS)
        print(header + "\n" + f"{'':24s}" + "".join(f"{'vector raster diff':>22s}" for _ in METRICS))
        misses = 0
        within = dict.fromkeys(METRICS, 0)
        measured = dict.fromkeys(METRICS, 0)
        for sample in samples:
            built = build_city(parse_city({"id": sample.id, "sample": sample.id}), out)
            vec = compute_metrics(sample.id, sheds=False).iloc[0]
            ras = compute_metrics(built.path, sheds=False).iloc[0]
            cells = []
            for key in METRICS:
                v, r = float(vec.get(key, math.nan)), float(ras.get(key, math.nan))
                if math.isnan(v) or math.isnan(r):
                    cells.append(f"{'-':>22s}")
                    continue
                d = relative_difference(v, r)
                misses += d > TOLERANCE
                measured[key] += 1
                within[key] += d <= TOLERANCE
                cells.append(f"{v:8.2f} {r:6.2f} {d:5.0%}{'!' if d > TOLERANCE else ' '}")
            print(f"{sample.id:24s}" + "".join(cells), flush=True)
    print(f"\n{misses} differences above {TOLERANCE:.0%} (marked !)")
    print("within 10 %: " + ", ".join(f"{SHORT[k]} {within[k]}/{measured[k]}" for k in METRICS))


if __name__ == "__main__":
    main()
