"""Long runs and change: per-pass references, scheduled changes (simulate and the CLI), and a live
Router that follows drift, takes new models and lets old ones go."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaptroute import ConfigError, ModelSpec, RewardWeights, Router, read_log
from adaptroute.cli import main
from adaptroute.datasets import FullInfoDataset
from adaptroute.policy import make_policy
from adaptroute.replay.changes import parse_change
from adaptroute.replay.simulate import simulate
from long_files import write_rows

# Two tasks x three models, every outcome known and constant per (task, model): the references of
# each pass can be worked out by hand. Model "org:b" has a ":" in its name on purpose.
MODELS = ("a", "org:b", "c")
QUALITY = {"x": (0.9, 0.6, 0.3), "y": (0.2, 0.8, 0.5)}
COST = (0.010, 0.002, 0.001)
W = RewardWeights(quality=1.0, cost=10.0)


def tiny(n_per_task: int = 20) -> FullInfoDataset:
    tasks = np.array(["x"] * n_per_task + ["y"] * n_per_task)
    quality = np.array([QUALITY[t] for t in tasks], dtype=float)
    cost = np.tile(COST, (tasks.shape[0], 1))
    return FullInfoDataset(source="tiny", prompt_ids=np.arange(tasks.shape[0]).astype(str), tasks=tasks, texts=None,
                           models=MODELS, quality=quality, cost_usd=cost)


def by_hand(quality: dict[str, tuple[float, ...]], cost: tuple[float, ...], present: tuple[bool, ...]) -> tuple[float, float]:
    """(best fixed model per task, oracle) mean reward: equal task sizes, constant outcomes per task."""
    best = [max(q - 10.0 * c for q, c, ok in zip(quality[t], cost, present) if ok) for t in ("x", "y")]
    return float(np.mean(best)), float(np.mean(best))


@pytest.mark.parametrize(
    ("spec", "pass2"),
    [
        ("2:a:quality-=0.5", ({"x": (0.4, 0.6, 0.3), "y": (0.0, 0.8, 0.5)}, COST, (True, True, True))),
        ("2:org:b:quality+=0.3", ({"x": (0.9, 0.9, 0.3), "y": (0.2, 1.0, 0.5)}, COST, (True, True, True))),
        ("2:a:cost*=0.1", (QUALITY, (0.001, 0.002, 0.001), (True, True, True))),
        ("2:org:b:leave", (QUALITY, COST, (True, False, True))),
    ],
)
def test_per_pass_references_follow_each_change(spec: str, pass2: tuple) -> None:  # type: ignore[type-arg]
    data = tiny()
    change = parse_change(spec, data.models, 3)
    result = simulate(data, "thompson", W, seed=0, passes=3, changes=[change])
    assert len(result.per_pass) == 3
    first = by_hand(QUALITY, COST, (True, True, True))
    after = by_hand(*pass2)
    for p, (fixed, oracle) in zip(result.per_pass, (first, after, after), strict=True):
        assert p.best_fixed_per_task_reward == pytest.approx(fixed)
        assert p.oracle_reward == pytest.approx(oracle)
        assert p.n == len(data)
    # each pass's own mean reward is that of its choices in its world
    second = slice(len(data), 2 * len(data))
    if change.effect == "leave":
        assert not np.any(result.chosen[len(data):] == 1)  # an absent model is never chosen
    assert result.per_pass[1].mean_reward == pytest.approx(result.rewards[second].mean())
    as_json = result.to_dict()["per_pass"]
    assert set(as_json[0]) >= {"mean_quality", "mean_cost_usd", "mean_reward", "best_fixed_per_task_reward", "oracle_reward"}


def test_a_model_that_arrives_is_absent_before_and_chosen_after() -> None:
    data = tiny()
    result = simulate(data, "thompson", W, seed=1, passes=4, changes=[parse_change("3:org:b:arrive", data.models, 4)])
    n = len(data)
    assert not np.any(result.chosen[: 2 * n] == 1)
    assert np.any(result.chosen[2 * n :] == 1)
    without_b = by_hand(QUALITY, COST, (True, False, True))
    assert result.per_pass[0].best_fixed_per_task_reward == pytest.approx(without_b[0])
    assert result.per_pass[2].best_fixed_per_task_reward == pytest.approx(by_hand(QUALITY, COST, (True, True, True))[0])


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("2:a", "PASS:MODEL:EFFECT"),
        ("two:a:leave", "whole number"),
        ("5:a:leave", "between 1 and --passes (3)"),
        ("0:a:leave", "between 1 and --passes"),
        ("2:zz:leave", "unknown model 'zz'"),
        ("2:a:quality*=2", "unknown effect"),
        ("2:a:quality-=1.5", "between 0 and 1"),
        ("2:a:quality-=abc", "not a number"),
        ("2:a:cost*=0", "> 0"),
        ("2:a:cost*=nan", "finite"),
        ("1:a:arrive", "PASS >= 2"),
    ],
)
def test_bad_change_specs_are_refused_by_name(spec: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_change(spec, MODELS, 3)
    assert spec in str(info.value) and says in str(info.value)


def test_an_arrival_reopens_exploring_as_add_model_does() -> None:
    """simulate() tells the policy when a model arrives at a pass, as router.add_model() does."""
    data = tiny()
    arrived, stayed = make_policy("thompson", weights=W, seed=0), make_policy("thompson", weights=W, seed=0)
    simulate(data, arrived, W, passes=2, changes=[parse_change("2:a:arrive", data.models, 2)])
    simulate(data, stayed, W, passes=2)
    assert arrived.reopened_at == len(data) and stayed.reopened_at is None


def test_no_model_present_is_refused() -> None:
    data = tiny()
    changes = [parse_change(f"2:{m}:leave", data.models, 2) for m in data.models]
    with pytest.raises(ConfigError, match="no model is present in pass 2"):
        simulate(data, "thompson", W, passes=2, changes=changes)


def _long_file(tmp_path):  # type: ignore[no-untyped-def]
    data = tiny(10)
    rows = [{"prompt_id": str(i), "task": str(data.tasks[i]), "model": m, "quality": float(data.quality[i, k]),
             "cost_usd": float(data.cost_usd[i, k])} for i in range(len(data)) for k, m in enumerate(data.models)]
    return write_rows(tmp_path / "tiny.csv", rows, ["prompt_id", "task", "model", "quality", "cost_usd"])


def test_cli_reports_per_pass_and_draws_the_plot(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _long_file(tmp_path)
    plot = tmp_path / "run.png"
    code = main(["simulate", str(path), "--weights", "quality=1,cost=10", "--passes", "3", "--change",
                 "2:org:b:cost*=4", "--change", "3:c:leave", "--plot", str(plot), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["per_pass"]) == 3 and out["changes"] == ["2:org:b:cost*=4", "3:c:leave"]
    assert out["per_pass"][2]["models_present"] == 2
    assert plot.stat().st_size > 0 and out["plot"] == str(plot)
    assert main(["simulate", str(path), "--weights", "quality=1,cost=10", "--passes", "2"]) == 0
    text = capsys.readouterr().out
    assert "| pass | mean quality |" in text and "| 2 |" in text


def test_cli_refuses_a_bad_change_before_running(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _long_file(tmp_path)
    code = main(["simulate", str(path), "--passes", "2", "--change", "3:a:leave", "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "--change '3:a:leave'" in captured.err and len(captured.err.strip().splitlines()) == 1


# -- the live Router ---------------------------------------------------------------------------------
# Mock calls count 10 prompt and 20 answer tokens: gpt-4o costs $0.000225 a call, gpt-4o-mini $0.0000135,
# gpt-4.1-nano $0.0000090. At 1000 quality points per dollar the reward is quality minus 0.225, 0.0135, 0.009.
LIVE = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]
LIVE_WEIGHTS = RewardWeights(quality=1, cost=1000)


class DriftingScorer:
    """Pass/fail drawn from each model's pass rate; ``rates`` can be changed mid-run."""

    def __init__(self, rates: dict[str, float], seed: int = 7) -> None:
        self.rates = dict(rates)
        self.rng = np.random.default_rng(seed)

    def __call__(self, messages, response, model: str) -> float:  # type: ignore[no-untyped-def]
        return float(self.rng.random() < self.rates[model])  # by the router's name of who answered


