"""Many calls at once on one router: asyncio (1,000 concurrent acomplete) and threads (complete), with
faults injected, then an exact count of the log; and a retrain that swaps the policy while calls are
in flight."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import json
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adaptroute import AdaptRouteError, LogStore, Router
from adaptroute.testing import Behavior, FakeOpenAI, fake_openai


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with fake_openai(record=False) as s:
        yield s


@pytest.fixture(autouse=True)
def _fresh_server(server: FakeOpenAI) -> None:
    server.reset()


def _enough_file_descriptors(wanted: int = 8192) -> None:
    """1,000 connections are ~2,000 sockets in this one process (client and server ends)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2500:
        pytest.skip("fewer than 2,500 file descriptors allowed")


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Request {i}: summarise ticket {i * 7919 % 1000} in {3 + i % 5} words."}]


def check_log(store: LogStore, calls: int, feedback: int = 0) -> dict[str, int]:
    """Exactly one decision and one outcome per call; attempts complete; nothing orphaned."""
    counts = store.counts()
    assert counts["decisions"] == calls and counts["outcomes"] == calls, counts
    assert counts["feedback"] == feedback
    q = store.query
    assert q("SELECT count(DISTINCT decision_id) FROM decisions") == [(calls,)]
    assert q("SELECT count(DISTINCT decision_id) FROM outcomes") == [(calls,)]
    assert q("SELECT count(*) FROM outcomes o ANTI JOIN decisions d USING (decision_id)") == [(0,)]
    assert q("SELECT coalesce(sum(n_attempts), 0) FROM outcomes") == [(counts["attempts"],)]
    per_decision = q(
        "SELECT o.decision_id FROM outcomes o LEFT JOIN (SELECT decision_id, count(*) AS n, max(seq) AS top "
        "FROM attempts GROUP BY decision_id) a USING (decision_id) WHERE a.n IS DISTINCT FROM o.n_attempts "
        "OR a.top IS DISTINCT FROM o.n_attempts - 1"
    )
    assert per_decision == []
    return counts


def test_fake_server_holds_1000_connections_at_once(server: FakeOpenAI) -> None:
    _enough_file_descriptors()
    n = 1000
    server.set("held", Behavior.ok(delay_s=0.5))
    body = json.dumps({"model": "held", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def one(ready: asyncio.Event) -> int:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        await ready.wait()  # every connection is open before any request goes out
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        payload = json.loads(await reader.readexactly(length))
        writer.close()
        return int(head.split()[1]) if payload["choices"][0]["message"]["content"] else 0

    before = server.connections

    async def main() -> list[int]:
        ready = asyncio.Event()
        tasks = [asyncio.ensure_future(one(ready)) for _ in range(n)]
        while server.connections - before < n and not any(t.done() for t in tasks):
            await asyncio.sleep(0.01)
        ready.set()
        return await asyncio.gather(*tasks)

    statuses = asyncio.run(asyncio.wait_for(main(), 60))
    assert statuses == [200] * n
    assert server.connections - before == n and server.count("held") == n
    assert server.max_in_flight > n // 2  # they were answered concurrently, not one by one


@pytest.mark.slow
def test_1000_concurrent_acomplete(server: FakeOpenAI, tmp_path: Path) -> None:
    _enough_file_descriptors()
    n = 1000
    server.set("alpha", Behavior.ok(delay_s=0.1))
    server.set("beta", Behavior.ok(delay_s=0.1))
    server.set("gamma", Behavior.server_error(500))  # every call drawing it falls back
    router = Router([server.spec("alpha"), server.spec("beta"), server.spec("gamma")], seed=11,
                    store=str(tmp_path / "log.duckdb"), timeout_s=60, cooldown_after=10_000, flush_rows=256)
    router.complete(messages(-1))  # litellm's import and first client: outside the measured burst

    async def burst() -> list[Any]:
        return await asyncio.gather(*(router.acomplete(messages(i), task=f"t{i % 4}") for i in range(n)),
                                    return_exceptions=True)

    start = time.perf_counter()
    results = asyncio.run(burst())
    elapsed = time.perf_counter() - start
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, AdaptRouteError) for e in errors), {type(e).__name__ for e in errors}
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert len(answered) == n  # alpha and beta always answer: nobody is left without one
    served = Counter(r.adaptroute.model for r in answered)
    assert set(served) == {"alpha", "beta"}
    fell_back = sum(r.adaptroute.chosen == "gamma" for r in answered)
    assert fell_back > 50 and server.count("gamma") == fell_back
    assert server.max_in_flight >= 50  # the calls really overlapped
    counts = check_log(router.store, n + 1)
    assert counts["attempts"] == n + 1 + fell_back
    router.close()
    with LogStore(tmp_path / "log.duckdb") as reopened:  # and the file reads back the same
        assert reopened.counts() == counts
    print(f"\n{n} concurrent acomplete: {elapsed:.1f} s, {fell_back} fallbacks, max in flight {server.max_in_flight}")


