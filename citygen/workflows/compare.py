"""Compare cities in an autoencoder's latent space (`citygen compare`).

Input: the embeddings table written by `citygen embed` (one row per tile: city, split, bounds, `latent`,
and `metric_*` columns of urban metrics measured on the tile). Output, in a report folder: a city-to-city
distance matrix and heatmap, 2-D maps of all tiles (PCA and t-SNE), nearest neighbours across cities as
an image grid, linear probes of city identity (train split -> test split, and cross-validated over 1 km
blocks, with chance levels, and the same probes on the tiles' urban metrics as a baseline), and how well
the latent space predicts each urban metric (R2 of a linear fit, train -> test), as PNG figures plus
`report.json` and `report.md`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from citygen.core import OSM_ATTRIBUTION
from citygen.core.errors import ConfigError, SourceError
from citygen.data.geotiff import atomic_path
from citygen.workflows.groups import city_level_report, load_groups, loco_table
from citygen.workflows.probes import (
    city_distances,
    city_name,
    latent_matrix,
    linear_probe,
    metric_columns,
    metric_matrix,
    metric_r2,
    probe_table,
    street_source,
)
from citygen.workflows.results import CompareReport, write_json

# Probes of city identity: a name and the cities (registry `city` names) it separates; None = every city.
# Named pairs come from the groups file (`pairs`); these are the defaults without one.
PROBES: dict[str, tuple[str, ...] | None] = {
    "houston_vs_copenhagen": ("Houston", "Copenhagen"),
    "all_cities": None,
}


def probes_for(pairs: dict[str, tuple[str, ...]] | None) -> dict[str, tuple[str, ...] | None]:
    return {**(pairs if pairs is not None else {k: v for k, v in PROBES.items() if v is not None}), "all_cities": None}


def load_embeddings(path: str | Path) -> gpd.GeoDataFrame:
    path = Path(path)
    if not path.is_file():
        raise SourceError(
            f"embeddings not found: {path}",
            "write them first: citygen embed --ckpt CKPT --out embeddings.parquet",
        )
    try:
        table = gpd.read_parquet(path)
    except Exception as exc:  # pyarrow ArrowInvalid for CSV, ValueError for a parquet without geometry
        raise SourceError(
            f"cannot read {path.name} as embeddings (GeoParquet): {exc}",
            "pass the file written by `citygen embed --out FILE.parquet`",
        ) from exc
    for column in ("city", "split", "latent"):
        if column not in table:
            raise SourceError(f"{path.name} has no `{column}` column", "write it with `citygen embed`")
    return table


def metrics_baseline(
    table: pd.DataFrame, probes: dict[str, tuple[str, ...] | None] | None = None
) -> dict[str, dict[str, Any]]:
    """The city probes on each tile's urban metrics (the `metric_*` columns: street and intersection
    density, orientation entropy, ...) instead of its latent vector: what the latent space adds over the
    measures an urbanist would compute first."""
    columns = metric_columns(table)
    if not columns:
        return {}
    measured = metric_matrix(table)
    return {name: linear_probe(table, measured, groups) for name, groups in (probes or PROBES).items()}


def nearest_neighbours(table: pd.DataFrame, z: np.ndarray, *, queries: list[int], k: int = 4) -> list[dict[str, Any]]:
    """For each query tile, its k nearest tiles (cosine of standardised latents) among other cities' tiles."""
    zs = (z - z.mean(0)) / (z.std(0) + 1e-9)
    unit = zs / (np.linalg.norm(zs, axis=1, keepdims=True) + 1e-12)
    found = []
    for q in queries:
        other = np.flatnonzero(table["group"].to_numpy() != table["group"].iloc[q])
        similarity = unit[other] @ unit[q]
        best = other[np.argsort(-similarity)[:k]]
        found.append(
            {
                "query": table["tile_id"].iloc[q],
                "neighbours": [table["tile_id"].iloc[i] for i in best],
                "similarity": [float(unit[i] @ unit[q]) for i in best],
            }
        )
    return found


