"""The DuckDB log: writer (one per process, buffered), reader (LoggedBatch for retrain and replay) and
explicit migrations of older log files."""

from .migrate import migrate_log
from .reader import read_log
from .schema import SCHEMA_VERSION
from .writer import LogStore

__all__ = ["SCHEMA_VERSION", "LogStore", "migrate_log", "read_log"]
