"""Provider faults over the real HTTP path: litellm's OpenAI client against a local fake server.

One fault per test: timeouts, 429 (with and without Retry-After), 500/503, dropped connections,
malformed JSON, context-window errors, and streams that break before or after their first token. Each
checks what the user gets, what the log holds (decision, attempts, outcome) and what the policy learns.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import email.utils
import json
import urllib.error
import urllib.request
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Iterator
from typing import Any

import pytest

from adaptroute import AllModelsFailedError, ModelSpec, Router, read_log
from adaptroute.router import calls
from adaptroute.testing import Behavior, FakeOpenAI, fake_openai

MESSAGES = [{"role": "user", "content": "Extract the invoice date from: invoice #42, issued 2024-05-01."}]
TASK = "extract"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as s:
        yield s


_OPEN: list[Router] = []


@pytest.fixture(autouse=True)
def _fresh_server(server: FakeOpenAI) -> Iterator[None]:
    server.reset()
    yield
    while _OPEN:  # close every router a test made (their logs and flusher threads)
        _OPEN.pop().close()


def make_router(server: FakeOpenAI, *models: str | ModelSpec, **settings: Any) -> Router:
    specs = [m if isinstance(m, ModelSpec) else server.spec(m) for m in models]
    settings.setdefault("timeout_s", 5.0)
    seed = settings.pop("seed", 0)
    router = Router(specs, seed=seed, **settings)
    _OPEN.append(router)
    return router


def route_until_chosen(router: Router, model: str, *, limit: int = 60, **kwargs: Any) -> Any:
    """Route until the policy draws ``model`` as its first choice; return that response."""
    for _ in range(limit):
        response = router.complete(MESSAGES, task=TASK, **kwargs)
        if response.adaptroute.chosen == model:
            return response
    pytest.fail(f"the policy never drew {model!r} in {limit} calls")


async def aroute_until_chosen(router: Router, model: str, *, limit: int = 60, **kwargs: Any) -> Any:
    for _ in range(limit):
        response = await router.acomplete(MESSAGES, task=TASK, **kwargs)
        if response.adaptroute.chosen == model:
            return response
    pytest.fail(f"the policy never drew {model!r} in {limit} calls")


def attempt_rows(router: Router, decision_id: str) -> list[tuple[Any, ...]]:
    return router.store.query(
        "SELECT model, role, error_class, error_message, counts_against_model, returned "
        "FROM attempts WHERE decision_id = ? ORDER BY seq",
        [decision_id],
    )


def outcome_row(router: Router, decision_id: str) -> tuple[Any, ...]:
    rows = router.store.query(
        "SELECT executed_model, error_class, fallback_chain, n_attempts, latency_s, first_token_s "
        "FROM outcomes WHERE decision_id = ?",
        [decision_id],
    )
    assert len(rows) == 1, rows
    return rows[0]


def eligible_of(router: Router, decision_id: str) -> list[str]:
    rows = router.store.query("SELECT eligible FROM decisions WHERE decision_id = ?", [decision_id])
    assert len(rows) == 1
    return list(rows[0][0])


def text_of(response: Any) -> str:
    return response.choices[0].message.content


def check_fallback_logged(router: Router, response: Any, failed: str, served: str, error_class: str) -> None:
    record = response.adaptroute
    assert record.model == served and record.chosen == failed
    assert record.fallback_chain == (failed, served)
    assert text_of(response) == f"answer from {served}"
    rows = attempt_rows(router, record.decision_id)
    assert [(r[0], r[1], r[2], r[4], r[5]) for r in rows] == [
        (failed, "primary", error_class, True, False),
        (served, "fallback", None, True, True),
    ]
    assert rows[0][3]  # a (scrubbed) error message is kept
    executed, outcome_error, chain, n_attempts, *_ = outcome_row(router, record.decision_id)
    assert (executed, outcome_error, list(chain), n_attempts) == (served, None, [failed, served], 2)


def _post(server: FakeOpenAI, payload: dict[str, Any], key: str = "sk-fake-selftest-0001") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_fake_server_plays_scripts_in_order_and_records_requests(server: FakeOpenAI) -> None:
    server.set("scripted", Behavior.rate_limited(retry_after=2), Behavior.server_error(503), Behavior.ok("fine"))
    replies = [_post(server, {"model": "scripted", "messages": [], "n": i}) for i in range(4)]
    assert [status for status, _, _ in replies] == [429, 503, 200, 200]
    assert replies[0][1]["Retry-After"] == "2" and "Retry-After" not in replies[1][1]
    assert json.loads(replies[2][2])["choices"][0]["message"]["content"] == "fine"
    assert json.loads(replies[3][2])["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                                                  "prompt_tokens_details": {"cached_tokens": 0}}
    assert json.loads(replies[1][2])["error"]["code"] is None
    assert server.count("scripted") == 4 and server.counts == {"scripted": 4}
    recorded = server.requests("scripted")
    assert [r.json["n"] for r in recorded] == [0, 1, 2, 3]
    assert recorded[0].headers["authorization"] == "Bearer sk-fake-selftest-0001"
    server.set("echo", Behavior.echo_key())
    status, _, body = _post(server, {"model": "echo", "messages": []}, key="sk-fake-echo-me")
    assert status == 401 and "sk-fake-echo-me" in json.loads(body)["error"]["message"]
    server.set("ctx", Behavior.context_window())
    status, _, body = _post(server, {"model": "ctx", "messages": []})
    assert status == 400 and json.loads(body)["error"]["code"] == "context_length_exceeded"
    server.reset()
    assert server.total == 0 and server.requests() == []


# -- one fault per test: fall back, log it against the model that failed ---------------------------------

FAULTS = {
    "429": (Behavior.rate_limited(), "RateLimitError"),
    "500": (Behavior.server_error(500), "InternalServerError"),
    "503": (Behavior.server_error(503), "ServiceUnavailableError"),
    "dropped-connection": (Behavior.drop(), "InternalServerError"),
    "malformed-json": (Behavior.malformed(), "InternalServerError"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_falls_back_to_the_next_model(server: FakeOpenAI, fault: str) -> None:
    behavior, error_class = FAULTS[fault]
    server.set("flaky", behavior)
    router = make_router(server, server.spec("flaky", expected_quality=0.9), server.spec("steady", expected_quality=0.3))
    response = route_until_chosen(router, "flaky")
    check_fallback_logged(router, response, "flaky", "steady", error_class)
    assert server.count("flaky") == 1  # no same-model retries by default


@pytest.mark.parametrize("fault", ["429", "500", "dropped-connection"])
def test_fault_falls_back_async(server: FakeOpenAI, fault: str) -> None:
    behavior, error_class = FAULTS[fault]
    server.set("flaky", behavior)
    router = make_router(server, server.spec("flaky", expected_quality=0.9), server.spec("steady", expected_quality=0.3))
    response = asyncio.run(aroute_until_chosen(router, "flaky"))
    check_fallback_logged(router, response, "flaky", "steady", error_class)


def test_timeout_falls_back_fast(server: FakeOpenAI) -> None:
    server.set("slow", Behavior.slow(5.0))
    router = make_router(server, server.spec("slow", expected_quality=0.9), server.spec("steady", expected_quality=0.3),
                         timeout_s=0.5)
    start = time.perf_counter()
    response = route_until_chosen(router, "slow")
    assert time.perf_counter() - start < 3.0  # not the server's 5 s, let alone litellm's 6000 s default
    check_fallback_logged(router, response, "slow", "steady", "Timeout")
    assert 0.4 <= response.adaptroute.attempts[0].latency_s < 2.0


def test_timeout_falls_back_fast_async(server: FakeOpenAI) -> None:
    server.set("slow", Behavior.slow(5.0))
    router = make_router(server, server.spec("slow", expected_quality=0.9), server.spec("steady", expected_quality=0.3),
                         timeout_s=0.5)
    start = time.perf_counter()
    response = asyncio.run(aroute_until_chosen(router, "slow"))
    assert time.perf_counter() - start < 3.0
    check_fallback_logged(router, response, "slow", "steady", "Timeout")


def test_fallbacks_are_bounded_by_max_fallbacks(server: FakeOpenAI) -> None:
    names = ["down1", "down2", "down3", "down4"]
    for name in names:
        server.set(name, Behavior.server_error(500))
    for max_fallbacks, expected in ((0, 1), (1, 2), (2, 3)):
        server.reset()
        for name in names:
            server.set(name, Behavior.server_error(500))
        router = make_router(server, *names, max_fallbacks=max_fallbacks, cooldown_after=100)
        with pytest.raises(AllModelsFailedError) as info:
            router.complete(MESSAGES, task=TASK)
        assert len(info.value.attempts) == expected
        assert server.total == expected  # no more requests than attempts
        assert router.store.counts()["attempts"] == expected


# -- the policy learns the failure ---------------------------------------------------------------------


def test_repeated_failures_lower_the_failing_models_probability(server: FakeOpenAI) -> None:
    server.set("broken", Behavior.server_error(500))
    router = make_router(server, "broken", "healthy", scorer=lambda messages, response: 1.0, cooldown_after=1000)
    before = {s.model: s for s in router.recommend(MESSAGES, task=TASK)}
    failures = 0
    for _ in range(40):
        response = router.complete(MESSAGES, task=TASK)
        assert response.adaptroute.model == "healthy"  # the user always gets an answer
        failures += response.adaptroute.chosen == "broken"
    after = {s.model: s for s in router.recommend(MESSAGES, task=TASK)}
    assert failures >= 1
    assert server.count("broken") == failures
    logged = router.store.query(
        "SELECT count(*) FROM attempts WHERE model = 'broken' AND error_class = 'InternalServerError' AND counts_against_model"
    )[0][0]
    assert logged == failures
    assert after["broken"].failure > 0.5 > after["healthy"].failure
    assert after["broken"].probability < before["broken"].probability / 2
    assert after["broken"].probability < 0.1 < 0.9 < after["healthy"].probability
    # a retrain from the log learns the same failures
    router.retrain()
    retrained = {s.model: s for s in router.recommend(MESSAGES, task=TASK)}
    assert retrained["broken"].failure > 0.5 and retrained["broken"].probability < 0.1


# -- cool-downs ----------------------------------------------------------------------------------------


def _eligible_after_call(router: Router) -> tuple[list[str], Any]:
    response = router.complete(MESSAGES, task=TASK)
    return eligible_of(router, response.adaptroute.decision_id), response


def _wait_until_eligible(router: Router, model: str, timeout: float) -> float:
    """Route until ``model`` is eligible again; return when that happened (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        eligible, _ = _eligible_after_call(router)
        if model in eligible:
            return time.monotonic()
        time.sleep(0.05)
    pytest.fail(f"{model} did not come back within {timeout} s")


def test_429_cools_the_model_down_for_its_retry_after(server: FakeOpenAI) -> None:
    server.set("limited", Behavior.rate_limited(retry_after=1.0), Behavior.ok())
    router = make_router(server, server.spec("limited", expected_quality=0.9), server.spec("spare", expected_quality=0.3),
                         cooldown_s=60.0)
    response = route_until_chosen(router, "limited")
    failed_at = time.monotonic()
    check_fallback_logged(router, response, "limited", "spare", "RateLimitError")
    for _ in range(5):  # while it rests, it is not even eligible
        eligible, response = _eligible_after_call(router)
        assert eligible == ["spare"] and response.adaptroute.model == "spare"
    assert time.monotonic() - failed_at < 0.9, "the calls above were too slow to observe the cool-down"
    assert server.count("limited") == 1  # no request reached it while it rested
    back = _wait_until_eligible(router, "limited", timeout=10.0)
    assert 0.9 <= back - failed_at < 5.0  # Retry-After (1 s) honoured, not cooldown_s (60 s)


def test_429_without_retry_after_uses_cooldown_s(server: FakeOpenAI) -> None:
    server.set("limited", Behavior.rate_limited(), Behavior.ok())
    router = make_router(server, server.spec("limited", expected_quality=0.9), server.spec("spare", expected_quality=0.3),
                         cooldown_s=0.3)
    route_until_chosen(router, "limited")
    failed_at = time.monotonic()
    eligible, _ = _eligible_after_call(router)
    assert eligible == ["spare"]
    back = _wait_until_eligible(router, "limited", timeout=5.0)
    assert 0.25 <= back - failed_at < 3.0


@pytest.mark.parametrize("header", ["soon", "inf", "nan", ""])
def test_unusable_retry_after_is_ignored(server: FakeOpenAI, header: str) -> None:
    server.set("limited", Behavior.rate_limited(retry_after=header), Behavior.ok())
    router = make_router(server, server.spec("limited", expected_quality=0.9), server.spec("spare", expected_quality=0.3),
                         cooldown_s=0.3)
    response = route_until_chosen(router, "limited")  # a bad header must not break the request
    failed_at = time.monotonic()
    check_fallback_logged(router, response, "limited", "spare", "RateLimitError")
    eligible, _ = _eligible_after_call(router)
    assert eligible == ["spare"]  # cooled down for cooldown_s instead
    back = _wait_until_eligible(router, "limited", timeout=5.0)
    assert back - failed_at < 3.0


def test_retry_after_as_http_date(server: FakeOpenAI) -> None:
    when = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)
    server.set("limited", Behavior.rate_limited(retry_after=when), Behavior.ok())
    router = make_router(server, server.spec("limited", expected_quality=0.9), server.spec("spare", expected_quality=0.3),
                         cooldown_s=60.0)
    route_until_chosen(router, "limited")
    failed_at = time.monotonic()
    eligible, _ = _eligible_after_call(router)
    assert eligible == ["spare"]
    back = _wait_until_eligible(router, "limited", timeout=6.0)
    assert back - failed_at < 4.0  # the date (1-2 s away at one-second resolution), not cooldown_s


