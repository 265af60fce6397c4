"""Linear probes and distances over tile vectors (latents or urban metrics), shared by `citygen compare` and the
city-level comparisons of :mod:`citygen.workflows.groups`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from citygen.core.errors import ConfigError


def street_source(city_id: str) -> str:
    """The OSMnx network type a sample's streets came from (``drive``, ``all``, ...); "" when unknown."""
    from citygen.data.samples import get_sample

    try:
        return get_sample(city_id).network_type or ""
    except ConfigError:
        return ""


def latent_matrix(table: pd.DataFrame) -> np.ndarray:
    return np.stack(list(table["latent"])).astype(np.float64)


def metric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("metric_")]


def metric_matrix(table: pd.DataFrame) -> np.ndarray:
    return table[metric_columns(table)].to_numpy(dtype=np.float64)


def city_distances(table: pd.DataFrame, z: np.ndarray) -> pd.DataFrame:
    """Distances between city centroids in the standardised latent space."""
    zs = (z - z.mean(0)) / (z.std(0) + 1e-9)
    cities = sorted(table["city"].unique())
    centroids = np.stack([zs[(table["city"] == c).to_numpy()].mean(0) for c in cities])
    d = np.sqrt(((centroids[:, None] - centroids[None]) ** 2).sum(-1))
    return pd.DataFrame(d, index=cities, columns=cities)


def _same_channels(table: pd.DataFrame) -> pd.DataFrame:
    """Keep tiles whose layer signature is shared by every group, so a probe cannot tell cities apart by
    which layers their sources happen to provide: the layers present and, for streets, the network type
    they were drawn from (a drive network and an "all" network with footways are different pictures)."""
    present = [c for c in table.columns if c.startswith("present_")]
    if not present:
        return table
    signature = table[present].astype(str).agg("".join, axis=1)
    if "present_streets" in table:
        network = (
            table["street_source"]
            if "street_source" in table
            else table["city"].map({c: street_source(c) for c in table["city"].unique()})
        )
        sources = network.where(table["present_streets"].astype(bool), "")
        signature = signature + ":" + sources
    present_groups = table["group"].unique()
    shared = (
        set.intersection(*(set(signature[table["group"] == g]) for g in present_groups))
        if len(present_groups)
        else set()
    )
    if not shared:
        return table.iloc[0:0]
    # Most tiles first; ties go to the signature with more layers (streets first), then by name, so the choice
    # never depends on set order (which changes with PYTHONHASHSEED).
    layers = table[present].astype(bool).sum(axis=1)
    streets = table["present_streets"].astype(bool) if "present_streets" in table else layers * 0
    best = max(
        shared,
        key=lambda s: (
            int((signature == s).sum()),
            int(layers[signature == s].iloc[0]),
            bool(streets[signature == s].iloc[0]),
            s,
        ),
    )
    return table[signature == best]


def spatial_blocks(table: pd.DataFrame, block_m: float = 1024.0) -> np.ndarray:
    """A block id per tile: the ``block_m`` square (in the tile's metric CRS) holding its lower-left corner,
    keyed by the CRS rather than the city, so the tiles of overlapping extracts of one place (central
    Copenhagen and Vesterbro) share a block; tiles of one block are never split between cross-validation folds."""
    if not {"minx", "miny"} <= set(table.columns):
        return table["city"].astype(str).to_numpy()
    key = table["crs"].astype(str) if "crs" in table else table["city"].astype(str)
    col = np.floor(table["minx"].to_numpy(float) / block_m).astype(int).astype(str)
    row = np.floor(table["miny"].to_numpy(float) / block_m).astype(int).astype(str)
    return (key + ":" + row + ":" + col).to_numpy()


# Inverse L2 strength of the probe's logistic regression on standardised features; chosen among 0.01, 0.1
# and 1 by block cross-validation of the demo autoencoder (0.1 was best for both probes).
PROBE_C = 0.1


