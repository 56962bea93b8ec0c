"""The online router end to end, offline: litellm's mock_response stands in for providers."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from adaptroute import (
    AllModelsFailedError,
    ModelSpec,
    RewardWeights,
    Router,
    UnknownDecisionError,
    read_log,
)

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]
# Pass rates per (task, model): the best reward differs per task once cost is weighted.
PASS = {
    ("extract", "gpt-4o-mini"): 0.92, ("extract", "gpt-4o"): 0.95, ("extract", "gpt-4.1-nano"): 0.55,
    ("code", "gpt-4o-mini"): 0.35, ("code", "gpt-4o"): 0.92, ("code", "gpt-4.1-nano"): 0.2,
}


class PassRateScorer:
    """Pass/fail drawn from the (task, executed model) pass rate, seeded apart from the router (the
    router draws one uniform per decision too: sharing a seed would tie outcomes to choices)."""

    def __init__(self, seed: int = 12345) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, messages, response) -> float:  # type: ignore[no-untyped-def]
        task = messages[-1]["content"].split(":", 1)[0]
        return float(self.rng.random() < PASS[(task, response.model)])


def ask(task: str, i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{task}: request number {i}"}]


def run(router: Router, n: int) -> list:  # type: ignore[type-arg]
    records = []
    for i in range(n):
        task = "extract" if i % 2 else "code"
        records.append(router.complete(ask(task, i), task=task, mock_response="ok").adaptroute)
    return records


# Mock calls count 10 prompt and 20 answer tokens: gpt-4o costs $0.000225 a call, gpt-4o-mini $0.0000135.
# At 1000 quality points per dollar, gpt-4o-mini has the best reward on extract, gpt-4o on code.
WEIGHTS = RewardWeights(quality=1, cost=1000)


@pytest.fixture
def router(tmp_path) -> Router:  # type: ignore[no-untyped-def]
    r = Router(models=MODELS, reward=WEIGHTS, store=str(tmp_path / "log.duckdb"),
               scorer=PassRateScorer(), seed=0)
    yield r
    r.close()


def test_router_learns_the_best_model_per_task(router: Router) -> None:
    records = run(router, 400)
    late = records[-100:]
    for task, best in (("extract", "gpt-4o-mini"), ("code", "gpt-4o")):
        picks = [r.model for r in late if r.task == task]
        assert picks.count(best) / len(picks) >= 0.7, (task, picks)


def test_every_call_leaves_a_decision_and_an_outcome(router: Router) -> None:
    run(router, 60)
    counts = router.store.counts()
    assert counts["decisions"] == counts["outcomes"] == counts["attempts"] == 60
    batch = read_log(router.store)
    assert len(batch) == 60
    assert np.all((batch.propensity > 0) & (batch.propensity <= 1))
    np.testing.assert_allclose(batch.probabilities.sum(axis=1), 1.0)
    assert np.all(batch.probabilities[np.arange(60), batch.chosen] == batch.propensity)


def test_routing_record_is_attached(router: Router) -> None:
    response = router.complete(ask("code", 1), task="code", mock_response="print(1)")
    record = response.adaptroute
    assert record.decision_id and record.model in MODELS and record.chosen in MODELS
    assert 0 < record.probability <= 1
    assert {s.model for s in record.scores} == set(MODELS)
    assert record.cost_usd > 0 and record.latency_s > 0
    assert "adaptroute" not in response.model_dump()  # not leaked into what users serialise


def test_feedback_joins_and_teaches(tmp_path) -> None:  # type: ignore[no-untyped-def]
    router = Router(models=MODELS, store=str(tmp_path / "fb.duckdb"), seed=1)
    x_counts = router.policy.observation_counts()
    record = router.complete(ask("extract", 1), task="extract", mock_response="ok").adaptroute
    assert router.policy.observation_counts() == x_counts  # no quality yet: nothing learned
    router.feedback(record.decision_id, 0.8)
    assert router.policy.observation_counts()[record.model] == 1
    router.feedback(record.decision_id, 0.2, source="human")  # a correction replaces, not adds
    assert router.policy.observation_counts()[record.model] == 1
    batch = read_log(router.store)
    assert batch.quality[0] == pytest.approx(0.2)
    with pytest.raises(UnknownDecisionError):
        router.feedback("no-such-decision", 1.0)
    assert router.store.counts()["feedback"] == 2
    router.close()


def test_retrain_reproduces_the_online_policy(router: Router) -> None:
    run(router, 120)
    x = router._featurizer.transform(ask("code", 999), "code")
    before = router.policy.predict(x)
    version = router.retrain()
    after = router.policy.predict(x)
    assert version == 1 and router.policy.version == 1
    np.testing.assert_allclose(after.means, before.means, atol=1e-6)
    np.testing.assert_allclose(after.probabilities, before.probabilities, atol=1e-6)


def test_new_weights_move_traffic_to_cheaper_models_without_retraining(router: Router) -> None:
    run(router, 300)
    version = router.policy.version
    x_share = np.mean([r.model == "gpt-4o" for r in run(router, 60)])
    router.reward = RewardWeights(quality=1, cost=10_000)  # now gpt-4o costs 2.25 quality points a call
    y_share = np.mean([r.model == "gpt-4o" for r in run(router, 60)])
    assert router.policy.version == version
    assert x_share >= 0.3 and y_share < x_share / 2


def test_escalation_reasks_a_stronger_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def strict(messages, response):  # type: ignore[no-untyped-def]
        return 1.0 if response.model == "gpt-4o" else 0.0

    weak_first = ModelSpec(name="gpt-4.1-nano", expected_quality=0.3)
    strong = ModelSpec(name="gpt-4o", expected_quality=0.9)
    router = Router(models=[weak_first, strong], reward=RewardWeights(quality=1, cost=1000), scorer=strict,
                    escalate_below=0.5, store=str(tmp_path / "esc.duckdb"), seed=0)
    records = [router.complete(ask("code", i), task="code", mock_response="x").adaptroute for i in range(30)]
    escalated = [r for r in records if r.escalated]
    assert escalated, "the cheap model should be tried and escalated at least once"
    r = escalated[0]
    assert [a.role for a in r.attempts] == ["primary", "escalation"]
    assert r.model == "gpt-4o" and r.quality == 1.0
    assert r.cost_usd == pytest.approx(sum(a.cost_usd for a in r.attempts))
    batch = read_log(router.store)
    assert batch.escalated.sum() == len(escalated)
    router.close()


def test_a_failing_model_falls_back_and_is_logged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # per-model mock responses (a per-call mock_response would apply to every model)
    broken = ModelSpec(name="gpt-4o", mock_response="litellm.InternalServerError")
    working = ModelSpec(name="gpt-4o-mini", mock_response="fine")
    router = Router(models=[broken, working], store=str(tmp_path / "fail.duckdb"), seed=0, scorer=lambda m, r: 1.0)
    records = [router.complete(ask("code", i), task="code").adaptroute for i in range(20)]
    fell_back = [r for r in records if r.chosen == "gpt-4o"]
    assert fell_back and all(r.model == "gpt-4o-mini" for r in fell_back)
    assert fell_back[0].attempts[0].error_class == "InternalServerError"
    assert router.policy.observation_counts()["gpt-4o"] >= 1  # the failure was learned
    router.close()


def test_all_models_failing_raises_with_the_whole_story(tmp_path) -> None:  # type: ignore[no-untyped-def]
    router = Router(models=MODELS, store=str(tmp_path / "down.duckdb"), seed=0)
    with pytest.raises(AllModelsFailedError) as info:
        router.complete(ask("code", 1), task="code", mock_response="litellm.InternalServerError")
    error = info.value
    assert len(error.attempts) == 3 and all(not a.ok for a in error.attempts)
    counts = router.store.counts()
    assert counts["decisions"] == counts["outcomes"] == 1 and counts["attempts"] == 3
    router.close()


def test_recommend_ranks_without_calling_or_logging(router: Router) -> None:
    run(router, 50)
    before = router.store.counts()
    ranked = router.recommend(ask("code", 1), task="code")
    assert [s.model for s in ranked] != [] and {s.model for s in ranked} == set(MODELS)
    assert ranked[0].reward >= ranked[-1].reward
    assert router.store.counts() == before


def test_acomplete(router: Router) -> None:
    async def main() -> list:  # type: ignore[type-arg]
        return await asyncio.gather(*(router.acomplete(ask("extract", i), task="extract", mock_response="ok") for i in range(20)))

    responses = asyncio.run(main())
    assert len({r.adaptroute.decision_id for r in responses}) == 20
    assert router.store.counts()["outcomes"] == 20


def test_streaming_records_first_token_and_total(router: Router) -> None:
    stream = router.complete(ask("extract", 1), task="extract", mock_response="hello streaming world", stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "hello streaming world"
    record = stream.adaptroute
    assert record.first_token_s is not None and record.latency_s >= record.first_token_s
    assert record.attempts[0].tokens_out > 0 and record.quality is not None
    assert router.store.counts()["outcomes"] == 1


def test_save_and_load_policy(router: Router, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run(router, 40)
    path = tmp_path / "policy.npz"
    router.save_policy(str(path))
    other = Router(models=MODELS, store=str(tmp_path / "other.duckdb"), seed=5)  # same folder: same log key
    other.load_policy(str(path))
    x = router._featurizer.transform(ask("code", 3), "code")
    np.testing.assert_allclose(other.policy.predict(x).probabilities, router.policy.predict(x).probabilities)
    other.close()
