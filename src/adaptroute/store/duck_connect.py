"""The DuckDB side of the log writer: opening (and sharing) the file's DuckDB instance, the errors a
user can act on, and writing one batch of Arrow tables in one transaction.

LogStore (writer.py) owns the buffering, locking and flushing; this module owns what DuckDB is told.
"""

from __future__ import annotations

import os
import threading

import duckdb
import pyarrow as pa

from ..errors import StoreError, StoreLockedError
from .schema import ARROW_SCHEMAS, COUNT_ROWS, ROW_KEYS, TABLES
from .sql import ident

__all__: list[str] = []  # internal to adaptroute.store


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.Error as exc:
        raise _open_error(path, exc) from None


# The log is attached with row groups of 16,384 rows instead of DuckDB's 122,880: a flush that brings at
# least that many rows to a table then hands its row groups over whole (compressed straight into a file),
# instead of appending them row by row to the table and, for a file, to the WAL, to be rewritten at every
# checkpoint until their row group is full; that cost more than the rest of the writer's work. Such a
# flush ends in a part-filled row group, and "vacuum" would merge those at each checkpoint, rewriting the
# data again (in memory too): an append-only log has nothing else to vacuum, so it is off. Readers need
# nothing special: row groups of any size read the same.
_ROW_GROUP_ROWS = 16_384
_ATTACH = "ATTACH ? AS log (ROW_GROUP_SIZE " + str(_ROW_GROUP_ROWS) + ")"


def open_writer(path: str) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """A connection to the log, and whether this attached the file (no other LogStore of this process
    has it open). The DuckDB instance that attaches a file is shared by every LogStore on that file in
    this process (as connecting to one path twice shares one), and closes with the last."""
    if path in ("", ":memory:"):
        return _attach(":memory:"), True  # each in-memory log is a database of its own
    key = os.path.realpath(path)
    with _SHARED_LOCK:
        instance, users = _SHARED.get(key, (None, 0))
        if instance is None:
            instance = _attach(path)
        con = instance.cursor()
        con.execute("USE log")
        _SHARED[key] = (instance, users + 1)
    return con, users == 0


def close_writer(path: str, con: duckdb.DuckDBPyConnection) -> None:
    con.close()
    key = os.path.realpath(path) if path not in ("", ":memory:") else None
    with _SHARED_LOCK:
        if key in _SHARED:
            instance, users = _SHARED.pop(key)
            if users > 1:
                _SHARED[key] = (instance, users - 1)
            else:
                instance.close()  # the last one: DuckDB checkpoints the file as it detaches it


_SHARED: dict[str, tuple[duckdb.DuckDBPyConnection, int]] = {}  # file -> (instance, LogStores using it)
_SHARED_LOCK = threading.Lock()


def _attach(path: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()  # an instance of its own: its settings touch no other connection
    try:
        con.execute(_ATTACH, [path])
        con.execute("USE log")
        con.execute("SET max_vacuum_tasks = 0")
    except duckdb.Error as exc:
        con.close()
        raise _open_error(path, exc) from None
    return con


def _open_error(path: str, exc: duckdb.Error) -> StoreError:
    said = str(exc)
    if isinstance(exc, duckdb.IOException) and "lock" in said.lower():
        return StoreLockedError(
            f"{path} is open in another process (DuckDB lets one process hold a log file). Give each "
            "router process its own file (for example routes-<pid>.duckdb) and retrain from all of them "
            "with read_log('routes-*.duckdb') once they are closed, or read a Parquet snapshot "
            f"(LogStore.export_parquet). DuckDB said: {said}"
        )
    if "file handle conflict" in said.lower():
        return StoreLockedError(
            f"{path} is open in this process by a LogStore, whose DuckDB instance holds the file: read it "
            f"through that store (read_log(store), store.query) until it is closed. DuckDB said: {said}"
        )
    return StoreError(f"cannot open log {path}: {said}")


class BatchInserter:
    """Writes a batch (an Arrow table per table) in one transaction, on a connection of its own.

    A durable commit of a few dozen rows is mostly fixed cost per statement (parse, bind, optimise,
    plan: about 1 ms of CPU per table here, whatever the row count), so each table's INSERT is parsed
    once, reads its Arrow table through DuckDB's Python replacement scan (the local variable
    ``adaptroute_batch_rows`` below) rather than a relation built by ``from_arrow(...).insert_into``,
    and runs without the optimiser, which has nothing to do for ``INSERT ... SELECT *`` (that setting is
    this connection's only: reads on the store's connection keep it). Together these took the CPU of
    such a commit from 6.6 to 3.6 ms; large buffered batches cost the same as before.
    """

    __slots__ = ("_con", "_inserts")

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con = con.cursor()  # a connection of its own to the same database
        con.execute("USE log")
        con.execute("SET SESSION enable_optimizer = false")
        self._inserts = {table: con.extract_statements(_INSERT[table])[0] for table in TABLES}

    def close(self) -> None:
        self._con.close()

    def write(self, tables: dict[str, pa.Table]) -> None:
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            for table in TABLES:
                if table in tables:
                    adaptroute_batch_rows = tables[table]  # noqa: F841 - read by the statement (a replacement scan)
                    con.execute(self._inserts[table])
            con.execute("COMMIT")
        except BaseException:
            try:  # a failed COMMIT has already ended the transaction: keep its error, not ROLLBACK's
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise


_INSERT = {table: "INSERT INTO " + ident(table) + " SELECT * FROM adaptroute_batch_rows" for table in TABLES}


def recover(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> dict[str, int]:
    """Insert a journal's rows that the file does not hold yet (by ROW_KEYS), in one transaction;
    returns the rows added per table. Rows a batch already wrote before a crash are recognised, so a
    replayed journal never counts a request twice."""
    added: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for table in TABLES:
            if table in tables:
                adaptroute_journal_rows = tables[table]  # noqa: F841 - read by the statement (a replacement scan)
                before = con.execute(COUNT_ROWS[table]).fetchall()[0][0]
                con.execute(_RECOVER[table])
                added[table] = con.execute(COUNT_ROWS[table]).fetchall()[0][0] - before
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
    return added


def _same_row(table: str) -> str:
    columns = ROW_KEYS[table] or tuple(ARROW_SCHEMAS[table].names)
    return " AND ".join("l." + ident(c) + " IS NOT DISTINCT FROM j." + c for c in columns)


# Built once from the schema's own table and column names (an allow-list: nothing from a file or a
# caller reaches the SQL); the rows themselves are read by replacement scan, never spliced in.
_RECOVER = {
    table: "INSERT INTO " + ident(table) + " SELECT * FROM adaptroute_journal_rows j "
    "WHERE NOT EXISTS (SELECT 1 FROM " + table + " l WHERE " + _same_row(table) + ")"
    for table in TABLES
}
