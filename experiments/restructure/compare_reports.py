"""Compare two `make demo` report.json files figure by figure (issue 19: the restructure keeps the figures).

python experiments/restructure/compare_reports.py report_before.json report_after.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in flat(item, f"{prefix}.{key}" if prefix else key).items()
        }
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flat(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def main(before: str, after: str) -> int:
    a, b = (flat(json.loads(Path(p).read_text())) for p in (before, after))
    same = 0
    for key in sorted(set(a) | set(b)):
        if key.startswith(("timings_s", "data", "checkpoints")):  # wall-clock times and paths
            continue
        x, y = a.get(key, "missing"), b.get(key, "missing")
        if x == y or (isinstance(x, float) and isinstance(y, float) and math.isclose(x, y, rel_tol=1e-9)):
            same += 1
        else:
            print(f"{key}: {x} -> {y}")
    print(f"{same} figures identical")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
