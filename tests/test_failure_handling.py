"""Faults that used to be hidden or mislearned, over real HTTP against the fake provider: a malformed
streamed reply, an absurd Retry-After, configuration errors (auth, unknown model, bad parameters) and
scorers that raise or return nonsense."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from adaptroute import AllModelsFailedError, Router
from adaptroute.testing import Behavior, FakeOpenAI, fake_openai

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as s:
        yield s


@pytest.fixture(autouse=True)
def fresh(server: FakeOpenAI) -> Iterator[None]:
    server.reset()
    yield


def attempts_rows(router: Router) -> list[tuple[Any, ...]]:
    return router.store.query(
        "SELECT model, role, error_class, counts_against_model, returned, error_message, quality FROM attempts ORDER BY decision_id, seq"
    )


@pytest.mark.parametrize("behavior", [Behavior.malformed(), Behavior.stream_malformed()], ids=["json-body", "bad-events"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_malformed_streamed_reply_falls_back_instead_of_passing_as_an_empty_answer(
        server: FakeOpenAI, behavior: Behavior, mode: str) -> None:
    server.set("garbled", behavior)
    server.set("steady", Behavior.ok("the real answer"))
    router = Router([server.spec("garbled"), server.spec("steady")], timeout_s=5, seed=0)
    router.policy.probabilities  # noqa: B018 - the policy is ready
    for _ in range(6):  # both models get drawn first at least once with this seed
        if mode == "sync":
            stream = router.complete(HELLO, stream=True)
            text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
        else:
            async def read() -> tuple[Any, str]:
                s = await router.acomplete(HELLO, stream=True)
                parts = [(c.choices[0].delta.content or "") async for c in s if c.choices]
                return s, "".join(parts)
            stream, text = asyncio.run(read())
        assert text == "the real answer"
        assert stream.adaptroute.model == "steady"
    rows = attempts_rows(router)
    garbled = [r for r in rows if r[0] == "garbled"]
    assert garbled, "the garbled model was never drawn: the test would prove nothing"
    assert all(r[2] is not None and r[3] and not r[4] for r in garbled)  # failed, its fault, not returned
    assert server.count("garbled") == len(garbled)
    router.close()


def test_retry_after_is_capped(server: FakeOpenAI) -> None:
    server.set("limited", Behavior.rate_limited(retry_after=1_000_000_000))
    router = Router([server.spec("limited"), server.spec("other")], timeout_s=5, max_cooldown_s=1.0, seed=0)
    while server.count("limited") == 0:
        router.complete(HELLO)
    cooling = router._cooldowns.cooling()
    assert 0 < cooling["limited"] <= 1.0  # not 31 years
    default = Router([server.spec("limited"), server.spec("other")], timeout_s=5, seed=0)
    assert default.settings.max_cooldown_s == 300.0
    server.reset()
    server.set("limited", Behavior.rate_limited(retry_after=1_000_000_000))
    while server.count("limited") == 0:
        default.complete(HELLO)
    assert default._cooldowns.cooling()["limited"] <= 300.0
    router.close()
    default.close()


CONFIG_FAULTS = {
    "wrong-key": Behavior.error(401, "Incorrect API key provided", error_type="invalid_request_error", code="invalid_api_key"),
    "no-permission": Behavior.error(403, "You are not allowed to use this model", error_type="invalid_request_error"),
    "unknown-model": Behavior.error(404, "The model `misnamed` does not exist", error_type="invalid_request_error",
                                    code="model_not_found"),
    "bad-parameter": Behavior.error(400, "Unrecognized request argument supplied: frobnicate",
                                    error_type="invalid_request_error"),
}


@pytest.mark.parametrize("fault", sorted(CONFIG_FAULTS))
def test_configuration_errors_are_not_learned_and_say_so_first(server: FakeOpenAI, fault: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    server.set("misconfigured", CONFIG_FAULTS[fault])
    router = Router([server.spec("misconfigured"), server.spec("fine")], timeout_s=5, seed=0, cooldown_after=1)
    before = router.policy._arms.n.copy() if hasattr(router.policy, "_arms") else None
    with caplog.at_level(logging.WARNING, logger="adaptroute.router"):
        while server.count("misconfigured") < 3:
            response = router.complete(HELLO)
            assert response.adaptroute.model == "fine"  # fell back: the user still gets an answer
    rows = [r for r in attempts_rows(router) if r[0] == "misconfigured"]
    assert len(rows) == 3 and all(not r[3] for r in rows)  # not counted against the model
    assert all(r[5].startswith("configuration error") for r in rows)
    assert "misconfigured" not in router._cooldowns.cooling()  # not cooled down
    batch_obs = router.policy
    if before is not None:  # the policy learned from "fine" only
        models = list(batch_obs.models)
        assert batch_obs._arms.n[models.index("misconfigured")] == before[models.index("misconfigured")]
    assert sum("configuration error" in r.getMessage() for r in caplog.records) == 1  # warned once
    lonely = Router([server.spec("misconfigured")], timeout_s=5, seed=0)
    with pytest.raises(AllModelsFailedError) as info:
        lonely.complete(HELLO)
    assert str(info.value).startswith("configuration error")
    router.close()
    lonely.close()


def test_a_missing_key_is_a_configuration_error(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptroute import ModelSpec

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = ModelSpec(name="keyless", litellm_model="openai/keyless", api_base=server.base_url,
                     input_cost_per_token=1e-6, output_cost_per_token=1e-6)
    router = Router([spec], timeout_s=5)
    with pytest.raises(AllModelsFailedError) as info:
        router.complete(HELLO)
    assert str(info.value).startswith("configuration error")
    assert not info.value.attempts[0].counts_against_model
    router.close()


@pytest.mark.parametrize("verdict", ["raises", "five", "nan", "a-word"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_scorer_keeps_the_paid_answer(server: FakeOpenAI, verdict: str, stream: bool) -> None:
    def scorer(messages: Any, response: Any) -> Any:
        if verdict == "raises":
            raise KeyError("scorer bug")
        return {"five": 5, "nan": float("nan"), "a-word": "good"}[verdict]

    router = Router([server.spec("paid")], scorer=scorer, timeout_s=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            response = router.complete(HELLO, stream=stream)
            if stream:
                text = "".join((c.choices[0].delta.content or "") for c in response if c.choices)
            else:
                text = response.choices[0].message.content
            assert text == "answer from paid"
            assert response.adaptroute.quality is None
    rows = attempts_rows(router)
    assert len(rows) == 3 and all(r[2] is None and r[4] and r[6] is None for r in rows)  # answered, quality unknown
    assert all(r[5].startswith("scorer failed") for r in rows)
    assert router.store.query("SELECT count(*) FROM outcomes WHERE executed_model = 'paid' AND quality IS NULL") == [(3,)]
    assert len([w for w in caught if "scorer failed" in str(w.message)]) <= 1  # warned at most once
    router.close()
