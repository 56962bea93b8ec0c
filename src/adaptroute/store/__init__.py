"""The DuckDB log: writer (one per process, buffered) and reader (LoggedBatch for retrain and replay)."""

from .reader import read_log
from .schema import SCHEMA_VERSION
from .writer import LogStore

__all__ = ["SCHEMA_VERSION", "LogStore", "read_log"]
