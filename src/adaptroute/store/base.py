"""The log interface the router, read_log, report, replay and tune speak to, and the factory that picks a
backend from a store string: a DuckDB path (the embedded default, one process) or a
``postgresql://`` URL (several processes or replicas sharing one log).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
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
