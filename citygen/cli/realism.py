"""``citygen realism --data DIR --candidates DIR... [--json F] [--out DIR]``: do generated layouts pass for real?"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from citygen.core import OSM_ATTRIBUTION
from citygen.workflows import realism
from citygen.workflows.results import RealismScore, write_json

ROWS: tuple[tuple[str, str], ...] = (
    ("frechet_ratio", "Fréchet ratio (statistics; 1 = two halves of the real tiles)"),
    ("c2st_accuracy", "C2ST accuracy (0.5 = indistinguishable)"),
    ("pixel_c2st_accuracy", "C2ST accuracy on pixels (small CNN)"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("density", "density"),
    ("coverage", "coverage"),
    ("checkerboard_median", "checkerboard score, median (~1 real)"),
    ("checkerboard_above_reference", "share above the real 99th percentile"),
    ("copies", "share copying a training crop (street IoU > 0.8)"),
    ("diversity_ratio", "diversity ratio (candidates / real tiles of similar targets)"),
)


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def print_table(sets: dict[str, RealismScore]) -> None:
    names = list(sets)
    print(f"{'':<62}" + "".join(f"{n[:24]:>26}" for n in names))
    for key, label in ROWS:
        print(f"  {label:<60}" + "".join(f"{_fmt(getattr(sets[n], key)):>26}" for n in names))
    for n, s in sets.items():
        worst = ", ".join(f"{k} {v:.2f}" for k, v in list(s.wasserstein.items())[:3])
        print(f"  {n}: {s.tiles} tiles; farthest statistics (W1 / real std): {worst}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citygen realism", description=realism.__doc__)
    parser.add_argument("--data", type=Path, required=True, help="dataset built by `citygen data build`")
    parser.add_argument(
        "--candidates",
        type=Path,
        nargs="+",
        required=True,
        help="folders of candidate GeoTIFFs (e.g. `citygen generate --out` folders), scored as one set",
    )
    parser.add_argument("--cities", nargs="+", default=None, help="compare with these cities' tiles only")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("--out", type=Path, default=None, help="folder for realism.png")
    args = parser.parse_args(argv)
    report = realism.realism_report(args.data, args.candidates, out=args.out, cities=args.cities)
    print(f"Realism against the {report.reference} of {report.data} ({report.tile_px} px at {report.resolution_m:g} m)")
    print_table(report.sets)
    if args.json:
        write_json(args.json, report)
    if report.figure and args.out:
        print(f"figure: {args.out / report.figure}. Map data {OSM_ATTRIBUTION}.")
    return 0