def _pick_queries(table: pd.DataFrame, per_group: int = 2) -> list[int]:
    rows = []
    for group in ("Copenhagen", "Houston"):
        candidates = np.flatnonzero(((table["group"] == group) & (table["split"] == "test")).to_numpy())
        rows += list(candidates[:per_group])
    return rows or list(range(min(2, len(table))))


def compare(
    embeddings: str | Path,
    out_dir: str | Path,
    *,
    data_root: str | Path | None = None,
    seed: int = 0,
    groups: str | Path | None = None,
    control: str | Path | None = None,
) -> CompareReport:
    """Run every comparison and write the figures, `report.json` and `report.md` to ``out_dir``.

    ``groups``: a groups file (default: the repository's configs/compare/groups.yaml when present) for the
    named pairs and the leave-one-city-out group probe; ``control``: embeddings of the same tiles by a
    randomly initialised encoder (`citygen embed --control random`), the probe's second baseline.
    """

    group_file = load_groups(groups)
    probe_set = probes_for(group_file.pairs)
    table = load_embeddings(embeddings).reset_index(drop=True)
    if table["city"].nunique() < 2:
        raise ConfigError("the embeddings hold a single city", "embed a dataset with two or more cities")
    root = Path(data_root) if data_root else _data_root(embeddings)
    place, network = built_places(root, table["city"].unique())
    table["place"] = table["city"].map(place)  # the registered place a built city came from
    table["street_source"] = table["city"].map(network)
    table["group"] = table["place"].map({c: city_name(c) for c in set(place.values())})
    bands = [b for b in (_metadata(embeddings).get("citygen_bands") or "").split(",") if b]
    if bands:  # like with like on the bands the model sees: a streets model ignores which places have footprints
        table = table.drop(columns=[c for c in table.columns if c.startswith("present_") and c[8:] not in bands])
    z = latent_matrix(table)
    if not np.isfinite(z).all():
        raise SourceError(
            "the embeddings contain NaN or inf", "re-embed with a checkpoint whose training did not diverge"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    distances = city_distances(table, z)
    probes = {name: linear_probe(table, z, cities) for name, cities in probe_set.items()}
    skipped = {name: p["reason"] for name, p in probes.items() if p["accuracy"] is None}
    baseline = metrics_baseline(table, probe_set)
    r2 = metric_r2(table, z)
    neighbours = nearest_neighbours(table, z, queries=_pick_queries(table))
    control_z = None if control is None else aligned_latents(control, table)
    city_level, city_figures = city_level_report(
        table,
        z,
        group_file,
        out,
        bands=bands,
        control=control_z,
        metrics=metric_matrix(table) if metric_columns(table) else None,
    )
    from citygen.workflows import figures

    figure_files = {
        "distance_heatmap": figures.distance_heatmap(distances, out / "city_distances.png"),
        "tile_map_pca": figures.tile_map(table, z, out / "tiles_pca.png", method="pca", seed=seed),
        "tile_map_tsne": figures.tile_map(table, z, out / "tiles_tsne.png", method="tsne", seed=seed),
    }
    if root is not None and (root / "tiles.parquet").is_file():
        figure_files["neighbours"] = figures.neighbour_grid(neighbours, root, out / "nearest_neighbours.png")
    figure_files.update(city_figures)
    report: CompareReport = {
        "embeddings": str(embeddings),
        "n_tiles": len(table),
        "cities": sorted(table["city"].unique()),
        "probe_accuracy": {name: p["accuracy"] for name, p in probes.items()},
        "probe_cv_accuracy": {name: p.get("cv_accuracy") for name, p in probes.items()},
        "probes": probes,
        "probes_skipped": skipped,
        "probes_metrics_baseline": baseline,
        "control_embeddings": None if control is None else str(control),
        **city_level,
        "baseline_metrics": [c.removeprefix("metric_") for c in metric_columns(table)] if baseline else [],
        "metric_r2": r2,
        "city_distances": distances.round(4).to_dict(),
        "nearest_neighbours": neighbours,
        "figures": {k: Path(v).name for k, v in figure_files.items()},
        "attribution": OSM_ATTRIBUTION,
    }
    write_json(out / "report.json", report)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown_report(report))
    return report


