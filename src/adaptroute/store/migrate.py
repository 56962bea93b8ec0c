"""Explicit log migrations: bring a closed log file written by an older adaptroute to this schema version.

A router refuses to append to an older log (its rows would lack columns); read_log reads older logs
as they are, with the newer columns NULL ("not logged"). Each step of schema.MIGRATIONS runs in one
transaction with its version bump, so a failed migration leaves the file as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from ..errors import SchemaVersionError, StoreError
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["log_version", "looks_like_duckdb", "migrate_log", "migration_hint"]

_VERSION = "SELECT value FROM meta WHERE key = 'schema_version'"
_SET_VERSION = "UPDATE meta SET value = ? WHERE key = 'schema_version'"


def migration_hint(path: str) -> str:
    return f"run `adaptroute migrate {path}` (or adaptroute.store.migrate_log) once no process has it open"


def looks_like_duckdb(path: str) -> bool:
    """DuckDB files carry "DUCK" at byte 8; anything else (a CSV, a parquet file) is not a log."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return True  # let DuckDB report what is wrong with it
    return len(head) < 12 or head[8:12] == b"DUCK"


def log_version(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """The schema version recorded in an adaptroute log, or SchemaVersionError naming the file."""
    try:
        rows = con.execute(_VERSION).fetchall()
    except duckdb.CatalogException:
        raise SchemaVersionError(f"{path} is a DuckDB file but not an adaptroute log (no meta table)") from None
    raw = rows[0][0] if rows else None
    try:
        return int(str(raw))
    except ValueError:
        raise SchemaVersionError(f"{path} has log schema version {raw!r}, not a version number") from None


def migrate_log(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Migrate the log file at ``path`` to SCHEMA_VERSION; returns (version before, version after).

    A log already at this version is left untouched. A log from a newer adaptroute is refused."""
    from .duck_connect import _connect  # the writer's typed errors for locked or unreadable files

    path = str(path)
    if not Path(path).is_file():
        raise StoreError(f"log file {path} does not exist")
    if not looks_like_duckdb(path):
        raise StoreError(f"{path} is not a DuckDB log file: only a router's .duckdb log can be migrated")
    con = _connect(path, read_only=False)
    try:
        before = version = log_version(con, path)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{path} has log schema version {version}, newer than this adaptroute's {SCHEMA_VERSION}: upgrade adaptroute"
            )
        while version < SCHEMA_VERSION:
            steps = MIGRATIONS.get(version)
            if steps is None:
                raise SchemaVersionError(f"{path}: no migration from log schema version {version}")
            con.execute("BEGIN TRANSACTION")
            try:
                for statement in steps:
                    con.execute(statement)
                con.execute(_SET_VERSION, [str(version + 1)])
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise StoreError(f"migrating {path} from version {version} failed, file unchanged: {exc}") from None
            version += 1
        return before, version
    finally:
        con.close()
