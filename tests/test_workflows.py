"""Research workflows on a tiny trained model: generate (targets checked, files written), embed, compare."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio

from citygen.cli import main
from citygen.training import main as lightning_main

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "experiments"
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--data.num_workers", "0", "--data.batch_size", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_models(built_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYGEN_RUNS_DIR", str(runs))
        lightning_main(["fit", "--config", str(CONFIGS / "pix2pix_demo.yaml"), "--data.root", str(built_samples),
                        "--data.cities", "[helsinki_center]", "--run_name", "p2p", *TINY])  # fmt: skip
        lightning_main(["fit", "--config", str(CONFIGS / "ae_demo.yaml"), "--data.root", str(built_samples),
                        "--run_name", "ae", *TINY])  # fmt: skip
    return {name: sorted((runs / name).rglob("last.ckpt"))[-1] for name in ("p2p", "ae")}


def test_generate_writes_ranked_candidates(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "gen"
    args = ["generate", "--ckpt", str(tiny_models["p2p"]), "--target", "building_coverage=0.2", "--target",
            "intersection_density_km2=60", "--target", "green_share=0.1", "--n", "3", "--at", "-95.39,29.75",
            "--allow-extrapolation", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert [c["rank"] for c in report["candidates"]] == [1, 2, 3]
    errors = [c["mean_relative_error"] for c in report["candidates"]]
    assert errors == sorted(errors)
    assert set(report["candidates"][0]["targets"]) == {"building_coverage", "intersection_density_km2", "green_share"}
    with rasterio.open(out / "candidate_0.tif") as src:
        assert src.crs.to_epsg() == 32615 and src.res == (2.0, 2.0) and "streets" in src.descriptions
    assert (out / "contact_sheet.png").stat().st_size > 5000 and (out / "pattern_card.png").is_file()
    assert gpd.read_file(out / "candidate_0.geojson").crs.to_epsg() == 4326


def test_generate_refuses_unknown_and_out_of_range_targets(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["generate", "--ckpt", str(tiny_models["p2p"]), "--out", str(tmp_path / "x")]
    assert main([*base, "--target", "walkability=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown target(s) ['walkability']" in err and "building_coverage" in err
    assert main([*base, "--target", "building_coverage=0.99", "--target", "intersection_density_km2=60"]) == 2
    assert "outside the range seen in training" in capsys.readouterr().err


def test_embed_and_compare(tiny_models: dict[str, Path], built_samples: Path, tmp_path: Path) -> None:
    embeddings = tmp_path / "embeddings.parquet"
    assert (
        main(
            [
                "embed",
                "--ckpt",
                str(tiny_models["ae"]),
                "--data",
                str(built_samples),
                "--out",
                str(embeddings),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    table = gpd.read_parquet(embeddings)
    assert {"city", "split", "latent", "metric_street_density_km_km2"} <= set(table.columns)
    assert table.crs.to_epsg() == 4326 and len(table["latent"].iloc[0]) > 0
    assert main(["compare", "--embeddings", str(embeddings), "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    probe = report["probes"]["houston_vs_copenhagen"]
    assert probe["cities"] == ["Copenhagen", "Houston"] and 0 <= probe["accuracy"] <= 1 and probe["chance"] >= 0.5
    for figure in report["figures"].values():
        assert (tmp_path / "report" / figure).stat().st_size > 5000