def test_repeated_5xx_cool_the_model_down(server: FakeOpenAI) -> None:
    server.set("wobbly", Behavior.server_error(503))
    router = make_router(server, server.spec("wobbly", expected_quality=0.9), server.spec("spare", expected_quality=0.3),
                         retries=2, retry_backoff_s=0.01, cooldown_after=3, cooldown_s=0.3)
    response = route_until_chosen(router, "wobbly")
    failed_at = time.monotonic()
    record = response.adaptroute
    assert [(a.model, a.role, a.error_class) for a in record.attempts] == [
        ("wobbly", "primary", "ServiceUnavailableError"),
        ("wobbly", "retry", "ServiceUnavailableError"),
        ("wobbly", "retry", "ServiceUnavailableError"),
        ("spare", "fallback", None),
    ]
    assert server.count("wobbly") == 3
    assert router.store.query("SELECT retries FROM outcomes WHERE decision_id = ?", [record.decision_id]) == [(2,)]
    eligible, _ = _eligible_after_call(router)
    assert eligible == ["spare"]
    back = _wait_until_eligible(router, "wobbly", timeout=5.0)
    assert back - failed_at >= 0.25


def test_retries_stop_once_the_model_is_cooling_down(server: FakeOpenAI) -> None:
    server.set("wobbly", Behavior.server_error(500))
    router = make_router(server, server.spec("wobbly", expected_quality=0.9), server.spec("spare", expected_quality=0.3),
                         retries=4, retry_backoff_s=0.01, cooldown_after=2, cooldown_s=60.0)
    response = route_until_chosen(router, "wobbly")
    assert [(a.model, a.role) for a in response.adaptroute.attempts] == [
        ("wobbly", "primary"), ("wobbly", "retry"), ("spare", "fallback")
    ]
    assert server.count("wobbly") == 2


