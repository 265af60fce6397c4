"""The generation-time street search: bisection over a street-logit offset, measured with the metric suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from citygen.core.errors import ConfigError
from citygen.learn.tasks import Pix2PixTask
from citygen.learn.tasks.street_search import check_street_search, search_street_offset, searched_street_logits
from citygen.metrics.morphology import delivered
from citygen.metrics.skeleton import STREET_THRESHOLD
from citygen.metrics.targets import mean_relative_error, measure_targets

SIZE, RES = 128, 2.0  # 256 m crops: one intersection is 15.26 per km2
AREA_KM2 = (SIZE * RES / 1000) ** 2


def ladder_logits() -> np.ndarray:
    """Street logits of three horizontal streets that are always drawn, crossed by eight vertical streets whose
    logits step by 1: at a street-logit offset d the verticals with logit > -d (relative to the metric suite's
    street threshold) are streets, and each one that is meets the horizontals in three four-way intersections."""
    logits = np.full((SIZE, SIZE), -8.0)
    for row in (30, 64, 98):
        logits[row - 1 : row + 2, :] = 8.0
    for k in range(8):  # 8 verticals 30 m apart, logits -3.4, -2.4, ..., 3.6
        col = 12 + 15 * k
        logits[:, col - 1 : col + 2] = np.maximum(logits[:, col - 1 : col + 2], k - 3.4)
    return (logits + np.log(STREET_THRESHOLD / (1 - STREET_THRESHOLD))).astype(np.float32)


def ladder(offset: float) -> dict[str, np.ndarray]:
    streets = 1 / (1 + np.exp(-(ladder_logits() + offset)))
    return {"streets": streets.astype(np.float32), "valid": np.ones((SIZE, SIZE), np.float32)}


def intersections(offset: float) -> float:
    return measure_targets(ladder(offset), RES)["intersection_density_km2"]


def test_ladder_intersections_rise_with_the_offset() -> None:
    assert intersections(-8.0) == 0.0, "three parallel streets alone meet nowhere"
    assert intersections(0.0) == pytest.approx(3 * 4 / AREA_KM2), "4 of 8 verticals have a logit above 0"
    assert intersections(4.0) == pytest.approx(3 * 8 / AREA_KM2)


@pytest.mark.parametrize("verticals", [0, 1, 2, 5, 7, 8])
def test_search_finds_the_offset_that_meets_the_target(verticals: int) -> None:
    wanted = {"intersection_density_km2": 3 * verticals / AREA_KM2}
    offset, error = search_street_offset(ladder, wanted, resolution_m=RES)
    assert error == 0.0
    assert intersections(offset) == pytest.approx(wanted["intersection_density_km2"])


def test_a_met_target_leaves_the_layout_as_drawn() -> None:
    offset, error = search_street_offset(ladder, {"intersection_density_km2": 12 / AREA_KM2}, resolution_m=RES)
    assert (offset, error) == (0.0, 0.0)
    assert search_street_offset(ladder, {}, resolution_m=RES) == (0.0, 0.0)


def test_unreachable_targets_give_the_closest_layout() -> None:
    # 10 intersections lie between 9 and 12 (3 per vertical): 9 is closer
    offset, error = search_street_offset(ladder, {"intersection_density_km2": 10 / AREA_KM2}, resolution_m=RES)
    assert intersections(offset) == pytest.approx(9 / AREA_KM2) and error == pytest.approx(0.1)
    # more than the ladder can hold: every vertical drawn
    offset, _ = search_street_offset(ladder, {"intersection_density_km2": 1000.0}, resolution_m=RES)
    assert intersections(offset) == pytest.approx(24 / AREA_KM2)


def test_relative_errors_near_zero_targets_and_unmeasured_values() -> None:
    # a zero target is measured against 5 % of the target's scale (200 per km2): 10 per km2
    assert mean_relative_error({"intersection_density_km2": 5.0}, {"intersection_density_km2": 0.0}) == (0.5, 0.5)
    assert mean_relative_error({}, {"intersection_density_km2": 50.0}) == (1.0, 1.0), "unmeasured: 100 % too high"
    both = mean_relative_error(
        {"intersection_density_km2": 60.0, "street_density_km_km2": 15.0},
        {"intersection_density_km2": 50.0, "street_density_km_km2": 20.0},
    )
    assert both == pytest.approx((0.225, -0.025))


def test_searched_logits_meet_street_targets_and_keep_shares_exact() -> None:
    torch.manual_seed(0)
    task = Pix2PixTask(output_bands=["streets", "buildings"], conditions=["building_coverage", "intersection_density_km2"],
                       input_size=SIZE, ngf=8, ndf=8, share_constraint=True, street_search=True).eval()  # fmt: skip
    raw = torch.stack([torch.from_numpy(ladder_logits()), torch.randn(SIZE, SIZE)])[None].repeat(3, 1, 1, 1)
    mask = torch.ones(3, 1, SIZE, SIZE)
    mask[1, :, :, 100:] = 0  # the valid area: the last two verticals lie outside it
    area_km2 = mask.sum(dim=(1, 2, 3)) * RES**2 / 1e6
    counts = [6, 15]
    targets = torch.tensor([[0.3, counts[0] / area_km2[0]], [0.1, counts[1] / area_km2[1]], [0.2, float("nan")]])
    cond = task.condition(targets, None, SIZE)
    searched = searched_street_logits(
        raw,
        targets,
        mask,
        RES,
        output_bands=task.output_bands,
        conditions=task.conditions,
        constrain=lambda trial, i, m: task.constrain(trial, cond[i : i + 1], m),
    )
    assert torch.equal(searched[:, 1], raw[:, 1]), "only the street logits move"
    assert torch.equal(searched[2], raw[2]), "an unknown street target leaves the layout as drawn"
    out = task.constrain(searched, cond, mask)
    for i, wanted in enumerate(counts):
        bands = {"streets": out[i, 0].numpy(), "buildings": out[i, 1].numpy(), "valid": mask[i, 0].numpy()}
        # the search meets the street target on the delivered layout (bands at 0.5), the constraint the soft share
        as_delivered = measure_targets(delivered(bands), RES)
        assert as_delivered["intersection_density_km2"] * float(area_km2[i]) == pytest.approx(wanted)
        assert measure_targets(bands, RES)["building_coverage"] == pytest.approx(float(targets[i, 0]), abs=1e-4)


def test_street_search_needs_a_street_graph_condition() -> None:
    with pytest.raises(ConfigError, match="street-graph condition"):
        Pix2PixTask(output_bands=["streets", "buildings"], conditions=["building_coverage"], input_size=32,
                    ngf=8, ndf=8, street_search=True)  # fmt: skip
    with pytest.raises(ConfigError, match="streets among output_bands"):
        Pix2PixTask(output_bands=["buildings"], input_bands=["streets"], conditions=["intersection_density_km2"],
                    input_size=32, ngf=8, ndf=8, street_search=True)  # fmt: skip
    # `citygen generate` checks the same before it turns the search on for a model trained without it
    check_street_search(["streets", "buildings"], ["intersection_density_km2"], [])
    with pytest.raises(ConfigError, match="no street_share target"):
        check_street_search(["streets"], ["street_share", "intersection_density_km2"], [(0, 0)])
