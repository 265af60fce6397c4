"""Other tile and city vectors for the leave-one-city-out group probe of `citygen compare` (issue 17).

    python experiments/corpus/loco_variants.py --ckpt CKPT --data data/corpus \
        --embeddings runs/corpus/embeddings.parquet --control runs/corpus/control.parquet

Variants, each scored with `citygen.workflows.groups.leave_one_city_out` (the shipped probe) on the same
tiles and groups (configs/compare/groups.yaml):

- the shipped vector (latent-map statistics at 2 m/px input, 16 m latent cells);
- multi-scale: the same statistics of the tile at half resolution (2 x 2 max-pooled input, 32 m cells: a
  larger context per latent cell), appended to the shipped vector;
- encoder-stage pooling: mean and spread of every encoder stage's activations, appended;
- city means: one vector per city, the mean of its tiles' vectors, and a leave-one-city-out probe on those
  city vectors (logistic regression on standardised means): the comparison at the level of whole cities.
Each for the trained encoder and for the random-weights control; the city-means probe also on the tiles'
urban metrics.
"""

from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import torch

from citygen.data.dataset import CityTileDataset
from citygen.workflows import compare, probes
from citygen.workflows import groups as G
from citygen.workflows.checkpoints import load_task
from citygen.workflows.embed import random_control

VARIANTS = Path(__file__).resolve().parents[1] / "probe_ceiling" / "feature_variants.py"


def city_means_probe(table: pd.DataFrame, z: np.ndarray, groups: G.Groups) -> dict:
    """Leave one city out on city-mean vectors: each city one sample, its group the label."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    place = table["place"].to_numpy()
    label = pd.Series(place).map(groups.of_place).to_numpy()
    city = pd.Series(place).map(G.city_name).to_numpy()
    keep = pd.Series(label).isin(groups.probe).to_numpy()
    names = sorted(set(city[keep]))
    x = np.stack([z[keep & (city == c)].mean(0) for c in names])
    y = np.array([label[keep & (city == c)][0] for c in names])
    right = 0
    for i in range(len(names)):
        train = np.arange(len(names)) != i
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=probes.PROBE_C, max_iter=3000, class_weight="balanced")
        )
        right += int(model.fit(x[train], y[train]).predict(x[i : i + 1])[0] == y[i])
    return {"accuracy": right / len(names), "n_cities": len(names), "right": right}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--embeddings", type=Path, required=True)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--groups", type=Path, default=Path("configs/compare/groups.yaml"))
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("loco_variants.json"))
    args = parser.parse_args()
    encoded = runpy.run_path(str(VARIANTS))["encoded"]
    groups = G.load_groups(args.groups)
    task = load_task(args.ckpt, expected="AutoencoderTask").task
    dataset = CityTileDataset(args.data, bands=[*task.bands, "valid"])
    table = gpd.read_parquet(args.embeddings).set_index("tile_id").loc[dataset.tiles["tile_id"]].reset_index()
    place, _ = compare.built_places(args.data, table["city"].unique())
    table["place"] = table["city"].map(place)
    shipped = np.stack(table["latent"]).astype(np.float64)
    control = compare.aligned_latents(args.control, table)
    train = (dataset.tiles["split"] == "train").to_numpy()
    vectors = {"trained": {"shipped": shipped}, "random": {"shipped": control}}
    for name, model in (("trained", task), ("random", random_control(task, dataset, train))):
        with torch.no_grad():
            half, *_ = encoded(model, dataset, scale=2)
            _, stages, *_ = encoded(model, dataset)
        base = vectors[name]["shipped"]
        vectors[name]["multi_scale"] = np.concatenate([base, half], 1)
        vectors[name]["stage_pooling"] = np.concatenate([base, stages], 1)
    keep = G.probed_tiles(table, list(task.bands))
    subset = table[keep].reset_index(drop=True)
    results = {}
    for name, by_variant in vectors.items():
        for variant, z in by_variant.items():
            loco = G.leave_one_city_out(subset, z[keep], groups)
            means = city_means_probe(subset, z[keep], groups)
            results[f"{name}/{variant}"] = {
                "tile_probe_accuracy": loco["accuracy"],
                "tile_probe_balanced": loco["balanced_accuracy"],
                "cities_right": sum(r["correct"] for r in loco["cities"]),
                "n_cities": loco["n_cities"],
                "city_means_accuracy": means["accuracy"],
            }
            r = results[f"{name}/{variant}"]
            print(
                f"{name:<8}{variant:<15} tile probe {r['cities_right']}/{r['n_cities']} = {r['tile_probe_accuracy']:.3f} "
                f"(balanced {r['tile_probe_balanced']:.3f}); city means {r['city_means_accuracy']:.3f}",
                flush=True,
            )
    metrics = probes.metric_matrix(subset)  # the urban-metrics baseline at city level (undefined -> median)
    metrics = np.where(np.isfinite(metrics), metrics, np.nanmedian(metrics, 0))
    results["urban_metrics/city_means"] = {"city_means_accuracy": city_means_probe(subset, metrics, groups)["accuracy"]}
    print(f"urban metrics city means {results['urban_metrics/city_means']['city_means_accuracy']:.3f}")
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
