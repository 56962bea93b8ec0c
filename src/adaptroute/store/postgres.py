"""PostgresLogStore: the log in PostgreSQL, shared by any number of router processes (replicas).

Each store is one replica (``replica``: host, pid and a random tag unless given). Rows are buffered
as in the DuckDB log and written by a background flusher in batches, one transaction per batch (binary
COPY into every table, and a row in ``batches``), every ``flush_rows`` rows or ``flush_interval_s``.
``durable=True``: an outcome or feedback append returns once its batch is committed, and with it every
row appended before (its request's decision too, which is committed while its call runs); concurrent
appends share commits (store.group_commit).

If PostgreSQL cannot be reached, requests keep going: rows stay buffered, up to ``max_buffered_rows``,
and are written when it is back (the batch that failed is retried first, under its own number, so a
commit whose acknowledgement was lost is never written twice). Rows past the bound are not buffered:
they are counted per table in ``overflow`` and logged, never dropped silently.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import repeat
from typing import Any, TypeVar

import pyarrow as pa

from ..errors import StoreError, StoreUnavailableError
from ..types import Decision, RoutingRecord
from .base import LogBackend
from .buffer import _Buffer, _put_decision, _put_feedback, _put_result
from .group_commit import GroupCommit
from .pg_connect import connect, describe, redact
from .pg_copy import copy_columns
from .pg_read import Changes, heads, read_changes, read_tables
from .pg_schema import (
    ADD_TASK, ALL_TASKS, BATCH_EXISTS, COPY_INTO, COPY_TYPES, COUNT_ROWS, CREATE_LOCK, CREATE_TABLES, DECISION_EXISTS, INSERT_BATCH,
    LAST_BATCH, PG_LAYOUT_VERSION, TASKS_LOCK, WRITE_META, check_versions, read_meta,
)
from .schema import SCHEMA_VERSION, TABLES

__all__ = ["PostgresLogStore"]

log = logging.getLogger("adaptroute.store")
_T = TypeVar("_T")

class PostgresLogStore(LogBackend):
    """Append-only log of decisions, attempts, outcomes and feedback in PostgreSQL (see store.pg_schema)."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        durable: bool = False,
        flush_rows: int = 16_384,
        flush_interval_s: float = 1.0,
        hash_key: bytes | None = None,
        max_buffered_rows: int = 1_000_000,
        durable_timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        replica: str | None = None,
    ) -> None:
        self.url = url
        self.path = redact(url)
        self.durable = durable
        self.flush_rows = max(1, int(flush_rows))
        self.flush_interval_s = float(flush_interval_s)
        self.max_buffered_rows = max(1, int(max_buffered_rows))
        self.durable_timeout_s = float(durable_timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.overflow: dict[str, int] = dict.fromkeys(TABLES, 0)  # rows not buffered: past the bound
        self.last_error: str | None = None  # why the last write failed, while it keeps failing
        self.write_error: BaseException | None = None  # that error itself (as LogStore.write_error)
        self._con: Any = connect(url, connect_timeout_s, durable=durable)
        self._reader: Any = None
        self._read_lock = threading.RLock()
        try:
            self.hash_key = self._init_schema(hash_key)
            self._batch = self._last_batch()
        except BaseException:
            self._con.close()
            raise
        self._lock = threading.Lock()  # the buffer, its counts, the retry batch
        self._wake = threading.Condition(self._lock)
        self._writing = threading.Lock()  # one batch written at a time, in order; snapshot() holds it
        self._buf = _Buffer()
        self._pending = 0
        self._seq = 0
        self._retry: tuple[_Buffer, int, int, int] | None = None  # (rows, count, batch number, ticket)
        self._closed = False
        self._snapshot_thread: int | None = None
        self._overflowing = False
        self._group = GroupCommit(self._flush_now)
        self._flusher = threading.Thread(target=self._flush_loop, name="adaptroute-pg-flush", daemon=True)
        self._flusher.start()
        ref = weakref.ref(self)
        self._atexit = lambda: (s := ref()) is not None and s.close()
        atexit.register(self._atexit)

    # -- schema -----------------------------------------------------------------------------------
    def _init_schema(self, hash_key: bytes | None) -> bytes:
        con = self._con
        with con.transaction():
            con.execute(CREATE_LOCK)  # replicas starting together: one creates, the others then read
            meta = read_meta(con, self.path)
            if meta is None:
                key = hash_key or secrets.token_bytes(32)
                for statement in CREATE_TABLES:
                    con.execute(statement)
                rows = [("schema_version", str(SCHEMA_VERSION)), ("pg_layout_version", str(PG_LAYOUT_VERSION)),
                        ("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))]
                if hash_key is None:  # a user-supplied key stays out of the database
                    rows.append(("prompt_hash_key", key.hex()))
                con.cursor().executemany(WRITE_META, rows)
                return key
        check_versions(meta, self.path)
        stored = meta.get("prompt_hash_key")
        return hash_key or (bytes.fromhex(stored) if stored else secrets.token_bytes(32))

    def _last_batch(self) -> int:
        row = self._con.execute(LAST_BATCH, [self.replica]).fetchone()
        return int(row[0])

    # -- appends ---------------------------------------------------------------------------------
    def add_decision(self, d: Decision) -> None:
        """Buffer a decision. Durable: committed during its call, at the latest with its outcome (whose
        acknowledgement covers both); while writes fail it waits for its own commit, before the call."""
        self._append(_put_decision, d, 1, ("decisions",), wait=self.write_error is not None)

    def add_result(self, record: RoutingRecord, ts: float | None = None) -> None:
        item = (record, time.time() if ts is None else ts)
        self._append(_put_result, item, 1 + len(record.attempts), ("attempts",) * len(record.attempts) + ("outcomes",))

    def add_feedback(self, decision_id: str, quality: float, source: str, ts: float | None = None) -> None:
        row = (decision_id, time.time() if ts is None else ts, quality, source)
        self._append(_put_feedback, row, 1, ("feedback",))

    def _append(self, put: Callable[[_Buffer, Any], None], item: Any, rows: int, tables: tuple[str, ...],
                wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                raise StoreError(f"log {self.path} is closed")
            held = self._pending + (self._retry[1] if self._retry else 0)
            if held + rows > self.max_buffered_rows:
                self._overflow(tables)
                return
            try:
                put(self._buf, item)
            except BaseException:
                self._buf.drop_partial()
                raise
            self._pending += rows
            self._seq = ticket = self._seq + rows
            if self._pending >= self.flush_rows:
                self._wake.notify()
        if not self.durable:
            return
        if not wait:
            self._group.soon(ticket)
        elif self._snapshot_thread != threading.get_ident() and not self._defer(ticket):
            self._wait_commit(ticket)

    def _overflow(self, tables: tuple[str, ...]) -> None:
        for table in tables:
            self.overflow[table] += 1
        if not self._overflowing:
            self._overflowing = True
            log.error("adaptroute: the PostgreSQL log %s is unreachable and %d rows are buffered (max_buffered_rows): "
                      "further rows are not logged, and counted in store.overflow, until it is back (%s)",
                      self.path, self.max_buffered_rows, self.last_error)

    def _wait_commit(self, ticket: int) -> None:
        deadline = time.monotonic() + self.durable_timeout_s
        while True:
            try:
                if self._group.wait(ticket, max(0.0, deadline - time.monotonic())):
                    return
            except StoreUnavailableError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                continue
            break
        raise StoreUnavailableError(
            f"the PostgreSQL log {self.path} did not commit within {self.durable_timeout_s} s ({self.last_error}); "
            "the row stays buffered and is written when the database is back"
        )

    # -- writing ----------------------------------------------------------------------------------
    def flush(self) -> None:
        if self._snapshot_thread == threading.get_ident():
            return  # this thread holds a snapshot: the log stays as it was when the snapshot began
        with self._lock:
            ticket = self._seq
        self._group.wait(ticket)

    def _flush_now(self) -> int:
        """Write the batch that failed last time (if any), then everything buffered; returns the ticket
        through which rows are committed."""
        with self._writing:
            with self._lock:
                if self._retry is None and self._pending:
                    self._retry = (self._buf, self._pending, self._batch + 1, self._seq)
                    self._buf, self._pending = _Buffer(), 0
                retry, through = self._retry, self._seq
                if retry is None:
                    return through
            taken, rows, batch, ticket = retry
            self._write(taken, rows, batch)
            with self._lock:
                self._retry = None
                self._batch = batch
                self._overflowing = False
                self.last_error = self.write_error = None
            return ticket

    def _write(self, taken: _Buffer, rows: int, batch: int) -> None:
        import psycopg

        try:
            con = self._connection()
            with con.transaction():
                with con.cursor() as cur:
                    for table, buffered in taken.tables().items():
                        if not len(buffered):
                            continue
                        columns = copy_columns(table, buffered.columns)
                        with cur.copy(COPY_INTO[table]) as copy:
                            copy.set_types(COPY_TYPES[table])
                            write = copy.write_row
                            for row in zip(*columns, repeat(self.replica), repeat(batch)):
                                write(row)
                # Last, so that a batch committed before (its acknowledgement lost with the connection)
                # violates the key here and the whole retry rolls back: a batch is written once.
                con.execute(INSERT_BATCH, [self.replica, batch, rows])
        except psycopg.errors.UniqueViolation:
            return  # committed before
        except (psycopg.Error, StoreUnavailableError) as exc:
            unreachable = isinstance(exc, (psycopg.OperationalError, StoreUnavailableError))
            if unreachable:
                self._drop_connection()
            self.last_error = describe(exc)
            kind = StoreUnavailableError if unreachable else StoreError
            self.write_error = kind(f"writing the PostgreSQL log {self.path} failed: {self.last_error}")
            raise self.write_error from None

    def _connection(self) -> Any:
        if self._con is None or self._con.closed or self._con.broken:
            self._drop_connection()
            self._con = connect(self.url, self.connect_timeout_s, durable=self.durable)
        return self._con

    def _drop_connection(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def _flush_loop(self) -> None:
        failures = 0
        while True:
            with self._lock:
                delay = self.flush_interval_s if not failures else min(2.0, 0.1 * 2**failures)
                self._wake.wait_for(lambda: self._closed or self._pending >= self.flush_rows, delay)
                if self._closed:
                    return
                idle = not self._pending and self._retry is None
            if idle:
                continue
            try:
                self._group.advance(self._flush_now())
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a background thread must not die
                if not failures:
                    log.error("adaptroute: writing the PostgreSQL log failed, rows kept in memory: %s", exc)
                failures = min(failures + 1, 5)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Flush, then hold writes back until the database snapshot of this thread's next read is
        fixed: unlike a DuckDB file, PostgreSQL shows a read only what was committed before it began,
        so writes (and durable requests) wait for the read's first query, not for the whole read."""
        self.flush()
        self._writing.acquire()
        self._snapshot_thread = threading.get_ident()
        try:
            yield
        finally:
            self._end_snapshot_hold()

    def _end_snapshot_hold(self) -> None:
        if self._snapshot_thread == threading.get_ident():
            self._snapshot_thread = None
            self._writing.release()

    @property
    def buffered_rows(self) -> int:
        return self._pending + (self._retry[1] if self._retry else 0)

    def health(self) -> dict[str, Any]:
        """What an operator watches: rows waiting, rows lost past the bound, the last write error."""
        return {"buffered_rows": self.buffered_rows, "max_buffered_rows": self.max_buffered_rows,
                "overflow_rows": dict(self.overflow), "last_error": self.last_error, "replica": self.replica}

    def close(self) -> None:
        """Flush (waiting up to durable_timeout_s for an unreachable database) and close (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        try:
            if self.buffered_rows:
                try:
                    self._flush_now()
                except StoreUnavailableError:
                    deadline = time.monotonic() + self.durable_timeout_s
                    while self.buffered_rows and time.monotonic() < deadline:
                        time.sleep(0.5)
                        try:
                            self._flush_now()
                        except StoreUnavailableError:
                            continue
                    if self.buffered_rows:
                        log.error("adaptroute: closing the PostgreSQL log %s with %d rows not written: %s",
                                  self.path, self.buffered_rows, self.last_error)
                        raise
        finally:
            self._group.close()
            self._flusher.join(timeout=5)
            self._drop_connection()
            with self._read_lock:
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
            atexit.unregister(self._atexit)

    # -- reading ----------------------------------------------------------------------------------
    def _read(self, query: Callable[[Any], _T]) -> _T:
        """``query(connection)`` on the reader connection (not the writer's), one at a time. A connection
        the server dropped (a restart) is replaced once; an unreachable server is StoreUnavailableError."""
        import psycopg

        with self._read_lock:
            for attempt in (0, 1):
                fresh = self._reader is None or self._reader.closed or self._reader.broken
                if fresh:
                    self._reader = connect(self.url, self.connect_timeout_s)
                try:
                    return query(self._reader)
                except psycopg.OperationalError as exc:
                    self._reader.close()
                    self._reader = None
                    if fresh or attempt:
                        said = describe(exc)
                        raise StoreUnavailableError(f"reading the PostgreSQL log {self.path} failed: {said}") from None
        raise AssertionError("unreachable")

    def has_decision(self, decision_id: str) -> bool:
        self.flush()
        return self._read(lambda con: con.execute(DECISION_EXISTS, [decision_id]).fetchone() is not None)

    def batch_exists(self, batch: int) -> bool:
        return self._read(lambda con: con.execute(BATCH_EXISTS, [self.replica, batch]).fetchone() is not None)

    def read_tables(self) -> dict[str, pa.Table]:
        return self.read_tables_with_heads()[0]

    def read_tables_with_heads(self) -> tuple[dict[str, pa.Table], dict[str, int]]:
        """Every table, and the last batch of each replica, in one snapshot of the database."""
        self.flush()
        if self._snapshot_thread != threading.get_ident():
            return self._read(read_tables)
        # Inside snapshot(): writes resume once the read's snapshot is fixed, so this read must not be
        # retried on a fresh connection (a later snapshot would see rows the caller also replays).
        with self._read_lock:
            con = connect(self.url, self.connect_timeout_s)
            try:
                return read_tables(con, on_snapshot=self._end_snapshot_hold)
            except Exception as exc:  # noqa: BLE001 - a database error, reported as the store's
                import psycopg

                if isinstance(exc, psycopg.Error):
                    raise StoreUnavailableError(f"reading the PostgreSQL log {self.path} failed: {describe(exc)}") from None
                raise
            finally:
                con.close()

    def register_tasks(self, tasks: Sequence[str]) -> list[str]:
        """Add ``tasks`` (in order) to the shared task vocabulary; returns all of it, in its one order."""

        def register(con: Any) -> list[str]:
            with con.transaction():
                con.execute(TASKS_LOCK)
                for task in tasks:
                    con.execute(ADD_TASK, [task])
                return [row[0] for row in con.execute(ALL_TASKS).fetchall()]

        return self._read(register)

    def heads(self) -> dict[str, int]:
        """The last batch each replica committed."""
        return self._read(heads)

    def changes_since(self, seen: dict[str, int]) -> Changes:
        """Rows other replicas committed after the batches in ``seen`` (see pg_read.read_changes)."""
        return self._read(lambda con: read_changes(con, seen, self.replica))

    def counts(self) -> dict[str, int]:
        self.flush()
        return self._read(lambda con: {t: int(con.execute(COUNT_ROWS[t]).fetchone()[0]) for t in TABLES})

    def __repr__(self) -> str:
        return f"PostgresLogStore({self.path!r}, replica={self.replica!r}, durable={self.durable})"
