"""Generate candidate layouts from target parameters with a trained pix2pix model (`citygen generate`).

Each candidate is written as a citygen GeoTIFF (same band vocabulary, UTM CRS) placed at ``--at LON,LAT``
(default: Copenhagen City Hall Square, 55.6761 N 12.5683 E), plus vector exports (streets recovered from
the raster as lines, buildings as polygons) and a report of requested vs achieved values measured with the
metric suite. Candidates are ranked by their mean absolute relative error over the targets
(:func:`citygen.metrics.targets.rank_candidates`, as ``citygen evaluate`` picks its best candidate; an
unmeasurable target counts as 100 % off).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import torch
from affine import Affine
from pyproj import CRS

from citygen.core import OSM_ATTRIBUTION
from citygen.core.bands import BAND_NAMES
from citygen.core.errors import ConfigError, SourceError
from citygen.data.geotiff import RasterData, atomic_path, read_raster, write_raster
from citygen.data.sources import utm_crs_for
from citygen.metrics.morphology import delivered
from citygen.metrics.targets import mean_relative_error, measure_targets, rank_candidates, relative_error
from citygen.workflows.checkpoints import load_task
from citygen.workflows.results import GenerateReport, write_json

log = logging.getLogger(__name__)
DEFAULT_AT = (12.5683, 55.6761)  # lon, lat: Copenhagen City Hall Square
RANGE_QUANTILES = (0.01, 0.99)  # the "range seen in training": 1st to 99th percentile of training crops


@dataclass
class Candidate:
    index: int
    path: Path
    achieved: dict[str, float]
    error: float  # mean absolute relative error over the targets (citygen.metrics.targets)
    patterns: list[dict[str, Any]]


def parse_targets(items: list[str]) -> dict[str, float]:
    targets = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            targets[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not math.isfinite(targets.get(name.strip(), math.nan)):
            raise ConfigError(f"cannot read target {item!r}", "write NAME=VALUE, e.g. --target building_coverage=0.35")
    return targets


def training_ranges(root: Path | None, names: list[str], cell_size: int) -> dict[str, tuple[float, float]]:
    """The 1st-99th percentile of each target over the training crops (empty when the cache is missing)."""
    if root is None or not (root / "tile_targets.parquet").is_file() or not (root / "tiles.parquet").is_file():
        return {}
    cache = pd.read_parquet(root / "tile_targets.parquet")
    tiles = pd.read_parquet(root / "tiles.parquet", columns=["tile_id", "split"])
    train = cache[
        (cache["cell_size"] == cell_size) & cache["tile_id"].isin(tiles.loc[tiles["split"] == "train", "tile_id"])
    ]
    ranges = {}
    for name in names:
        if name in train and train[name].notna().sum() >= 10:
            low, high = train[name].quantile(list(RANGE_QUANTILES))
            ranges[name] = (float(low), float(high))
    return ranges


def check_targets(
    targets: dict[str, float], conditions: list[str], ranges: dict[str, tuple[float, float]], *, strict: bool
) -> dict[str, float]:
    unknown = [name for name in targets if name not in conditions]
    if unknown:
        raise ConfigError(f"unknown target(s) {unknown}", f"this model is conditioned on: {', '.join(conditions)}")
    missing = [name for name in conditions if name not in targets]
    for name in missing:  # a condition not given: the middle of its training range
        if name not in ranges:
            raise ConfigError(f"target {name} is needed by this model", f"add --target {name}=VALUE")
        targets[name] = float(np.mean(ranges[name]))
        log.warning("no --target %s given: using %.3f, the middle of its training range", name, targets[name])
    for name, value in targets.items():
        if name in ranges and not ranges[name][0] <= value <= ranges[name][1]:
            low, high = ranges[name]
            message = f"target {name}={value!r} lies outside the range seen in training [{low!r}, {high!r}]"
            if strict:
                raise ConfigError(message, "choose a value inside the range, or pass --allow-extrapolation")
            log.warning("%s; the model extrapolates", message)
    return targets


def placement(at: tuple[float, float] | None, size: int, resolution: float) -> tuple[CRS, Affine]:
    """UTM CRS and transform of a size x size grid centred on (lon, lat)."""
    lon, lat = at or DEFAULT_AT
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -80 <= lat <= 84):
        raise ConfigError(
            f"--at {lon:g},{lat:g} is not a place UTM can hold (longitude -180..180, latitude -80..84)",
            "write LON,LAT in degrees, longitude first, e.g. --at 12.5683,55.6761",
        )
    crs = utm_crs_for(lon, lat)
    x, y = gpd.GeoSeries([shapely.Point(lon, lat)], crs=4326).to_crs(crs).iloc[0].coords[0]
    half = size * resolution / 2
    left, top = round((x - half) / resolution) * resolution, round((y + half) / resolution) * resolution
    return crs, Affine(resolution, 0, left, 0, -resolution, top)


def vector_layers(bands: dict[str, np.ndarray], transform: Affine, crs: CRS, resolution: float) -> gpd.GeoDataFrame:
    """Streets as lines recovered from the raster (skeleton graph) and buildings as polygons, in EPSG:4326."""
    from rasterio import features

    from citygen.metrics.skeleton import recover_street_graph

    rows: list[dict[str, Any]] = []
    if "streets" in bands:
        graph = recover_street_graph(bands["streets"], resolution_m=resolution)
        for (a, b), length in zip(graph.edges, graph.length_m, strict=True):
            (xa, ya), (xb, yb) = graph.node_xy[a], graph.node_xy[b]
            line = shapely.LineString([(transform.c + xa, transform.f + ya), (transform.c + xb, transform.f + yb)])
            rows.append({"layer": "street", "length_m": float(length), "geometry": line})
    if "buildings" in bands:
        mask = (bands["buildings"] > 0.5).astype(np.uint8)
        for geometry, value in features.shapes(mask, mask=mask.astype(bool), transform=transform):
            if value == 1:
                polygon = shapely.geometry.shape(geometry)
                rows.append({"layer": "building", "area_m2": float(polygon.area), "geometry": polygon})
    frame = (
        gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
        if rows
        else gpd.GeoDataFrame({"layer": []}, geometry=[], crs=crs)
    )
    return frame.to_crs(4326)


def generate(
    ckpt: str | Path,
    targets: dict[str, float],
    out: str | Path,
    *,
    n: int = 8,
    seed: int = 0,
    at: tuple[float, float] | None = None,
    streets: str | Path | None = None,
    strict: bool = False,
    street_search: bool | None = None,
    realism: bool = True,
) -> GenerateReport:
    """Write n candidates, their vector exports, a contact sheet, a pattern card and report.json.

    ``street_search`` overrides the model's own setting (None keeps it); turning it off is about 5-10x
    faster on the CPU but leaves intersection density to the generator alone (benchmarks/RESULTS.md).
    Achieved targets are measured on the delivered layout (coverage bands thresholded at 0.5, as the GeoJSON
    draws them). ``realism``: also score the candidates against the real test tiles of the training dataset,
    beside the held-out real baseline (about a minute the first time in a process).
    """
    from citygen.metrics.card import draw_card
    from citygen.metrics.suite import measure

    trained = load_task(ckpt, expected="Pix2PixTask")
    task, root = trained.task, trained.data_root
    if street_search is not None:
        task.street_search = street_search
    size = int(task.meta["input_size"])
    conditions = list(task.conditions)
    resolution = _training_resolution(root)
    ranges = training_ranges(root, conditions, size)
    targets = check_targets(dict(targets), conditions, ranges, strict=strict)
    inputs, crs, transform = None, None, None
    if streets is not None and not task.input_bands:
        raise ConfigError(
            "--streets was given, but this model draws layouts from targets alone and takes no input bands",
            "drop --streets, or pass a streets-to-buildings checkpoint (configs/experiments/pix2pix_streets_demo.yaml)",
        )
    if task.input_bands:
        if streets is None:
            raise ConfigError(
                f"this model draws on {task.input_bands} of a real place",
                "pass --streets FILE.tif (a GeoTIFF built by citygen)",
            )
        inputs, crs, transform, resolution = _input_window(Path(streets), list(task.input_bands), size)
    if crs is None or transform is None:
        crs, transform = placement(at, size, resolution)
    t = torch.tensor([[targets[c] for c in conditions]], dtype=torch.float32) if conditions else None
    layouts = task.generate(t, inputs, size=size, num_candidates=n, seed=seed, resolution_m=resolution)[0].numpy()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output folder {out}: {exc.strerror}", "choose a folder you can write to"
        ) from exc
    candidates: list[Candidate] = []
    for k, layout in enumerate(layouts):
        bands = {name: layout[i] for i, name in enumerate(task.output_bands)}
        if inputs is not None:
            bands.update({name: inputs[0, i].numpy() for i, name in enumerate(task.input_bands)})
        bands["valid"] = np.ones((size, size), np.float32)
        present = {name: name in bands for name in BAND_NAMES}
        path = write_raster(
            out / f"candidate_{k}.tif",
            bands,
            crs=crs,
            transform=transform,
            present=present,
            tags={
                "generated_by": str(ckpt),
                "targets": targets,
                "seed": seed,
                "candidate": k,
                "attribution": OSM_ATTRIBUTION,
            },
        )
        vectors = vector_layers(bands, transform, crs, resolution)
        with atomic_path(out / f"candidate_{k}.geojson") as tmp:
            vectors.to_file(tmp, driver="GeoJSON")
        achieved = measure_targets(delivered(bands), resolution)  # what the user receives: bands at 0.5
        result = measure(read_raster(path), sheds=False)[0]
        candidates.append(
            Candidate(
                k,
                path,
                {name: float(achieved.get(name, math.nan)) for name in targets},
                mean_relative_error(achieved, targets)[0],  # an unmeasurable target counts as 100 % off
                result.record()["patterns"],
            )
        )
    ranked = [candidates[i] for i in rank_candidates([c.achieved for c in candidates], targets)]
    card = draw_card(measure(read_raster(ranked[0].path), sheds=False)[0], out / "pattern_card.png")
    shown, shown_bands = layouts, list(task.output_bands)
    if inputs is not None:  # streets-to-buildings: draw the given streets with each candidate's output
        shown = np.concatenate([layouts, np.repeat(inputs.numpy(), len(layouts), axis=0)], axis=1)
        shown_bands += list(task.input_bands)
    sheet = contact_sheet(shown, shown_bands, candidates, targets, out / "contact_sheet.png")
    report: GenerateReport = {
        "checkpoint": str(ckpt),
        "targets": targets,
        "training_ranges": {k: list(v) for k, v in ranges.items()},
        # street-graph targets met by a search of each candidate's street threshold (Pix2PixTask.street_search)
        "street_search": task.street_search,
        "crs": crs.to_string(),
        "transform": list(transform)[:6],
        "resolution_m": resolution,
        "size_px": size,
        "candidates": [
            {
                "rank": rank + 1,
                "candidate": c.index,
                "file": c.path.name,
                "vectors": f"candidate_{c.index}.geojson",
                "targets": {
                    name: {
                        "requested": targets[name],
                        "achieved": c.achieved[name],
                        "relative_error": abs(relative_error(name, c.achieved[name], targets[name])),
                    }
                    for name in targets
                },
                "mean_relative_error": c.error,
                "patterns": c.patterns,
            }
            for rank, c in enumerate(ranked)
        ],
        "diversity": float(np.mean([np.abs(a - b).mean() for i, a in enumerate(layouts) for b in layouts[i + 1 :]]))
        if n > 1
        else 0.0,
        "contact_sheet": sheet.name,
        "pattern_card": card.name,
        "realism": {},
        "attribution": OSM_ATTRIBUTION,
    }
    if realism and root is not None:
        from citygen.workflows.realism_eval import candidates_realism

        shown_layouts = (
            layouts if inputs is None else np.concatenate([layouts, np.repeat(inputs.numpy(), n, axis=0)], 1)
        )
        try:
            report["realism"] = candidates_realism(
                root,
                shown_layouts,
                [*task.output_bands, *task.input_bands],
                resolution,
                targets,
                cities=trained.data.get("cities") or None,
                min_valid_fraction=float(trained.data.get("min_valid_fraction", 0.9)),
            )
        except (ConfigError, SourceError) as exc:  # too few real tiles to say what real looks like
            log.warning("realism not measured: %s", exc.problem)
    write_json(out / "report.json", report)
    # the folder holds what its report lists: candidates of an earlier, larger --n go
    listed = {c["file"] for c in report["candidates"]} | {c["vectors"] for c in report["candidates"]}
    for stale in [*out.glob("candidate_*.tif"), *out.glob("candidate_*.geojson")]:
        if stale.name not in listed:
            stale.unlink()
    return report


def _training_resolution(root: Path | None) -> float:
    if root is not None and (root / "tiles.parquet").is_file():
        tiles = pd.read_parquet(root / "tiles.parquet", columns=["minx", "maxx", "width"])
        return float(((tiles["maxx"] - tiles["minx"]) / tiles["width"]).median())
    return 2.0


def _input_window(path: Path, bands: list[str], size: int) -> tuple[torch.Tensor, CRS, Affine, float]:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        if src.width < size or src.height < size:
            raise ConfigError(
                f"{path.name} is {src.width}x{src.height} px, smaller than the model's {size} px",
                "pass a larger raster",
            )
        window = Window((src.width - size) // 2, (src.height - size) // 2, size, size)
    raster: RasterData = read_raster(path, window=window, bands=bands)
    array = np.stack([raster.bands[b] for b in bands])[None]
    return torch.from_numpy(array), raster.crs, raster.transform, raster.resolution_m


def contact_sheet(
    layouts: np.ndarray, bands: list[str], candidates: list[Candidate], targets: dict[str, float], path: Path
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from citygen.data.dataset import composite

    columns = min(4, len(layouts))
    rows = math.ceil(len(layouts) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 4.0 * rows), squeeze=False, layout="constrained")
    for ax, layout, candidate in zip(axes.ravel(), layouts, candidates, strict=False):
        ax.imshow(composite(layout, bands))
        text = "\n".join(f"{name}: {candidate.achieved[name]:.3g}" for name in targets)
        ax.set_title(f"candidate {candidate.index} (error {candidate.error:.0%})\n{text}", fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    wanted = ", ".join(f"{k}={v:g}" for k, v in targets.items())
    fig.suptitle(f"Generated layouts for {wanted}", fontsize=10)
    from matplotlib.patches import Patch

    from citygen.core.viz import COLORS

    legend = [Patch(color=COLORS[b], label=b) for b in COLORS if b in bands]
    if legend:
        fig.legend(handles=legend, loc="lower left", ncol=len(legend), fontsize=7, frameon=False)
    fig.text(0.99, 0.005, f"Trained on map data {OSM_ATTRIBUTION}", ha="right", fontsize=6, color="0.4")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
