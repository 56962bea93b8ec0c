"""simulate, its reference points and AIQ, checked against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from adaptroute import RewardWeights
from adaptroute.datasets.base import FullInfoDataset
from adaptroute.datasets.synthetic import generate, random_profile
from adaptroute.replay.aiq import aiq, pareto_front, quality_hull
from adaptroute.replay.baselines import reference_points
from adaptroute.replay.simulate import simulate


def tiny() -> FullInfoDataset:
    """Four prompts, two tasks, three models; every figure below is checked by hand."""
    quality = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    cost = np.array([[1.0, 2.0, 10.0], [1.0, 2.0, 10.0], [1.0, 2.0, 10.0], [2.0, 1.0, 10.0]]) / 1000
    return FullInfoDataset(
        source="tiny", prompt_ids=np.array(["p0", "p1", "p2", "p3"], dtype=object),
        tasks=np.array(["a", "a", "b", "b"], dtype=object), texts=("x", "y", "z", "w"),
        models=("m0", "m1", "m2"), quality=quality, cost_usd=cost,
    )


def test_reference_points_by_hand() -> None:
    w = RewardWeights(quality=1, cost=100, failure=0)  # a dollar of cost is worth 100 quality points
    refs = reference_points(tiny(), w)
    # rewards: m0 = [0.9, -0.1, 0.9, -0.2]  m1 = [-0.2, 0.8, 0.8, -0.1]  m2 = [0, 0, -1, 0]
    assert refs["best_single"].mean_reward == pytest.approx((0.9 - 0.1 + 0.9 - 0.2) / 4)  # m0: 0.375 vs m1 0.325
    assert refs["cheapest"].mean_cost_usd == pytest.approx(0.00125)  # m0: (1+1+1+2)/4 thousandths
    assert refs["random"].mean_quality == pytest.approx(7 / 12)
    # task a: m0 0.4, m1 0.3, m2 0 -> m0; task b: m0 0.35, m1 0.35, m2 -0.5 -> the first best, m0
    assert refs["best_fixed_per_task"].mean_reward == pytest.approx(0.375)
    # oracle per prompt: p0 m0 0.9, p1 m1 0.8, p2 m0 0.9 (ties with nothing), p3 m1 -0.1 (best of -0.2, -0.1, 0)...
    # ...p3: m2 has reward 1 - 1.0 = 0.0 > -0.1, so m2
    assert refs["oracle"].mean_reward == pytest.approx((0.9 + 0.8 + 0.9 + 0.0) / 4)
    assert refs["oracle"].mean_quality == pytest.approx(1.0)


def test_oracle_breaks_ties_toward_the_cheaper_model() -> None:
    data = tiny()
    refs = reference_points(data, RewardWeights(quality=1, cost=0.0))  # cost ignored: quality ties at 1
    # p0: m0 and m2 both 1 -> m0 (cheaper); p1: m1, m2 -> m1; p2: m0, m1 -> m0; p3: m2 only
    assert refs["oracle"].mean_cost_usd == pytest.approx((1 + 2 + 1 + 10) / 4 / 1000)


def test_aiq_matches_routerbench_definition() -> None:
    # RouterBench's hindsight best-model-per-task points on its three tasks (fractions of gpt-4's cost)
    c_max = 0.0050153
    points = [(1.0, 0.879), (0.756, 0.875), (0.329, 0.851), (0.068, 0.809), (0.068, 0.809), (0.059, 0.787)]
    value = aiq([c * c_max for c, _ in points], [q for _, q in points], c_max)
    assert value == pytest.approx(0.8063, abs=1e-4)  # the issue quotes 0.806 for this reference
    # a single point: zero left of it, flat to c_max
    assert aiq([0.5], [0.8], 1.0) == pytest.approx(0.4)


def test_frontier_helpers() -> None:
    cost, quality = [1, 2, 3, 4, 2.5], [0.5, 0.7, 0.72, 0.9, 0.6]
    assert list(pareto_front(cost, quality)) == [0, 1, 2, 3]
    hull = quality_hull(cost, quality)
    assert [tuple(p) for p in hull] == [(1, 0.5), (2, 0.7), (4, 0.9)]  # (3, 0.72) lies under the chord
    # no points at all: an empty hull of the same shape, and no area
    assert quality_hull([], []).shape == (0, 2)
    assert aiq([], [], 1.0) == 0.0


def test_simulate_is_seeded_and_consistent() -> None:
    data = generate(random_profile(6, 2, seed=1), 400, seed=1)
    w = RewardWeights(quality=1, cost=200, failure=0)
    first = simulate(data, "thompson", w, seed=3)
    second = simulate(data, "thompson", w, seed=3)
    assert np.array_equal(first.chosen, second.chosen)
    rows = first.prompt_rows
    assert first.mean_quality == pytest.approx(data.quality[rows, first.chosen].mean())
    assert sum(first.model_shares.values()) == pytest.approx(1.0)
    refs = first.baselines
    assert refs["oracle"].mean_reward >= refs["best_fixed_per_task"].mean_reward >= refs["best_single"].mean_reward
    assert first.regret_vs_oracle >= 0


def test_simulate_learns_and_passes() -> None:
    data = generate(random_profile(5, 2, seed=2, price_quality_corr=0.8), 600, seed=2)
    w = RewardWeights(quality=1, cost=100, failure=0)
    result = simulate(data, "thompson", w, seed=0, passes=2)
    assert result.n == 1200
    refs = result.baselines
    # learning beats guessing by a wide margin within two passes
    assert result.mean_reward > refs["random"].mean_reward + 0.5 * (refs["best_fixed_per_task"].mean_reward - refs["random"].mean_reward)


def test_warm_start_needs_the_same_models() -> None:
    data = generate(random_profile(4, 2, seed=3), 100, seed=3)
    other = data.select_models(data.models[:2])
    with pytest.raises(Exception, match="lacks models"):
        simulate(data, "thompson", seed=0, warm_start=other)
