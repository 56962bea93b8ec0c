"""SQL text from the log's own names only.

Every table or column name that goes into a statement passes ``ident``, which accepts only the
schema's names (an allow-list): nothing a file, a caller or a user hands in can reach SQL text that
way. Values always travel as parameters (``?`` in DuckDB, ``%s`` in psycopg).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import StoreError
from .schema import ARROW_SCHEMAS, TABLES

__all__: list[str] = []  # internal to adaptroute.store

# The log's tables and columns, plus the PostgreSQL log's bookkeeping columns.
NAMES: frozenset[str] = frozenset(TABLES) | {n for s in ARROW_SCHEMAS.values() for n in s.names} | {"replica", "batch"}


def ident(name: str) -> str:
    """``name`` itself when it is a table or column of the log; StoreError otherwise."""
    if name not in NAMES:
        raise StoreError(f"{name!r} is not a table or column of the log")
    return name


def idents(names: Iterable[str], sep: str = ", ") -> str:
    return sep.join(ident(n) for n in names)


SELECT_ALL: dict[str, str] = {t: "SELECT * FROM " + ident(t) for t in TABLES}
NO_ROWS: dict[str, str] = {t: "SELECT * FROM " + ident(t) + " LIMIT 0" for t in TABLES}
# Tables are append-only, so rowid grows with every row: the rows past the last one read.
ROWS_FROM: dict[str, str] = {t: "SELECT * FROM " + ident(t) + " WHERE rowid >= ? ORDER BY rowid" for t in TABLES}
DESCRIBE: dict[str, str] = {t: "DESCRIBE " + ident(t) for t in TABLES}
