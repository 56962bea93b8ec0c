"""The PostgreSQL log on a real server (tests/conftest.py starts one): every field lands as recorded,
read_log gives what it gives for the same rows in DuckDB, the schema check refuses other versions
before writing anything, a batch whose commit acknowledgement was lost is not written twice, durable
appends are committed when they return, and the offline commands read a postgresql:// URL."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import psycopg
import pytest
from test_log_writer import decision, expected_rows, log_requests, record

from adaptroute import Router, SchemaVersionError, StoreError, UnknownDecisionError, read_log
from adaptroute.cli import main
from adaptroute.errors import StoreUnavailableError
from adaptroute.store import LogStore, PostgresLogStore, open_store

pytestmark = pytest.mark.usefixtures("postgres_server")


def _pg_rows(store: PostgresLogStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, data in store.read_tables().items():
        rows = []
        for row in data.to_pylist():
            values = [int(v.timestamp() * 1e6) if k == "ts" else v for k, v in row.items()]
            rows.append(tuple(values))
        out[table] = sorted(rows, key=lambda r: (r[0], r[1] if table == "attempts" else 0))
    return out


def test_every_field_lands_as_recorded(pg_url: str) -> None:
    n = 500
    want = expected_rows(n)
    with PostgresLogStore(pg_url, flush_rows=64, flush_interval_s=3600) as store:
        log_requests(store, 0, n)
        store.add_feedback("d0000002", 0.5, "user", ts=1.9e9)
        got = _pg_rows(store)
    for table in ("decisions", "attempts", "outcomes"):
        assert len(got[table]) == len(want[table]), table
        for g, w in zip(got[table], want[table], strict=True):
            for a, b in zip(g[: len(w)], w, strict=True):  # the columns both logs have had since version 1
                assert a == b or (isinstance(b, float) and a == pytest.approx(b, rel=1e-6)), (table, g, w)
    assert got["feedback"] == [("d0000002", 1_900_000_000_000_000, 0.5, "user")]


def test_read_log_matches_the_duckdb_log_of_the_same_rows(pg_url: str, tmp_path) -> None:
    n = 300
    with PostgresLogStore(pg_url) as pg, LogStore(tmp_path / "same.duckdb") as duck:
        for store in (pg, duck):
            log_requests(store, 0, n)
            store.add_feedback("d0000004", 0.25, "user", ts=1.9e9)
            store.add_feedback("d0000004", 0.75, "user", ts=1.95e9)  # the latest wins
        a, b = read_log(pg), read_log(duck)
    c = read_log(pg_url)  # the URL, as the offline commands take it
    for got in (a, c):
        assert got.models == b.models and len(got) == len(b) == n
        np.testing.assert_array_equal(got.decision_ids, b.decision_ids)
        for name in ("features", "probabilities", "propensity", "quality", "cost_usd", "latency_s", "ts", "weights"):
            np.testing.assert_allclose(getattr(got, name), getattr(b, name), rtol=1e-12, err_msg=name)
        for name in ("chosen", "executed", "failed", "escalated", "retried", "fell_back", "policy_versions"):
            np.testing.assert_array_equal(getattr(got, name), getattr(b, name), err_msg=name)
        for name in ("row", "model", "quality", "cost_usd", "failed"):
            np.testing.assert_allclose(getattr(got.observations, name), getattr(b.observations, name), err_msg=name)
    assert a.quality[4] == 0.75


def _set_meta(url: str, key: str, value: str) -> None:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("UPDATE meta SET value = %s WHERE key = %s", [value, key])


@pytest.mark.parametrize(("key", "value", "said"), [
    ("schema_version", "999", "newer adaptroute"),
    ("schema_version", "0", "migrate it explicitly"),
    ("pg_layout_version", "7", "upgrade adaptroute"),
])
def test_a_store_of_another_schema_version_is_refused_before_any_write(pg_url: str, key: str, value: str, said: str) -> None:
    with PostgresLogStore(pg_url) as store:
        log_requests(store, 0, 10)
    _set_meta(pg_url, key, value)
    with pytest.raises(SchemaVersionError, match=said):
        PostgresLogStore(pg_url)
    with pytest.raises(SchemaVersionError, match=said):
        Router(["gpt-4o-mini"], store=pg_url)
    with pytest.raises(SchemaVersionError, match=said):
        read_log(pg_url)
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 10  # nothing written


def test_a_database_with_foreign_tables_is_not_taken_for_a_log(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("CREATE TABLE decisions (id int)")
    with pytest.raises(SchemaVersionError, match="not an adaptroute log"):
        PostgresLogStore(pg_url)
    with pytest.raises(SchemaVersionError, match="not an adaptroute log"):
        read_log(pg_url)


def test_a_batch_is_written_once_even_if_its_commit_is_retried(pg_url: str) -> None:
    """A connection lost during COMMIT leaves the writer not knowing whether the batch landed; it
    retries under the same batch number, and the database refuses a second copy."""
    with PostgresLogStore(pg_url, flush_rows=10**9, flush_interval_s=3600) as store:
        log_requests(store, 0, 5)
        with store._lock:
            taken, rows, batch = store._buf, store._pending, store._batch + 1
        store._write(taken, rows, batch)
        store._write(taken, rows, batch)  # the retry of a batch that had in fact committed
        assert store.batch_exists(batch)
        with store._lock:
            store._buf, store._pending = type(taken)(), 0
        want = expected_rows(5)
        assert store.counts() == {"decisions": 5, "attempts": len(want["attempts"]), "outcomes": 5, "feedback": 0}


def test_durable_appends_are_committed_when_they_return(pg_url: str) -> None:
    store = PostgresLogStore(pg_url, durable=True, flush_interval_s=3600)
    threads = [threading.Thread(target=log_requests, args=(store, 20 * t, 20 * t + 20)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with psycopg.connect(pg_url) as other:  # another connection: only committed rows are visible
        assert other.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 160
        assert other.execute("SELECT count(DISTINCT decision_id) FROM decisions").fetchone()[0] == 160
        commits = other.execute("SELECT count(*) FROM batches").fetchone()[0]
    assert commits < 320  # concurrent appends shared commits
    store.close()


def test_a_durable_outcome_is_acknowledged_only_with_its_decision_committed(pg_url: str) -> None:
    store = PostgresLogStore(pg_url, durable=True, flush_interval_s=3600)
    with psycopg.connect(pg_url, autocommit=True) as other:  # sees committed rows only
        def counts() -> tuple[int, int]:
            return (other.execute("SELECT count(*) FROM decisions").fetchone()[0],
                    other.execute("SELECT count(*) FROM outcomes").fetchone()[0])

        for i in range(10):
            store.add_decision(decision(i))  # not waited for: committed during its call
            store.add_result(record(i))  # acknowledged once it and its decision are committed
            assert counts() == (i + 1, i + 1)
        store.add_decision(decision(10))  # a call under way: its decision is committed shortly anyway
        deadline = time.monotonic() + 5
        while counts()[0] < 11 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert counts() == (11, 10)
    store.close()


def test_a_durable_store_commits_synchronously_whatever_the_server_default(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        database = admin.execute("SELECT current_database()").fetchone()[0]
        admin.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')  # a DBA's default
    with PostgresLogStore(pg_url, durable=True) as durable, PostgresLogStore(pg_url) as buffered:
        assert durable._connection().execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert buffered._connection().execute("SHOW synchronous_commit").fetchone()[0] == "off"


def test_router_on_a_postgres_url_logs_learns_and_takes_feedback(pg_url: str) -> None:
    with Router(["gpt-4o-mini", "gpt-4o"], store=pg_url, scorer=lambda m, r: 0.75) as router:
        first = router.complete([{"role": "user", "content": "hello"}], task="chat", mock_response="hi")
        router.feedback(first.adaptroute.decision_id, 0.25)
        with pytest.raises(UnknownDecisionError):
            router.feedback("no-such-decision", 1.0)
        assert router.store.counts()["feedback"] == 1
        assert sum(router.policy.observation_counts().values()) == 1
    batch = read_log(pg_url)
    assert len(batch) == 1 and batch.quality[0] == 0.25


def test_the_offline_commands_read_a_postgres_url(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Router(["gpt-4o-mini", "gpt-4o"], store=pg_url, scorer=lambda m, r: 0.5 + 0.5 * (m == "gpt-4o")) as router:
        for i in range(40):
            router.complete([{"role": "user", "content": f"q{i}"}], task="qa", mock_response="a")
    assert main(["report", pg_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tasks"]["qa"]["requests"] == 40
    assert main(["replay", pg_url, "--json", "--bootstrap", "20"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["tune", pg_url, "--json", "--grid", "cost=0,100"]) == 0
    assert json.loads(capsys.readouterr().out)["points"]


def test_unreachable_database_names_the_url_without_its_password() -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        PostgresLogStore("postgresql://someone:hunter2secret@127.0.0.1:1/db", connect_timeout_s=1)
    assert "hunter2secret" not in str(caught.value) and "***" in str(caught.value)
    assert isinstance(caught.value, StoreError)


def test_open_store_picks_the_backend_from_the_target(pg_url: str, tmp_path) -> None:
    with open_store(pg_url) as pg, open_store(tmp_path / "x.duckdb", max_buffered_rows=10) as duck:
        assert isinstance(pg, PostgresLogStore) and isinstance(duck, LogStore)
        pg.add_decision(decision(1))
        pg.add_result(record(1))
        assert pg.has_decision("d0000001") and not pg.has_decision("d0000002")


def test_a_retrain_read_holds_writes_back_only_until_its_snapshot_is_fixed(pg_url: str, monkeypatch) -> None:
    """Durable requests keep committing while a long read for a retrain runs, and the read sees
    exactly the log as of its start (so nothing learned meanwhile is counted twice)."""

    from adaptroute.store import pg_read

    store = PostgresLogStore(pg_url, durable=True)
    log_requests(store, 0, 5)
    reading, slow = threading.Event(), pg_read._to_arrow

    def slow_to_arrow(table, rows):
        reading.set()
        time.sleep(0.5)  # a long read
        return slow(table, rows)

    monkeypatch.setattr(pg_read, "_to_arrow", slow_to_arrow)
    seen: dict[str, int] = {}

    def retrain_read() -> None:
        with store.snapshot():
            tables, _ = store.read_tables_with_heads()
            seen["decisions"] = tables["decisions"].num_rows

    reader = threading.Thread(target=retrain_read)
    reader.start()
    assert reading.wait(10)
    started = time.monotonic()
    log_requests(store, 5, 8)  # durable: returns once committed
    committed_in = time.monotonic() - started
    reader.join()
    assert committed_in < 1.0  # not held for the whole read (4 tables x 0.5 s)
    assert seen["decisions"] == 5  # the read's snapshot predates those rows
    assert store.counts()["decisions"] == 8
    store.close()
