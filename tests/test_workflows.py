"""Research workflows on a tiny trained model: generate (targets checked, files written), embed, compare."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from citygen.cli import main
from citygen.learn.training import main as lightning_main

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "experiments"
TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--data.num_workers", "0", "--data.batch_size", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_models(built_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYGEN_RUNS_DIR", str(runs))
        lightning_main(["fit", "--config", str(CONFIGS / "pix2pix_demo.yaml"), "--data.root", str(built_samples),
                        "--data.cities", "[helsinki_center]", "--data.min_valid_fraction", "0.5", "--run_name", "p2p", *TINY])  # fmt: skip
        lightning_main(["fit", "--config", str(CONFIGS / "ae_demo.yaml"), "--data.root", str(built_samples),
                        "--run_name", "ae", *TINY])  # fmt: skip
        lightning_main(["fit", "--config", str(CONFIGS / "ae_demo.yaml"), "--data.root", str(built_samples),
                        "--model.init_args.bands", "[streets]", "--data.bands", "[streets]",
                        "--run_name", "ae_streets", *TINY])  # fmt: skip
    return {name: sorted((runs / name).rglob("last.ckpt"))[-1] for name in ("p2p", "ae", "ae_streets")}


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
    assert report["street_search"] is True, "the demo config searches street thresholds"
    with rasterio.open(out / "candidate_0.tif") as src:
        assert src.crs.to_epsg() == 32615 and src.res == (2.0, 2.0) and "streets" in src.descriptions
    assert (out / "contact_sheet.png").stat().st_size > 5000 and (out / "pattern_card.png").is_file()
    assert gpd.read_file(out / "candidate_0.geojson").crs.to_epsg() == 4326


def test_generate_ranks_candidates_as_evaluate_picks_them(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """One relative error (citygen.metrics.targets): the candidate `generate` ranks first is the one `evaluate` scores
    as the best, also for requests of 0, where the project once had three definitions that disagreed."""
    from citygen.data.geotiff import read_raster
    from citygen.metrics.morphology import delivered
    from citygen.metrics.targets import measure_targets, rank_candidates, relative_error
    from citygen.workflows.generate import generate

    targets = {"building_coverage": 0.2, "intersection_density_km2": 0.0, "green_share": 0.0}
    report = generate(tiny_models["p2p"], targets, tmp_path / "gen", n=4, street_search=False, realism=False)
    measured = []
    for k in range(4):
        raster = read_raster(tmp_path / "gen" / f"candidate_{k}.tif")
        measured.append(measure_targets(delivered(raster.bands), raster.resolution_m))  # as delivered: bands at 0.5
    assert [c["candidate"] for c in report["candidates"]] == rank_candidates(measured, targets)
    for c in report["candidates"]:
        for name, row in c["targets"].items():
            assert row["relative_error"] == pytest.approx(
                abs(relative_error(name, measured[c["candidate"]][name], targets[name]))
            )


def test_generate_without_street_search(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "gen"
    args = ["generate", "--ckpt", str(tiny_models["p2p"]), "--target", "building_coverage=0.2", "--target",
            "intersection_density_km2=60", "--target", "green_share=0.1", "--n", "1", "--allow-extrapolation",
            "--no-street-search", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["street_search"] is False, "--no-street-search overrides the model's setting"


def test_generate_around_given_streets(built_samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Streets-to-buildings: the candidates keep the given streets, lie where they lie, and draw the rest."""
    import numpy as np

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYGEN_RUNS_DIR", str(tmp_path / "runs"))
        lightning_main(["fit", "--config", str(CONFIGS / "pix2pix_streets_demo.yaml"), "--data.root",
                        str(built_samples), "--data.cities", "[helsinki_center]", "--data.min_valid_fraction", "0.5", "--run_name", "s2b", *TINY])  # fmt: skip
    ckpt = sorted((tmp_path / "runs").rglob("last.ckpt"))[-1]
    base = ["generate", "--ckpt", str(ckpt), "--target", "building_coverage=0.2", "--target", "green_share=0.05",
            "--n", "2", "--allow-extrapolation", "--out", str(tmp_path / "gen")]  # fmt: skip
    assert main(base) == 2
    assert "--streets" in capsys.readouterr().err
    city = built_samples / "helsinki_center.tif"
    assert main([*base, "--streets", str(city)]) == 0
    with rasterio.open(city) as src, rasterio.open(tmp_path / "gen" / "candidate_0.tif") as out:
        assert out.crs == src.crs and out.res == src.res
        window = rasterio.windows.from_bounds(*out.bounds, transform=src.transform)
        given = src.read(src.descriptions.index("streets") + 1, window=window)
        assert np.allclose(out.read(out.descriptions.index("streets") + 1), given)
        assert {"buildings", "green"} <= set(out.descriptions)
    report = json.loads((tmp_path / "gen" / "report.json").read_text())
    # the share constraint meets the coverage on what the user receives (bands at 0.5), and the report measures it
    from citygen.data.geotiff import read_raster
    from citygen.metrics.morphology import delivered

    best = report["candidates"][0]
    raster = read_raster(tmp_path / "gen" / best["file"])
    assert float(delivered(raster.bands)["buildings"].mean()) == pytest.approx(0.2, abs=1e-3)
    assert best["targets"]["building_coverage"]["relative_error"] < 0.01
    assert best["targets"]["building_coverage"]["achieved"] == pytest.approx(
        float(delivered(raster.bands)["buildings"].mean())
    )


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
    assert table.crs.to_epsg() == 4326
    assert len(table["latent"].iloc[0]) == 2 * 8 + 17 * 8 * 8, "stats of the 8-channel latent map (spatial bottleneck)"
    from citygen.workflows.embed import embed

    means = embed(tiny_models["ae"], tmp_path / "mean.parquet", data=built_samples, workers=1, pooling="mean")
    assert len(means["latent"].iloc[0]) == 512 and list(means["tile_id"]) == list(table["tile_id"])
    assert main(["compare", "--embeddings", str(embeddings), "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    probe = report["probes"]["houston_vs_copenhagen"]
    assert probe["cities"] == ["Copenhagen", "Houston"] and 0 <= probe["accuracy"] <= 1 and probe["chance"] >= 0.5
    assert 0 <= probe["cv_accuracy"] <= 1 and probe["n_cv"] > probe["n_test"]
    assert probe["samples"] == ["cph_vesterbro", "houston_montrose"]
    low, high = probe["accuracy_ci95"]
    assert 0 <= low <= probe["accuracy"] <= high <= 1 and high - low > 0.1, "17-odd test tiles: a wide interval"
    baseline = report["probes_metrics_baseline"]["houston_vs_copenhagen"]
    assert baseline["n_test"] == probe["n_test"] and 0 <= baseline["accuracy"] <= 1, "same tiles, metrics for latents"
    assert "orientation_entropy" in report["baseline_metrics"]
    assert "Baseline: the same probes" in (tmp_path / "report" / "report.md").read_text()
    for figure in report["figures"].values():
        assert (tmp_path / "report" / figure).stat().st_size > 5000

    # a streets model, its random-weights control and a groups file: the leave-one-city-out probe on three vectors
    embeddings, control = tmp_path / "streets.parquet", tmp_path / "control.parquet"
    for out, extra in ((embeddings, []), (control, ["--control", "random"])):
        assert main(["embed", "--ckpt", str(tiny_models["ae_streets"]), "--data", str(built_samples), "--out", str(out),
                     "--workers", "1", *extra]) == 0  # fmt: skip
    assert not np.allclose(
        np.stack(gpd.read_parquet(control)["latent"]), np.stack(gpd.read_parquet(embeddings)["latent"])
    )
    groups = tmp_path / "groups.yaml"
    groups.write_text(
        "probe: [car_centric, walkable]\npairs: {houston_vs_copenhagen: [Houston, Copenhagen]}\ngroups:\n"
        "  car_centric: {rule: r, source: s, places: [houston_montrose, houston_museum_district]}\n"
        "  walkable: {rule: r, source: s, places: [cph_vesterbro, cph_indre_by_buildings, helsinki_center]}\n"
    )
    out = tmp_path / "grouped"
    args = [
        "compare",
        "--embeddings",
        str(embeddings),
        "--out",
        str(out),
        "--groups",
        str(groups),
        "--control",
        str(control),
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    loco = report["group_probe"]
    assert set(loco) == {"latent", "urban_metrics", "random_encoder"}
    # Houston cannot be held out (its group would vanish from training): Copenhagen and Helsinki are scored,
    # Copenhagen on its street tiles only (the footprint extract has no streets to embed)
    assert [row["city"] for row in loco["latent"]["cities"]] == ["Copenhagen", "Helsinki"]
    assert all(row["group"] == "walkable" and row["tiles"] > 0 for row in loco["latent"]["cities"])
    assert loco["latent"]["cities"][0]["places"] == ["cph_vesterbro"]
    assert report["city_level_distances"] and (out / "city_dendrogram.png").stat().st_size > 5000
    assert "Leave-one-city-out group probe" in (out / "report.md").read_text()


def test_compare_skips_probes_of_absent_cities(tiny_models: dict[str, Path], built_samples: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Embeddings without Houston or Copenhagen: the named pair is skipped with a note, nothing crashes."""
    embeddings = tmp_path / "embeddings.parquet"
    assert main(["embed", "--ckpt", str(tiny_models["ae"]), "--data", str(built_samples), "--out", str(embeddings),
                 "--workers", "1"]) == 0  # fmt: skip
    table = gpd.read_parquet(embeddings)
    table[table["city"].isin(["helsinki_center", "houston_montrose"])].to_parquet(embeddings)
    assert main(["compare", "--embeddings", str(embeddings), "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "houston_vs_copenhagen" in report["probes_skipped"]
    assert "skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("groups: {a: {places: [houston_montrose, no_such_place]}, b: {places: [cph_vesterbro]}}\n", "no_such_place"),
        ("groups: {a: {places: [houston_montrose]}}\nprobe: [a]\n", "two or more"),
        ("grups: {}\n", "no `groups`"),
    ],
)
def test_bad_groups_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    (tmp_path / "e.parquet").write_text("not used")
    groups = tmp_path / "groups.yaml"
    groups.write_text(body)
    code = main(
        ["compare", "--embeddings", str(tmp_path / "e.parquet"), "--groups", str(groups), "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_compare_refuses_embeddings_that_are_not_geoparquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "e.csv"
    csv.write_text("city,split,latent\nx,train,1\n")
    assert main(["compare", "--embeddings", str(csv), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "cannot read e.csv as embeddings" in err and "Traceback" not in err


def test_leave_one_city_out_probe_finds_separable_groups_and_not_shuffled_ones() -> None:
    """Synthetic vectors whose group shows in one coordinate: every held-out city is placed right; with the
    groups shuffled across cities the probe cannot do better than chance on average."""
    import pandas as pd

    from citygen.workflows.groups import Groups, leave_one_city_out

    rng = np.random.default_rng(0)
    cities = [f"c{i}" for i in range(12)]
    group = {c: ("car_centric" if i % 2 else "walkable") for i, c in enumerate(cities)}
    rows = np.repeat(cities, 20)
    z = rng.normal(size=(len(rows), 6))
    z[:, 0] += np.where([group[c] == "car_centric" for c in rows], 3.0, -3.0)
    table = pd.DataFrame({"city": rows})
    result = leave_one_city_out(table, z, Groups(of_place=group, probe=("car_centric", "walkable"), pairs={}))
    assert result["accuracy"] == 1.0 and result["n_cities"] == 12 and result["chance"] == 0.5
    shuffled = {c: group[cities[(i + 1) % 12]] if i % 3 else group[c] for i, c in enumerate(cities)}
    noise = rng.normal(size=z.shape)
    result = leave_one_city_out(table, noise, Groups(of_place=shuffled, probe=("car_centric", "walkable"), pairs={}))
    assert result["accuracy"] < 0.9


def test_city_probe_compares_like_with_like() -> None:
    """Tiles of one city's probe share their layers and street source: Copenhagen's "all" network (with
    footways) is not set against Houston's drive networks, nor buildings-only tiles against streets."""
    import pandas as pd

    from citygen.workflows.probes import _same_channels

    ids = ["houston_montrose", "houston_meyerland", "cph_vesterbro", "cph_indre_by_streets", "cph_indre_by_buildings"]
    table = pd.DataFrame(
        {
            "city": ids,
            "group": ["Houston", "Houston", "Copenhagen", "Copenhagen", "Copenhagen"],
            "present_streets": [True, False, True, True, False],
            "present_buildings": [False, True, False, False, True],
        }
    )
    assert list(_same_channels(table)["city"]) == ["houston_montrose", "cph_vesterbro"]
    assert _same_channels(table[table["city"] != "cph_vesterbro"])["city"].tolist() == [
        "houston_meyerland",
        "cph_indre_by_buildings",
    ]


def test_metrics_baseline_probe_tolerates_undefined_metrics() -> None:
    """The baseline probe reads the tiles' urban metrics, some of which are undefined on a tile (orientation
    entropy without streets): those are imputed, and a metric that separates the cities is found."""
    import numpy as np
    import pandas as pd

    from citygen.workflows.compare import metrics_baseline

    rng = np.random.default_rng(0)
    n = 80
    houston = np.arange(n) % 2 == 0
    table = pd.DataFrame(
        {
            "city": np.where(houston, "houston_montrose", "cph_vesterbro"),
            "group": np.where(houston, "Houston", "Copenhagen"),
            "split": np.where(np.arange(n) % 5 == 0, "test", "train"),
            "present_streets": True,
            "minx": rng.uniform(0, 4000, n),
            "miny": rng.uniform(0, 4000, n),
            "metric_intersection_density_km2": np.where(houston, 60.0, 120.0) + rng.normal(0, 5, n),
            "metric_orientation_entropy": np.where(np.arange(n) % 7 == 0, np.nan, rng.uniform(3, 3.6, n)),
        }
    )
    probe = metrics_baseline(table)["houston_vs_copenhagen"]
    assert probe["accuracy"] == 1.0 and probe["cv_accuracy"] == 1.0 and probe["n_test"] == 16


def test_latent_statistics_are_products_at_offsets() -> None:
    import torch

    from citygen.learn.models.texture import STAT_OFFSETS, latent_statistics

    torch.manual_seed(0)
    m = torch.randn(2, 3, 20, 20)
    stats = latent_statistics(m)
    assert stats.shape == (2, 2 * 3 + len(STAT_OFFSETS) * 9)
    k = STAT_OFFSETS.index((2, -2))  # rows down 2, columns left 2
    expected = torch.einsum("bcyx,bdyx->bcd", m[:, :, 0:18, 2:20], m[:, :, 2:20, 0:18]) / (18 * 18)
    expected = expected.sign() * expected.abs().sqrt()
    assert torch.allclose(stats[:, 6 + 9 * k : 6 + 9 * (k + 1)], expected.flatten(1), atol=1e-5)


def test_demo_quick_writes_the_report(built_samples: Path, tmp_path: Path) -> None:
    """The README's first command end to end, with tiny training runs, on the test session's cities."""
    import yaml

    built = set(gpd.read_parquet(built_samples / "tiles.parquet")["city"])
    config = yaml.safe_load((CONFIGS.parent / "data" / "samples.yaml").read_text())
    config["cities"] = [c for c in config["cities"] if c["id"] in built]
    (tmp_path / "cities.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "demo"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYGEN_RUNS_DIR", str(tmp_path / "runs"))
        code = main(["demo", "--quick", "--config", str(tmp_path / "cities.yaml"), "--data", str(built_samples),
                     "--out", str(out), "--workers", "1"])  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert {"houston_vs_copenhagen", "all_cities"} <= set(report["probe_accuracy"])
    assert set(report["probe_cv_accuracy"]) == set(report["probe_accuracy"])
    assert "iou_streets" in report["reconstruction"] and report["reconstruction_metrics"]
    coverage = report["conditioning_error"]["building_coverage"]
    assert {"mape", "spearman", "mae", "best"} <= set(coverage) and coverage["best"]["candidates"] == 8
    assert (out / "report.md").read_text().count("block-CV") == 1
    assert "houston_vs_copenhagen (urban-metrics baseline)" in (out / "report.md").read_text()
    assert set(report["probes_metrics_baseline"]) == set(report["probes"])
    assert {"overlap_buildings_green", "real_overlap_buildings_green"} <= set(report["band_overlap"])
    assert "buildings-green" in (out / "report.md").read_text()
    alone = report["conditioning_error"]["intersection_density_km2"]["no_search"]
    assert set(alone) == {"mape", "spearman"}, "the generator alone is reported beside the street search"
    assert "before the search" in (out / "report.md").read_text()
    assert "one intersection there is 15.3 per km2" in (out / "report.md").read_text()  # 128 px at 2 m
    for name in ("sample_tiles.png", "compare/tiles_pca.png", "embeddings.parquet"):
        assert (out / name).is_file()


def test_latent_statistics_ignore_cells_outside_the_mapped_area() -> None:
    """A tile cut by the edge of its extract is described by its mapped part: blank cells beyond the edge
    change nothing, and without a mask they would."""
    import torch

    from citygen.learn.models.texture import latent_statistics

    torch.manual_seed(0)
    mapped = torch.randn(1, 3, 20, 12)
    cut = torch.cat([mapped, torch.zeros(1, 3, 20, 8)], dim=3)  # the extract ends at column 12
    valid = torch.cat([torch.ones(1, 1, 20, 12), torch.zeros(1, 1, 20, 8)], dim=3)
    # equal where a pair of cells lies in the mapped part: offsets up to 8 cells fit in 12 columns
    assert torch.allclose(latent_statistics(cut, valid), latent_statistics(mapped), atol=1e-5)
    assert not torch.allclose(latent_statistics(cut), latent_statistics(mapped), atol=1e-3)
    assert torch.equal(latent_statistics(cut, torch.zeros_like(valid)), latent_statistics(cut))


def test_embed_tiles_takes_bands_by_name(tiny_models: dict[str, Path], built_samples: Path) -> None:
    """The order a dataset is read in does not matter: the model's bands and the valid mask are found by name."""
    import numpy as np

    from citygen.core.errors import ConfigError
    from citygen.data.dataset import CityTileDataset
    from citygen.workflows.checkpoints import load_task
    from citygen.workflows.embed import embed_tiles

    task = load_task(tiny_models["ae"], expected="AutoencoderTask").task
    bands = list(task.bands)
    kwargs = {"cities": ["cph_vesterbro"]}  # an extract whose edge cuts some tiles
    usual = CityTileDataset(built_samples, bands=[*bands, "valid"], **kwargs)
    shuffled = CityTileDataset(built_samples, bands=["valid", *reversed(bands)], **kwargs)
    expected = embed_tiles(task, usual)
    assert np.array_equal(embed_tiles(task, shuffled), expected)
    assert not np.allclose(embed_tiles(task, CityTileDataset(built_samples, bands=bands, **kwargs)), expected)
    with pytest.raises(ConfigError, match="read the dataset with the model's bands"):
        embed_tiles(task, CityTileDataset(built_samples, bands=bands[:1], **kwargs))


def test_generate_and_checkpoint_bad_input(
    tiny_models: dict[str, Path], built_samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18: each bad input to generate / evaluate / embed is one clear line, exit 2, nothing written;
    a reused --out holds exactly what its report lists."""
    p2p, ae = str(tiny_models["p2p"]), str(tiny_models["ae"])
    streets = str(built_samples / "helsinki_center.tif")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(Path(p2p).read_bytes()[:5000])
    cases = [
        (["generate", "--ckpt", p2p, "--at", "95,95", "--out"], "not a place UTM can hold"),
        (["generate", "--ckpt", p2p, "--n", "0", "--out"], "--n must be at least 1"),
        (["generate", "--ckpt", p2p, "--target", "building_coverage=nan", "--out"], "cannot read target"),
        (["generate", "--ckpt", p2p, "--target", "floor_space=3", "--out"], "unknown target"),
        (["generate", "--ckpt", p2p, "--streets", streets, "--out"], "takes no input bands"),
        (["generate", "--ckpt", str(truncated), "--out"], "cannot read checkpoint"),
        (["generate", "--ckpt", ae, "--out"], "needs a Pix2PixTask"),
        (["embed", "--ckpt", p2p, "--data", str(built_samples), "--out"], "needs a AutoencoderTask"),
        (["embed", "--ckpt", str(truncated), "--data", str(built_samples), "--out"], "cannot read checkpoint"),
        (["evaluate", "--ckpt", str(truncated), "--json"], "cannot read checkpoint"),
    ]
    for args, expected in cases:
        out = tmp_path / "out"
        code = main([*args, str(out / "x.json") if args[0] in ("embed", "evaluate") else str(out)])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and "Traceback" not in err, (args, err)
        assert not out.exists() or not list(out.iterdir()), args
    out = tmp_path / "reused"
    assert main(["generate", "--ckpt", p2p, "--n", "3", "--no-street-search", "--out", str(out)]) == 0
    assert main(["generate", "--ckpt", p2p, "--n", "1", "--no-street-search", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("candidate_*")) == ["candidate_0.geojson", "candidate_0.tif"]


def test_embed_refuses_a_dataset_without_the_models_bands(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "streets_only"
    assert main(["data", "build", "--id", "cph", "--sample", "cph_indre_by_streets", "--tile-size", "128",
                 "--out", str(data), "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "e.parquet"
    code = main(["embed", "--ckpt", str(tiny_models["ae"]), "--data", str(data), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "['buildings']" in err and "Traceback" not in err and not out.exists()
