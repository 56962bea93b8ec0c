"""LogStore: the DuckDB log of one router process, with buffered, atomic appends.

DuckDB allows one writing process per file and locks other processes out (read-only ones too), so a
router owns its file. Rows are buffered in memory and written in one transaction per flush (every
``flush_rows`` rows, every ``flush_interval_s`` seconds, and at close or interpreter exit): a crash loses
at most the rows buffered since the last flush, never half a flush. ``durable=True``: an outcome or
feedback row returns only once committed, together with every row appended before it (its request's
decision too); a decision is committed while its call runs (see add_decision). Concurrent requests share
commits (store.group_commit). A durable log on a file commits those groups to its journal (one write and
one fsync each, see store.journal) and writes them to the DuckDB file in large batches; opening the file
again replays what a crash left in the journal.

Two background flushers take turns: one converts the next batch to Arrow while the other writes the
batch before it, and batches are written in the order they were taken.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import SchemaVersionError, StoreError
from ..types import Decision, RoutingRecord
from .base import LogBackend
from .buffer import _Buffer, _put_decision, _put_feedback, _put_result, _to_tables
from .duck_connect import _ROW_GROUP_ROWS, BatchInserter, close_writer, open_writer
from .export import export_parquet
from .group_commit import GroupCommit
from .health import WriteHealth
from .journal import Journal
from .journaled import Batch, JournaledWrites, concat_batches
from .keys import prompt_key
from .signals import watch
from .sql import SELECT_ALL
from .migrate import migration_hint
from .schema import COUNT_ROWS, CREATE_TABLES, SCHEMA_VERSION, TABLES, fetch_arrow

__all__ = ["LogStore"]

log = logging.getLogger("adaptroute.store")


_BULK_ROWS = 4 * _ROW_GROUP_ROWS  # a batch that fills a row group in each table (a request has 3+ rows)


class LogStore(JournaledWrites, LogBackend):
    """Append-only DuckDB log: decisions, attempts, outcomes, feedback (see store.schema)."""

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        durable: bool = False,
        flush_rows: int = 16_384,
        flush_interval_s: float = 1.0,
        hash_key: bytes | None = None,
        max_unwritten_rows: int = 1_048_576,
    ) -> None:
        self.path = str(path)
        self._health = WriteHealth(self.path, max(1, int(max_unwritten_rows)))
        self.durable = durable
        self.flush_rows = max(1, int(flush_rows))
        self.flush_interval_s = float(flush_interval_s)
        self._backlog_rows = max(8 * self.flush_rows, 2 * _BULK_ROWS)  # appends wait beyond this many rows
        self._con, attached = open_writer(self.path)
        on_file = self.path not in ("", ":memory:")
        if durable:  # commits of a few rows each: DuckDB's thread fan-out per statement cost more than the work
            self._con.execute("SET threads TO 1")
        self._db_lock = threading.RLock()  # the connection: one statement (or transaction) at a time
        self._buf_lock = threading.Lock()  # the buffer and its row count
        self._wake = threading.Condition(self._buf_lock)  # a batch may be due: wakes a flusher
        self._room = threading.Condition(self._buf_lock)  # the buffer was taken: wakes waiting appends
        self._staging = threading.Lock()  # taking a batch and converting it to Arrow
        self._writing = threading.Lock()  # writing a batch; snapshot() holds it
        self._buf = _Buffer()
        self._pending = 0
        self._staged = 0  # rows taken by a flush whose write has not ended
        self._exported: dict[str, int] = {}  # rows of each table in incremental exports so far
        self._appends = 0
        self._seq = 0  # rows appended so far: a durable append waits for the commit of its ticket
        # A durable file log: rows go buffer -> journal (durable) -> backlog -> DuckDB file.
        self._journal = Journal(self.path) if durable and on_file else None
        self._journal_lock = threading.Lock()  # one journal commit at a time, and none while a batch is taken
        self._unjournaled = 0  # rows in _buf (with a journal; _pending also counts the backlog's)
        self._backlog: list[Batch] = []  # journaled (tables, rows, through)
        self._group = GroupCommit(self._commit_journal if self._journal else self._flush)  # durable appends share commits
        self._closed = False
        self._flush_error: BaseException | None = None
        self._snapshot_thread: int | None = None
        try:
            self.hash_key = self._init_schema(hash_key)
            self._inserter = BatchInserter(self._con)
            if attached and on_file:  # no other LogStore of this process writes it: a crash's journal is left
                self._recover_journal()
        except BaseException:
            close_writer(self.path, self._con)
            raise
        # Two flushers: one stages a batch while the other writes the one before (see flush).
        self._flushers = [
            threading.Thread(target=self._flush_loop, name=f"adaptroute-log-flush-{i}", daemon=True) for i in range(2)
        ]
        for flusher in self._flushers:
            flusher.start()
        ref = weakref.ref(self)
        self._atexit = lambda: (s := ref()) is not None and s.close()
        atexit.register(self._atexit)
        watch(self)  # SIGTERM / SIGHUP flush it too

    # -- schema -----------------------------------------------------------------------------------
    def _init_schema(self, hash_key: bytes | None) -> bytes:
        con = self._con
        tables = {r[0] for r in con.execute(_OWN_TABLES).fetchall()}
        if tables and "meta" not in tables:
            raise SchemaVersionError(f"{self.path} is a DuckDB file but not an adaptroute log (no meta table)")
        if "meta" in tables:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            version = meta.get("schema_version")
            if version != str(SCHEMA_VERSION):
                older = version is not None and version.isdigit() and int(version) < SCHEMA_VERSION
                advice = migration_hint(self.path) if older else "start a new log file or upgrade adaptroute"
                raise SchemaVersionError(
                    f"{self.path} has log schema version {version!r}; this adaptroute writes version "
                    f"{SCHEMA_VERSION}: {advice}"
                )
            legacy = meta.get("prompt_hash_key")  # an older adaptroute kept the key in the file itself
            key = prompt_key(self.path, hash_key, legacy)
            if legacy:
                con.execute("DELETE FROM meta WHERE key = 'prompt_hash_key'")
                con.execute("CHECKPOINT")
            return key
        key = prompt_key(self.path, hash_key)  # kept outside the log (see store.keys)
        con.execute("BEGIN TRANSACTION")
        for statement in CREATE_TABLES:
            con.execute(statement)
        con.execute("INSERT INTO meta VALUES (?, ?)", ["schema_version", str(SCHEMA_VERSION)])
        con.execute("INSERT INTO meta VALUES (?, ?)", ["created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())])
        con.execute("COMMIT")
        return key

    # -- appends ---------------------------------------------------------------------------------
    # The request path copies each field into its column's list while the record is at hand: no
    # container per row (at a million rows, per-row tuples made the garbage collector the largest cost),
    # and the flush reads no Python object twice.
    def add_decision(self, d: Decision) -> None:
        """Buffer a decision. Durable: it is committed during its call, and at the latest by its
        outcome's commit, which is acknowledged only once both are on disk; while the log is failing it
        waits for its own commit, so a decision that cannot be written fails before its call is made."""
        self._health.check_room(self._pending + self._staged)  # a failing log refuses new requests past its bound
        try:
            self._append(_put_decision, d, 1, wait=self._health.error is not None)
        except StoreError:
            if self.durable:  # not committed, so its call will not be made: it must not be written later
                self._drop_decision(d.id)
            raise

    def _drop_decision(self, decision_id: str) -> None:
        with self._buf_lock:
            if self._buf.remove_decision(decision_id):
                self._pending -= 1
                self._unjournaled -= 1

    def add_result(self, record: RoutingRecord, ts: float | None = None) -> None:
        """The attempts of a finished request and its outcome row, buffered together."""
        self._append(_put_result, (record, time.time() if ts is None else ts), 1 + len(record.attempts))

    def add_feedback(self, decision_id: str, quality: float, source: str, ts: float | None = None) -> None:
        row = (decision_id, time.time() if ts is None else ts, quality, source)
        self._append(_put_feedback, row, 1)

    # A thread appending in a tight loop keeps the GIL for whole switch intervals (5 ms). The flushers'
    # DuckDB calls give the GIL up and take it back dozens of times a batch, waiting that long each
    # time (the convoy effect): a write took twice its time. So while a batch is being written, an
    # append gives the GIL up for a moment every 64 calls (more often cost more than it gained).
    def _append(self, put: Callable[[_Buffer, Any], None], item: Any, rows: int, wait: bool = True) -> None:
        with self._buf_lock:  # checked under the lock: no row can slip in after close()'s last flush
            if self._closed:
                raise StoreError(f"log {self.path} is closed")
            try:
                put(self._buf, item)
            except BaseException:
                self._buf.drop_partial()
                raise
            before = self._pending
            self._pending = pending = before + rows
            self._unjournaled += rows
            self._seq = ticket = self._seq + rows
            if before < self.flush_rows <= pending or before < _BULK_ROWS <= pending:
                self._wake.notify()  # a flusher checks whether a batch is due (see _batch_due)
        if self.durable:
            if not wait:
                self._group.soon(ticket)
            elif self._snapshot_thread != threading.get_ident() and not self._defer(ticket):  # a snapshot holds flushes back
                self._group.wait(ticket)
        elif pending >= self._backlog_rows and self._health.error is None:  # failing: bounded by check_room
            self._wait_for_room()
        else:
            self._appends = n = self._appends + 1  # outside the lock: a rough count is enough
            if not n % 64 and self._writing.locked():
                time.sleep(0)  # hand the GIL over to the flushers for a moment (see _append's comment)

    def _wait_commit(self, ticket: int) -> None:
        self._group.wait(ticket)

    def _wait_for_room(self) -> None:
        """The flushers fall behind: wait until one takes the buffer (as the write before it ends), or
        write it in this thread if none does within flush_interval_s."""
        if self._snapshot_thread == threading.get_ident():
            return  # no flush happens until this thread releases its snapshot
        with self._buf_lock:
            if self._room.wait_for(lambda: self._closed or self._pending < self._backlog_rows, self.flush_interval_s):
                return
        self.flush()

    # -- flushing ---------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered row in one transaction (all tables or none); every row appended before
        the call is in the log when it returns."""
        if self._snapshot_thread == threading.get_ident():
            return  # this thread holds a snapshot: the log stays as it was when the snapshot began
        self._flush()

    def _flush(self, only_if_due: bool = False) -> int:
        """Write a batch; returns the ticket through which rows are committed."""
        # A batch is staged (taken and converted to Arrow, which needs the GIL) while the one before it
        # is written (DuckDB releases the GIL). Staging ends only once the write lock is held, so batches
        # are written in the order they were taken, and under load a batch grows to what arrived during
        # the previous write instead of being cut small.
        with self._staging:
            if only_if_due and not self._still_due():
                return 0  # a flusher woke while the writer was idle, but it no longer is: let the batch grow
            if self._journal is not None:
                taken, rows, through = self._take_journaled()
            else:
                taken, rows, through = self._take()
            try:
                tables = concat_batches(taken) if self._journal is not None else _to_tables(taken) if rows else {}
                self._writing.acquire()
            except BaseException:
                self._give_back(taken, rows)
                raise
        try:
            self._write(tables)
            with self._buf_lock:
                self._staged -= rows
            self._health.succeeded()
            if self._journal is not None and taken:
                self._journal.release(taken[-1][2])  # those rows are in the file now
        except BaseException as exc:
            self._give_back(taken, rows)
            if isinstance(exc, duckdb.Error):
                self._health.failed(exc, self._pending)
                raise StoreError(f"writing the log {self.path} failed: {exc}") from None
            raise
        finally:
            self._writing.release()
            with self._buf_lock:
                self._wake.notify()  # the writer is free: a flusher may take a batch now
        self._group.advance(through)  # durable appends whose rows a background flush wrote may return
        return through

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Flush, then hold further flushes back: reads in this thread see exactly the log as of now
        (appends keep landing in the buffer). Used by retrain to read a consistent log."""
        self.flush()
        with self._writing:  # no batch is written until the snapshot is released
            self._snapshot_thread = threading.get_ident()
            try:
                yield
            finally:
                self._snapshot_thread = None

    def _take(self) -> tuple[_Buffer, int, int]:
        with self._buf_lock:
            taken, rows = self._buf, self._pending
            if rows:
                self._buf, self._pending, self._unjournaled = _Buffer(), 0, 0
                self._staged += rows  # taken, not yet written: still counted against max_unwritten_rows
                self._room.notify_all()
            return taken, rows, self._seq

    def _write(self, tables: dict[str, pa.Table]) -> None:
        if not tables:
            return
        with self._db_lock:
            self._inserter.write(tables)

    def _give_back(self, taken: Any, rows: int) -> None:
        if not rows:
            return
        with self._buf_lock:  # keep the rows for the next attempt: nothing is dropped silently
            if self._journal is not None:
                self._backlog[:0] = taken
            else:
                self._buf.prepend(taken)
                self._unjournaled += rows
            self._pending += rows
            self._staged -= rows

    def _flush_loop(self) -> None:
        while True:
            with self._buf_lock:  # woken when a batch may be due, else every flush_interval_s
                due = self._wake.wait_for(self._batch_due, self.flush_interval_s)
                if self._closed:
                    return
            try:
                self._flush(only_if_due=due)  # not due: flush_interval_s passed, write what there is
                self._flush_error = None
            except BaseException as exc:  # noqa: BLE001 - a background thread must not die
                if self._flush_error is None and not isinstance(exc, StoreError):  # StoreErrors: WriteHealth logs
                    log.error("adaptroute: flushing the log failed, rows kept in memory: %s", exc)
                self._flush_error = exc

    def _still_due(self) -> bool:
        with self._buf_lock:
            return self._batch_due()

    def _batch_due(self) -> bool:
        """flush_rows rows are buffered; while a batch is being written, rather wait for a batch big
        enough to go straight into row groups (_BULK_ROWS): many small writes cost far more."""
        if self._closed:
            return True
        due = max(self.flush_rows, _BULK_ROWS) if self._writing.locked() else self.flush_rows
        return self._pending >= due

    @property
    def buffered_rows(self) -> int:
        return self._pending

    @property
    def write_error(self) -> BaseException | None:
        """The error of the last write if it failed (its rows are kept and retried), else None."""
        return self._health.error

    def close(self) -> None:
        """Flush and close (idempotent). Registered at interpreter exit as well."""
        with self._buf_lock:
            if self._closed:
                return
            self._closed = True  # appends from now on fail loudly instead of landing after the last flush
            self._wake.notify_all()
            self._room.notify_all()
        written = False
        try:
            try:
                self.flush()
                written = True
            except StoreError as exc:
                raise self._health.unwritten(self._pending, exc.__cause__ or exc) from None
        finally:
            self._group.close()
            if self._journal is not None:
                self._journal.close(remove=written)  # unwritten rows stay journaled for the next open
            for flusher in self._flushers:
                if flusher is not threading.current_thread():
                    flusher.join(timeout=5)
            with self._db_lock:
                self._inserter.close()
                close_writer(self.path, self._con)
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

    def has_decision(self, decision_id: str) -> bool:
        return bool(self.query(_DECISION_EXISTS, [decision_id]))

    def read_tables(self) -> dict[str, pa.Table]:
        self.flush()
        with self._db_lock:
            return {table: fetch_arrow(self._con, SELECT_ALL[table]) for table in TABLES}

    def counts(self) -> dict[str, int]:
        self.flush()
        with self._db_lock:
            return {t: int(self._con.execute(COUNT_ROWS[t]).fetchall()[0][0]) for t in TABLES}

    def export_parquet(self, directory: str | os.PathLike[str], *, incremental: bool = False) -> Path:
        """Snapshot every table to ``directory/<table>.parquet``: what a retrain job on another
        process (or machine) reads while this router keeps writing. ``incremental=True`` writes only
        the rows appended since this store's previous incremental export, as new part files
        (``<table>-<timestamp>.parquet``) that read_log reads together (store.export)."""
        return export_parquet(self, directory, incremental)


_DECISION_EXISTS = "SELECT 1 FROM decisions WHERE decision_id = ? LIMIT 1"
_OWN_TABLES = "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
