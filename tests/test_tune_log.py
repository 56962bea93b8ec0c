"""tune on a router's log estimates "always model X" off-policy, not as the plain mean of the requests X
happened to answer: a premium model that mostly answers escalations answers the hard prompts, and its
plain mean is biased low. What cannot be estimated is left out, with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from adaptroute import EpsilonGreedy, RewardWeights, Router, read_log
from adaptroute.replay.tune import format_tuning, tune

PASS = {"gpt-4o-mini": (0.9, 0.2), "gpt-4o": (0.95, 0.7)}  # pass rate on (easy, hard) prompts, half each
TRUE_ALWAYS_4O = 0.5 * 0.95 + 0.5 * 0.7  # gpt-4o first: nothing above it to escalate to
USAGE = {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300}


def _log(path, n: int, epsilon: float) -> None:
    rng = np.random.default_rng(0)
    hard: dict[str, int] = {}

    def scorer(messages, response, model):
        return float(rng.random() < PASS[model][hard[messages[-1]["content"]]])

    policy = EpsilonGreedy(epsilon=epsilon, weights=RewardWeights(cost=400))
    with Router(list(PASS), policy=policy, store=str(path), scorer=scorer, escalate_below=0.5, seed=0) as router:
        for i in range(n):
            text = f"prompt {i}"
            hard[text] = int(rng.random() < 0.5)
            router.complete([{"role": "user", "content": text}], task="t",
                            mock_response={"choices": [{"message": {"role": "assistant", "content": "x"}}], "usage": USAGE})


@pytest.mark.slow
def test_always_premium_is_estimated_off_policy_not_as_a_plain_mean(tmp_path) -> None:
    path = tmp_path / "routes.duckdb"
    _log(path, 500, epsilon=0.3)
    batch = read_log(path)
    premium = batch.models.index("gpt-4o")
    plain = float(np.nanmean(batch.quality[batch.executed == premium]))
    assert plain < TRUE_ALWAYS_4O - 0.05  # the bias: escalations send it the hard prompts

    result = tune(str(path), grid=["cost=0,100,1000"], target="quality>=0.95*best", plot=tmp_path / "f.png")
    always = result.references["gpt-4o"]
    low, high = always["quality_interval"]
    assert low <= TRUE_ALWAYS_4O <= high and abs(always["quality"] - TRUE_ALWAYS_4O) < 0.06
    assert result.estimator.startswith("DR") and result.best_from.startswith("always ")
    assert result.bound == pytest.approx(0.95 * result.best_quality)
    assert (tmp_path / "f.png").stat().st_size > 10_000
    text = format_tuning(result)
    assert "off-policy estimates by DR" in text and "always gpt-4o" in text


@pytest.mark.slow
def test_what_cannot_be_estimated_is_left_out_with_the_reason(tmp_path) -> None:
    path = tmp_path / "routes.duckdb"
    _log(path, 300, epsilon=0.0)  # greedy: the floor is the only exploration, gpt-4o is almost never first
    result = tune(str(path), grid=["cost=0,1000"])
    assert "gpt-4o" in result.left_out and "ESS" in result.left_out["gpt-4o"]
    assert "gpt-4o" not in result.references
    assert all(i not in result.frontier for i, p in enumerate(result.points) if p.unreliable)
    assert "left out, it cannot be estimated" in format_tuning(result)
