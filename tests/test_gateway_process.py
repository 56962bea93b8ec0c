"""`adaptroute serve` as a process: SIGTERM drains and flushes, and 200 concurrent SDK clients for
20 seconds each get an answer or a typed error, with exactly one decision and one outcome row per
request that passed auth."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import openai
import pytest

from adaptroute.testing import Behavior, FakeOpenAI, fake_openai
from gateway_harness import CLIENT_KEY, ENV, free_port, serve_process, write_config

MESSAGES = [{"role": "user", "content": "Classify this ticket: the invoice total is wrong."}]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai(record=False) as server:
        yield server


def log_counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("decisions", "outcomes")}  # noqa: S608 - constant names
        out["decisions_without_outcome"] = con.execute(
            "SELECT count(*) FROM decisions d LEFT JOIN outcomes o USING (decision_id) WHERE o.decision_id IS NULL").fetchone()[0]
        out["duplicate_outcomes"] = con.execute(
            "SELECT count(*) FROM (SELECT decision_id FROM outcomes GROUP BY decision_id HAVING count(*) > 1)").fetchone()[0]
        return out
    finally:
        con.close()


def test_sigterm_drains_in_flight_requests_within_a_bound_and_flushes_the_log(fake: FakeOpenAI, tmp_path: Path) -> None:
    """Five requests at the provider finish during the grace period; a stuck sixth is cut when it ends
    (and still gets its outcome row); the port closes at once; the process exits 0."""
    fake.set("slow", *[Behavior.slow(1.5)] * 5, Behavior.slow(60))  # the sixth request never ends in time
    config = write_config(tmp_path, fake, ["slow"], router={"timeout_s": 120.0}, server={"shutdown_timeout_s": 4.0})
    port = free_port()
    results: list[object] = []

    def call() -> None:
        try:
            response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=90,
                                  headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                                  json={"model": "adaptroute/triage", "messages": MESSAGES})
            ok = response.status_code == 200
            results.append(response.json()["choices"][0]["message"]["content"] if ok else response.status_code)
        except httpx.TransportError as exc:  # the stuck request's connection is closed when it is cut
            results.append(type(exc).__name__)

    def wait_for(n: int) -> None:
        deadline = time.time() + 30
        while fake.count("slow") < n and time.time() < deadline:
            time.sleep(0.02)
        assert fake.count("slow") == n

    with serve_process(config, port) as proc:
        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads[:5]:
            t.start()
        wait_for(5)
        threads[5].start()
        wait_for(6)  # all six are at the provider now
        started = time.time()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):  # no longer accepting
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        assert proc.wait(30) == 0
        assert time.time() - started < 12  # 4 s of grace, then the stuck request is cut and the log flushed
        for t in threads:
            t.join(30)
    assert results.count("answer from slow") == 5 and len(results) == 6
    counts = log_counts(tmp_path / "routes.duckdb")
    assert counts["decisions"] == 6 and counts["outcomes"] == 6 and counts["decisions_without_outcome"] == 0


@pytest.mark.slow
def test_200_concurrent_sdk_clients_for_20_seconds(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.cycle("flaky", *[Behavior.ok()] * 9, Behavior.server_error(500))  # one call in ten fails
    fake.cycle("steady", Behavior.ok(delay_s=0.005))
    fake.cycle("limited", *[Behavior.ok()] * 3, Behavior.rate_limited())
    config = write_config(tmp_path, fake, ["flaky", "steady", "limited"],
                          router={"max_fallbacks": 1, "cooldown_s": 0.5, "timeout_s": 30.0})
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    seconds, clients, unauthorised_clients = 20.0, 200, 10
    tally: Counter[str] = Counter()

    async def client_loop(i: int, stop_at: float) -> None:
        key = CLIENT_KEY if i >= unauthorised_clients else f"wrong-key-{i}"
        sdk = openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0, timeout=60)
        stream = i % 5 == 0
        try:
            while time.monotonic() < stop_at:
                try:
                    if stream:
                        chunks = await sdk.chat.completions.create(model="adaptroute/triage", messages=MESSAGES, stream=True)
                        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
                        assert text.startswith("answer from")
                    else:
                        response = await sdk.chat.completions.create(model="adaptroute/triage", messages=MESSAGES)
                        assert response.choices[0].message.content.startswith("answer from")
                    tally["answered"] += 1
                except openai.AuthenticationError:
                    tally["401"] += 1
                except openai.APIStatusError as exc:  # a typed error: the status and OpenAI's error body
                    assert exc.status_code in (429, 502, 504) and exc.body and exc.body.get("message")
                    tally[f"typed {exc.status_code}"] += 1
                except openai.APIError as exc:  # a stream that broke after its first token, as an error event
                    assert stream, exc
                    tally["stream error event"] += 1
        finally:
            await sdk.close()

    async def run() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*[client_loop(i, stop_at) for i in range(clients)])

    with serve_process(config, port) as proc:
        asyncio.run(run())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    passed_auth = sum(v for k, v in tally.items() if k != "401")
    print(f"\n200 clients x 20 s: {dict(tally)} ({passed_auth / seconds:.0f} authorised requests/s)")
    assert tally["401"] > 0 and tally["answered"] > 50
    counts = log_counts(tmp_path / "routes.duckdb")
    assert counts["decisions"] == passed_auth and counts["outcomes"] == passed_auth
    assert counts["decisions_without_outcome"] == 0 and counts["duplicate_outcomes"] == 0


@pytest.mark.slow
def test_two_workers_share_a_postgresql_log(fake: FakeOpenAI, tmp_path: Path, pg_url: str) -> None:
    import psycopg

    config = write_config(tmp_path, fake, ["fast", "strong"], router={"store": "env:DATABASE_URL"})
    port = free_port()
    env = {**ENV, "DATABASE_URL": pg_url}
    with serve_process(config, port, env, "--workers", "2") as proc:
        pids = set()
        for _ in range(200):  # a new connection each time: the kernel spreads them over the workers
            pids.add(httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}).json()["worker_pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2, "both workers answer"

        async def run() -> list[str]:
            clients = [openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=CLIENT_KEY, max_retries=0)
                       for _ in range(8)]
            try:
                replies = await asyncio.gather(*[clients[i % 8].chat.completions.create(model="adaptroute/triage", messages=MESSAGES)
                                                 for i in range(80)])
            finally:
                for c in clients:
                    await c.close()
            return [r.adaptroute["decision_id"] for r in replies]

        ids = asyncio.run(run())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    with psycopg.connect(pg_url) as con:
        decisions = con.execute("SELECT count(*), count(DISTINCT decision_id) FROM decisions").fetchone()
        outcomes = con.execute("SELECT count(*) FROM outcomes").fetchone()[0]
    assert len(set(ids)) == 80 and decisions == (80, 80) and outcomes == 80