def _calls(router: Router, n: int, start: int = 0) -> list[str]:
    return [router.complete([{"role": "user", "content": f"triage ticket {start + i}"}], task="triage",
                            mock_response="ok").adaptroute.model for i in range(n)]


# The log's feature key is fixed: a fresh log draws a random one, and the features (so the run) with it.
LIVE_KEY = b"adaptroute-live-test-key"


@pytest.mark.parametrize(("seed", "scorer_seed", "key"), [
    (0, 7, LIVE_KEY),
    # gpt-4o's only answer before the drop failed: the narrowed draws had written it off, and without the
    # exploring share's return after a detected change it got 0 of the last 100 calls (live_change.py)
    (8, 1008, b"live-change-8"),
])
def test_router_moves_traffic_when_the_favourite_degrades(tmp_path, seed, scorer_seed, key) -> None:  # type: ignore[no-untyped-def]
    scorer = DriftingScorer({"gpt-4o-mini": 0.9, "gpt-4o": 0.8, "gpt-4.1-nano": 0.3}, seed=scorer_seed)
    with Router(LIVE, reward=LIVE_WEIGHTS, store=str(tmp_path / "log.duckdb"), scorer=scorer, seed=seed,
                hash_key=key) as router:
        before = _calls(router, 300)
        assert before[-100:].count("gpt-4o-mini") >= 70
        scorer.rates["gpt-4o-mini"] = 0.35  # the favourite degrades: gpt-4o is now the best reward
        after = _calls(router, 300, start=300)
        assert after[-100:].count("gpt-4o") >= 60, after[-100:]
        assert any(m == "gpt-4o-mini" for m, _ in router.policy.change_points)


