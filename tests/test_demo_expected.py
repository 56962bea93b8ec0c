"""The demo's "best expected" is computed on the objective the router learns: pass rates averaged over
difficulty, mean-token costs, the quality bar held by the answers users get (escalations included) at
the least expense, the budget charged with escalations. Hand-computed cases (spread 0: the pass rate is the profile's), then the shipped profile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptroute.config import RewardWeights
from adaptroute.datasets.synthetic import ModelProfile, TaskProfile, WorkloadProfile
from adaptroute.demo import expected_targets, load_profile
from adaptroute.demo.expected import mean_pass_rate, mean_tokens
from adaptroute.demo.run import BAR, demo_controls, _workload
from adaptroute.policy.pacing import Budget

W = RewardWeights(quality=1.0, cost=40.0, latency=0.05)
TIN, TOUT = 1000 * math.exp(0.08) - 0.5, 100 * math.exp(0.045) + 0.5  # int(median * lognormal), answers + 1
LAT = math.exp(0.25**2 / 2)  # a call's mean latency / the median (the simulated provider's log-normal)


def _profile(**rates: tuple[float, float, float, float]) -> WorkloadProfile:
    """One task "t" (spread 0), models name=(pass rate, $ in per token, $ out per token, latency s)."""
    task = TaskProfile("t", 1.0, 1000, 100, difficulty_spread=0.0)
    models = tuple(ModelProfile(n, cin, cout, {"t": p}, latency_s=lat) for n, (p, cin, cout, lat) in rates.items())
    return WorkloadProfile((task,), models)


def _cost(cin: float, cout: float) -> float:
    return TIN * cin + TOUT * cout


def test_mean_pass_rate_averages_the_graders_difficulty() -> None:
    assert mean_pass_rate(0.8, 0.0) == pytest.approx(0.8)
    d = np.random.default_rng(0).standard_normal(2_000_000)
    for p, spread in [(0.9, 1.3), (0.5, 1.0), (0.3, 0.8)]:
        monte_carlo = float(np.mean(1 / (1 + np.exp(-(math.log(p / (1 - p)) - spread * d)))))
        assert mean_pass_rate(p, spread) == pytest.approx(monte_carlo, abs=1e-3)
    assert mean_pass_rate(0.9, 1.3) < 0.9  # difficulty pulls a high pass rate down
    assert mean_tokens(TaskProfile("t", 1.0, 1000, 100)) == pytest.approx((TIN, TOUT))


def test_reward_per_call_ignores_the_escalated_answer() -> None:
    # A fails half the time, but what the router learns of A is A's own call: quality 0.5, A's cost
    profile = _profile(A=(0.5, 1e-7, 1e-7, 0.2), B=(0.6, 2e-6, 8e-6, 1.0), C=(0.99, 1e-5, 5e-5, 2.0))
    targets = expected_targets(profile, W)["t"]
    reward = {c.model: c.reward for c in targets.candidates}
    assert reward["A"] == pytest.approx(0.5 - 40 * _cost(1e-7, 1e-7) - 0.05 * 0.2 * LAT)
    assert reward["B"] == pytest.approx(0.6 - 40 * _cost(2e-6, 8e-6) - 0.05 * 1.0 * LAT)
    assert (targets.best, targets.runner_up) == ("A", "B")
    assert targets.gap == pytest.approx(reward["A"] - reward["B"])
    a = next(c for c in targets.candidates if c.model == "A")
    assert a.escalates_to == "C"  # the strongest model above it
    assert a.delivered == pytest.approx(1 - 0.5 * 0.01)  # the user's answer: C answers when A fails
    assert a.spend_usd == pytest.approx(_cost(1e-7, 1e-7) + 0.5 * _cost(1e-5, 5e-5))


def test_a_bar_is_met_by_answers_with_escalations_at_the_least_expense() -> None:
    profile = _profile(D=(0.70, 1e-8, 1e-8, 0.1), A=(0.82, 1e-7, 1e-7, 0.2), B=(0.88, 1e-6, 1e-6, 0.5),
                       C=(0.97, 1e-5, 1e-5, 1.0))
    target = expected_targets(profile, W, bars={"t": 0.9})["t"]
    # D's answers with C's help deliver 1 - 0.30 * 0.03 = 0.991 >= 0.9: the cheapest model meets the bar
    assert (target.rule, target.best, target.runner_up) == ("bar", "D", "A")
    assert target.gap == pytest.approx(1 - 0.30 * 0.03 - 0.9)
    assert target.share == 1.0
    # without escalation the answers deliver the pass rates: the least-expense mix with mean 0.9 is B and C
    # (the frontier D -> A -> B -> C), B's share (0.97 - 0.9) / (0.97 - 0.88) = 0.778
    alone = expected_targets(profile, W, bars={"t": 0.9}, escalation=False)["t"]
    assert (alone.best, alone.runner_up) == ("B", "C")
    assert alone.share == pytest.approx(0.07 / 0.09)


def test_a_budget_counts_escalations_and_mixes_down_the_frontier() -> None:
    profile = _profile(A=(0.80, 5e-7, 2e-6, 0.5), B=(0.70, 1e-7, 4e-7, 0.5), C=(0.99, 2e-6, 2e-6, 4.0))
    spend = {"A": _cost(5e-7, 2e-6) + 0.2 * _cost(2e-6, 2e-6), "B": _cost(1e-7, 4e-7) + 0.3 * _cost(2e-6, 2e-6)}
    assert expected_targets(profile, W)["t"].best == "A"  # C, slow, is not worth it
    # a pace above A's spend (escalations included): the budget does not bind, A wins on reward
    roomy = expected_targets(profile, W, budget=Budget(usd=100 * spend["A"] * 1.1, per_requests=100, task="t"))["t"]
    assert (roomy.rule, roomy.best) == ("budget", "A")
    # a pace between B's and A's spend: pacing mixes A and B so that they spend the pace on average
    pace = spend["B"] + 0.25 * (spend["A"] - spend["B"])
    tight = expected_targets(profile, W, budget=Budget(usd=100 * pace, per_requests=100, task="t"))["t"]
    assert (tight.best, tight.runner_up) == ("B", "A")
    assert tight.share == pytest.approx(0.75)
    # the same pace without counting escalations would let A's own cost through (A alone costs less than it)
    assert _cost(5e-7, 2e-6) < pace


def test_the_shipped_profile_separates_every_best_from_its_runner_up_before_and_after_the_cut() -> None:
    profile = load_profile()
    bar, budget = demo_controls(profile, _workload(profile, 2000, 0))
    assert bar == BAR
    cut = {"claude-haiku-4-5": (4e-7, 2e-6)}
    before = expected_targets(profile, W, bars=bar, budget=budget)
    after = expected_targets(profile, W, bars=bar, budget=budget, prices=cut)
    assert {t: x.best for t, x in before.items()} == {
        "extract": "gpt-4.1-nano", "tag": "gemini/gemini-2.5-flash", "draft": "gemini/gemini-2.5-flash",
        "code": "deepseek/deepseek-chat"}
    assert after["code"].best == "claude-haiku-4-5"  # the cut changes code's best, and only code's
    assert all(after[t].best == before[t].best for t in ("extract", "tag", "draft"))
    # the margins the profile's description states
    assert min(x.gap for x in [*before.values(), *after.values()]) >= 0.06
    assert before["extract"].gap == pytest.approx(0.079, abs=1e-3)  # delivered with escalations - the bar
    assert all(x.share == 1.0 for x in after.values())
