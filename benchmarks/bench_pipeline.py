"""Benchmark the data pipeline on every shipped sample city. Prints figures; asserts nothing.

Usage: python benchmarks/bench_pipeline.py [--cities a,b] [--workers 2] [--large]

Per city (each in a fresh process, so peak memory is the city's own): seconds per stage (load, project,
rasterize, write, tile), km2 per second, peak resident memory, and the ratio of the rasterize stage to a
bare `rasterio.features.rasterize` of the same geometries on the same grid: once on the output grid (the
practical limit for a binary burn) and once on the supersampled grid citygen burns to get coverage
fractions. Then the wall time of building all samples with --workers processes.
With --large it also builds a 20 km x 20 km area at 2 m (Campo Grande's street grid, repeated in a
mosaic of copies) and reports its peak memory against the 3 GB target.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bare_rasterize(spec) -> tuple[float, float]:
    """Seconds for one bare rasterize per layer on the output grid and on the supersampled grid."""
    from affine import Affine
    from rasterio import features

    from citygen.data.rasterize import CityRasterizer, grid_for
    from citygen.data.sources import load_city

    city = load_city(spec)
    grid = grid_for(city.extent, crs=city.crs, resolution=spec.resolution)
    layers = CityRasterizer(city, grid, supersample=spec.supersample).layers
    out = {}
    for k in (1, spec.supersample):
        start = time.perf_counter()
        for window in grid.windows():
            from rasterio.windows import transform as window_transform

            transform = window_transform(window, grid.transform)
            for layer in layers.values():
                if len(layer.geometries):
                    features.rasterize(
                        layer.geometries,
                        out_shape=(int(window.height) * k, int(window.width) * k),
                        transform=transform @ Affine.scale(1 / k),
                        fill=0,
                        default_value=1,
                        dtype="uint8",
                    )
        out[k] = time.perf_counter() - start
    return out[1], out[spec.supersample]


def _one_city(spec, out_dir: str, queue) -> None:
    from citygen.data.build import build_city
    from citygen.data.tiles import city_tiles

    result = build_city(spec, out_dir, force=True)
    if result.status == "failed":
        queue.put({"city": spec.id, "error": result.error})
        return
    start = time.perf_counter()
    city_tiles(result.path, spec)
    timings = dict(result.record["timings_s"], tile=time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bare_1, bare_k = _bare_rasterize(spec)
    queue.put(
        {
            "city": spec.id,
            "timings": timings,
            "km2": result.record["area_km2"],
            "peak_mb": peak_mb,
            "bare_1": bare_1,
            "bare_k": bare_k,
        }
    )


def _in_fresh_process(spec, out_dir: str) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_one_city, args=(spec, out_dir, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _large_area_spec(tmp: Path):
    """A 20 km x 20 km city: Campo Grande's streets tiled 2 x 1 (its extract is 10.5 x 22 km)."""
    import osmnx as ox

    from citygen.data.sources import load_city
    from citygen.data.spec import parse_city

    campo = load_city("campo_grande")
    graph = campo.graph
    shifted = ox.project_graph(graph, to_crs="EPSG:4326")
    mosaic = __import__("networkx").MultiDiGraph(crs="EPSG:4326")
    for copy in range(2):
        offset = copy * 0.0975  # degrees of longitude, about 10.2 km here
        relabel = {n: copy * 10**12 + int(n) for n in shifted.nodes}  # GraphML node ids must stay integers
        for node, data in shifted.nodes(data=True):
            mosaic.add_node(relabel[node], **{**data, "x": data["x"] + offset})
        for u, v, data in shifted.edges(data=True):
            data = dict(data)
            if "geometry" in data:
                import shapely

                data["geometry"] = shapely.affinity.translate(data["geometry"], xoff=offset)
            mosaic.add_edge(relabel[u], relabel[v], **data)
    path = tmp / "campo_mosaic.graphml"
    ox.save_graphml(mosaic, path)
    west = min(d["x"] for _, d in mosaic.nodes(data=True))
    south = min(d["y"] for _, d in mosaic.nodes(data=True))
    return parse_city({"id": "large_20km", "files": [{"path": str(path), "layers": ["streets"]}]}), (
        west,
        south,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cities", help="comma-separated sample ids (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--large", action="store_true", help="also build a 20 km x 20 km area")
    args = parser.parse_args()
    from citygen.data.build import build_dataset
    from citygen.data.spec import load_config

    specs = load_config(ROOT / "configs" / "data" / "samples.yaml")
    if args.cities:
        specs = [s for s in specs if s.id in args.cities.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"{'city':<24}{'load':>6}{'proj':>6}{'rast':>7}{'write':>7}{'tile':>6}{'km2':>8}{'km2/s':>8}{'peak MB':>9}{'vs bare 1x':>11}{'vs bare 4x':>11}"
        )
        for spec in specs:
            r = _in_fresh_process(spec, tmp)
            if "error" in r:
                print(f"{spec.id:<24} FAILED: {r['error']}")
                continue
            t = r["timings"]
            total = sum(t.values())
            print(
                f"{r['city']:<24}{t['load']:>6.1f}{t['project']:>6.1f}{t['rasterize']:>7.2f}{t['write']:>7.2f}{t['tile']:>6.2f}"
                f"{r['km2']:>8.1f}{r['km2'] / total:>8.1f}{r['peak_mb']:>9.0f}{t['rasterize'] / r['bare_1']:>11.2f}{t['rasterize'] / r['bare_k']:>11.2f}"
            )
        start = time.perf_counter()
        results = build_dataset(specs, Path(tmp) / "all", workers=args.workers, progress=False)
        wall = time.perf_counter() - start
        print(
            f"\nall {len(results)} samples with --workers {args.workers}: {wall:.1f} s wall (target < 120 s on 2 cores)"
        )
        if args.large:
            spec, _ = _large_area_spec(Path(tmp))
            r = _in_fresh_process(spec, tmp)
            if "error" in r:
                print(f"20 km x 20 km build FAILED: {r['error']}")
                return
            print(
                f"20 km x 20 km at 2 m: {r.get('km2', float('nan')):.0f} km2 valid, peak {r.get('peak_mb', float('nan')):.0f} MB (target < 3072 MB), {sum(r.get('timings', {}).values()):.1f} s"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
