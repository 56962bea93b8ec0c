"""The router's per-call shortcuts give the results of the code they replaced (benchmarks/README.md)."""

from __future__ import annotations

import math
import os
import uuid

import numpy as np
import pytest

from adaptroute import ModelSpec, Router
from adaptroute.messages import prompt_hash
from adaptroute.router.calls import call_defaults, call_kwargs
from adaptroute.messages import PromptHasher
from adaptroute.router.request_parts import _new_id
from adaptroute.router.flow import _ranking
from adaptroute.router.models import resolve_models
from adaptroute.types import ModelScore

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "gpt-4.1-mini"]


@pytest.mark.parametrize("key", [b"k", os.urandom(32), os.urandom(64), os.urandom(200)])  # 200: hashed first
def test_prompt_hasher_is_prompt_hash(key: bytes) -> None:
    hasher = PromptHasher(key)
    for text in ["", "hello", "é ü 漢字 🙂", "\ud800 lone surrogate", "x" * 100_000]:
        assert hasher(text) == prompt_hash(text, key)


def test_new_id_is_a_uuid4_hex() -> None:
    ids = {_new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in list(ids)[:200]:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value and len(value) == 32
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_uniforms_are_the_seeded_stream() -> None:
    router = Router(models=MODELS, seed=7)
    reference = np.random.default_rng(7)
    assert [router._uniform() for _ in range(300)] == [reference.random() for _ in range(300)]
    router.close()


def test_draw_is_the_searchsorted_draw() -> None:
    """Same index as the NumPy code it replaced, given the same uniform number."""
    router = Router(models=MODELS, seed=3)
    reference = np.random.default_rng(3)
    picks = np.random.default_rng(0)
    for _ in range(3000):
        k = int(picks.integers(1, 12))
        p = 0.001 / k + 0.999 * picks.dirichlet(np.ones(k) * picks.uniform(0.05, 2.0))
        u = reference.random()
        want = min(int(p.cumsum().searchsorted(u * p.sum(), side="right")), len(p) - 1)
        assert router._draw(p.tolist()) == want
    router.close()


def _score(model: str, reward: float) -> ModelScore:
    return ModelScore(model, 0.5, 0.001, 1.0, 0.0, reward, 0.1, 0.25)


@pytest.mark.parametrize(
    "rewards",
    [[0.3, 0.1, 0.2, 0.4], [0.2, 0.2, 0.1, 0.2], [math.nan, 0.5, math.nan, -1.0], [1.0], [-math.inf, 0.0, 0.0]],
)
def test_ranking_is_a_stable_argsort(rewards: list[float]) -> None:
    scores = tuple(_score(f"m{i}", r) for i, r in enumerate(rewards))
    order = np.argsort(-np.array(rewards), kind="stable").tolist()
    for chosen in range(len(rewards)):
        want = [f"m{chosen}"] + [f"m{i}" for i in order if i != chosen]
        assert _ranking(scores, chosen) == want


def _old_call_kwargs(model, messages, user_kwargs, router_timeout):  # type: ignore[no-untyped-def]
    """The per-call merge the cached defaults replaced."""
    own = model.spec.call_params.get("timeout")
    timeout_s = float(own) if isinstance(own, (int, float)) else router_timeout
    kwargs = {"timeout": timeout_s, "max_retries": 0, **model.spec.call_params, **user_kwargs,
              "model": model.spec.target, "messages": messages}
    if kwargs["timeout"] is None:
        kwargs["timeout"] = timeout_s
    return kwargs


def test_cached_call_defaults_merge_as_before() -> None:
    specs = [
        ModelSpec(name="plain", litellm_model="gpt-4o-mini"),
        ModelSpec(name="own-timeout", litellm_model="gpt-4o", timeout=5, api_base="http://127.0.0.1:1", temperature=0),
        ModelSpec(name="none-timeout", litellm_model="gpt-4o", timeout=None, max_retries=3),
        ModelSpec(name="odd-timeout", litellm_model="gpt-4o", timeout="7", api_key="sk-test-123456789"),
    ]
    messages = [{"role": "user", "content": "hi"}]
    user_sets = [{}, {"mock_response": "ok"}, {"timeout": None}, {"timeout": 2.5, "max_retries": 1}, {"messages": []}]
    for model in resolve_models(specs).values():
        defaults = call_defaults(model, 60.0)
        for user in user_sets:
            got, want = call_kwargs(defaults, messages, user), _old_call_kwargs(model, messages, user, 60.0)
            assert got == want
            assert got["messages"] is messages


def test_recorded_cost_is_litellms_completion_cost() -> None:
    """The router prices a call from its usage and the price table read once; litellm's own
    completion_cost (slow: several lookups per call) gives the same dollars."""
    from adaptroute.router.calls import litellm

    router = Router(models=MODELS, seed=0)
    for i in range(40):
        response = router.complete([{"role": "user", "content": f"question {i} " * (i + 1)}], mock_response="ok " * i)
        record = response.adaptroute
        assert record.cost_usd == litellm().completion_cost(completion_response=response)
        assert record.attempts[0].tokens_in == response.usage.prompt_tokens
    router.close()
