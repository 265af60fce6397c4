"""Regenerate the walkability reference table (``reference_cities.json``) from the shipped samples.

Run ``python -m citygen.metrics.reference``. For every sample with streets it records the three index
components (consolidated intersection density, floor area ratio, amenity-mix entropy) where the sample
has the layers for them, and stores each component's mean and standard deviation over the samples
that have it. The z-scores of :func:`citygen.metrics.walkability.walkability_index` are against these.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from importlib import resources
from pathlib import Path

import numpy as np

from citygen.metrics.walkability import REFERENCE_FILE, WALKABILITY_WEIGHTS

log = logging.getLogger(__name__)


def component_values(sample_id: str) -> dict[str, float]:
    """The index components of one sample (NaN where it lacks the layers)."""
    from citygen.data.sources import load_city
    from citygen.metrics import density as D
    from citygen.metrics import network as N
    from citygen.metrics._common import normalized_entropy
    from citygen.metrics.suite import street_network

    city = load_city(sample_id)
    out = dict.fromkeys(WALKABILITY_WEIGHTS, math.nan)
    if city.graph is not None and city.graph.number_of_edges():
        net = N.network_metrics(graph=street_network(city.graph), extent=city.extent)
        out["intersection_density_km2"] = net["intersection_density_km2"]
    dens = D.density_metrics(features=city.features, extent=city.extent, present=city.present)
    out["floor_area_ratio"] = dens["floor_area_ratio"]
    amen = city.features.get("amenities")
    if city.present.get("amenities") and amen is not None and "amenity_class" in amen and len(amen) > 1:
        counts = amen["amenity_class"].astype(str).value_counts().to_numpy()
        out["amenity_mix_entropy"] = normalized_entropy(counts, len(counts)) if len(counts) > 1 else 0.0
    return out


def build_table(sample_ids: list[str]) -> dict[str, object]:
    rows = {}
    for sid in sample_ids:
        log.info("measuring %s", sid)
        rows[sid] = component_values(sid)
    components = {}
    for key in WALKABILITY_WEIGHTS:
        vals = np.array([r[key] for r in rows.values() if math.isfinite(r[key])])
        components[key] = {
            "mean": float(vals.mean()) if len(vals) else math.nan,
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
            "n": len(vals),
        }
    cleaned: dict[str, dict[str, float | None]] = {
        sid: {k: (v if math.isfinite(v) else None) for k, v in r.items()} for sid, r in rows.items()
    }
    return {
        "description": "Reference cities for the Frank-style walkability index (citygen samples, OSM ODbL). "
        "Regenerate with `python -m citygen.metrics.reference`.",
        "components": components,
        "cities": cleaned,
    }


def main(argv: list[str] | None = None) -> int:
    from citygen.data.samples import list_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(str(resources.files("citygen.metrics") / REFERENCE_FILE))
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("samples", nargs="*", help="sample ids (default: every sample with streets)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ids = args.samples or [s.id for s in list_samples() if "streets" in s.layers]
    table = build_table(ids)
    args.out.write_text(json.dumps(table, indent=2, allow_nan=True) + "\n")
    print(f"wrote {args.out} ({len(ids)} samples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
