"""Off-policy figures stay within what each quantity can be: an importance-weighted rate is clipped to
[0, 1], costs and latencies to >= 0, and float noise around 0 prints as 0 (never -6.661e-16)."""

from __future__ import annotations

import math

import numpy as np

from adaptroute import EpsilonGreedy, RewardWeights
from adaptroute.replay.ope import Estimate, evaluate, format_text
from adaptroute.types import LoggedBatch, Observations

MODELS = ("cheap", "premium")


def _unlucky_log(n: int = 40) -> LoggedBatch:
    """The logger gave "premium" probability 0.1 but drew it on half the rows, where it always passed:
    IPS then puts the premium model's pass rate at 5, which no rate can be."""
    rng = np.random.default_rng(0)
    chosen = np.arange(n) % 2
    probs = np.tile([0.9, 0.1], (n, 1))
    quality = chosen.astype(float)
    cost = np.where(chosen == 1, 0.004, 0.0003)
    rows = np.arange(n)
    no = np.zeros(n, dtype=bool)
    return LoggedBatch(
        decision_ids=np.array([f"d{i}" for i in rows], dtype=object), tasks=np.array(["t"] * n, dtype=object),
        features=rng.normal(size=(n, 3)), models=MODELS, chosen=chosen, propensity=probs[rows, chosen],
        probabilities=probs, executed=chosen.copy(), quality=quality, cost_usd=cost, latency_s=np.full(n, 0.5),
        failed=no, escalated=no, retried=no, fell_back=no, ts=rows.astype(float),
        policy_versions=np.zeros(n, dtype=np.int64),
        observations=Observations(rows, chosen, quality, cost, np.full(n, 0.5), no),
    )


def test_estimate_clipping_and_float_noise() -> None:
    assert Estimate(1.022, 0.95, 1.04, 10).clipped(0.0, 1.0) == Estimate(1.0, 0.95, 1.0, 10)
    assert Estimate(-6.661e-16, -1e-13, 2e-3, 10).clipped(0.0, 1.0) == Estimate(0.0, 0.0, 2e-3, 10)
    assert Estimate(-6.661e-16, -0.2, 0.1, 10).clipped() == Estimate(0.0, -0.2, 0.1, 10)  # a gain may be negative
    assert math.isnan(Estimate(math.nan, math.nan, math.nan, 0).clipped(0.0, 1.0).value)


def test_an_importance_weighted_rate_never_leaves_its_range() -> None:
    weights = RewardWeights(quality=1.0, cost=10.0)
    result = evaluate(_unlucky_log(), EpsilonGreedy(weights=weights), weights, "ips", n_boot=50, always="premium")
    for name, (low, high) in {"quality": (0, 1), "failure": (0, 1), "cost_usd": (0, math.inf), "latency_s": (0, math.inf)}.items():
        e = result.components[name]
        assert low <= e.low <= e.value <= e.high <= high, (name, e)
    assert result.components["quality"].value == 1.0  # 5.0 unclipped
    assert result.reward.high <= weights.quality
    assert result.components["failure"] == Estimate(0.0, 0.0, 0.0, result.components["failure"].n)
    text = format_text(result)
    assert "e-16" not in text and "e-17" not in text
    assert result.trusted is None or result.trusted != "ips"  # a log this small is not trusted to IPS