def probe_model() -> Any:
    """Multinomial logistic regression on standardised vectors: the usual linear probe."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # the imputer only acts on the metrics baseline: a metric can be undefined on a tile (the orientation
    # entropy of a tile without streets); latent vectors are always finite
    return make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=3000)
    )


def probe_tiles(table: pd.DataFrame, groups: tuple[str, ...] | None) -> tuple[pd.DataFrame, list[str]]:
    """The tiles a probe of ``groups`` (None: every city) uses, with their row numbers in ``table`` (`_row`),
    and the cities it can score: those with tiles in both the train and the test split."""
    frame = table.assign(_row=np.arange(len(table)))
    if groups is not None:
        frame = _same_channels(frame[frame["group"].isin(groups)])
    labels = sorted(
        set(frame.loc[frame["split"] == "train", "group"]) & set(frame.loc[frame["split"] == "test", "group"])
    )
    return frame, labels


def linear_probe(
    table: pd.DataFrame, z: np.ndarray, groups: tuple[str, ...] | None, *, folds: int = 5
) -> dict[str, Any]:
    """A linear classifier on standardised latents: fit on train tiles, score on held-out test tiles.

    The test split of a few sample areas holds few tiles (17 for Houston vs Copenhagen), so the probe is
    also scored by ``folds``-fold cross-validation over spatial blocks of 1 km (every tile of every split
    is predicted once by a model that saw no tile of its block): the less noisy figure.
    """
    from sklearn.model_selection import GroupKFold, cross_val_predict

    frame, labels = probe_tiles(table, groups)
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    train, test = train[train["group"].isin(labels)], test[test["group"].isin(labels)]
    if len(labels) < 2:
        return {
            "accuracy": None,
            "chance": None,
            "cv_accuracy": None,
            "cv_chance": None,
            "reason": f"fewer than two cities with train and test tiles ({labels})",
        }
    model = probe_model().fit(z[train["_row"]], train["group"])
    correct = int((model.predict(z[test["_row"]]) == test["group"].to_numpy()).sum())
    accuracy = correct / len(test)
    chance = float(test["group"].value_counts(normalize=True).max())  # always guessing the largest class
    everything = frame[frame["group"].isin(labels)]
    blocks = spatial_blocks(everything)
    n_folds = min(folds, len(set(blocks)))
    cv_accuracy = cv_chance = cv_ci = None
    folds_ok = n_folds >= 2 and all(
        everything["group"].iloc[train_rows].nunique() >= 2
        for train_rows, _ in GroupKFold(max(n_folds, 2)).split(everything, groups=blocks)
    )
    if folds_ok:  # every training fold must hold two cities or more
        predicted = cross_val_predict(
            probe_model(), z[everything["_row"]], everything["group"], groups=blocks, cv=GroupKFold(n_folds)
        )
        cv_correct = int((predicted == everything["group"].to_numpy()).sum())
        cv_accuracy = cv_correct / len(everything)
        cv_ci = _wilson(cv_correct, len(everything))
        cv_chance = float(everything["group"].value_counts(normalize=True).max())
    return {
        "accuracy": accuracy,
        "accuracy_ci95": _wilson(correct, len(test)),
        "chance": chance,
        "cv_accuracy": cv_accuracy,
        "cv_accuracy_ci95": cv_ci,
        "cv_chance": cv_chance,
        "cv_folds": n_folds,
        "cities": labels,
        "n_train": len(train),
        "n_test": len(test),
        "n_cv": len(everything),
        "samples": sorted(frame["city"].unique()),
    }


def _wilson(correct: int, n: int) -> list[float]:
    """95 % Wilson score interval of an accuracy: a test split of 17 tiles moves by 0.06 per tile."""
    from scipy.stats import binomtest

    interval = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(interval.low), float(interval.high)]


def metric_r2(table: pd.DataFrame, z: np.ndarray) -> dict[str, dict[str, float | int]]:
    """R2 on test tiles of a ridge regression from latents to each urban metric (fit on train tiles)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, dict[str, float | int]] = {}
    for column in metric_columns(table):
        values = table[column].to_numpy(dtype=float)
        ok = np.isfinite(values)
        train = ok & (table["split"] == "train").to_numpy()
        test = ok & (table["split"] == "test").to_numpy()
        if train.sum() < 10 or test.sum() < 5 or np.std(values[test]) == 0:
            continue
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
        model.fit(z[train], values[train])
        out[column.removeprefix("metric_")] = {
            "r2": float(r2_score(values[test], model.predict(z[test]))),
            "n_test": int(test.sum()),
        }
    return out


def format_interval(probe: dict[str, Any], key: str) -> str:
    interval = probe.get(key)
    return f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else ""


def probe_table(probes: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| probe | test accuracy | chance | block-CV accuracy | chance | cities | train / test / CV tiles |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, probe in probes.items():
        if probe["accuracy"] is None:
            lines.append(f"| {name} | not measurable | | | | {probe['reason']} | |")
            continue
        cv = (
            "n/a"
            if probe.get("cv_accuracy") is None
            else f"{probe['cv_accuracy']:.3f}{format_interval(probe, 'cv_accuracy_ci95')}"
        )
        cv_chance = "" if probe.get("cv_chance") is None else f"{probe['cv_chance']:.3f}"
        lines.append(
            f"| {name} | {probe['accuracy']:.3f}{format_interval(probe, 'accuracy_ci95')} | {probe['chance']:.3f} | {cv} | {cv_chance} | "
            f"{', '.join(probe['cities'])} | {probe['n_train']} / {probe['n_test']} / {probe.get('n_cv', '')} |"
        )
    return lines


def city_name(place_id: str) -> str:
    """The city a registered place belongs to (Houston for houston_montrose); other ids stand for themselves."""
    from citygen.data.samples import get_sample

    try:
        return get_sample(place_id).city.split(",")[0]
    except ConfigError:
        return place_id
