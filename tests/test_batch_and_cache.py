"""The batch lane and cached-token pricing, end to end against the fake OpenAI-compatible server."""

from __future__ import annotations

import numpy as np
import pytest

from adaptroute import AllModelsFailedError, ConfigError, RewardWeights, Router, read_log
from adaptroute.testing import Behavior, FakeOpenAI

PREFIX = "You are a support assistant. " * 40  # a long shared system prompt (~1,200 characters)


@pytest.fixture()
def server():
    with FakeOpenAI(batch_polls=2) as srv:
        yield srv


def _specs(server: FakeOpenAI) -> list:
    return [server.spec("small", input_cost_per_token=1e-6, output_cost_per_token=2e-6, cache_read_cost_per_token=1e-7,
                        batch_discount=0.5),
            server.spec("large", input_cost_per_token=1e-5, output_cost_per_token=2e-5, cache_read_cost_per_token=1e-6,
                        batch_discount=0.5)]


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": PREFIX}, {"role": "user", "content": f"summarise ticket {i}"}]


def test_batch_lane_charges_the_discount_and_learns(server: FakeOpenAI, tmp_path) -> None:  # noqa: ANN001
    server.set("small", Behavior.ok("short summary", prompt_tokens=400, completion_tokens=50))
    server.set("large", Behavior.ok("long summary", prompt_tokens=400, completion_tokens=50))
    path = tmp_path / "routes.duckdb"
    router = Router(_specs(server), reward=RewardWeights(), scorer=lambda m, r: 1.0, store=str(path), seed=0)
    handles = [router.submit(_messages(i), task="summarize", deadline_s=86_400, tenant="acme") for i in range(6)]
    assert router.batch_pending == 6 and not any(h.done for h in handles)
    assert server.total == 0  # nothing is sent before collect() or result()
    first = handles[0].result(poll_s=0.01)  # sends the queue, polls until the batches complete
    assert all(h.done for h in handles)
    record = first.adaptroute
    attempt = record.attempts[0]
    assert attempt.role == "batch" and record.quality == 1.0
    model = {"small": (1e-6, 2e-6), "large": (1e-5, 2e-5)}[record.model]
    listed = 400 * model[0] + 50 * model[1]
    # the discounted price is charged (the cache's share too, after the prompt's first copy)
    assert record.cost_usd <= 0.5 * listed + 1e-12
    assert attempt.batch_saved_usd > 0
    assert router.batch_pending == 0
    learned = router.policy.observation_counts()
    assert sum(learned.values()) == 6  # outcomes learned like any other
    router.close()
    batch = read_log(path)
    assert list(batch.controls.lane) == ["batch"] * 6
    assert (batch.controls.batch_saved_usd > 0).all()
    assert list(batch.controls.tenant) == ["acme"] * 6
    assert np.allclose(batch.cost_usd, [h.result().adaptroute.cost_usd for h in handles])


def test_batch_lane_refusals_and_failures(server: FakeOpenAI) -> None:
    server.set("small", Behavior.error(500, "batch worker crashed"))
    server.set("large", Behavior.error(500, "batch worker crashed"))
    router = Router(_specs(server), reward=RewardWeights())
    with pytest.raises(ConfigError, match="deadline_s"):
        router.submit(_messages(0), deadline_s=3600)
    with pytest.raises(ConfigError, match="stream"):
        router.submit(_messages(0), stream=True)
    handle = router.submit(_messages(0))
    results = router.collect(poll_s=0.01)
    assert len(results) == 1 and isinstance(results[0], AllModelsFailedError)
    with pytest.raises(AllModelsFailedError):
        handle.result()
    assert handle.done
    router.close()


def test_cached_tokens_are_priced_at_the_cached_rate(server: FakeOpenAI) -> None:
    server.set("small", Behavior.ok("ok", prompt_tokens=400, completion_tokens=20))
    router = Router(_specs(server)[:1], reward=RewardWeights())
    first = router.complete(_messages(1), task="triage").adaptroute
    second = router.complete(_messages(2), task="triage").adaptroute  # same system prompt: its prefix is cached
    a, b = first.attempts[0], second.attempts[0]
    assert a.cached_tokens == 0 and b.cached_tokens > 200
    expected = (400 - b.cached_tokens) * 1e-6 + b.cached_tokens * 1e-7 + 20 * 2e-6
    assert b.cost_usd == pytest.approx(expected)
    assert b.cache_saved_usd == pytest.approx(b.cached_tokens * (1e-6 - 1e-7))
    assert b.input_cost_usd == pytest.approx(400 * 1e-6)
    router.close()


def test_usage_reading_covers_both_provider_shapes() -> None:
    from adaptroute.router.usage import usage_of

    openai_like = {"usage": {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 64}}}
    anthropic_like = {"usage": {"prompt_tokens": 100, "completion_tokens": 5, "cache_read_input_tokens": 80}}
    assert usage_of(openai_like).cached_tokens == 64
    assert usage_of(anthropic_like).cached_tokens == 80
    assert usage_of({"usage": {"prompt_tokens": 10, "completion_tokens": 1, "cache_read_input_tokens": 99}}).cached_tokens == 10
    assert usage_of({}).tokens_in == 0
