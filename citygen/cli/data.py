"""`citygen data ...`: list the shipped samples, build datasets, inspect rasters."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from citygen.core import OSM_ATTRIBUTION, settings
from citygen.core.errors import ConfigError
from citygen.data.samples import Sample


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citygen data",
        description=f"Turn cities into georeferenced rasters and a tile dataset. OpenStreetMap data {OSM_ATTRIBUTION}.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    samples = sub.add_parser(
        "samples",
        help="list the registered places: the samples shipped with citygen and the research corpus",
        description="List every registered place (id, city, country, group, layers, area, source, licence). "
        "Samples install with the package; the research corpus lives in the repository (data_pipelines/corpus).",
    )
    samples.add_argument("--json", action="store_true", help="print JSON instead of a table")
    which = samples.add_mutually_exclusive_group()
    which.add_argument("--corpus", action="store_true", help="only the research corpus")
    which.add_argument("--samples-only", action="store_true", help="only the samples installed with the package")
    samples.add_argument(
        "--groups", type=Path, help="groups file for the `group` column (default configs/compare/groups.yaml)"
    )

    build = sub.add_parser(
        "build",
        help="build GeoTIFFs, the tile index and the manifest for the cities of a config",
        description="Build one GeoTIFF per city (bands: see `citygen data bands`), DIR/tiles.parquet and "
        "DIR/manifest.json. Cities already built from the same spec and files are skipped. Either give "
        "--config, or describe one city with --id and one of --sample/--place/--bbox/--point/--file.",
    )
    build.add_argument(
        "--config",
        type=Path,
        help="YAML build config (`defaults` + `cities`), e.g. configs/data/samples.yaml",
    )
    build.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default: {settings.data_dir()}, or $CITYGEN_DATA_DIR)",
    )
    build.add_argument("--cities", help="comma-separated city ids: build only these cities of the config")
    build.add_argument("--workers", type=int, default=1, help="cities built in parallel (default 1)")
    build.add_argument(
        "--executor",
        choices=["process", "dask"],
        default="process",
        help="local processes, or a Dask cluster",
    )
    build.add_argument(
        "--scheduler",
        help="Dask scheduler address (tcp://host:8786); without it a local Dask cluster is started",
    )
    build.add_argument("--force", action="store_true", help="rebuild cities even if their GeoTIFF is up to date")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    one = build.add_argument_group("a single city without a config")
    one.add_argument("--id", help="city id (file name of its GeoTIFF)")
    one.add_argument("--sample", help="a shipped sample id (see `citygen data samples`)")
    one.add_argument("--place", help='an OSM place name, e.g. "Frederiksberg, Denmark" (needs internet)')
    one.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        metavar=("WEST", "SOUTH", "EAST", "NORTH"),
        help="bbox in degrees (needs internet)",
    )
    one.add_argument(
        "--point",
        type=float,
        nargs=2,
        metavar=("LAT", "LON"),
        help="centre point in degrees (needs internet)",
    )
    one.add_argument("--dist", type=float, help="half-width in metres around --point (default 1000)")
    one.add_argument(
        "--file", action="append", type=str, help="local .osm/.osm.pbf/.graphml/.geojson file (repeatable)"
    )
    one.add_argument(
        "--network-type", choices=["all", "drive", "walk", "bike"], help="street network type (default all)"
    )
    one.add_argument(
        "--layers",
        help="comma-separated layers to build, e.g. streets,buildings (default: every layer the sources hold)",
    )
    one.add_argument(
        "--clip", type=float, nargs=4, metavar=("WEST", "SOUTH", "EAST", "NORTH"), help="cut local files to this box"
    )
    one.add_argument("--resolution", type=float, help="metres per pixel (default 2)")
    one.add_argument("--tile-size", type=int, help="tile size in pixels (default 256)")
    one.add_argument("--osm-date", help="OSM snapshot date for downloads, e.g. 2024-01-01T00:00:00Z")

    sub.add_parser("bands", help="describe the band vocabulary of citygen rasters")

    info = sub.add_parser("info", help="describe a built dataset folder or one GeoTIFF")
    info.add_argument(
        "path",
        type=Path,
        nargs="?",
        default=None,
        help=f"dataset folder or .tif (default {settings.data_dir()})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "samples":
        return _samples(args)
    if args.command == "bands":
        from citygen.core.bands import BANDS

        for band in BANDS:
            print(f"{band.name:<11} [{band.unit}] {band.description}")
        return 0
    if args.command == "info":
        return _info(args.path or settings.data_dir())
    return _build(args)


def _samples(args: argparse.Namespace) -> int:
    from citygen.data.samples import list_corpus, list_registered, list_samples
    from citygen.workflows.groups import load_groups

    places = list_corpus() if args.corpus else list_samples() if args.samples_only else list_registered()
    group_of = load_groups(args.groups, strict=False).of_place
    rows = [{**s.describe(), "group": group_of.get(s.id), "area_km2": _area_km2(s)} for s in places]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'id':<24}{'city':<30}{'set':<8}{'group':<16}{'km2':>7}  {'layers':<40}source")
    for row in rows:
        kind = "corpus" if row["corpus"] else "sample"
        area = "" if row["area_km2"] is None else f"{row['area_km2']:.1f}"
        print(
            f"{row['id']:<24}{row['city'][:29]:<30}{kind:<8}{row['group'] or '-':<16}{area:>7}  "
            f"{','.join(row['layers'])[:39]:<40}{row['source']}"
        )
    n_corpus = sum(r["corpus"] for r in rows)
    print(
        f"\n{len(rows)} places ({len(rows) - n_corpus} samples, {n_corpus} corpus); data {OSM_ATTRIBUTION}.\n"
        "Build the samples: citygen data build --config configs/data/samples.yaml\n"
        "Build everything:  citygen data build --config configs/data/corpus.yaml --out data/corpus --workers 2"
    )
    return 0


def _area_km2(sample: Sample) -> float | None:
    """The area a place covers: its clip box, else its sample extent (km2); None when unknown."""
    import math

    if sample.clip is not None:
        west, south, east, north = sample.clip
        mid = math.radians((south + north) / 2)
        return round((east - west) * 111.32 * math.cos(mid) * (north - south) * 110.57, 2)
    width, height = sample.extent_km
    return None if math.isnan(width) else round(width * height, 2)


def _single_city(args: argparse.Namespace) -> dict[str, object] | None:
    given = {k: getattr(args, k) for k in ("sample", "place", "bbox", "point", "file") if getattr(args, k)}
    if not given:
        return None
    city: dict[str, object] = {"id": args.id or args.sample}
    if not city["id"]:
        raise ConfigError(
            "a single-city build needs --id",
            "for example: citygen data build --id delft --place 'Delft, Netherlands'",
        )
    for key, value in given.items():
        city["files" if key == "file" else key] = list(value) if isinstance(value, (list, tuple)) else value
    for flag, key in (
        ("dist", "dist"),
        ("network_type", "network_type"),
        ("resolution", "resolution"),
        ("tile_size", "tile_size"),
        ("osm_date", "osm_date"),
        ("clip", "clip"),
    ):
        if getattr(args, flag) is not None:
            city[key] = getattr(args, flag)
    if args.tile_size is not None:
        city["stride"] = args.tile_size
    if args.layers:
        city["layers"] = [layer.strip() for layer in args.layers.split(",") if layer.strip()]
    return city


def _build(args: argparse.Namespace) -> int:
    from citygen.data.build import build_dataset
    from citygen.data.spec import load_config, parse_city

    single = _single_city(args)
    if single is not None and args.config is not None:
        raise ConfigError("give either --config or a single city (--sample/--place/--bbox/--point/--file), not both")
    if single is None and args.config is None:
        raise ConfigError(
            "nothing to build",
            "pass --config configs/data/samples.yaml, or --id NAME with --sample/--place/--bbox/--point/--file",
        )
    specs = [parse_city(single, base_dir=Path.cwd())] if single is not None else load_config(args.config)
    if args.cities:
        wanted = [c.strip() for c in args.cities.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in {s.id for s in specs}]
        if unknown:
            raise ConfigError(
                f"--cities names ids not in the config: {unknown}",
                f"known ids: {', '.join(s.id for s in specs)}",
            )
        specs = [s for s in specs if s.id in wanted]
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    out = args.out or settings.data_dir()
    results = build_dataset(
        specs,
        out,
        workers=args.workers,
        executor=args.executor,
        scheduler=args.scheduler,
        force=args.force,
        progress=not args.no_progress and sys.stderr.isatty() and not os.environ.get("CI"),
    )
    print()
    for result in results:
        if result.status == "failed":
            print(f"error: {result.city}: {result.error}", file=sys.stderr)
        else:
            print(result.summary())
    manifest = Path(out) / "manifest.json"
    if manifest.is_file():
        for line in json.loads(manifest.read_text()).get("warnings", []):
            print(f"warning: {line}", file=sys.stderr)
    failed = [r for r in results if r.status == "failed"]
    print(f"\n{len(results) - len(failed)} of {len(results)} cities ready in {out}/ (tiles.parquet, manifest.json)")
    if failed:
        print(f"{len(failed)} city(ies) failed: {', '.join(r.city for r in failed)}", file=sys.stderr)
        return 2
    return 0


def _info(path: Path) -> int:
    import geopandas as gpd

    from citygen.data.geotiff import read_raster

    if path.is_dir():
        index = path / "tiles.parquet"
        if not index.is_file():
            raise ConfigError(
                f"{path} holds no tiles.parquet",
                "build a dataset first: citygen data build --config configs/data/samples.yaml",
            )
        tiles = gpd.read_parquet(index)
        counts = tiles.groupby(["city", "split"]).size().unstack(fill_value=0)
        print(f"{path}: {len(tiles)} tiles of {tiles['height'].iloc[0]} px in {tiles['city'].nunique()} cities")
        print(counts.to_string())
        return 0
    raster = read_raster(path)
    shape = next(iter(raster.bands.values())).shape
    print(f"{path}: {shape[1]}x{shape[0]} px, {raster.resolution_m:g} m/px, {raster.crs.to_string()}")
    valid = raster.bands["valid"] > 0.5
    for name, array in raster.bands.items():
        mean = float(array[valid].mean()) if valid.any() else float("nan")
        flag = "" if raster.present.get(name, True) else "  (missing in the source)"
        print(f"  {name:<11} mean over valid pixels {mean:.4f}{flag}")
    return 0
