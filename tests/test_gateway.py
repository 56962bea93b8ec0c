"""adaptroute serve over real HTTP on both sides: the official openai SDK (sync, async, streaming) and
curl against the gateway, the fault-injecting fake provider behind it. Each test checks what the
client gets and what the log holds."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from adaptroute.testing import Behavior, FakeOpenAI, fake_openai
from gateway_harness import CLIENT_KEY, PROVIDER_KEY, ThreadGateway, write_config

MESSAGES = [{"role": "user", "content": "Extract the invoice date from: invoice #42, issued 2024-05-01."}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


@pytest.fixture
def gateway(fake: FakeOpenAI, tmp_path: Path) -> Iterator[Callable[..., ThreadGateway]]:
    """start(models, router={...}, server={...}) -> a running gateway (stopped at the end)."""
    fake.reset()
    started: list[ThreadGateway] = []

    def start(models: list[str], **sections: Any) -> ThreadGateway:
        path = write_config(tmp_path, fake, models, name=f"gateway-{len(started)}.toml", **sections)
        gw = ThreadGateway(path).__enter__()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.__exit__()


def client(gw: ThreadGateway, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)


def post(gw: ThreadGateway, body: Any, key: str | None = CLIENT_KEY, path: str = "/v1/chat/completions",
         **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kwargs.pop("headers", {}))
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(gw.url + path, content=content, headers={"Content-Type": "application/json", **headers},
                      timeout=30, **kwargs)


# -- the schema round trip ---------------------------------------------------------------------------
def test_sync_sdk_round_trip_and_the_log(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast", "strong"])
    raw = client(gw).chat.completions.with_raw_response.create(model="adaptroute/extract", messages=MESSAGES,
                                                               temperature=0, max_tokens=20, top_p=0.5)
    response = raw.parse()
    decision_id = raw.headers["x-adaptroute-decision-id"]
    assert response.object == "chat.completion"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == f"answer from {response.model}"
    assert response.usage.prompt_tokens == 12 and response.usage.completion_tokens == 5
    record = response.adaptroute  # the routing record, an extra field the SDK keeps
    assert record["decision_id"] == decision_id and record["task"] == "extract"
    assert record["model"] == response.model and record["model"] in ("fast", "strong")
    assert record["attempts"][0]["role"] == "primary" and record["cost_usd"] > 0
    # extra fields passed through to the provider; the provider's key stayed with the gateway
    sent = fake.requests(record["model"])[-1]
    assert sent.json["temperature"] == 0 and sent.json["max_tokens"] == 20 and sent.json["top_p"] == 0.5
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert gw.rows("decisions", decision_id) == 1 and gw.rows("outcomes", decision_id) == 1
    assert PROVIDER_KEY not in raw.http_response.text


def test_task_from_header_and_models_list(gateway) -> None:
    gw = gateway(["fast"], server={"tasks": ["extract", "triage"]})
    sdk = client(gw)
    response = sdk.chat.completions.create(model="adaptroute", messages=MESSAGES,
                                           extra_headers={"X-Adaptroute-Task": "triage"})
    assert response.adaptroute["task"] == "triage"
    assert [m.id for m in sdk.models.list()] == ["adaptroute", "adaptroute/extract", "adaptroute/triage"]
    with pytest.raises(openai.BadRequestError) as info:  # a task this gateway does not serve
        sdk.chat.completions.create(model="adaptroute/unknown", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert gw.rows("decisions") == 1


def test_async_sdk_concurrent_requests(gateway) -> None:
    gw = gateway(["fast", "strong"])

    async def run() -> list[Any]:
        sdk = openai.AsyncOpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
        try:
            return await asyncio.gather(*[sdk.chat.completions.create(model="adaptroute/qa", messages=MESSAGES)
                                          for _ in range(20)])
        finally:
            await sdk.close()

    responses = asyncio.run(run())
    ids = {r.adaptroute["decision_id"] for r in responses}
    assert len(ids) == 20
    assert gw.rows("decisions") == 20 and gw.rows("outcomes") == 20


def test_per_request_controls_pass_to_the_router(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast", "strong"])
    sdk = client(gw)
    for _ in range(3):  # the allow-list holds whatever the policy would have drawn
        response = sdk.chat.completions.create(model="adaptroute/extract", messages=MESSAGES, metadata={"run": "r-7"},
                                               extra_body={"models": ["strong"], "tenant": "acme",
                                                           "reward": {"quality": 1.0, "cost": 0.0}})
        assert response.adaptroute["model"] == "strong"
    rows = gw.router.store.query("SELECT tenant, metadata FROM decisions")
    assert len(rows) == 3 and all(t == "acme" and json.loads(m) == {"run": "r-7"} for t, m in rows)
    assert all("metadata" not in r.json and "tenant" not in r.json for r in fake.requests("strong"))  # adaptroute's own
    bad = post(gw, {"model": "adaptroute", "messages": MESSAGES, "reward": {"quality": -1}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "reward"
    assert post(gw, {"model": "adaptroute", "messages": MESSAGES, "models": ["nope"]}).status_code == 400
    assert gw.rows("decisions") == 3


# -- streaming ---------------------------------------------------------------------------------------
def test_stream_like_openai_with_and_without_usage(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast"])
    fake.set("fast", Behavior.ok("one two three"))
    sdk = client(gw)
    chunks = list(sdk.chat.completions.create(model="adaptroute/draft", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert all(c.object == "chat.completion.chunk" and c.choices for c in chunks)  # no usage chunk unasked
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].adaptroute["model"] == "fast" and chunks[-1].adaptroute["first_token_s"] is not None
    with_usage = list(sdk.chat.completions.create(model="adaptroute/draft", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True}))
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in with_usage[:-1])
    assert gw.rows("decisions") == 2 and gw.rows("outcomes") == 2


def test_async_stream_and_raw_sse_framing(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast"])
    fake.set("fast", Behavior.ok("alpha beta"))

    async def run() -> str:
        sdk = openai.AsyncOpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
        try:
            stream = await sdk.chat.completions.create(model="adaptroute/draft", messages=MESSAGES, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        finally:
            await sdk.close()

    assert asyncio.run(run()) == "alpha beta"
    raw = post(gw, {"model": "adaptroute/draft", "messages": MESSAGES, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [e for e in raw.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert raw.headers["x-adaptroute-decision-id"] == json.loads(events[-2][6:])["adaptroute"]["decision_id"]


def test_stream_dropped_mid_way_by_the_provider(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast"])
    fake.set("fast", Behavior.stream_break(after_first_token=True, content="partial answer here"))
    with pytest.raises(openai.APIError):
        for _ in client(gw).chat.completions.create(model="adaptroute/draft", messages=MESSAGES, stream=True):
            pass
    rows = gw.router.store.query("SELECT error_class FROM attempts")
    assert len(rows) == 1 and rows[0][0] is not None
    assert gw.rows("decisions") == 1 and gw.rows("outcomes") == 1


def test_stream_breaking_before_the_first_token_falls_back(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast", "strong"])
    fake.set("fast", Behavior.stream_break(after_first_token=False))
    fake.set("strong", Behavior.stream_break(after_first_token=False))
    with pytest.raises(openai.APIStatusError) as info:
        list(client(gw).chat.completions.create(model="adaptroute/draft", messages=MESSAGES, stream=True))
    assert info.value.status_code == 502
    assert gw.rows("decisions") == 1 and gw.rows("attempts") == 2


def test_client_leaving_mid_stream_is_logged_as_closed_by_the_caller(gateway, fake: FakeOpenAI) -> None:
    import time

    gw = gateway(["fast"])
    fake.set("fast", Behavior.ok(" ".join(["word"] * 40), chunk_delay_s=0.1))
    with httpx.stream("POST", gw.base_url + "/chat/completions", timeout=30, headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                      json={"model": "adaptroute/draft", "messages": MESSAGES, "stream": True}) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    deadline = time.time() + 10
    while gw.rows("outcomes") == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert gw.router.store.query("SELECT error_class, counts_against_model FROM attempts") == [("StreamClosed", False)]
    assert gw.rows("decisions") == 1 and gw.rows("outcomes") == 1
    metrics = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {CLIENT_KEY}"}).text
    assert "adaptroute_in_flight_requests 0" in metrics


# -- feedback ----------------------------------------------------------------------------------------
def test_feedback_joined_by_decision_id(gateway) -> None:
    gw = gateway(["fast"])
    response = client(gw).chat.completions.create(model="adaptroute/extract", messages=MESSAGES)
    decision_id = response.adaptroute["decision_id"]
    ok = post(gw, {"decision_id": decision_id, "quality": 0.75}, path="/v1/feedback")
    assert ok.status_code == 200 and ok.json()["decision_id"] == decision_id
    assert gw.router.store.query("SELECT quality, source FROM feedback WHERE decision_id = ?", [decision_id]) == [(0.75, "api")]
    assert post(gw, {"decision_id": "0" * 32, "quality": 1}, path="/v1/feedback").status_code == 404
    bad = post(gw, {"decision_id": decision_id, "quality": 7}, path="/v1/feedback")
    assert bad.status_code == 400 and "quality" in bad.json()["error"]["message"]
    assert post(gw, {"quality": 1}, path="/v1/feedback").status_code == 400
    assert post(gw, {"decision_id": decision_id, "quality": 1}, key=None, path="/v1/feedback").status_code == 401
    assert gw.rows("feedback") == 1


# -- auth --------------------------------------------------------------------------------------------
def test_401_without_a_valid_key_and_no_decision_row(gateway) -> None:
    gw = gateway(["fast"])
    for key in ("wrong-key", "", CLIENT_KEY + "x"):
        with pytest.raises(openai.AuthenticationError) as info:
            client(gw, key=key or "none").chat.completions.create(model="adaptroute", messages=MESSAGES)
        assert info.value.status_code == 401 and CLIENT_KEY not in str(info.value)
    assert post(gw, {"model": "adaptroute", "messages": MESSAGES}, key=None).status_code == 401
    basic = post(gw, {"model": "adaptroute", "messages": MESSAGES}, key=None, headers={"Authorization": f"Basic {CLIENT_KEY}"})
    assert basic.status_code == 401
    for path in ("/metrics", "/dashboard", "/v1/router/state", "/v1/models"):
        assert httpx.get(gw.url + path).status_code == 401, path
    assert httpx.get(gw.url + "/healthz").status_code == 200  # open by default
    assert gw.rows("decisions") == 0


def test_clients_cannot_redirect_calls_or_set_provider_keys(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast"])
    for field, value in (("api_base", "http://127.0.0.1:1/v1"), ("api_key", "sk-other"), ("mock_response", "x"),
                         ("base_url", "http://example.invalid"), ("litellm_logging_obj", 1)):
        response = post(gw, {"model": "adaptroute", "messages": MESSAGES, field: value})
        assert response.status_code == 400 and response.json()["error"]["param"] == field
    assert fake.total == 0 and gw.rows("decisions") == 0


# -- error statuses ----------------------------------------------------------------------------------
def test_400_for_bad_requests_and_no_rows(gateway) -> None:
    gw = gateway(["fast"])
    cases = [
        b"{not json",
        b"[1, 2]",
        {"model": "adaptroute"},
        {"model": "adaptroute", "messages": []},
        {"model": "adaptroute", "messages": [{"role": "user"}]},
        {"model": "adaptroute", "messages": "hello"},
        {"model": 3, "messages": MESSAGES},
        {"model": "adaptroute", "messages": MESSAGES, "stream": "yes"},
        {"model": "adaptroute", "messages": MESSAGES, "stream_options": {"include_usage": True}},
    ]
    for body in cases:
        response = post(gw, body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
    assert post(gw, b"").status_code == 400
    assert gw.rows("decisions") == 0


def test_413_for_huge_bodies(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast"], server={"max_body_bytes": 64 * 1024})
    huge = {"model": "adaptroute", "messages": [{"role": "user", "content": "x" * (200 * 1024)}]}
    response = post(gw, huge)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"model": "adaptroute", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 4096
        yield b'"}]}'

    streamed = httpx.post(gw.base_url + "/chat/completions", content=chunked(), timeout=30,
                          headers={"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert fake.total == 0 and gw.rows("decisions") == 0


def test_429_when_every_model_is_rate_limited(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast", "strong"], router={"max_fallbacks": 1})
    fake.set("fast", Behavior.rate_limited(retry_after=20))
    fake.set("strong", Behavior.rate_limited(retry_after=20))
    with pytest.raises(openai.RateLimitError) as info:
        client(gw).chat.completions.create(model="adaptroute/extract", messages=MESSAGES)
    error = info.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    assert 1 <= int(error.response.headers["retry-after"]) <= 20
    decision_id = error.response.headers["x-adaptroute-decision-id"]
    assert gw.rows("decisions", decision_id) == 1 and gw.rows("outcomes", decision_id) == 1
    # both models now cool down: the next request is refused the same way
    with pytest.raises(openai.RateLimitError):
        client(gw).chat.completions.create(model="adaptroute/extract", messages=MESSAGES)


def test_502_when_every_model_fails(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast", "strong"], router={"max_fallbacks": 1})
    fake.set("fast", Behavior.server_error(500))
    fake.set("strong", Behavior.drop())
    with pytest.raises(openai.APIStatusError) as info:
        client(gw).chat.completions.create(model="adaptroute/extract", messages=MESSAGES)
    assert info.value.status_code == 502
    body = info.value.body
    assert "fast" in body["message"] and "strong" in body["message"]
    assert gw.rows("decisions") == 1 and gw.rows("outcomes") == 1 and gw.rows("attempts") == 2


def test_provider_key_echoed_in_an_error_never_reaches_the_client(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast"], router={"max_fallbacks": 0})
    fake.set("fast", Behavior.echo_key(400))
    response = post(gw, {"model": "adaptroute", "messages": MESSAGES})
    assert response.status_code == 400
    assert PROVIDER_KEY not in response.text and "***" in response.text
    stored = gw.router.store.query("SELECT error_message FROM attempts")
    assert stored and all(PROVIDER_KEY not in (m or "") for (m,) in stored)
    assert PROVIDER_KEY not in httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {CLIENT_KEY}"}).text


def test_fallback_when_the_drawn_model_fails(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["fast", "strong"], router={"cooldown_after": 100})
    fake.set("fast", Behavior.server_error(503))  # always fails; strong always answers
    sdk = client(gw)
    for _ in range(30):
        response = sdk.chat.completions.create(model="adaptroute/extract", messages=MESSAGES)
        assert response.choices[0].message.content == "answer from strong"
        attempts = response.adaptroute["attempts"]
        if attempts[0]["model"] == "fast":
            assert [a["role"] for a in attempts] == ["primary", "fallback"]
            assert attempts[0]["error_class"] == "ServiceUnavailableError" and attempts[1]["model"] == "strong"
            break
    else:
        pytest.fail("the policy never drew the failing model in 30 requests")


def test_504_when_the_provider_times_out(gateway, fake: FakeOpenAI) -> None:
    gw = gateway(["slow"], router={"timeout_s": 0.5})
    fake.set("slow", Behavior.slow(3.0))
    with pytest.raises(openai.APIStatusError) as info:
        client(gw).chat.completions.create(model="adaptroute/extract", messages=MESSAGES)
    assert info.value.status_code == 504 and info.value.code == "timeout"
    assert gw.rows("decisions") == 1 and gw.rows("outcomes") == 1


def test_unknown_routes_get_openai_errors(gateway) -> None:
    gw = gateway(["fast"])
    response = httpx.get(gw.url + "/v1/nothing", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 404 and response.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(gw.url + "/v1/chat/completions").status_code == 405


# -- curl ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_round_trip_stream_and_401(gateway) -> None:
    gw = gateway(["fast"])
    body = json.dumps({"model": "adaptroute/extract", "messages": MESSAGES})
    done = subprocess.run(["curl", "-sS", "-i", gw.base_url + "/chat/completions", "-H", f"Authorization: Bearer {CLIENT_KEY}",
                           "-H", "Content-Type: application/json", "-d", body], capture_output=True, text=True, timeout=60)
    head, _, payload = done.stdout.partition("\n\n")  # text mode reads CRLF as LF
    assert head.startswith("HTTP/1.1 200") and "x-adaptroute-decision-id" in head.lower()
    assert json.loads(payload)["choices"][0]["message"]["content"] == "answer from fast"
    stream = subprocess.run(["curl", "-sS", "-N", gw.base_url + "/chat/completions", "-H", f"Authorization: Bearer {CLIENT_KEY}",
                             "-d", json.dumps({"model": "adaptroute", "messages": MESSAGES, "stream": True})],
                            capture_output=True, text=True, timeout=60)
    assert stream.stdout.rstrip().endswith("data: [DONE]")
    denied = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", gw.base_url + "/chat/completions",
                             "-d", body], capture_output=True, text=True, timeout=60)
    assert denied.stdout == "401"
    assert gw.rows("decisions") == 2


# -- operator endpoints --------------------------------------------------------------------------------
def test_metrics_in_prometheus_format(gateway, fake: FakeOpenAI) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    gw = gateway(["fast", "strong"], router={"max_fallbacks": 1})
    fake.set("fast", Behavior.server_error(500), Behavior.ok())  # the first request fails on both models
    fake.set("strong", Behavior.server_error(500), Behavior.ok())
    sdk = client(gw)
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="adaptroute/extract", messages=MESSAGES)
    for _ in range(5):
        sdk.chat.completions.create(model="adaptroute/extract", messages=MESSAGES)
    post(gw, {"model": "adaptroute"}, key="bad")
    text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {CLIENT_KEY}"}).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = [s for s in families["adaptroute_requests"].samples if s.name == "adaptroute_requests_total"]
    assert sum(s.value for s in requests) == 6 and all(s.labels["task"] == "extract" for s in requests)
    errors = [s for s in families["adaptroute_errors"].samples if s.name == "adaptroute_errors_total"]
    assert sum(s.value for s in errors) == 2  # each model's first call failed
    assert {s.labels["error_class"] for s in errors} == {"InternalServerError"}
    assert sum(s.value for s in families["adaptroute_fallbacks"].samples if s.name.endswith("_total")) == 1
    assert sum(s.value for s in families["adaptroute_cost_usd"].samples if s.name.endswith("_total")) > 0
    counts = [s for s in families["adaptroute_request_latency_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in counts) == 5  # answered requests
    assert sum(s.value for s in requests if s.labels["status"] == "200") == 5
    assert [s.labels["model"] for s in requests if s.labels["status"] == "502"] == ["none"]
    responses = {(s.labels["endpoint"], s.labels["status"]): s.value
                 for s in families["adaptroute_http_responses"].samples if s.name.endswith("_total")}
    assert responses[("/v1/chat/completions", "200")] == 5 and responses[("/v1/chat/completions", "401")] == 1


def test_router_state_per_task(gateway) -> None:
    gw = gateway(["fast", "strong"])
    sdk = client(gw)
    for task in ("extract", "extract", "triage"):
        sdk.chat.completions.create(model=f"adaptroute/{task}", messages=MESSAGES)
    state = httpx.get(gw.base_url + "/router/state", headers={"Authorization": f"Bearer {CLIENT_KEY}"}).json()
    assert state["policy"]["name"] == "thompson" and state["models"] == ["fast", "strong"]
    assert state["tasks"]["extract"]["requests"] == 2 and state["tasks"]["triage"]["requests"] == 1
    for task in ("extract", "triage"):
        models = state["tasks"][task]["models"]
        assert set(models) == {"fast", "strong"}
        assert abs(sum(m["share"] for m in models.values()) - 1) < 1e-9
        assert abs(sum(m["probability"] for m in models.values()) - 1) < 1e-6
        assert all(0 <= m["predicted_quality"] <= 1 and m["predicted_cost_usd"] >= 0 for m in models.values())
    assert httpx.get(gw.url + "/healthz").json()["status"] == "ok"
