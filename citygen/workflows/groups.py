"""City-level comparisons: groups of places, a leave-one-city-out group probe, city distances and a dendrogram.

A groups file (``configs/compare/groups.yaml``; any file in its layout) labels registered places with a
group (``car_centric``, ``walkable``, ...), says which groups the probe separates (``probe``) and names city
pairs for the tile probes (``pairs``). The leave-one-city-out probe asks the question at the level it is
posed: trained on the tiles of every *other* city, does a linear probe put this city's tiles in its group?
A city (the registry's ``city`` name: the part before the first comma) is held out with all its places, so
overlapping extracts of one city (central Copenhagen and Vesterbro) never sit on both sides.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from citygen.core import settings
from citygen.core.errors import ConfigError
from citygen.workflows.probes import city_distances, city_name
from citygen.workflows.results import CityLevelReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Groups:
    """Group labels of places, the groups the probe separates and the named city pairs."""

    of_place: dict[str, str]  # registry id -> group
    probe: tuple[str, ...]
    pairs: dict[str, tuple[str, ...]]
    rules: dict[str, dict[str, str]] = field(default_factory=dict)  # group -> {rule, source}
    path: str = ""


def default_groups_path() -> Path | None:
    """The groups file installed with citygen (``compare/groups.yaml`` of ``citygen configs``)."""
    path = settings.configs_dir() / "compare" / "groups.yaml"
    return path if path.is_file() else None


def load_groups(path: str | Path | None = None, *, strict: bool = True) -> Groups:
    """Read and check a groups file. Places no registry knows are an error (``strict``) listing them; registered
    places the file leaves unlabelled are a warning listing them."""
    from citygen.data.samples import aliases, list_registered

    if path is None:
        path = default_groups_path()
        if path is None:
            return Groups(of_place={}, probe=(), pairs={"houston_vs_copenhagen": ("Houston", "Copenhagen")})
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"groups file not found: {path}", "pass an existing YAML file, e.g. configs/compare/groups.yaml"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("groups"), dict) or not raw["groups"]:
        raise ConfigError(
            f"{path} has no `groups` mapping", "write `groups:` with `NAME: {rule, source, places: [...]}`"
        )
    unknown_keys = set(raw) - {"groups", "probe", "pairs"}
    if unknown_keys:
        raise ConfigError(f"unknown keys in {path}: {sorted(unknown_keys)}", "allowed: groups, probe, pairs")
    of_place: dict[str, str] = {}
    rules: dict[str, dict[str, str]] = {}
    for name, body in raw["groups"].items():
        if not isinstance(body, dict) or not isinstance(body.get("places"), list):
            raise ConfigError(f"group {name!r} in {path} needs a `places` list")
        rules[str(name)] = {"rule": str(body.get("rule", "")), "source": str(body.get("source", ""))}
        for place in body["places"]:
            if place in of_place and of_place[place] != name:
                raise ConfigError(f"{path}: place {place!r} is in two groups ({of_place[place]}, {name})")
            of_place[str(place)] = str(name)
    known = {s.id for s in list_registered()} | set(aliases())
    unknown = sorted(set(of_place) - known)
    if unknown and not (settings.corpus_dir() / "registry.yaml").is_file():
        # an installed package without the research corpus (it lives in a checkout's data_pipelines/corpus):
        # the file's corpus places cannot be checked here, and no dataset built here holds them
        log.info(
            "%s: %d places are not registered here (no research corpus at %s); left out",
            path,
            len(unknown),
            settings.corpus_dir(),
        )
        of_place = {p: g for p, g in of_place.items() if p not in unknown}
        unknown = []
    if unknown and strict:
        hints = [
            f"{u} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(u, known, n=1)) else u for u in unknown
        ]
        raise ConfigError(
            f"{path} names places no registry knows: {', '.join(hints)}",
            "use ids from `citygen data samples --json` (samples and corpus)",
        )
    unlabelled = sorted(known - set(of_place) - set(aliases()))
    if unlabelled:
        log.warning("%s leaves %d registered places unlabelled: %s", path, len(unlabelled), ", ".join(unlabelled))
    probe = tuple(raw.get("probe") or rules)
    missing = [g for g in probe if g not in rules]
    if missing or len(probe) < 2:
        raise ConfigError(
            f"{path}: `probe` must name two or more of its groups, got {list(probe)}", f"groups: {', '.join(rules)}"
        )
    pairs = {str(k): tuple(str(c) for c in v) for k, v in (raw.get("pairs") or {}).items()}
    return Groups(of_place=of_place, probe=probe, pairs=pairs, rules=rules, path=str(path))


def _probe_model() -> Any:
    """The tile probe of `citygen compare` with classes weighted by their inverse tile counts: the groups
    differ in how many tiles their cities give (European extracts outnumber American ones), and a probe
    that learns the majority group would score cities by their group's size."""
    from citygen.workflows.probes import probe_model as model

    probe = model()
    probe.set_params(logisticregression__class_weight="balanced")
    return probe


