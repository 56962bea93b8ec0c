"""LogStore: the DuckDB log of one router process, with buffered, atomic appends.

DuckDB allows one writing process per file and locks other processes out (read-only ones too), so a
router owns its file. Rows are buffered in memory and written in one transaction per flush (every
``flush_rows`` rows, every ``flush_interval_s`` seconds, and at close or interpreter exit): a crash loses
at most the rows buffered since the last flush, never half a flush. ``durable=True`` commits each
decision before its call and each outcome as it arrives.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ..errors import SchemaVersionError, StoreError, StoreLockedError
from ..types import Decision, RoutingRecord
from .schema import ARROW_SCHEMAS, COUNT_ROWS, CREATE_TABLES, SCHEMA_VERSION, TABLES, fetch_arrow

__all__ = ["LogStore"]

log = logging.getLogger("adaptroute.store")


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(
                f"{path} is open in another process (DuckDB lets one process hold a log file). Give each "
                "router process its own file (for example routes-<pid>.duckdb) and retrain from all of them "
                "with read_log('routes-*.duckdb') once they are closed, or read a Parquet snapshot "
                f"(LogStore.export_parquet). DuckDB said: {exc}"
            ) from None
        raise StoreError(f"cannot open log {path}: {exc}") from None
    except duckdb.Error as exc:
        raise StoreError(f"cannot open log {path}: {exc}") from None


class LogStore:
    """Append-only DuckDB log: decisions, attempts, outcomes, feedback (see store.schema)."""

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        durable: bool = False,
        flush_rows: int = 16_384,
        flush_interval_s: float = 1.0,
        hash_key: bytes | None = None,
    ) -> None:
        self.path = str(path)
        self.durable = durable
        self.flush_rows = max(1, int(flush_rows))
        self.flush_interval_s = float(flush_interval_s)
        self._con = _connect(self.path, read_only=False)
        self._db_lock = threading.RLock()
        self._buf_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._buffers: dict[str, list[Any]] = {k: [] for k in _BUFFERS}
        self._pending = 0
        self._closed = False
        self._flush_error: BaseException | None = None
        self._snapshot_thread: int | None = None
        try:
            self.hash_key = self._init_schema(hash_key)
        except BaseException:
            self._con.close()
            raise
        self._wake = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="adaptroute-log-flush", daemon=True)
        self._flusher.start()
        ref = weakref.ref(self)
        self._atexit = lambda: (s := ref()) is not None and s.close()
        atexit.register(self._atexit)

    # -- schema -----------------------------------------------------------------------------------
    def _init_schema(self, hash_key: bytes | None) -> bytes:
        con = self._con
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if tables and "meta" not in tables:
            raise SchemaVersionError(f"{self.path} is a DuckDB file but not an adaptroute log (no meta table)")
        if "meta" in tables:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            version = meta.get("schema_version")
            if version != str(SCHEMA_VERSION):
                raise SchemaVersionError(
                    f"{self.path} has log schema version {version!r}; this adaptroute writes version "
                    f"{SCHEMA_VERSION}. Migrate it explicitly or start a new log file."
                )
            stored = meta.get("prompt_hash_key")
            return hash_key or (bytes.fromhex(stored) if stored else secrets.token_bytes(32))
        key = hash_key or secrets.token_bytes(32)
        con.execute("BEGIN TRANSACTION")
        for statement in CREATE_TABLES:
            con.execute(statement)
        con.execute("INSERT INTO meta VALUES (?, ?)", ["schema_version", str(SCHEMA_VERSION)])
        con.execute("INSERT INTO meta VALUES (?, ?)", ["created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())])
        if hash_key is None:  # a user-supplied key stays out of the file
            con.execute("INSERT INTO meta VALUES (?, ?)", ["prompt_hash_key", key.hex()])
        con.execute("COMMIT")
        return key

    # -- appends ---------------------------------------------------------------------------------
    # The request path only queues the (frozen) records; the flush turns them into columns. Building a
    # tuple per row here, then transposing them at the flush, cost more than the rest of the log's work.
    def add_decision(self, d: Decision) -> None:
        self._append("decisions", d, 1, commit=self.durable)

    def add_result(self, record: RoutingRecord, ts: float | None = None) -> None:
        """The attempts of a finished request and its outcome row, buffered together."""
        item = (record, time.time() if ts is None else ts)
        self._append("results", item, 1 + len(record.attempts), commit=self.durable)

    def add_feedback(self, decision_id: str, quality: float, source: str, ts: float | None = None) -> None:
        row = (decision_id, time.time() if ts is None else ts, quality, source)
        self._append("feedback", row, 1, commit=self.durable)

    def _append(self, kind: str, item: Any, rows: int, *, commit: bool) -> None:
        with self._buf_lock:  # checked under the lock: no row can slip in after close()'s last flush
            if self._closed:
                raise StoreError(f"log {self.path} is closed")
            self._buffers[kind].append(item)
            self._pending += rows
            full = self._pending >= self.flush_rows
        if commit:
            self.flush()
        elif full:
            if self._pending >= 8 * self.flush_rows:  # the flusher cannot keep up: write in this thread
                self.flush()
            elif not self._wake.is_set():  # set() takes a lock and notifies: once per flush is enough
                self._wake.set()

    # -- flushing ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered row in one transaction (all tables or none)."""
        if self._snapshot_thread == threading.get_ident():
            return  # this thread holds a snapshot: the log stays as it was when the snapshot began
        with self._flush_lock:
            self._flush_locked()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Flush, then hold further flushes back: reads in this thread see exactly the log as of now
        (appends keep landing in the buffer). Used by retrain to read a consistent log."""
        with self._flush_lock:
            self._flush_locked()
            self._snapshot_thread = threading.get_ident()
            try:
                yield
            finally:
                self._snapshot_thread = None

    def _flush_locked(self) -> None:
        with self._buf_lock:
            taken = {k: items for k, items in self._buffers.items() if items}
            if not taken:
                return
            self._buffers = {k: [] for k in _BUFFERS}
            taken_rows, self._pending = self._pending, 0
        try:
            tables = _to_tables(taken)
            with self._db_lock:
                con = self._con
                con.execute("BEGIN TRANSACTION")
                try:
                    for table in TABLES:
                        if table in tables:  # a relation over the Arrow table: a third less fixed cost
                            con.from_arrow(tables[table]).insert_into(table)  # than register + INSERT
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except BaseException as exc:
            with self._buf_lock:  # keep the rows for the next attempt: nothing is dropped silently
                for kind, items in taken.items():
                    self._buffers[kind][:0] = items
                self._pending += taken_rows
            if isinstance(exc, duckdb.Error):
                raise StoreError(f"writing the log {self.path} failed: {exc}") from None
            raise

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
                self._flush_error = None
            except BaseException as exc:  # noqa: BLE001 - a background thread must not die
                if self._flush_error is None:
                    log.error("adaptroute: flushing the log failed, rows kept in memory: %s", exc)
                self._flush_error = exc

    @property
    def buffered_rows(self) -> int:
        return self._pending

    def close(self) -> None:
        """Flush and close (idempotent). Registered at interpreter exit as well."""
        with self._buf_lock:
            if self._closed:
                return
            self._closed = True  # appends from now on fail loudly instead of landing after the last flush
        try:
            self.flush()
        finally:
            self._wake.set()
            if self._flusher is not threading.current_thread():
                self._flusher.join(timeout=5)
            with self._db_lock:
                self._con.close()
            atexit.unregister(self._atexit)

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read query on the live log (flushed first). ``sql`` must be a constant:
        values go in ``params``."""
        self.flush()
        with self._db_lock:
            return self._con.execute(sql, list(params)).fetchall()

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        self.flush()
        with self._db_lock:
            return fetch_arrow(self._con, sql, list(params))

    def counts(self) -> dict[str, int]:
        self.flush()
        with self._db_lock:
            return {t: int(self._con.execute(COUNT_ROWS[t]).fetchall()[0][0]) for t in TABLES}

    def export_parquet(self, directory: str | os.PathLike[str]) -> Path:
        """Snapshot every table to ``directory/<table>.parquet``: what a retrain job on another
        process (or machine) reads while this router keeps writing."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.flush()
        import pyarrow.parquet as pq

        with self._db_lock:
            for table in TABLES:
                data = fetch_arrow(self._con, _SELECT_ALL[table])
                pq.write_table(data, out / f"{table}.parquet")
        return out


_SELECT_ALL = {table: f"SELECT * FROM {table}" for table in TABLES}


_BUFFERS = ("decisions", "results", "feedback")  # queued Decisions, (RoutingRecord, ts) pairs, feedback rows


def _to_tables(taken: dict[str, list[Any]]) -> dict[str, pa.Table]:
    """Arrow tables of the queued records, one column at a time."""
    tables = {}
    if "decisions" in taken:
        tables["decisions"] = _decisions(taken["decisions"])
    if "results" in taken:
        tables["attempts"], tables["outcomes"] = _results(taken["results"])
    if "feedback" in taken:
        tables["feedback"] = _table("feedback", list(zip(*taken["feedback"], strict=True)))
    return tables


def _decisions(ds: list[Decision]) -> pa.Table:
    return _table("decisions", [
        [d.id for d in ds], [d.ts for d in ds], [d.task for d in ds], [d.prompt_hash for d in ds],
        [d.prompt_text for d in ds], [d.features for d in ds], [d.eligible for d in ds],
        [d.probabilities for d in ds], [d.chosen for d in ds], [d.propensity for d in ds],
        [d.policy_name for d in ds], [d.policy_version for d in ds],
    ])


def _results(results: list[tuple[RoutingRecord, float]]) -> tuple[pa.Table, pa.Table]:
    # Flat per-attempt lists and NumPy sums: no tuple, list or generator per record (at a million rows,
    # allocating those containers made the garbage collector the largest cost of a flush).
    records = [r for r, _ in results]
    counts = np.fromiter((len(r.attempts) for r in records), dtype=np.int64, count=len(records))
    owner = np.repeat(np.arange(len(records)), counts)
    tries = [a for r in records for a in r.attempts]
    seqs = [seq for r in records for seq in range(len(r.attempts))]
    models = pa.array([a.model for a in tries], pa.string())
    tokens_in = [a.tokens_in for a in tries]
    tokens_out = [a.tokens_out for a in tries]
    retry = np.fromiter((a.role == "retry" for a in tries), dtype=bool, count=len(tries))
    attempts = _table("attempts", [
        [records[i].decision_id for i in owner.tolist()], seqs, models, [a.role for a in tries],
        [a.latency_s for a in tries], [a.first_token_s for a in tries], [a.cost_usd for a in tries], tokens_in,
        tokens_out, [a.quality for a in tries], [a.error_class for a in tries], [a.error_message for a in tries],
        [a.counts_against_model for a in tries],
        [seq == records[i].returned_seq for seq, i in zip(seqs, owner.tolist(), strict=True)],
    ])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)

    def per_record(values: Any) -> np.ndarray:  # sum over each record's attempts, as integers
        return np.bincount(owner, weights=np.asarray(values, dtype=float), minlength=len(records)).astype(np.int64)

    outcomes = _table("outcomes", [
        [r.decision_id for r in records], [ts for _, ts in results], [r.model for r in records],
        [r.quality for r in records], [r.cost_usd for r in records], [r.latency_s for r in records],
        [r.first_token_s for r in records], per_record(tokens_in), per_record(tokens_out),
        [None if r.model is not None else (r.attempts[-1].error_class if r.attempts else "NoAttempt") for r in records],
        pa.ListArray.from_arrays(pa.array(offsets), models), [r.escalated for r in records],
        per_record(retry), counts,
    ])
    return attempts, outcomes


def _table(table: str, columns: list[Any]) -> pa.Table:
    schema = ARROW_SCHEMAS[table]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        if pa.types.is_timestamp(field.type):
            micros = (np.asarray(values, dtype=float) * 1e6).astype(np.int64)
            arrays.append(pa.array(micros, pa.int64()).cast(field.type))
        elif field.name == "features":
            lengths = np.fromiter((len(v) for v in values), dtype=np.int32, count=len(values))
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            flat = np.concatenate([np.asarray(v, dtype=np.float32) for v in values]) if len(values) else np.zeros(0, np.float32)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32())))
        elif isinstance(values, pa.Array):
            arrays.append(values)
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
