"""``citygen metrics SOURCE... [--tiles] [--json FILE] [--csv FILE] [--card FILE.png]``.

SOURCE is a sample id, a local OSM / GraphML file, or a GeoTIFF built (or generated) by citygen.
With two or more sources a side-by-side table of the key numbers is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from citygen.core.errors import ConfigError
from citygen.metrics.card import KEY_NUMBERS, draw_card, fmt
from citygen.metrics.suite import NETWORKS, SourceResult, measure, results_table


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="citygen metrics",
        description="Urban metrics (street network, density, walkability, A Pattern Language) for cities "
        "and citygen rasters.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="sample id, OSM/GraphML file, or citygen GeoTIFF")
    p.add_argument("--tiles", action="store_true", help="one row per tile of each GeoTIFF")
    p.add_argument("--tile-size", type=int, default=256, help="tile size in pixels (default 256)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write a list of records, one per source")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write the table (patterns as pass counts)")
    p.add_argument("--card", type=Path, metavar="FILE.png", help="draw a pattern card per source")
    p.add_argument("--no-sheds", action="store_true", help="skip pedestrian sheds (faster)")
    p.add_argument(
        "--network",
        choices=list(NETWORKS),
        default="streets",
        help="the graph vector street metrics are taken on: " + "; ".join(f"{k}: {v}" for k, v in NETWORKS.items()),
    )
    return p


def _clean(value: object) -> object:
    """JSON-safe: NaN/inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def card_paths(base: Path, results: Sequence[SourceResult]) -> list[Path]:
    if len(results) == 1:
        return [base]
    names = [
        re.sub(r"[^A-Za-z0-9_.-]", "_", f"{r.city_id}" + (f"_{r.tile[0]}_{r.tile[1]}" if r.tile else ""))
        for r in results
    ]
    if len(set(names)) < len(names):
        names = [f"{i:02d}_{n}" for i, n in enumerate(names)]
    return [base.with_name(f"{base.stem}_{n}{base.suffix or '.png'}") for n in names]


def side_by_side(results: Sequence[SourceResult]) -> str:
    """The key numbers of every source in columns, plus the pattern scores."""
    heads = [r.city_id if r.tile is None else f"{r.city_id}#{r.tile[0]}_{r.tile[1]}" for r in results]
    kinds = [r.kind for r in results]
    rows = [("", heads), ("source kind", kinds)]
    for key, label, pattern in KEY_NUMBERS:
        rows.append((label, [fmt(r.metrics.get(key), pattern) for r in results]))
    rows.append(
        (
            "Patterns held / measured",
            [
                f"{sum(p.holds is True for p in r.patterns)} / {sum(p.holds is not None for p in r.patterns)}"
                for r in results
            ],
        )
    )
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(r[1][i]) for r in rows) for i in range(len(results))]
    lines = []
    for label, cells in rows:
        lines.append(f"{label:<{w0}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    lines.insert(2, "-" * len(lines[0]))
    return "\n".join(lines) + "\n(n/m: not measurable from this source; see the notes in --json)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tile_size < 16:
        raise ConfigError(f"--tile-size must be at least 16 pixels, got {args.tile_size}")
    results = [
        r
        for s in args.sources
        for r in measure(s, tiles=args.tiles, tile_size=args.tile_size, sheds=not args.no_sheds, network=args.network)
    ]
    print(side_by_side(results))
    print(f"street network of vector sources: {NETWORKS[args.network]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([_clean(r.record()) for r in results], indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.csv:
        df = results_table(results)
        df["patterns_held"] = [sum(p["holds"] is True for p in ps) for ps in df["patterns"]]
        df["patterns_measured"] = [sum(p["holds"] is not None for p in ps) for ps in df["patterns"]]
        df = df.drop(columns=["patterns", "notes"])
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    if args.card:
        for result, path in zip(results, card_paths(args.card, results), strict=True):
            draw_card(result, path)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