def leave_one_city_out(table: pd.DataFrame, z: np.ndarray, groups: Groups) -> dict[str, Any]:
    """For each city of the probed groups: a linear probe trained on the tiles of all other cities predicts its
    tiles' group; the city's label is the majority of its tiles. Accuracy over cities, and the per-city table."""
    places = table["place"] if "place" in table else table["city"]
    frame = table.assign(_row=np.arange(len(table)), _group=places.map(groups.of_place), _place=places)
    frame = frame[frame["_group"].isin(groups.probe)]
    frame = frame.assign(_city=frame["_place"].map(city_name))
    cities = sorted(frame["_city"].unique())
    if frame["_group"].nunique() < 2 or len(cities) < 3:
        return {
            "accuracy": None,
            "reason": f"fewer than two groups or three cities among the tiles ({cities})",
            "cities": [],
        }
    rows = []
    for city in cities:
        held = (frame["_city"] == city).to_numpy()
        train = frame[~held]
        if train["_group"].nunique() < 2:
            continue
        model = _probe_model().fit(z[train["_row"]], train["_group"])
        predicted = model.predict(z[frame.loc[held, "_row"]])
        truth = frame.loc[held, "_group"].iloc[0]
        values, counts = np.unique(predicted, return_counts=True)
        majority = values[np.argmax(counts)] if counts.max() * 2 != len(predicted) else "tie"
        rows.append(
            {
                "city": city,
                "places": sorted(frame.loc[held, "city"].unique()),
                "group": truth,
                "predicted": str(majority),
                "tiles": int(held.sum()),
                "tile_share_correct": float((predicted == truth).mean()),
                "correct": bool(majority == truth),
            }
        )
    correct = sum(r["correct"] for r in rows)
    per_group = {
        g: float(np.mean([r["correct"] for r in rows if r["group"] == g])) for g in sorted({r["group"] for r in rows})
    }
    chance = max(sum(r["group"] == g for r in rows) for g in per_group) / len(rows)
    return {
        "accuracy": correct / len(rows),
        "balanced_accuracy": float(np.mean(list(per_group.values()))),
        "per_group_accuracy": per_group,
        "chance": chance,
        "n_cities": len(rows),
        "n_tiles": int(sum(r["tiles"] for r in rows)),
        "groups": list(groups.probe),
        "cities": rows,
    }


def city_level_distances(table: pd.DataFrame, z: np.ndarray) -> pd.DataFrame:
    """Distances between city (registry `city` name) centroids in the standardised latent space."""
    places = table["place"] if "place" in table else table["city"]
    return city_distances(table.assign(city=places.map(city_name)), z)


