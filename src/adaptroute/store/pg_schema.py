"""The PostgreSQL log's tables: the DuckDB log's tables and columns (store.schema), in PostgreSQL types,
plus two columns on each, ``replica`` and ``batch``, that say which process wrote a row in which of its
commits, and a ``batches`` table with one row per commit. Replicas follow each other's commits by
(replica, batch): one writer per replica commits its batches in order, so a reader that has seen batch
n of a replica has seen everything it committed before, with no gap to miss.

Every SQL string is a constant here; values always travel as parameters.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..errors import SchemaVersionError
from .schema import ARROW_SCHEMAS, SCHEMA_VERSION, TABLES
from .sql import ident, idents

__all__: list[str] = []  # internal to adaptroute.store

# The layout of the PostgreSQL tables (extra columns, indexes). Bumped with a migration in MIGRATIONS.
PG_LAYOUT_VERSION = 1

# (layout version found) -> statements that bring it to the next one. None yet: version 1 is the first.
MIGRATIONS: dict[int, tuple[str, ...]] = {}

_PG_TYPES = {
    pa.string(): "text",
    pa.timestamp("us", tz="UTC"): "timestamptz",
    pa.list_(pa.float32()): "real[]",
    pa.list_(pa.string()): "text[]",
    pa.list_(pa.float64()): "double precision[]",
    pa.float64(): "double precision",
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.bool_(): "boolean",
}

# The type names psycopg's binary COPY needs per column (list columns arrive already encoded: bytea).
COPY_TYPES: dict[str, list[str]] = {}
for _table in TABLES:
    COPY_TYPES[_table] = [
        {"text": "text", "timestamptz": "int8", "double precision": "float8", "smallint": "int2",
         "integer": "int4", "boolean": "bool"}.get(_PG_TYPES[f.type], "bytea")
        for f in ARROW_SCHEMAS[_table]
    ] + ["text", "int8"]

COLUMNS: dict[str, list[str]] = {t: [f.name for f in ARROW_SCHEMAS[t]] for t in TABLES}

COPY_INTO: dict[str, str] = {
    t: "COPY " + ident(t) + " (" + idents(COLUMNS[t] + ["replica", "batch"]) + ") FROM STDIN (FORMAT BINARY)" for t in TABLES
}


def _create_table(table: str) -> str:
    cols = ", ".join(ident(f.name) + " " + _PG_TYPES[f.type] for f in ARROW_SCHEMAS[table])
    return "CREATE TABLE IF NOT EXISTS " + ident(table) + " (" + cols + ", replica text NOT NULL, batch bigint NOT NULL)"


CREATE_TABLES: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text)",
    *(_create_table(t) for t in TABLES),
    """CREATE TABLE IF NOT EXISTS batches (replica text NOT NULL, batch bigint NOT NULL,
        committed_at timestamptz NOT NULL DEFAULT now(), n_rows integer NOT NULL, PRIMARY KEY (replica, batch))""",
    # the task vocabulary every replica's featurizer follows, in one order (task one-hot coordinates)
    "CREATE TABLE IF NOT EXISTS tasks (position bigint GENERATED ALWAYS AS IDENTITY, task text PRIMARY KEY)",
    # feedback() checks a decision exists, and replicas join attempts to their decisions' features
    "CREATE INDEX IF NOT EXISTS decisions_id ON decisions (decision_id)",
    "CREATE INDEX IF NOT EXISTS feedback_id ON feedback (decision_id)",
    # rows are appended in batch order: block ranges find a replica's recent batches for next to nothing
    "CREATE INDEX IF NOT EXISTS attempts_batch ON attempts USING brin (batch)",
    "CREATE INDEX IF NOT EXISTS outcomes_batch ON outcomes USING brin (batch)",
    "CREATE INDEX IF NOT EXISTS feedback_batch ON feedback USING brin (batch)",
)

# One creator at a time when several replicas start on an empty database.
CREATE_LOCK = "SELECT pg_advisory_xact_lock(7411642315)"
TASKS_LOCK = "SELECT pg_advisory_xact_lock(7411642316)"  # registrations in commit order = position order
ADD_TASK = "INSERT INTO tasks (task) VALUES (%s) ON CONFLICT (task) DO NOTHING"
ALL_TASKS = "SELECT task FROM tasks ORDER BY position"
READ_META = "SELECT key, value FROM meta"
WRITE_META = "INSERT INTO meta (key, value) VALUES (%s, %s)"
INSERT_BATCH = "INSERT INTO batches (replica, batch, n_rows) VALUES (%s, %s, %s)"
LAST_BATCH = "SELECT coalesce(max(batch), 0) FROM batches WHERE replica = %s"
BATCH_EXISTS = "SELECT 1 FROM batches WHERE replica = %s AND batch = %s"
DECISION_EXISTS = "SELECT 1 FROM decisions WHERE decision_id = %s LIMIT 1"
COUNT_ROWS = {t: "SELECT count(*) FROM " + ident(t) for t in TABLES}


def read_meta(con: Any, where: str) -> dict[str, str] | None:
    """The meta table's rows, or None in a database without adaptroute's tables."""
    meta, decisions = con.execute("SELECT to_regclass('meta') IS NOT NULL, to_regclass('decisions') IS NOT NULL").fetchone()
    if not meta:
        if decisions:
            raise SchemaVersionError(f"{where} has a decisions table but no meta table: not an adaptroute log")
        return None
    return dict(con.execute(READ_META).fetchall())


def check_versions(meta: dict[str, Any], where: str) -> None:
    """Refuse a log written by another schema: a clear error, before any write."""
    found = meta.get("schema_version")
    layout = meta.get("pg_layout_version")
    if found != str(SCHEMA_VERSION):
        newer = found is not None and found.isdigit() and int(found) > SCHEMA_VERSION
        hint = ("it was written by a newer adaptroute: upgrade this one" if newer
                else "migrate it explicitly or point this router at a new database")
        raise SchemaVersionError(
            f"{where} has log schema version {found!r}; this adaptroute reads and writes version {SCHEMA_VERSION} ({hint})"
        )
    if layout != str(PG_LAYOUT_VERSION):
        newer = layout is not None and layout.isdigit() and int(layout) > PG_LAYOUT_VERSION
        hint = "upgrade adaptroute" if newer else "migrate it explicitly"
        raise SchemaVersionError(
            f"{where} has PostgreSQL layout version {layout!r}; this adaptroute expects {PG_LAYOUT_VERSION} ({hint})"
        )
