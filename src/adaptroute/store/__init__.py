"""The log: one interface (LogBackend) with two backends, DuckDB (LogStore: embedded, one process) and
PostgreSQL (PostgresLogStore: several processes or replicas); read_log (LoggedBatch for retrain, replay
and reports) over either, and explicit migrations of older log files."""

from .base import LogBackend, is_postgres_url, open_store
from .migrate import migrate_log
from .reader import read_log
from .schema import SCHEMA_VERSION
from .writer import LogStore

__all__ = ["SCHEMA_VERSION", "LogBackend", "LogStore", "PostgresLogStore", "is_postgres_url", "migrate_log",
           "open_store", "read_log"]


def __getattr__(name: str) -> object:
    if name == "PostgresLogStore":  # imported on use: psycopg stays out of `import adaptroute.store`
        from .postgres import PostgresLogStore

        return PostgresLogStore
    raise AttributeError(f"module 'adaptroute.store' has no attribute {name!r}")
