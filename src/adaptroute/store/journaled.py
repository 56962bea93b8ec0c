"""The journaled path of a durable DuckDB log (LogStore, writer.py): rows go from the buffer to the
journal (store.journal: acknowledged once there), then wait in a backlog of Arrow batches until a
background batch writes them into the DuckDB file; opening the file replays what a crash left.

A mixin, because these steps share LogStore's locks and counters: the buffer lock guards the buffer,
``_unjournaled`` (its rows) and the backlog; ``_journal_lock`` keeps one journal commit at a time and
none while a batch is taken from the backlog, so a batch always covers every row through its ticket.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from ..errors import StoreError
from .buffer import _Buffer, _to_tables
from .duck_connect import recover
from .group_commit import GroupCommit
from .health import WriteHealth
from .journal import Journal, encode, read_segments, remove_segments, segments
from .schema import TABLES

__all__: list[str] = []  # internal to adaptroute.store

log = logging.getLogger("adaptroute.store")

Batch = tuple[dict[str, pa.Table], int, int]  # a journaled batch: tables, rows, the ticket it ends at


class JournaledWrites:
    """LogStore's steps for a journaled (durable, file) log; the attributes are LogStore's."""

    if TYPE_CHECKING:
        path: str
        _journal: Journal | None
        _journal_lock: threading.Lock
        _buf_lock: threading.Lock
        _room: threading.Condition
        _db_lock: threading.RLock
        _con: duckdb.DuckDBPyConnection
        _buf: _Buffer
        _unjournaled: int
        _pending: int
        _staged: int
        _seq: int
        _backlog: list[Batch]
        _group: GroupCommit
        _health: WriteHealth

    def _take_journaled(self) -> tuple[list[Batch], int, int]:
        """A journaled log's batch: everything buffered is journaled first, then the backlog is taken."""
        through = self._commit_journal()
        self._group.advance(through)  # durable appends through it may return before the batch is written
        with self._buf_lock:
            taken, self._backlog = self._backlog, []
            rows = sum(n for _, n, _ in taken)
            self._pending -= rows
            self._staged += rows
            if rows:
                self._room.notify_all()
        return taken, rows, through

    def _commit_journal(self) -> int:
        """Journal every buffered row (one write and fsync); returns the ticket through which rows are durable."""
        assert self._journal is not None
        with self._journal_lock:
            with self._buf_lock:
                taken, rows, through = self._buf, self._unjournaled, self._seq
                if not rows:
                    return through
                self._buf, self._unjournaled = _Buffer(), 0
            try:
                tables = _to_tables(taken)
                self._journal.append(encode(tables), through)
            except BaseException as exc:
                with self._buf_lock:  # kept for the next commit, in front of what arrived since
                    self._buf.prepend(taken)
                    self._unjournaled += rows
                if isinstance(exc, OSError):
                    self._health.failed(exc, self._pending)
                    raise StoreError(f"writing the journal of the log {self.path} failed: {exc}") from None
                raise
            with self._buf_lock:
                self._backlog.append((tables, rows, through))
        self._health.succeeded()
        return through

    def _recover_journal(self) -> None:
        """Write to the file what a crashed writer had journaled (acknowledged) but not yet written."""
        paths = segments(self.path)
        if not paths:
            return
        tables = read_segments(paths)
        with self._db_lock:
            added = recover(self._con, tables) if tables else {}
        remove_segments(paths)
        log.warning("adaptroute: the log %s was not closed; recovered from its journal: %s", self.path,
                    ", ".join(f"{n} {table}" for table, n in added.items()) or "nothing missing")


def concat_batches(batches: list[Batch]) -> dict[str, pa.Table]:
    """Journaled batches as one table per log table, in the order they were appended."""
    out: dict[str, pa.Table] = {}
    for table in TABLES:
        parts = [tables[table] for tables, _, _ in batches if table in tables]
        if parts:
            out[table] = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    return out
