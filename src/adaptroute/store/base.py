"""The log interface the router, read_log, report, replay and tune speak to, and the factory that picks a
backend from a store string: a DuckDB path (the embedded default, one process) or a
``postgresql://`` URL (several processes or replicas sharing one log).
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pyarrow as pa

from ..types import Decision, RoutingRecord

__all__ = ["LogBackend", "is_postgres_url", "open_store"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(_POSTGRES_SCHEMES)


class LogBackend(ABC):
    """An append-only log of decisions, attempts, outcomes and feedback (tables in store.schema).

    Appends are buffered and written in batches, one transaction each (all tables or none); with
    ``durable`` an append returns only once committed (concurrent appends share commits).
    """

    path: str  # where the log lives, for messages (a URL is shown without its password)
    hash_key: bytes  # the key of prompt hashes, kept with the log so every writer hashes alike
    durable: bool
    shared = False  # several processes write it (replicas then merge each other's outcomes)

    # -- durable appends under a caller's lock ----------------------------------------------------
    _deferred = threading.local()

    @contextmanager
    def deferred_commit(self) -> Iterator[None]:
        """Durable appends this thread makes inside the block return at once; leaving the block waits
        for their commit. The learner appends under its own lock and waits outside it, so concurrent
        requests still share commits."""
        state = self._deferred
        if not self.durable or getattr(state, "store", None) is not None:
            yield
            return
        state.store, state.ticket = self, 0
        try:
            yield
        finally:
            ticket, state.store = state.ticket, None
            if ticket:
                self._wait_commit(ticket)

    def _defer(self, ticket: int) -> bool:
        """Called by a durable append: True if the wait is left to deferred_commit's exit."""
        state = self._deferred
        if getattr(state, "store", None) is self:
            state.ticket = ticket
            return True
        return False

    def _wait_commit(self, ticket: int) -> None:  # pragma: no cover - both backends override it
        raise NotImplementedError

    @abstractmethod
    def add_decision(self, d: Decision) -> None: ...

    @abstractmethod
    def add_result(self, record: RoutingRecord, ts: float | None = None) -> None: ...

    @abstractmethod
    def add_feedback(self, decision_id: str, quality: float, source: str, ts: float | None = None) -> None: ...

    @abstractmethod
    def flush(self) -> None:
        """Every row appended before the call is in the log when it returns."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """Flush, then hold further writes back while reads in this thread see the log as of now."""

    @abstractmethod
    def has_decision(self, decision_id: str) -> bool: ...

    @abstractmethod
    def read_tables(self) -> dict[str, pa.Table]:
        """Every table of the log as Arrow (flushed first), with the columns of store.schema."""

    @abstractmethod
    def counts(self) -> dict[str, int]: ...

    @property
    @abstractmethod
    def buffered_rows(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> LogBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(target: str | os.PathLike[str] = ":memory:", **options: Any) -> LogBackend:
    """A log for ``target``: ``postgresql://user@host/db`` opens the PostgreSQL backend (psycopg 3,
    the ``postgres`` extra); anything else is a DuckDB file path or ":memory:"."""
    if is_postgres_url(target):
        from .postgres import PostgresLogStore

        return PostgresLogStore(str(target), **options)
    from .writer import LogStore

    options.pop("max_buffered_rows", None)  # the DuckDB log is local: nothing to wait out
    return LogStore(target, **options)
