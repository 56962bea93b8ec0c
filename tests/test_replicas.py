"""Replicas on one PostgreSQL log learn together (real server, mocked providers).

Counted faults: 2 replicas x 1,000 requests agree with one process trained on the union; kill -9 of a
durable replica loses nothing it acknowledged and the survivor learns its committed outcomes; the
database stopped for 10 s under load loses nothing within the buffer bound and counts what overflows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from replica_load import MODELS, TASKS, messages, scorer

from adaptroute import Router, read_log
from adaptroute.policy import Policy, make_policy
from adaptroute.messages import validate_messages

pytestmark = pytest.mark.usefixtures("postgres_server")
HERE = Path(__file__).resolve().parent


def _serve(router: Router, start: int, n: int, out: list[str]) -> None:
    for i in range(start, start + n):
        response = router.complete(messages(i), task=TASKS[i % 3], mock_response="ok")
        out.append(response.adaptroute.decision_id)


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as con:
        return int(con.execute(sql).fetchone()[0])


def _probe_predictions(router: Router, policy) -> list[tuple[list[str], np.ndarray]]:
    """(models best first by reward, their predicted quality) on probe requests of every task."""
    out = []
    for i in range(30):
        x = router._featurizer.transform(validate_messages(messages(10_000 + i)), TASKS[i % 3])
        p = policy.predict(x, MODELS)
        order = np.argsort(-p.reward, kind="stable")
        out.append(([p.models[k] for k in order], p.means[order, 0]))
    return out


@pytest.mark.slow
def _exact_policy(seed: int) -> Policy:
    return make_policy("thompson", seed=seed, detect_changes=False)


def test_two_replicas_of_1000_requests_agree_with_one_process_on_the_union(pg_url: str) -> None:
    # Exact merging is a property of the sufficient statistics: change detection (on by default) acts on
    # the order each replica learns in, so it is off here (docs/scaling.md says what it changes).
    a = Router(MODELS, store=pg_url, scorer=scorer, seed=1, sync_interval_s=0.2, policy=_exact_policy(1))
    b = Router(MODELS, store=pg_url, scorer=scorer, seed=2, sync_interval_s=0.2, policy=_exact_policy(2))
    ids_a: list[str] = []
    ids_b: list[str] = []
    threads = [threading.Thread(target=_serve, args=(a, 0, 1000, ids_a)),
               threading.Thread(target=_serve, args=(b, 1000, 1000, ids_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a._sync.syncs > 1 and b._sync.syncs > 1 and a._sync.merged > 0  # they learned while serving
    a.store.flush()
    b.store.flush()
    # feedback on either replica's decisions, sent to either replica (a load balancer does not care)
    for k, did in enumerate(ids_a[:60]):
        (a if k % 2 else b).feedback(did, (k % 5) / 4)
    for k, did in enumerate(ids_b[:40]):
        (b if k % 2 else a).feedback(did, 1.0 - (k % 3) / 2)
    a.store.flush()
    b.store.flush()
    a.sync(), b.sync()  # the last sync of each

    # every decision and outcome row present once
    url = pg_url
    assert _count(url, "SELECT count(*) FROM decisions") == 2000
    assert _count(url, "SELECT count(DISTINCT decision_id) FROM decisions") == 2000
    assert _count(url, "SELECT count(*) FROM outcomes") == 2000
    assert _count(url, "SELECT count(*) FROM decisions JOIN outcomes USING (decision_id)") == 2000
    assert _count(url, "SELECT count(*) FROM feedback") == 100
    assert set(ids_a) | set(ids_b) == set(read_log(url).decision_ids)

    # one process trained on the union: a retrain from every row of the log
    union = a.policy.clone()
    union.fit(read_log(url))
    reference = _probe_predictions(a, union)
    worst = 0.0
    for replica in (a, b):
        assert sum(replica.policy.observation_counts().values()) == sum(union.observation_counts().values())
        got = _probe_predictions(replica, replica.policy)
        for (order, quality), (want_order, want_quality) in zip(got, reference, strict=True):
            np.testing.assert_allclose(quality, want_quality, rtol=0, atol=1e-6)
            assert order == want_order
            worst = max(worst, float(np.abs(quality - want_quality).max()))
    print(f"\nFAULT two replicas: 2000 decisions, 2000 outcomes, 100 feedback rows, each once; rankings equal on "
          f"30 probes; largest predicted-quality difference to the union {worst:.1e}; syncs {a._sync.syncs}+{b._sync.syncs}")
    a.close()
    b.close()


def test_a_replica_that_starts_late_catches_up_from_the_store(pg_url: str) -> None:
    with Router(MODELS, store=pg_url, scorer=scorer, sync_interval_s=0.2) as early:
        _serve(early, 0, 90, [])
        learned = early.policy.observation_counts()
    with Router(MODELS, store=pg_url, scorer=scorer, sync_interval_s=0.2) as late:
        assert late.policy.observation_counts() == learned
        _serve(late, 90, 30, [])
        assert late.retrain() >= 1  # retrain() reads every replica's rows
        assert sum(late.policy.observation_counts().values()) == 120


def test_a_router_without_sync_learns_alone(pg_url: str) -> None:
    with Router(MODELS, store=pg_url, scorer=scorer, sync_interval_s=0) as a, \
            Router(MODELS, store=pg_url, scorer=scorer, sync_interval_s=0) as b:
        _serve(a, 0, 12, [])
        a.store.flush()
        assert b.sync() == 0 and sum(b.policy.observation_counts().values()) == 0


@pytest.mark.slow
def test_kill_9_of_a_durable_replica_loses_nothing_it_acknowledged(pg_url: str, tmp_path: Path) -> None:
    acks = tmp_path / "acks.txt"
    worker = subprocess.Popen([sys.executable, str(HERE / "replica_worker.py"), pg_url, str(acks), "8"],
                              cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)})
    survivor = Router(MODELS, store=pg_url, scorer=scorer, durable=True, seed=3, sync_interval_s=0.2,
                      policy=_exact_policy(3))  # counts every merged outcome exactly (no change resets)
    served: list[str] = []
    stop = threading.Event()

    def load() -> None:
        i = 5_000_000
        while not stop.is_set():
            _serve(survivor, i, 1, served)
            i += 1

    thread = threading.Thread(target=load)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while (not acks.exists() or len(acks.read_text().splitlines()) < 150) and time.monotonic() < deadline:
            assert worker.poll() is None, "the replica process died on its own"
            time.sleep(0.1)
        os.kill(worker.pid, signal.SIGKILL)  # under load: its threads are mid-request
        worker.wait()
        before = len(served)
        time.sleep(1.0)
        assert len(served) > before  # the survivor keeps serving
    finally:
        stop.set()
        thread.join()
    acknowledged = [line for line in acks.read_text().split("\n")[:-1] if len(line) == 32]  # whole lines only
    assert len(acknowledged) >= 150
    with psycopg.connect(pg_url) as con:
        logged = {r[0] for r in con.execute("SELECT decision_id FROM outcomes").fetchall()}
        dead_attempts = con.execute(
            "SELECT count(*) FROM attempts WHERE replica <> %s AND quality IS NOT NULL", [survivor.store.replica]
        ).fetchone()[0]
    lost = [d for d in acknowledged if d not in logged]
    assert lost == []  # nothing acknowledged durably is lost
    survivor.sync()
    own = len(served)
    assert sum(survivor.policy.observation_counts().values()) == own + dead_attempts
    print(f"\nFAULT kill -9: {len(acknowledged)} acknowledged by the killed replica, {len(lost)} lost; "
          f"{dead_attempts} of its committed outcomes in the survivor's policy after its next sync; "
          f"survivor served {own}")
    survivor.close()


@pytest.mark.slow
def test_postgres_stopped_for_10_s_under_load(postgres_server, pg_url: str) -> None:
    """Requests keep being answered from the in-memory policy; rows wait in a bounded buffer and are
    written when the database is back; what overflows the bound is counted, never silently lost."""
    bound = 600
    router = Router(MODELS, store=pg_url, scorer=scorer, sync_interval_s=0.5, flush_interval_s=0.2,
                    flush_rows=256, max_buffered_rows=bound)
    answered: list[tuple[float, str]] = []
    _serve(router, 0, 3, [])  # every task once, and litellm warmed up
    warm = 3
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            response = router.complete(messages(i), task=TASKS[i % 3], mock_response="ok")
            answered.append((time.monotonic(), response.adaptroute.decision_id))
            i += 1

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(1.0)
        down = time.monotonic()
        postgres_server.stop()
        time.sleep(10.0)
        postgres_server.start()
        up = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    during = [d for t, d in answered if down < t < up]
    assert len(during) > 100  # routed and answered while the database was away
    deadline = time.monotonic() + 30
    while router.store.buffered_rows and time.monotonic() < deadline:
        time.sleep(0.2)
    router.store.flush()
    overflow = router.store.overflow
    health = router.store.health()
    assert health["overflow_rows"] == overflow and health["buffered_rows"] == 0
    assert overflow["decisions"] > 0  # the load outgrew the bound: counted
    n = len(answered) + warm
    assert _count(pg_url, "SELECT count(*) FROM decisions") + overflow["decisions"] == n
    assert _count(pg_url, "SELECT count(*) FROM outcomes") + overflow["outcomes"] == n
    assert _count(pg_url, "SELECT count(DISTINCT decision_id) FROM decisions") == n - overflow["decisions"]
    print(f"\nFAULT postgres stopped 10 s: {n} requests answered ({len(during)} while it was down); bound {bound} rows; "
          f"overflow counted {overflow}; every other row written after it came back")
    router.close()


def test_feedback_through_two_replicas_on_one_decision_stays_exact(pg_url: str) -> None:
    """A decision of A rated through B, then rated again through A: A revises from B's rating (learned
    at its sync), not from the scorer's, and both agree with a retrain on the union."""
    with Router(MODELS, store=pg_url, scorer=scorer, sync_interval_s=3600) as a, \
            Router(MODELS, store=pg_url, scorer=scorer, sync_interval_s=3600) as b:  # syncs when asked
        ids: list[str] = []
        _serve(a, 0, 30, ids)
        a.store.flush()
        b.sync()
        b.feedback(ids[0], 0.125)
        b.store.flush()
        a.sync()
        a.feedback(ids[0], 0.875)
        a.store.flush()
        b.sync()
        union = a.policy.clone()
        union.fit(read_log(pg_url))
        for replica in (a, b):
            for (order, quality), (want_order, want_quality) in zip(
                    _probe_predictions(replica, replica.policy), _probe_predictions(a, union), strict=True):
                assert order == want_order
                np.testing.assert_allclose(quality, want_quality, rtol=0, atol=1e-9)