def test_5xx_cool_down_honours_retry_after(server: FakeOpenAI) -> None:
    server.set("busy", Behavior.error(503, "overloaded", retry_after=0.6))
    router = make_router(server, server.spec("busy", expected_quality=0.9), server.spec("spare", expected_quality=0.3),
                         cooldown_after=1, cooldown_s=60.0)
    route_until_chosen(router, "busy")
    failed_at = time.monotonic()
    eligible, _ = _eligible_after_call(router)
    assert eligible == ["spare"]
    back = _wait_until_eligible(router, "busy", timeout=5.0)
    assert 0.5 <= back - failed_at < 4.0  # the server's 0.6 s, not cooldown_s


def test_a_single_5xx_does_not_cool_the_model_down(server: FakeOpenAI) -> None:
    server.set("wobbly", Behavior.server_error(500))
    router = make_router(server, server.spec("wobbly", expected_quality=0.9), server.spec("spare", expected_quality=0.3),
                         cooldown_after=3, cooldown_s=60.0)
    route_until_chosen(router, "wobbly")
    eligible, _ = _eligible_after_call(router)
    assert "wobbly" in eligible


# -- every model fails ---------------------------------------------------------------------------------


def _check_all_failed(router: Router, error: AllModelsFailedError, expected: dict[str, str]) -> None:
    assert error.decision_id and error.decision_id in str(error)
    assert {a.model: a.error_class for a in error.attempts} == expected
    assert all(a.counts_against_model and a.error_message for a in error.attempts)
    chain = [a.model for a in error.attempts]
    assert router.store.query("SELECT count(*) FROM decisions WHERE decision_id = ?", [error.decision_id]) == [(1,)]
    rows = attempt_rows(router, error.decision_id)
    assert [(r[0], r[2], r[5]) for r in rows] == [(a.model, a.error_class, False) for a in error.attempts]
    executed, outcome_error, logged_chain, n_attempts, *_ = outcome_row(router, error.decision_id)
    assert executed is None
    assert outcome_error == error.attempts[-1].error_class
    assert list(logged_chain) == chain and n_attempts == len(chain)
    batch = read_log(router.store)
    assert batch.failed.tolist() == [True] and batch.executed.tolist() == [-1]


