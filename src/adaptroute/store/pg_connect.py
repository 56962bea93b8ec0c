"""Connections to a PostgreSQL log (psycopg 3, imported on first use) and reading one by URL, with
passwords kept out of every message."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from ..errors import SchemaVersionError, StoreError, StoreUnavailableError
from .pg_read import read_tables
from .pg_schema import check_versions, read_meta

__all__ = ["connect", "describe", "read_url", "redact"]

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_PASSWORD_SETTING = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` without the password of a URL or of a password=... setting: what messages show."""
    return _PASSWORD_SETTING.sub(r"\1***", _PASSWORD.sub(r"\1***@", text))


def describe(exc: BaseException) -> str:
    """The first line of a database error, without passwords."""
    text = redact(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(url: str, timeout_s: float = 5.0, *, durable: bool = False) -> Any:
    """A psycopg connection, or a StoreError that says what to install or what failed (never the password).
    ``durable``: its commits return only once on disk (``synchronous_commit`` on for this session, whatever
    the server's default), which a durable log's acknowledgements rely on."""
    try:
        import psycopg
    except ImportError:
        raise StoreError("a postgresql:// store needs psycopg 3: pip install 'adaptroute[postgres]'") from None
    try:
        con = psycopg.connect(url, connect_timeout=max(1, round(timeout_s)), application_name="adaptroute",
                              autocommit=True)  # transactions are explicit: con.transaction()
    except psycopg.Error as exc:
        raise StoreUnavailableError(f"cannot connect to the PostgreSQL log {redact(url)}: {describe(exc)}") from None
    # The COPY's array columns arrive encoded (pg_copy) as bytes: dump them with psycopg's own bytes
    # dumper (C), not the DB-API one it registers for bytea by default, a Python call per value.
    from psycopg.types.string import BytesBinaryDumper

    con.adapters.register_dumper(bytes, BytesBinaryDumper)
    try:
        if durable:
            con.execute("SET synchronous_commit TO on")
        return con
    except psycopg.Error as exc:
        con.close()
        raise StoreUnavailableError(f"cannot connect to the PostgreSQL log {redact(url)}: {describe(exc)}") from None


def read_url(url: str) -> dict[str, pa.Table]:
    """Every table of the PostgreSQL log at ``url`` (read_log's source), after the schema check."""
    con = connect(url)
    try:
        meta = read_meta(con, redact(url))
        if meta is None:
            raise SchemaVersionError(f"{redact(url)} holds no adaptroute log (no meta table)")
        check_versions(meta, redact(url))
        return read_tables(con)[0]
    finally:
        con.close()
