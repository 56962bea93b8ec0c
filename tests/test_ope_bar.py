"""Off-policy evaluation of a quality bar (replay --bar) on a log whose answer is known.

Two tasks, three models with known pass rates and prices, logged by a uniform random router (every
propensity 1/3). A bar asks for the least cost at a mean quality >= bar, whose answer per task is the
linear programme's: the cheapest model that meets the bar, or the cheapest mix of two models whose
mean sits at the bar (computed here by brute force over pairs, independently of the library). The
estimates must land on it (margins stated per assertion), and a stricter bar must move it to the
stronger, pricier models.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from adaptroute import RewardWeights
from adaptroute.cli import main
from adaptroute.errors import EstimatorError
from adaptroute.policy import ThompsonSampling
from adaptroute.policy.constraints import QualityBar
from adaptroute.replay.estimators import EstimatorWarning
from adaptroute.replay.ope import evaluate
from adaptroute.types import LoggedBatch, Observations

MODELS = ("cheap", "mid", "premium")
PRICE = np.array([0.0001, 0.001, 0.01])
# pass rate per task (rows: extract, tag) and model
PASS = np.array([[0.50, 0.88, 0.95], [0.60, 0.70, 0.90]])
TASKS = ("extract", "tag")
WEIGHTS = RewardWeights(quality=1.0, cost=10.0)


def uniform_log(seed: int, n: int) -> LoggedBatch:
    rng = np.random.default_rng(seed)
    task = rng.integers(2, size=n)
    features = np.column_stack([np.ones(n), task == 0, task == 1]).astype(float)
    chosen = rng.integers(3, size=n)
    rows = np.arange(n)
    quality = (rng.random(n) < PASS[task, chosen]).astype(float)
    cost = PRICE[chosen] * rng.uniform(0.9, 1.1, n)
    latency = np.full(n, 0.5)
    no = np.zeros(n, dtype=bool)
    return LoggedBatch(
        decision_ids=np.array([f"d{i}" for i in rows], dtype=object), tasks=np.array(TASKS, dtype=object)[task],
        features=features, models=MODELS, chosen=chosen, propensity=np.full(n, 1 / 3), probabilities=np.full((n, 3), 1 / 3),
        executed=chosen.copy(), quality=quality, cost_usd=cost, latency_s=latency, failed=no, escalated=no, retried=no,
        fell_back=no, ts=rows.astype(float), policy_versions=np.zeros(n, dtype=np.int64),
        observations=Observations(rows, chosen, quality, cost, latency, no.copy()),
    )


def cheapest_mix(task: int, bar: float) -> tuple[float, float]:
    """(quality, cost) of the least-cost mix of at most two models with mean quality >= bar, or the
    best model when none reaches it."""
    q, c = PASS[task], PRICE
    if q.max() < bar:
        return float(q.max()), float(c[q.argmax()])
    best = min((c[j], q[j]) for j in range(3) if q[j] >= bar)
    for i in range(3):
        for j in range(3):
            if q[i] < bar <= q[j]:
                share = (bar - q[i]) / (q[j] - q[i])
                best = min(best, (c[i] + share * (c[j] - c[i]), bar))
    return float(best[1]), float(best[0])


def run(bar: str, estimator: str = "dr", seed: int = 0) -> dict:
    batch = uniform_log(seed, 4_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimatorWarning)
        result = evaluate(batch, ThompsonSampling(seed=0), WEIGHTS, estimator, n_boot=100, bar=QualityBar.parse(bar))
    return result.to_dict()


@pytest.mark.parametrize("estimator", ["dr", "ips"])
def test_a_bar_is_evaluated_at_the_cheapest_mix_that_meets_it(estimator: str) -> None:
    """extract=0.8: "cheap" (0.50) and "mid" (0.88) mixed 21/79 sit at the bar for $0.00081, below
    "mid" alone; tag=0.4 is met by "cheap" alone (0.60, $0.0001). Margins: IPS weights are 3 on a
    third of ~2,000 rows per task, so its quality has a standard error of about 0.03 (DR's less):
    0.06 is two of them; cost within 15% (prices vary +-10% per call)."""
    result = run("extract=0.8,tag=0.4", estimator)
    extract, tag = result["per_task"]["extract"], result["per_task"]["tag"]
    assert extract["bar"] == 0.8 and tag["bar"] == 0.4
    for entry, (quality, cost) in ((extract, cheapest_mix(0, 0.8)), (tag, cheapest_mix(1, 0.4))):
        assert entry["mean_quality"]["value"] == pytest.approx(quality, abs=0.06)
        assert entry["mean_cost_usd"]["value"] == pytest.approx(cost, rel=0.15)
        q = entry["mean_quality"]
        assert q["low"] <= q["value"] <= q["high"]
    assert cheapest_mix(0, 0.8)[1] < 0.9 * PRICE[1]  # the mix is cheaper than the cheapest model meeting the bar
    assert tag["bar_met"]
    assert result["bar"] == "extract=0.8,tag=0.4" and "under bar" in result["policy"]


def test_a_stricter_bar_moves_the_estimate_to_the_stronger_model() -> None:
    """extract=0.93 needs "premium" (0.95, $0.01) in the mix; a bar no model meets (tag=0.99) goes to
    the best model ("premium", 0.90), and the estimate says the bar is not met. Margins as above (DR)."""
    result = run("extract=0.93,tag=0.99")
    extract, tag = result["per_task"]["extract"], result["per_task"]["tag"]
    quality, cost = cheapest_mix(0, 0.93)
    assert extract["mean_quality"]["value"] == pytest.approx(quality, abs=0.03)
    assert extract["mean_cost_usd"]["value"] == pytest.approx(cost, rel=0.15) and cost > 5 * PRICE[1]
    assert tag["mean_quality"]["value"] == pytest.approx(0.90, abs=0.03) and not tag["bar_met"]


def test_a_task_without_a_bar_keeps_the_policy_choice_and_a_relative_bar_resolves() -> None:
    """Only extract has a bar: tag is routed by the weights (no bar, bar_met null). "0.99*best"
    reads as 0.99 x the best model's mean quality per task (0.94 on extract: mostly premium)."""
    partial = run("extract=0.8")
    assert partial["per_task"]["tag"]["bar"] is None and partial["per_task"]["tag"]["bar_met"] is None
    relative = run("0.99*best")
    assert relative["per_task"]["extract"]["bar"] == pytest.approx(0.99 * 0.95, abs=0.03)
    quality, cost = cheapest_mix(0, 0.99 * 0.95)
    assert relative["per_task"]["extract"]["mean_cost_usd"]["value"] == pytest.approx(cost, rel=0.2)


def test_a_bar_cannot_shape_always_one_model() -> None:
    with pytest.raises(EstimatorError, match="always"):
        evaluate(uniform_log(0, 300), ThompsonSampling(), WEIGHTS, always="cheap", bar=QualityBar.parse("0.8"))


def test_replay_cli_takes_a_bar(router_log: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`adaptroute replay LOG --bar ...` on a real router log: per task the bar and the estimates."""
    log = router_log
    assert main(["replay", str(log), "--bar", "qa=0.8,code=0.5", "--bootstrap", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["per_task"]) == {"qa", "code"} and out["per_task"]["qa"]["bar"] == 0.8
    assert out["bar"] == "qa=0.8,code=0.5" and out["per_task"]["code"]["mean_quality"]["value"] is not None
    assert main(["replay", str(log), "--bar", "0.8", "--bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    assert "| task | bar |" in text and "under bar 0.8" in text
    assert main(["replay", str(log), "--bar", "0.8", "--always", "gpt-4o"]) != 0
