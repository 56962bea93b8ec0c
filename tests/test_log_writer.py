"""LogStore's buffered writer: every field lands as recorded (small batches through the WAL, large ones
straight into row groups), a bad record leaves no half row, a failed write loses nothing, batches
written from several threads keep every row, and appends wait (boundedly) when writes fall behind."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adaptroute import LogStore, StoreError, StoreLockedError, read_log
from adaptroute.store import writer
from adaptroute.types import Attempt, Decision, RoutingRecord

MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini")


def decision(i: int) -> Decision:
    k = 1 + i % 3  # a few eligible lists, as a router makes them (new tuples with equal contents)
    probabilities = tuple(1.0 / k for _ in range(k))
    return Decision(
        id=f"d{i:07d}", ts=1.7e9 + i * 0.25, task=("extract", "chat")[i % 2],
        features=np.arange(i % 5, dtype=np.float32) + np.float32(i % 7) / 8, eligible=tuple(MODELS[:k]),
        probabilities=probabilities, chosen=MODELS[0], propensity=probabilities[0], policy_name="thompson",
        policy_version=i % 4, prompt_hash=f"h{i}", prompt_text=f"prompt {i}" if i % 3 == 0 else None,
    )


def attempts(i: int) -> tuple[Attempt, ...]:
    kind = i % 5
    if kind == 0:  # nothing was called (every model in cooldown)
        return ()
    if kind == 1:  # the only call failed
        return (Attempt(MODELS[0], "primary", 0.05, error_class="Timeout", error_message="timed out"),)
    if kind == 2:  # a retry, then a fallback that answered
        return (Attempt(MODELS[0], "primary", 0.1, error_class="RateLimitError", counts_against_model=False),
                Attempt(MODELS[0], "retry", 0.2, 1e-4, 300, 20, error_class="Timeout"),
                Attempt(MODELS[1], "fallback", 0.5, 2e-4, 300, 40, 0.75, first_token_s=0.125))
    if kind == 3:  # an escalation after a weak answer
        return (Attempt(MODELS[0], "primary", 0.3, 1e-4, 100, 10, 0.25),
                Attempt(MODELS[2], "escalation", 0.9, 3e-3, 100, 50, 1.0))
    return (Attempt(MODELS[i % 3], "primary", 0.4, 5e-5, 1000 + i % 100, 200, None),)


def record(i: int) -> RoutingRecord:
    tries = attempts(i)
    answered = [s for s, a in enumerate(tries) if a.ok]
    returned = answered[-1] if answered else None
    last = tries[returned] if returned is not None else None
    return RoutingRecord(
        decision_id=f"d{i:07d}", task="extract", model=last.model if last else None, chosen=MODELS[0],
        probability=0.5, scores=(), attempts=tries, quality=last.quality if last else None,
        cost_usd=sum(a.cost_usd for a in tries), latency_s=sum(a.latency_s for a in tries),
        escalated=i % 5 == 3, policy_version=1, returned_seq=returned,
        first_token_s=last.first_token_s if last else None,
    )


def expected_rows(n: int) -> dict[str, list[tuple[Any, ...]]]:
    """What the log must hold, computed straight from the records (not by the writer's code)."""
    decisions, tries, outcomes = [], [], []
    for i in range(n):
        d, r = decision(i), record(i)
        decisions.append((d.id, int(d.ts * 1e6), d.task, d.prompt_hash, d.prompt_text,
                          [float(v) for v in d.features], list(d.eligible), list(d.probabilities), d.chosen,
                          d.propensity, d.policy_name, d.policy_version))
        for seq, a in enumerate(r.attempts):
            tries.append((r.decision_id, seq, a.model, a.role, a.latency_s, a.first_token_s, a.cost_usd,
                          a.tokens_in, a.tokens_out, a.quality, a.error_class, a.error_message,
                          a.counts_against_model, seq == r.returned_seq, a.cached_tokens, a.input_cost_usd,
                          a.cache_saved_usd, a.batch_saved_usd))
        error = None if r.model else (r.attempts[-1].error_class if r.attempts else "NoAttempt")
        outcomes.append((r.decision_id, int((1.8e9 + i * 0.5) * 1e6), r.model, r.quality, r.cost_usd, r.latency_s,
                         r.first_token_s, sum(a.tokens_in for a in r.attempts), sum(a.tokens_out for a in r.attempts),
                         error, [a.model for a in r.attempts], r.escalated,
                         sum(a.role == "retry" for a in r.attempts), len(r.attempts)))
    return {"decisions": decisions, "attempts": tries, "outcomes": outcomes}


ROWS = {
    "decisions": "SELECT decision_id, epoch_us(ts), task, prompt_hash, prompt_text, features, eligible, "
                 "probabilities, chosen, propensity, policy_name, policy_version FROM decisions ORDER BY decision_id",
    "attempts": "SELECT * FROM attempts ORDER BY decision_id, seq",
    "outcomes": "SELECT decision_id, epoch_us(ts), executed_model, quality, cost_usd, latency_s, first_token_s, "
                "tokens_in, tokens_out, error_class, fallback_chain, escalated, retries, n_attempts "
                "FROM outcomes ORDER BY decision_id",
}


def log_requests(store: LogStore, start: int, stop: int) -> None:
    for i in range(start, stop):
        store.add_decision(decision(i))
        store.add_result(record(i), ts=1.8e9 + i * 0.5)


def check_rows(store: LogStore, n: int, want: dict[str, list[tuple[Any, ...]]] | None = None) -> None:
    want = want or expected_rows(n)
    for table, sql in ROWS.items():
        got = [tuple(row) for row in store.query(sql)]
        assert len(got) == len(want[table]), table
        for g, w in zip(got, want[table], strict=True):
            assert _same(g, w), (table, g, w)


def _same(got: tuple[Any, ...], want: tuple[Any, ...]) -> bool:
    pairs = zip(got, want, strict=True)
    return all(g == w or (isinstance(w, float) and g == pytest.approx(w, rel=1e-12)) for g, w in pairs)


@pytest.mark.parametrize("batch", [1000, 100_000], ids=["small-batches", "row-group-batches"])
def test_every_field_lands_as_recorded(tmp_path: Path, batch: int) -> None:
    """Small flushes append through the WAL; flushes of a row group or more per table are written
    straight into row groups. Both hold exactly the recorded values, in memory and after a reopen."""
    n = writer._ROW_GROUP_ROWS + 123  # a full row group per table and a part-filled one
    want = expected_rows(n)
    path = tmp_path / "log.duckdb"
    with LogStore(path, flush_rows=10**9, flush_interval_s=3600) as store:
        for start in range(0, n, batch):
            log_requests(store, start, min(n, start + batch))
            store.flush()
        store.add_feedback("d0000002", 0.5, "user", ts=1.9e9)
        check_rows(store, n, want)
    with LogStore(path) as reopened:
        check_rows(reopened, n, want)
        assert reopened.query("SELECT decision_id, epoch_us(ts), quality, source FROM feedback") == [
            ("d0000002", 1_900_000_000_000_000, 0.5, "user")]
    memory = LogStore(":memory:", flush_rows=10**9, flush_interval_s=3600)
    log_requests(memory, 0, n)
    check_rows(memory, n, want)
    memory.close()


def test_a_bad_record_leaves_no_half_row() -> None:
    with LogStore(":memory:", flush_rows=10**9, flush_interval_s=3600) as store:
        log_requests(store, 0, 3)
        # the first attempt's row is complete before the second fails: it must go too
        broken = dataclasses.replace(record(2), attempts=(attempts(4)[0], "not an attempt"))
        with pytest.raises(AttributeError):
            store.add_result(broken)
        with pytest.raises(AttributeError):
            store.add_decision(object())  # type: ignore[arg-type]
        assert store.buffered_rows == 3 + sum(1 + len(attempts(i)) for i in range(3))
        log_requests(store, 3, 5)
        check_rows(store, 5)


def test_a_failed_write_gives_every_row_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LogStore(tmp_path / "log.duckdb", flush_rows=10**9, flush_interval_s=3600) as store:
        log_requests(store, 0, 50)
        real = store._write
        calls = []

        def fail_once(tables: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise writer.duckdb.IOException("disk full")
            real(tables)

        monkeypatch.setattr(store, "_write", fail_once)
        with pytest.raises(StoreError, match="disk full"):
            store.flush()
        assert store.counts()["decisions"] == 50  # the retry inside counts() wrote them all
        log_requests(store, 50, 60)
        check_rows(store, 60)


def test_threads_appending_and_flushing_keep_every_row(tmp_path: Path) -> None:
    """Appends from several threads while the flushers and explicit flush() calls write batches in turn."""
    threads, per_thread = 4, 3000
    with LogStore(tmp_path / "log.duckdb", flush_rows=512, flush_interval_s=0.01) as store:
        def work(t: int) -> None:
            for i in range(t * per_thread, (t + 1) * per_thread):
                store.add_decision(decision(i))
                store.add_result(record(i), ts=1.8e9 + i * 0.5)
                if i % 700 == 0:
                    store.flush()

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        store.flush()
        assert store.buffered_rows == 0
        check_rows(store, threads * per_thread)


def test_two_stores_on_one_file_in_this_process_share_it(tmp_path: Path) -> None:
    """As two connections to one path share one DuckDB instance: both write, the file closes with the last."""
    path = tmp_path / "log.duckdb"
    first, second = LogStore(path), LogStore(path)
    log_requests(first, 0, 10)
    log_requests(second, 10, 20)
    first.close()
    log_requests(second, 20, 30)
    assert second.counts()["decisions"] == 30
    second.close()
    with LogStore(path) as reopened:
        check_rows(reopened, 30)
        with pytest.raises(StoreLockedError, match="open in this process"):
            read_log(str(path))  # another DuckDB instance cannot open the file while the store holds it


def test_appends_wait_for_slow_writes_and_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When writes fall behind, appends wait for the flushers to take the buffer: a bounded backlog."""
    monkeypatch.setattr(writer, "_BULK_ROWS", 64)  # a backlog of 128 rows
    with LogStore(tmp_path / "log.duckdb", flush_rows=16, flush_interval_s=0.05) as store:
        real = store._write

        def slow(tables: Any) -> None:
            time.sleep(0.02)
            real(tables)

        monkeypatch.setattr(store, "_write", slow)
        buffered = []
        for i in range(2000):
            log_requests(store, i, i + 1)
            buffered.append(store.buffered_rows)
        assert max(buffered) <= store._backlog_rows + 4  # at most one request's rows past the backlog
        store.flush()
        check_rows(store, 2000)