def test_threads_calling_complete(server: FakeOpenAI, tmp_path: Path) -> None:
    threads, per_thread = 8, 40
    server.set("alpha", Behavior.ok(delay_s=0.005))
    server.set("beta", Behavior.ok(delay_s=0.005))
    server.set("gamma", Behavior.rate_limited(retry_after=0.05))  # 429s: fall back, short cool-downs
    server.set("delta", Behavior.drop())
    router = Router([server.spec(m) for m in ("alpha", "beta", "gamma", "delta")], seed=5,
                    store=str(tmp_path / "log.duckdb"), timeout_s=30, flush_rows=16, flush_interval_s=0.05,
                    scorer=lambda m, r: 0.9)
    results: list[Any] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)
    fed = [0]

    def work(k: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            try:
                response = router.complete(messages(k * 1000 + i), task=f"thread-{k}")
                if i % 2 == 0:
                    router.feedback(response.adaptroute.decision_id, 0.5 + (i % 3) * 0.1)
                    with lock:
                        fed[0] += 1
                outcome: Any = response
            except Exception as exc:  # noqa: BLE001 - checked below: only typed errors allowed
                outcome = exc
            with lock:
                results.append(outcome)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not any(t.is_alive() for t in pool)
    calls = threads * per_thread
    assert len(results) == calls
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, AdaptRouteError) for e in errors), [repr(e) for e in errors[:3]]
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert {r.adaptroute.model for r in answered} <= {"alpha", "beta"}
    check_log(router.store, calls, feedback=fed[0])
    assert server.total == router.store.counts()["attempts"]
    router.close()


@pytest.mark.slow
def test_retrain_while_serving(server: FakeOpenAI, tmp_path: Path) -> None:
    router = Router([server.spec("alpha"), server.spec("beta")], seed=2, store=str(tmp_path / "log.duckdb"),
                    scorer=lambda m, r: 0.8 if r.model.endswith("alpha") else 0.6, timeout_s=30, flush_rows=8)
    for i in range(6):
        router.complete(messages(i))
    # calls last much longer than a retrain of this small log (tens of ms; a few hundred on a loaded
    # machine): some are surely in flight at each swap
    server.set("alpha", Behavior.ok(delay_s=1.0))
    server.set("beta", Behavior.ok(delay_s=1.0))
    calls: list[tuple[float, float, Any]] = []  # (monotonic start, monotonic end, record)
    errors: list[BaseException] = []
    swaps: list[tuple[float, float, int]] = []  # (wall start, wall end, new version)
    stop = threading.Event()
    lock = threading.Lock()

    def serve(k: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            t0 = time.time()
            try:
                record = router.complete(messages(100 * k + i), task="serve").adaptroute
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return
            with lock:
                calls.append((t0, time.time(), record))

    def retrain() -> None:
        for _ in range(2):
            time.sleep(0.4)
            t0 = time.time()
            try:
                version = router.retrain()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return
            swaps.append((t0, time.time(), version))

    servers = [threading.Thread(target=serve, args=(k,)) for k in range(4)]
    trainer = threading.Thread(target=retrain)
    for t in servers:
        t.start()
    trainer.start()
    trainer.join(60)
    time.sleep(1.1)
    stop.set()
    for t in servers:
        t.join(60)
    assert not errors, errors
    assert [v for *_, v in swaps] == [1, 2]
    logged = dict(router.store.query("SELECT decision_id, policy_version FROM decisions"))
    straddling = 0
    for t0, t1, record in calls:
        assert logged[record.decision_id] == record.policy_version  # the log holds the version that decided
        for k, (s0, s1, version) in enumerate(swaps):
            if t1 < s0:
                assert record.policy_version < version
            if t0 > s1:
                assert record.policy_version >= version
            if t0 < s0 and t1 > s1 and record.policy_version == version - 1:
                straddling += 1  # decided before the swap, finished after it, on the old policy
    assert straddling >= 1
    print(f"\n{len(calls)} calls while retraining twice; {straddling} finished on the old policy after a swap")
    assert router.policy.version == 2
    # Nothing learned twice or lost across the swaps: the served policy equals a refit of the whole log.
    x = router._featurizer.transform(messages(999), "serve")  # noqa: SLF001 - a context to compare on
    online = router.policy.predict(x, ["alpha", "beta"])
    router.retrain()
    refit = router.policy.predict(x, ["alpha", "beta"])
    np.testing.assert_allclose(online.means, refit.means, rtol=1e-6, atol=1e-9)
    check_log(router.store, len(calls) + 6)
    router.close()