def dendrogram(distances: pd.DataFrame, groups: Groups, path: Path, *, title: str) -> Path:
    """Average-linkage dendrogram of a distance matrix, leaf labels coloured by group."""
    from scipy.cluster.hierarchy import dendrogram as draw
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    from citygen.workflows.figures import _plt, _save

    plt = _plt()
    labels = list(distances.index)
    fig, ax = plt.subplots(figsize=(6.5, 1.0 + 0.22 * len(labels)))
    if len(labels) < 2:
        ax.text(0.5, 0.5, "one city: no dendrogram", ha="center")
        return _save(fig, path)
    condensed = squareform(distances.to_numpy(), checks=False)
    draw(linkage(condensed, method="average"), labels=labels, orientation="left", ax=ax, color_threshold=0)
    group_of_city = {city_name(p): g for p, g in groups.of_place.items()}
    palette = plt.get_cmap("tab10")
    names = sorted(set(group_of_city.values()))
    for tick in ax.get_yticklabels():
        group = group_of_city.get(tick.get_text())
        if group is not None:
            tick.set_color(palette(names.index(group) % 10))
    for i, name in enumerate(names):
        ax.plot([], [], color=palette(i % 10), label=name, linewidth=4)
    ax.legend(fontsize=8, loc="lower left", frameon=False)
    ax.set_title(title)
    ax.set_xlabel("distance between city centroids (standardised latent space)")
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def loco_table(probes: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown: the leave-one-city-out probe on each vector, side by side, then the per-city table."""
    lines = ["| tile vector | cities right | accuracy | balanced | chance | per group |", "|---|---|---|---|---|---|"]
    for name, probe in probes.items():
        if probe.get("accuracy") is None:
            lines.append(f"| {name} | not measurable: {probe.get('reason', '')} | | | | |")
            continue
        right = sum(r["correct"] for r in probe["cities"])
        per_group = ", ".join(f"{g} {v:.2f}" for g, v in probe["per_group_accuracy"].items())
        lines.append(
            f"| {name} | {right} / {probe['n_cities']} | {probe['accuracy']:.3f} | {probe['balanced_accuracy']:.3f} | "
            f"{probe['chance']:.3f} | {per_group} |"
        )
    first = next((p for p in probes.values() if p.get("cities")), None)
    if first is None:
        return lines
    names = list(probes)
    lines += ["", "| city | group | tiles | " + " | ".join(f"{n}: predicted (tile share right)" for n in names) + " |"]
    lines.append("|---|---|---|" + "---|" * len(names))
    by_city = {n: {r["city"]: r for r in probes[n].get("cities", [])} for n in names}
    for row in first["cities"]:
        cells = []
        for n in names:
            other = by_city[n].get(row["city"])
            cells.append("" if other is None else f"{other['predicted']} ({other['tile_share_correct']:.2f})")
        lines.append(f"| {row['city']} | {row['group']} | {row['tiles']} | " + " | ".join(cells) + " |")
    return lines


def probed_tiles(table: pd.DataFrame, bands: list[str]) -> np.ndarray:
    """Rows whose every embedded band was present in the source (a place without streets embeds an empty
    streets band: its vectors say "no data", not "no streets")."""
    keep = np.ones(len(table), dtype=bool)
    for band in bands:
        column = f"present_{band}"
        if column in table:
            keep &= table[column].astype(bool).to_numpy()
    return keep


def city_level_report(
    table: pd.DataFrame,
    z: np.ndarray,
    groups: Groups,
    out: Path,
    *,
    bands: list[str],
    control: np.ndarray | None = None,
    metrics: np.ndarray | None = None,
) -> tuple[CityLevelReport, dict[str, Path]]:
    """The leave-one-city-out group probe on the latent vectors and on the baselines (urban metrics of each
    tile; a randomly initialised encoder of the same architecture), city-level distances and a dendrogram."""
    keep = probed_tiles(table, bands)
    subset = table[keep].reset_index(drop=True)
    vectors = {"latent": z[keep]}
    if metrics is not None and metrics.shape[1]:
        vectors["urban_metrics"] = metrics[keep]
    if control is not None:
        vectors["random_encoder"] = control[keep]
    loco = {name: leave_one_city_out(subset, v, groups) for name, v in vectors.items()}
    distances = city_level_distances(subset, z[keep]) if subset["city"].nunique() >= 2 else pd.DataFrame()
    figures = {}
    if not distances.empty:
        figures["city_dendrogram"] = dendrogram(
            distances, groups, out / "city_dendrogram.png", title="Cities clustered by their latent centroids"
        )
    labelled = set(groups.of_place)
    report: CityLevelReport = {
        "groups_file": groups.path,
        "groups": {
            g: {**groups.rules.get(g, {}), "places": sorted(p for p, x in groups.of_place.items() if x == g)}
            for g in groups.rules
        },
        "group_probe": loco,
        "group_probe_tiles": int(keep.sum()),
        "unlabelled_places": sorted(set(table["place"] if "place" in table else table["city"]) - labelled),
        "city_level_distances": distances.round(4).to_dict() if not distances.empty else {},
    }
    return report, figures