def test_all_models_fail(server: FakeOpenAI) -> None:
    server.set("m429", Behavior.rate_limited())
    server.set("m500", Behavior.server_error(500))
    server.set("mdrop", Behavior.drop())
    router = make_router(server, "m429", "m500", "mdrop")
    with pytest.raises(AllModelsFailedError) as info:
        router.complete(MESSAGES, task=TASK)
    _check_all_failed(router, info.value,
                      {"m429": "RateLimitError", "m500": "InternalServerError", "mdrop": "InternalServerError"})
    assert router.store.counts() == {"decisions": 1, "attempts": 3, "outcomes": 1, "feedback": 0}


def test_all_models_fail_async(server: FakeOpenAI) -> None:
    server.set("m503", Behavior.server_error(503))
    server.set("mslow", Behavior.slow(5.0))
    router = make_router(server, "m503", "mslow", timeout_s=0.5)
    with pytest.raises(AllModelsFailedError) as info:
        asyncio.run(router.acomplete(MESSAGES, task=TASK))
    _check_all_failed(router, info.value, {"m503": "ServiceUnavailableError", "mslow": "Timeout"})


# -- context windows -----------------------------------------------------------------------------------


def test_context_window_error_moves_to_a_larger_window_without_penalty(server: FakeOpenAI) -> None:
    server.set("tiny", Behavior.context_window())
    server.set("small", Behavior.context_window())
    router = make_router(
        server,
        server.spec("tiny", max_input_tokens=2_000, expected_quality=0.5),
        server.spec("small", max_input_tokens=8_000, expected_quality=0.9),
        server.spec("large", max_input_tokens=128_000, expected_quality=0.1),
        cooldown_after=1,  # any failure that counted would cool the model down at once
    )
    before = router.recommend(MESSAGES, task=TASK)
    response = route_until_chosen(router, "small")
    record = response.adaptroute
    assert record.fallback_chain == ("small", "large")  # "tiny" has no larger window: skipped
    assert text_of(response) == "answer from large"
    first = record.attempts[0]
    assert first.error_class == "ContextWindowExceededError" and not first.counts_against_model
    rows = attempt_rows(router, record.decision_id)
    assert [(r[0], r[2], r[4]) for r in rows] == [("small", "ContextWindowExceededError", False), ("large", None, True)]
    # not held against the model: nothing learned (quality and failure predictions unchanged; the cost
    # prior may follow the deployment's token counts), no cool-down
    after = {s.model: s for s in router.recommend(MESSAGES, task=TASK)}
    for score in before:
        if score.model != "large":
            assert (after[score.model].quality, after[score.model].failure) == (score.quality, score.failure)
    assert router.policy.observation_counts()["small"] == 0
    eligible, _ = _eligible_after_call(router)
    assert {"tiny", "small"} <= set(eligible)
    batch = read_log(router.store)
    observed = {batch.models[i] for i in batch.observations.model}
    assert not observed & {"tiny", "small"}


