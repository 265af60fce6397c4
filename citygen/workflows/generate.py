"""Generate candidate layouts from target parameters with a trained pix2pix model (`citygen generate`).

Each candidate is written as a citygen GeoTIFF (same band vocabulary, UTM CRS) placed at ``--at LON,LAT``
(default: Copenhagen City Hall Square, 55.6761 N 12.5683 E), plus vector exports (streets recovered from
the raster as lines, buildings as polygons) and a report of requested vs achieved values measured with the
metric suite. Candidates are ranked by their mean absolute relative error over the targets
(:func:`citygen.metrics.targets.rank_candidates`, as ``citygen evaluate`` picks its best candidate; an
unmeasurable target counts as 100 % off).

Models chain: ``--ckpt pretrained`` (the shipped two stages, :mod:`citygen.weights`) or ``--ckpt A --then B``
draws streets with stage 1 from the targets, then buildings and green with stage 2 on those streets, as
delivered (thresholded at 0.5). ``--streets FILE`` gives stage 2 a real street network instead of stage 1's.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
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
from citygen.metrics.targets import (
    get_target,
    mean_relative_error,
    measure_targets,
    rank_candidates,
    relative_error,
)
from citygen.workflows.chain import ChainedTask
from citygen.workflows.checkpoints import TrainedTask, load_stages, ranges_of
from citygen.workflows.figures import contact_sheet
from citygen.workflows.results import GenerateReport, write_json

log = logging.getLogger(__name__)
DEFAULT_AT = (12.5683, 55.6761)  # lon, lat: Copenhagen City Hall Square
NEAREST_CROPS = 32  # a target not given takes the median of the training crops nearest the given ones


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


def fill_targets(targets: dict[str, float], names: list[str], crops: pd.DataFrame) -> dict[str, float]:
    """``targets`` plus every one of ``names`` not given: the median over the training crops nearest the given
    targets (distances in units of each target's scale), so a filled value goes with the given ones."""
    missing = [name for name in names if name not in targets]
    if not missing:
        return targets
    absent = [name for name in missing if name not in crops or crops[name].notna().sum() == 0]
    if absent:
        raise ConfigError(f"target {absent[0]} is needed by this model", f"add --target {absent[0]}=VALUE")
    given = [name for name in targets if name in crops]
    rows = crops.dropna(subset=[*given, *missing])
    if given and len(rows):
        scale = np.array([get_target(g).scale for g in given])
        wanted = np.array([targets[g] for g in given])
        distance = np.abs((rows[given].to_numpy() - wanted) / scale).sum(axis=1)
        rows = rows.iloc[np.argsort(distance)[:NEAREST_CROPS]]
    filled = dict(targets)
    for name in missing:
        filled[name] = float(rows[name].median())
        log.warning(
            "no --target %s given: using %.4g, as in the training crops nearest the given targets", name, filled[name]
        )
    return filled


def check_targets(
    targets: dict[str, float], conditions: list[str], ranges: dict[str, tuple[float, float]], *, strict: bool
) -> dict[str, float]:
    """Refuse unknown targets and (``strict``) targets outside the training range, printing its exact limits."""
    unknown = [name for name in targets if name not in conditions]
    if unknown:
        raise ConfigError(f"unknown target(s) {unknown}", f"this model is conditioned on: {', '.join(conditions)}")
    for name, value in targets.items():
        if name in ranges and not ranges[name][0] <= value <= ranges[name][1]:
            low, high = ranges[name]
            message = f"target {name}={value!r} lies outside the range seen in training [{low!r}, {high!r}]"
            if strict:
                raise ConfigError(message, "choose a value inside the range, or pass --allow-extrapolation")
            log.warning("%s; the model extrapolates", message)
    return targets


def chain(stages: list[TrainedTask], streets: Path | None) -> list[TrainedTask]:
    """The stages to run: stage 2 alone when ``--streets`` gives it a real street network; checks that each
    stage's input bands come from the one before or from ``--streets``."""
    if streets is not None:
        takes = [i for i, s in enumerate(stages) if s.task.input_bands]
        if not takes:
            raise ConfigError(
                "--streets was given, but this model draws layouts from targets alone and takes no input bands",
                "drop --streets, or pass a streets-to-buildings checkpoint (configs/experiments/pix2pix_streets_demo.yaml)",
            )
        stages = stages[takes[0] :]
    elif stages[0].task.input_bands:
        raise ConfigError(
            f"this model draws on {stages[0].task.input_bands} of a real place",
            "pass --streets FILE.tif (a GeoTIFF built by citygen)",
        )
    for before, after in itertools.pairwise(stages):
        twice = [b for b in after.task.output_bands if b in before.task.output_bands]
        if twice:
            raise ConfigError(
                f"{after.path.name} draws {twice}, which {before.path.name} draws already",
                "chain a stage that draws streets with one that dresses them (configs/experiments/pix2pix_stage*.yaml)",
            )
        lacking = [b for b in after.task.input_bands if b not in before.task.output_bands]
        if lacking:
            raise ConfigError(
                f"stage {after.path.name} needs {lacking}, which {before.path.name} does not draw",
                "chain a stage that draws them, or pass --streets FILE.tif",
            )
    return stages


def draw_layouts(
    stages: list[TrainedTask],
    targets: dict[str, float],
    inputs: torch.Tensor | None,
    *,
    n: int,
    seed: int,
    size: int,
    resolution: float,
) -> tuple[np.ndarray, list[str]]:
    """``[n, C, H, W]`` candidates and their band names: every stage's output bands, then ``inputs``' bands."""
    task = ChainedTask([s.task for s in stages])
    t = torch.tensor([[targets[c] for c in task.conditions]], dtype=torch.float32) if task.conditions else None
    out = task.generate(t, inputs, size=size, num_candidates=n, seed=seed, resolution_m=resolution)[0].numpy()
    if inputs is None:
        return out, list(task.output_bands)
    given = np.repeat(inputs.numpy(), n, axis=0)
    return np.concatenate([out, given], axis=1), [*task.output_bands, *task.input_bands]


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
    then: str | Path | None = None,
    n: int = 8,
    seed: int = 0,
    at: tuple[float, float] | None = None,
    streets: str | Path | None = None,
    strict: bool = False,
    street_search: bool | None = None,
    realism: bool = True,
    reference: tuple[Path, Sequence[str] | None] | None = None,
) -> GenerateReport:
    """Write n candidates, their vector exports, a contact sheet, a pattern card and report.json.

    ``ckpt``: a pix2pix checkpoint or export, or ``pretrained`` (the shipped two stages); ``then``: a second
    stage drawn on the first one's streets. ``street_search`` overrides the models' own setting (None keeps it);
    turning it off is about 5-10x faster on the CPU but leaves intersection density to the generator alone
    (benchmarks/RESULTS.md). Achieved targets are measured on the delivered layout (coverage bands thresholded
    at 0.5, as the GeoJSON draws them). ``realism``: also score the candidates against the real test tiles of
    the training dataset, beside the held-out real baseline (about a minute the first time in a process);
    ``reference``: (dataset, cities) to score against instead, e.g. when the training dataset is not at hand.
    """
    from citygen.metrics.card import draw_card
    from citygen.metrics.suite import measure

    stages = chain(load_stages(ckpt, then), Path(streets) if streets is not None else None)
    for stage in stages:
        if street_search is not None:
            stage.task.street_search = street_search
    size = int(stages[0].meta["input_size"])
    resolution = stages[0].resolution_m()
    ranges: dict[str, tuple[float, float]] = {}
    conditions: list[str] = []
    full = dict(targets)  # the requested targets and, for every condition not given, a value filled in
    for stage in stages:
        crops = stage.training_crops()
        ranges |= ranges_of(crops)
        given = {k: v for k, v in full.items() if k in stage.task.conditions}
        full |= fill_targets(given, list(stage.task.conditions), crops)
        conditions += [c for c in stage.task.conditions if c not in conditions]
    targets = check_targets(dict(targets), conditions, ranges, strict=strict)
    inputs, crs, transform = None, None, None
    if streets is not None:
        inputs, crs, transform, resolution = _input_window(Path(streets), list(stages[0].task.input_bands), size)
    if crs is None or transform is None:
        crs, transform = placement(at, size, resolution)
    layouts, band_names = draw_layouts(stages, full, inputs, n=n, seed=seed, size=size, resolution=resolution)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output folder {out}: {exc.strerror}", "choose a folder you can write to"
        ) from exc
    source = " -> ".join(str(s.path) for s in stages)
    candidates: list[Candidate] = []
    measured = []  # each candidate's metric-suite result, for its patterns and (the best one's) pattern card
    for k, layout in enumerate(layouts):
        bands = {name: layout[i] for i, name in enumerate(band_names)}
        bands["valid"] = np.ones((size, size), np.float32)
        present = {name: name in bands for name in BAND_NAMES}
        tags = {
            "generated_by": source,
            "targets": full,
            "seed": seed,
            "candidate": k,
            "attribution": OSM_ATTRIBUTION,
        }
        path = write_raster(out / f"candidate_{k}.tif", bands, crs=crs, transform=transform, present=present, tags=tags)
        vectors = vector_layers(bands, transform, crs, resolution)
        with atomic_path(out / f"candidate_{k}.geojson") as tmp:
            vectors.to_file(tmp, driver="GeoJSON")
        achieved = measure_targets(delivered(bands), resolution)  # what the user receives: bands at 0.5
        result = measure(read_raster(path), sheds=False)[0]
        measured.append(result)
        candidates.append(
            Candidate(
                k,
                path,
                {name: float(achieved.get(name, math.nan)) for name in full},
                # over the requested targets only; an unmeasurable target counts as 100 % off
                mean_relative_error(achieved, targets)[0],
                result.record()["patterns"],
            )
        )
    ranked = [candidates[i] for i in rank_candidates([c.achieved for c in candidates], targets)]
    card = draw_card(measured[ranked[0].index], out / "pattern_card.png")
    sheet = contact_sheet(layouts, band_names, candidates, full, out / "contact_sheet.png")
    report: GenerateReport = {
        "checkpoint": source,
        "stages": [str(s.path) for s in stages],
        "targets": targets,
        # conditions not requested: the median of the training crops nearest the requested targets (not ranked on)
        "filled_targets": {k: v for k, v in full.items() if k not in targets},
        "training_ranges": {k: list(v) for k, v in ranges.items()},
        # street-graph targets met by a search of each candidate's street threshold (Pix2PixTask.street_search)
        "street_search": any(s.task.street_search for s in stages),
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
                        "requested": full[name],
                        "achieved": c.achieved[name],
                        "relative_error": abs(relative_error(name, c.achieved[name], full[name])),
                        "filled": name not in targets,
                    }
                    for name in full
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
    last = stages[-1]  # the real tiles that carry every band drawn: the last stage's training places
    if reference is None and last.data_root is not None:
        reference = (last.data_root, last.data.get("cities") or None)
    if realism and reference is not None:
        from citygen.workflows.realism_eval import candidates_realism

        try:
            report["realism"] = candidates_realism(
                reference[0],
                layouts,
                band_names,
                resolution,
                targets,
                cities=reference[1],
                min_valid_fraction=float(last.data.get("min_valid_fraction", 0.9)),
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
