"""Write the example notebooks (without outputs). Run: python notebooks/make_notebooks.py"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """import os
import tempfile
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")  # W&B runs stay on disk unless you set WANDB_MODE=online
REPO = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
WORK = Path(os.environ.get("CITYGEN_NOTEBOOK_DIR") or tempfile.mkdtemp(prefix="citygen-nb-"))
os.environ["CITYGEN_RUNS_DIR"] = str(WORK / "runs")  # this notebook's training runs
print("working in", WORK)"""

NOTEBOOKS = {
    "01_build_and_inspect.ipynb": [
        new_markdown_cell(
            "# 01 Build and inspect city rasters\n\n"
            "Turn real OpenStreetMap extracts shipped with citygen into multi-band GeoTIFFs and a tile dataset, "
            "then look at what came out. Map data (c) OpenStreetMap contributors, ODbL 1.0."
        ),
        new_code_cell(SETUP),
        new_code_cell(
            "from citygen.data.samples import list_samples\n\n"
            "for s in list_samples()[:8]:\n"
            "    print(f\"{s.id:<24} {s.city:<28} {','.join(s.layers)}\")"
        ),
        new_markdown_cell(
            "Build three cities: Houston's grid, Copenhagen's Vesterbro, and central Helsinki (every layer)."
        ),
        new_code_cell(
            "from citygen.data.build import build_dataset\n"
            "from citygen.data.spec import parse_city\n\n"
            'DATA = WORK / "data"\n'
            'specs = [parse_city({"id": c, "sample": c}) for c in ("houston_montrose", "cph_vesterbro", "helsinki_center")]\n'
            "for result in build_dataset(specs, DATA, progress=False):\n"
            "    print(result.summary())"
        ),
        new_code_cell(
            "import geopandas as gpd\n\n"
            'tiles = gpd.read_parquet(DATA / "tiles.parquet")\n'
            'tiles.groupby(["city", "split"]).size().unstack(fill_value=0)'
        ),
        new_markdown_cell("The splits are spatial blocks: tiles of different splits never overlap."),
        new_code_cell(
            'ax = tiles[tiles.city == "cph_vesterbro"].plot(column="split", legend=True, edgecolor="k", figsize=(5, 5))\n'
            'ax.set_title("cph_vesterbro tiles by split");'
        ),
        new_code_cell(
            "from citygen.data.dataset import CityTileDataset\n\n"
            'dataset = CityTileDataset(DATA, split="train", cities=["helsinki_center"])\n'
            "sample = dataset[0]\n"
            'print(sample["tile_id"], sample["crs"], sample["bounds"], tuple(sample["image"].shape))\n'
            "dataset.plot(sample);"
        ),
        new_markdown_cell("The same metric suite scores vector data and rasters: Houston's grid against Copenhagen's."),
        new_code_cell(
            "from citygen.metrics.suite import compute_metrics\n\n"
            'table = compute_metrics(["houston_montrose", "cph_vesterbro", str(DATA / "houston_montrose.tif")], sheds=False)\n'
            'table[["source", "street_density_km_km2", "intersection_density_km2", "prop_3way", "prop_4way", "orientation_entropy", "orientation_order"]]'
        ),
    ],
    "02_embed_and_compare_houston_copenhagen.ipynb": [
        new_markdown_cell(
            "# 02 Embed and compare Houston and Copenhagen\n\n"
            "Train a small convolutional autoencoder on street tiles of Houston and Copenhagen, embed every tile, "
            "and ask whether the latent space separates the two cities. Each tile's vector holds texture statistics "
            "of its latent map (how the autoencoder's codes repeat and turn across the tile; see "
            "`citygen.workflows.embed`). The settings are small so the notebook "
            "runs in a few minutes on a laptop CPU; `configs/experiments/ae_full.yaml` is the GPU-sized run. "
            "Map data (c) OpenStreetMap contributors, ODbL 1.0."
        ),
        new_code_cell(SETUP + "\nEPOCHS = 2  # raise for better embeddings"),
        new_code_cell(
            "from citygen.data.build import build_dataset\n"
            "from citygen.data.spec import parse_city\n\n"
            'DATA = WORK / "data"\n'
            'cities = ("houston_montrose", "houston_museum_district", "cph_vesterbro", "cph_indre_by_streets")\n'
            'build_dataset([parse_city({"id": c, "sample": c}) for c in cities], DATA, progress=False);'
        ),
        new_code_cell(
            "from citygen.learn.training import main as fit\n\n"
            'fit(["fit", "--config", str(REPO / "configs/experiments/ae_demo.yaml"),\n'
            '     "--data.root", str(DATA), "--data.bands", "[streets]", "--model.init_args.bands", "[streets]",\n'
            '     "--trainer.max_epochs", str(EPOCHS), "--trainer.limit_train_batches", "10", "--trainer.limit_val_batches", "4",\n'
            '     "--run_name", "nb_ae"])\n'
            'checkpoint = sorted((WORK / "runs").rglob("last.ckpt"))[-1]\n'
            "checkpoint"
        ),
        new_code_cell(
            "from citygen.workflows.embed import embed\n\n"
            'embeddings = embed(checkpoint, WORK / "embeddings.parquet", data=DATA)\n'
            'embeddings[["tile_id", "city", "split", "metric_street_density_km_km2"]].head()'
        ),
        new_code_cell(
            "from citygen.workflows.compare import compare\n\n"
            'report = compare(WORK / "embeddings.parquet", WORK / "compare", data_root=DATA)\n'
            "def fmt(value):\n"
            '    return "n/a" if value is None else f"{value:.2f}"\n\n'
            'for name, probe in report["probes"].items():\n'
            "    print(f\"{name}: test {fmt(probe['accuracy'])} (chance {fmt(probe['chance'])}), \"\n"
            "          f\"block cross-validation {fmt(probe['cv_accuracy'])} (chance {fmt(probe['cv_chance'])})\")"
        ),
        new_code_cell(
            "from IPython.display import Image, display\n\n"
            'display(Image(str(WORK / "compare" / "tiles_pca.png"), width=600))\n'
            'display(Image(str(WORK / "compare" / "nearest_neighbours.png"), width=700))'
        ),
    ],
    "03_generate_from_targets.ipynb": [
        new_markdown_cell(
            "# 03 Generate layouts from target parameters\n\n"
            "Train a small parameter-conditioned pix2pix model on cities with streets, buildings and green space, "
            "ask it for layouts with a given building coverage, intersection density and green share, and "
            "measure what it delivers with the metric suite. Building coverage and green share are met exactly "
            "by the share constraint, intersection density by a search of each candidate's street threshold "
            "(`street_search`); how the layouts look is up to the generator. Small settings: expect rough layouts; "
            "`configs/experiments/pix2pix_full.yaml` is the GPU-sized run. "
            "Map data (c) OpenStreetMap contributors, ODbL 1.0."
        ),
        new_code_cell(SETUP + "\nEPOCHS = 1  # raise for better layouts"),
        new_code_cell(
            "from citygen.data.build import build_dataset\n"
            "from citygen.data.spec import parse_city\n\n"
            'DATA = WORK / "data"\n'
            'cities = ("helsinki_center", "kotka_karhula", "nyc_west_village")\n'
            'build_dataset([parse_city({"id": c, "sample": c}) for c in cities], DATA, progress=False);'
        ),
        new_code_cell(
            "from citygen.learn.training import main as fit\n\n"
            'fit(["fit", "--config", str(REPO / "configs/experiments/pix2pix_demo.yaml"),\n'
            '     "--data.root", str(DATA), "--data.cities", str(list(cities)),\n'
            '     "--trainer.max_epochs", str(EPOCHS), "--trainer.limit_train_batches", "6", "--trainer.limit_val_batches", "2",\n'
            '     "--run_name", "nb_pix2pix"])\n'
            'checkpoint = sorted((WORK / "runs").rglob("last.ckpt"))[-1]'
        ),
        new_code_cell(
            "from citygen.workflows.generate import generate\n\n"
            'report = generate(checkpoint, {"building_coverage": 0.25, "intersection_density_km2": 80, "green_share": 0.1},\n'
            '                  WORK / "generated", n=4, seed=0, at=(-95.39, 29.75), strict=False)\n'
            'for c in report["candidates"]:\n'
            '    print(c["rank"], c["file"], {k: round(v["achieved"], 3) for k, v in c["targets"].items()})'
        ),
        new_code_cell(
            'from IPython.display import Image\n\nImage(str(WORK / "generated" / report["contact_sheet"]), width=800)'
        ),
    ],
}


def main(out: Path = HERE) -> None:
    """Write every notebook to ``out`` with stable cell ids, formatted by ruff, so a rerun changes no line."""
    import subprocess
    import sys

    for name, cells in NOTEBOOKS.items():
        for number, cell in enumerate(cells):
            cell.id = f"{Path(name).stem[:2]}-{number:02d}"
        notebook = new_notebook(
            cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        )
        nbformat.write(notebook, out / name)
        print("wrote", out / name)
    settings = ["--config", str(HERE.parent / "pyproject.toml")]  # the project's line length, wherever `out` is
    paths = [str(out / n) for n in NOTEBOOKS]
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", *settings, *paths], check=True)


if __name__ == "__main__":
    main()