def test_failures_are_pass_fail_evidence_for_the_detector() -> None:
    """Quality and failure live in [0, 1]: the change detector weighs them as pass/fail outcomes."""
    from adaptroute.types import TARGETS

    bounded = make_policy("thompson")._drift.bounded
    assert {t for t, b in zip(TARGETS, bounded, strict=True) if b} == {"quality", "failure"}


def test_no_false_alarms_from_rates_near_0_or_1() -> None:
    """A pass rate of 0.99 and a failure rate of 0, as predicted: about one alarm in e^10 observations,
    not a steady drift toward one because an alternative was clipped (seeded)."""
    import numpy as np
    from adaptroute.policy.drift import DriftDetector

    detector = DriftDetector(4, np.array([True, False, False, True]))
    detector.add_arm()
    rng = np.random.default_rng(0)
    mean, sd = np.array([0.99, 0.001, 0.5, 0.0]), np.array([0.1, 0.0003, 0.1, 0.01])
    alarms = sum(detector.observe(0, t, np.array([float(rng.random() < 0.99), 0.001, 0.5, 0.0]), mean, sd) is not None
                 for t in range(20_000))
    assert alarms <= 2


def test_router_add_model_gets_traffic_and_remove_model_stops_it_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    scorer = DriftingScorer({"gpt-4o-mini": 0.6, "gpt-4o": 0.7, "gpt-4.1-nano": 0.3, "better": 0.95})
    better = ModelSpec(name="better", litellm_model="gpt-4o-mini", input_cost_per_token=1e-7,
                       output_cost_per_token=2e-7, expected_quality=0.8)
    with Router(LIVE, reward=LIVE_WEIGHTS, store=str(tmp_path / "log.duckdb"), scorer=scorer, seed=0,
                hash_key=LIVE_KEY) as router:
        _calls(router, 150)
        router.add_model(better)
        assert router.models[-1] == "better"
        with pytest.raises(ConfigError, match="already"):
            router.add_model(better)
        _calls(router, 300, start=150)
        batch = read_log(router.store)
        late = [batch.models[k] for k in batch.executed[-100:]]
        assert late.count("better") >= 60, late
        router.remove_model("better")
        n_before = len(read_log(router.store))
        _calls(router, 50, start=450)
        batch = read_log(router.store)
        later = slice(n_before, None)
        assert "better" not in {batch.models[k] for k in batch.executed[later]}
        # logged: every decision after the removal lists exactly the models it could choose from
        assert np.all(batch.probabilities[later, batch.models.index("better")] == 0)
        np.testing.assert_allclose(batch.probabilities[later].sum(axis=1), 1.0)
        assert np.all(batch.propensity[later] == batch.probabilities[later][np.arange(50), batch.chosen[later]])
        with pytest.raises(ConfigError, match="unknown model"):
            router.remove_model("better")


def test_a_restart_with_another_model_list_keeps_what_was_learned_of_the_others(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = str(tmp_path / "log.duckdb")
    scorer = DriftingScorer({"gpt-4o-mini": 0.9, "gpt-4o": 0.8, "gpt-4.1-nano": 0.3, "gpt-4.1-mini": 0.5})
    with Router(LIVE, reward=LIVE_WEIGHTS, store=store, scorer=scorer, seed=0) as router:
        _calls(router, 120)
    batch = read_log(store)
    logged = {m: int(np.sum(batch.observations.model == k)) for k, m in enumerate(batch.models)}
    with Router(["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"], reward=LIVE_WEIGHTS, store=store, scorer=scorer, seed=1) as again:
        again.retrain()
        counts = again.policy.observation_counts()
        for name in ("gpt-4o-mini", "gpt-4o"):
            assert counts[name] == logged.get(name, 0)  # every logged outcome of the models that stayed
        assert counts["gpt-4o-mini"] > 100
        assert counts.get("gpt-4.1-mini", 0.0) == 0.0
        assert "gpt-4.1-nano" not in _calls(again, 40)


@pytest.mark.parametrize("latency_weight, alarms", [(0.0, False), (1.0, True)])
def test_only_targets_the_reward_weighs_can_raise_a_change(latency_weight: float, alarms: bool) -> None:
    """A model's latency triples while its quality and cost stay put. Under a reward that ignores
    latency nothing is relearned (an alarm would drop what was learned of its quality too); under one
    that weighs latency the change is caught."""
    policy = make_policy("thompson", weights=RewardWeights(quality=1.0, cost=10.0, latency=latency_weight), seed=0)
    policy.add_model("m")
    rng = np.random.default_rng(0)
    x = np.array([1.0, 0.0])
    for step in range(600):
        latency = 0.2 if step < 300 else 0.6
        policy.update(x, "m", np.array([float(rng.random() < 0.8), 1e-3, latency * (1 + 0.05 * rng.standard_normal()), 0.0]))
    assert bool(policy.change_points) is alarms
    if not alarms:
        assert policy.observation_counts()["m"] == 600  # nothing dropped