# -- the timeout always reaches litellm ----------------------------------------------------------------


def test_every_call_carries_a_timeout(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    module = calls.litellm()
    original = module.completion
    seen: list[dict[str, Any]] = []

    def spy(**kwargs: Any) -> Any:
        seen.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(module, "completion", spy)
    with Router([server.spec("plain")]) as router:  # the defaults
        router.complete(MESSAGES)
    assert seen[-1]["timeout"] == 60.0 and seen[-1]["max_retries"] == 0
    make_router(server, "plain", timeout_s=0.75).complete(MESSAGES)
    assert seen[-1]["timeout"] == 0.75
    make_router(server, server.spec("plain", timeout=0.25), timeout_s=0.75).complete(MESSAGES)
    assert seen[-1]["timeout"] == 0.25  # a model's own timeout wins over the router's
    make_router(server, "plain", timeout_s=0.75).complete(MESSAGES, timeout=0.5)
    assert seen[-1]["timeout"] == 0.5  # and a per-call one over both
    make_router(server, server.spec("plain", timeout=None), timeout_s=0.75).complete(MESSAGES, timeout=None)
    assert seen[-1]["timeout"] == 0.75  # None would mean litellm's 6000 s: the router's applies
    assert all(0 < call["timeout"] <= 60 for call in seen)


def test_slow_model_with_short_timeout_fails_fast(server: FakeOpenAI) -> None:
    server.set("glacial", Behavior.slow(10.0))
    router = make_router(server, "glacial", timeout_s=0.5)
    start = time.perf_counter()
    with pytest.raises(AllModelsFailedError) as info:
        router.complete(MESSAGES, task=TASK)
    elapsed = time.perf_counter() - start
    assert 0.45 <= elapsed < 2.5
    assert [a.error_class for a in info.value.attempts] == ["Timeout"]


# -- streaming -----------------------------------------------------------------------------------------


def _read_stream(router: Router, mode: str) -> tuple[Any, list[Any], BaseException | None]:
    """Open a routed stream and read it to its end (or its break)."""
    if mode == "sync":
        stream = router.complete(MESSAGES, task=TASK, stream=True)
        chunks: list[Any] = []
        try:
            for chunk in stream:
                chunks.append(chunk)
        except Exception as exc:  # noqa: BLE001
            return stream, chunks, exc
        return stream, chunks, None

    async def read() -> tuple[Any, list[Any], BaseException | None]:
        stream = await router.acomplete(MESSAGES, task=TASK, stream=True)
        chunks: list[Any] = []
        try:
            async for chunk in stream:
                chunks.append(chunk)
        except Exception as exc:  # noqa: BLE001
            return stream, chunks, exc
        return stream, chunks, None

    return asyncio.run(read())


def _joined(chunks: list[Any]) -> str:
    return "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_records_first_token_and_total_latency(server: FakeOpenAI, mode: str) -> None:
    _read_stream(make_router(server, "warm-up"), mode)  # litellm's first stream spends ~0.3 s setting up
    server.set("streamer", Behavior.ok("one two three four", chunk_delay_s=0.05, prompt_tokens=12, completion_tokens=5))
    router = make_router(server, "streamer")
    stream, chunks, error = _read_stream(router, mode)
    assert error is None
    assert _joined(chunks) == "one two three four"
    record = stream.adaptroute
    assert record.model == "streamer" and record.returned_seq == 0
    assert 0 < record.first_token_s < record.latency_s
    assert record.latency_s - record.first_token_s >= 0.12  # three pauses of 0.05 s after the first token
    attempt = record.attempts[0]
    assert (attempt.tokens_in, attempt.tokens_out) == (12, 5)
    assert attempt.cost_usd == pytest.approx(12e-6 + 5 * 2e-6)
    assert attempt.first_token_s == pytest.approx(record.first_token_s)
    executed, error_class, chain, n_attempts, latency, first_token = outcome_row(router, record.decision_id)
    assert (executed, error_class, list(chain), n_attempts) == ("streamer", None, ["streamer"], 1)
    assert first_token == pytest.approx(record.first_token_s) and latency == pytest.approx(record.latency_s)
    assert server.requests("streamer")[0].json["stream"] is True


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_breaking_before_first_token_falls_back(server: FakeOpenAI, mode: str) -> None:
    server.set("brittle", Behavior.stream_break(after_first_token=False))
    server.set("steady", Behavior.ok("all good here"))
    router = make_router(server, server.spec("brittle", expected_quality=0.9), server.spec("steady", expected_quality=0.3))
    for _ in range(60):
        stream, chunks, error = _read_stream(router, mode)
        assert error is None
        assert _joined(chunks) == "all good here"
        if stream.adaptroute.chosen == "brittle":
            break
    else:
        pytest.fail("the policy never drew 'brittle'")
    record = stream.adaptroute
    assert record.fallback_chain == ("brittle", "steady") and record.model == "steady"
    assert record.attempts[0].error_class is not None and record.attempts[0].counts_against_model
    assert record.first_token_s is not None
    rows = attempt_rows(router, record.decision_id)
    assert [(r[0], r[1], r[2] is None, r[5]) for r in rows] == [("brittle", "primary", False, False),
                                                              ("steady", "fallback", True, True)]
    executed, error_class, chain, *_ = outcome_row(router, record.decision_id)
    assert (executed, error_class, list(chain)) == ("steady", None, ["brittle", "steady"])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_breaking_after_first_token_is_logged_as_failed(server: FakeOpenAI, mode: str) -> None:
    server.set("brittle", Behavior.stream_break(after_first_token=True, content="partial answer"))
    router = make_router(server, "brittle", "steady")
    for _ in range(60):
        stream, chunks, error = _read_stream(router, mode)
        if stream.adaptroute.chosen == "brittle":
            break
        assert error is None
    else:
        pytest.fail("the policy never drew 'brittle'")
    assert error is not None  # the reader sees the break: the stream cannot fall back mid-answer
    assert _joined(chunks) == "partial"
    record = stream.adaptroute
    assert record.model is None and record.returned_seq is None
    assert record.fallback_chain == ("brittle",) and server.count("steady") <= 60
    attempt = record.attempts[0]
    assert attempt.error_class is not None and attempt.first_token_s is not None
    executed, error_class, chain, n_attempts, *_ = outcome_row(router, record.decision_id)
    assert executed is None and error_class == attempt.error_class and list(chain) == ["brittle"]
    rows = attempt_rows(router, record.decision_id)
    assert [(r[0], r[2]) for r in rows] == [("brittle", attempt.error_class)]
    batch = read_log(router.store)
    assert batch.failed[list(batch.decision_ids).index(record.decision_id)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_that_stalls_mid_way_times_out(server: FakeOpenAI, mode: str) -> None:
    _read_stream(make_router(server, "warm-up"), mode)
    server.set("stalling", Behavior.ok("first second third", chunk_delay_s=5.0))
    router = make_router(server, "stalling", timeout_s=0.5)
    start = time.perf_counter()
    stream, chunks, error = _read_stream(router, mode)
    assert time.perf_counter() - start < 3.0  # the timeout also bounds each read of a stream
    assert error is not None and _joined(chunks) == "first"
    record = stream.adaptroute
    assert record.model is None and record.attempts[0].error_class == "Timeout"
    executed, error_class, *_ = outcome_row(router, record.decision_id)
    assert (executed, error_class) == (None, "Timeout")