def built_places(root: Path | None, cities: Any) -> tuple[dict[str, str], dict[str, str]]:
    """For each built city: the registered place it was built from (its spec's `sample`, else its own id) and
    the street network type it was built with, from the dataset's manifest (registry values without one)."""
    specs = {}
    manifest = None if root is None else Path(root) / "manifest.json"
    if manifest is not None and manifest.is_file():
        specs = {c: r.get("spec", {}) for c, r in json.loads(manifest.read_text()).get("cities", {}).items()}
    place = {c: specs.get(c, {}).get("sample") or c for c in cities}
    network = {c: specs.get(c, {}).get("network_type") or street_source(place[c]) for c in cities}
    return place, network


def _metadata(embeddings: str | Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    meta = pq.read_schema(embeddings).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"citygen_")}


def _data_root(embeddings: str | Path) -> Path | None:
    value = _metadata(embeddings).get("citygen_data_root")
    return Path(value) if value else None


def aligned_latents(path: str | Path, table: pd.DataFrame) -> np.ndarray:
    """The latent vectors of another embeddings file (a control) in the row order of ``table``."""
    other = load_embeddings(path).set_index("tile_id")
    missing = sorted(set(table["tile_id"]) - set(other.index))
    if missing:
        raise SourceError(
            f"the control embeddings {Path(path).name} lack {len(missing)} tiles of the embeddings (e.g. {missing[0]})",
            "embed the same dataset for both: citygen embed --ckpt CKPT --control random --data DIR --out FILE",
        )
    z = np.stack(other.loc[table["tile_id"], "latent"].to_numpy()).astype(np.float64)
    if not np.isfinite(z).all():
        raise SourceError(f"the control embeddings {Path(path).name} contain NaN or inf")
    return z


def markdown_report(report: CompareReport) -> str:
    lines = [
        "# City comparison in latent space",
        "",
        f"{report['n_tiles']} tiles from {len(report['cities'])} samples.",
        "",
    ]
    lines += [
        "## Linear probes of city identity",
        "",
        "Test: trained on the train split, scored on the spatially held-out test split. Block CV: every tile",
        "predicted by a model trained without its 1 km block (5 folds over blocks). 95 % intervals in brackets.",
        "A probe of named cities uses only samples with the same layers and street source (network type) in",
        "every city.",
        "",
    ]
    lines += probe_table(report["probes"])
    baseline = report.get("probes_metrics_baseline") or {}
    if baseline:
        lines += [
            "",
            "Baseline: the same probes on each tile's urban metrics instead of its latent vector ("
            + ", ".join(report.get("baseline_metrics", []))
            + ").",
            "",
            *probe_table(baseline),
        ]
    for name, reason in (report.get("probes_skipped") or {}).items():
        lines.append(f"\nSkipped: probe {name}: {reason}.")
    group_probe = report.get("group_probe") or {}
    if group_probe:
        lines += [
            "",
            "## Leave-one-city-out group probe",
            "",
            f"Groups from `{report.get('groups_file')}`: "
            + ", ".join(report.get("groups", {}))
            + ". For each city of the",
            "probed groups, a linear probe trained on the tiles of all other cities predicts the group of its tiles;",
            "the city's label is their majority. Baselines: the tiles' urban metrics, and an encoder of the same",
            f"architecture with random weights. {report.get('group_probe_tiles', 0)} tiles whose embedded bands are present.",
            "",
            *loco_table(group_probe),
        ]
    lines += [
        "",
        "## Urban metrics predicted from the latent vector (ridge regression, R2 on test tiles)",
        "",
        "| metric | R2 | test tiles |",
        "|---|---|---|",
    ]
    for name, value in report["metric_r2"].items():
        lines.append(f"| {name} | {value['r2']:.3f} | {value['n_test']} |")
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({file})" for name, file in report["figures"].items()]
    lines += ["", "## Nearest neighbours in other cities", ""]
    for item in report["nearest_neighbours"]:
        lines.append(
            f"- `{item['query']}` -> "
            + ", ".join(f"`{n}` ({s:.2f})" for n, s in zip(item["neighbours"], item["similarity"], strict=True))
        )
    lines += ["", f"Map data {report['attribution']}.", ""]
    return "\n".join(lines)
