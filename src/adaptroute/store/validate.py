"""Check a log before trusting it: its tables and column types, every value, and decision ids.

A log is a file someone hands in, so nothing in it is taken as written. The checks run in DuckDB over
the tables as they sit (a file in place, or Parquet snapshots and several files registered together),
and the first problem found is raised as a LogIntegrityError naming the file, the table, the column
and the row. Decisions are identified by id: the same decision in two snapshots (or a file and its
copy) is read once if both copies agree, and refused if they differ, so nothing is ever counted twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import LogIntegrityError
from .schema import ARROW_SCHEMAS, MIGRATIONS, ROW_KEYS, SCHEMA_VERSION, TABLES, WEIGHT_COLUMNS, fetch_arrow
from .sql import DESCRIBE, ident, idents

__all__ = ["MAX_FEATURES", "MAX_MODELS", "MIN_PROPENSITY", "check_schema", "check_values", "merge_duplicates"]

MIN_PROPENSITY = 1e-9  # below this a logged probability is corrupt (the router's floor is far above it)
MAX_FEATURES = 65_536  # features per decision; more would make retraining allocate without bound
MAX_MODELS = 4_096  # distinct model names in one log
MAX_ELIGIBLE = 4_096
_SUM_TOLERANCE = 1e-4  # logged probabilities of one decision sum to 1 within this
SOURCE = "_source"  # index of the file a row came from, in tables registered from several files

_ADDED = re.compile(r"ADD COLUMN (\w+)")


def _added_since(version: int) -> set[str]:
    """Columns added by the migrations after ``version`` (absent from older logs, read as NULL)."""
    return {c for v, steps in MIGRATIONS.items() if v >= version for s in steps for c in _ADDED.findall(s)}


def _family(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return "text"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "time"
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list of {_family(kind.value_type)}"
    if pa.types.is_null(kind):
        return "null"
    return str(kind)


def check_schema(source: str, table: str, schema: pa.Schema, version: int = SCHEMA_VERSION) -> None:
    """Every column the reader needs is there, with a type of the right kind."""
    optional = _added_since(version)
    present = {field.name: field.type for field in schema}
    for field in ARROW_SCHEMAS[table]:
        kind = present.get(field.name)
        if kind is None:
            if field.name in optional:
                continue
            raise LogIntegrityError(source, table, field.name, None, "the column is missing")
        want, got = _family(field.type), _family(kind)
        if got != want and got != "null" and not got.endswith("of null"):
            raise LogIntegrityError(source, table, field.name, None, f"has type {kind}, expected {want} ({field.type})")


def _finite(column: str, low: float | None = None, high: float | None = None, nullable: bool = True) -> str:
    """SQL that is true for a bad value of a numeric column."""
    checks = [f"NOT isfinite({column})"]
    if low is not None:
        checks.append(f"{column} < {low!r}")
    if high is not None:
        checks.append(f"{column} > {high!r}")
    bad = f"({column} IS NOT NULL AND ({' OR '.join(checks)}))"
    return bad if nullable else f"({column} IS NULL OR {' OR '.join(checks)})"


# What an attempt and an outcome both record of a call: checked alike in both tables.
_CALL_RULES = (
    ("quality", "is not a quality in [0, 1]", _finite("quality", 0.0, 1.0)),
    ("cost_usd", "is not a finite cost >= 0", _finite("cost_usd", 0.0)),
    ("latency_s", "is not a finite latency >= 0", _finite("latency_s", 0.0)),
    ("first_token_s", "is not a finite latency >= 0", _finite("first_token_s", 0.0)),
    ("tokens_in", "is negative", "tokens_in < 0"),
    ("tokens_out", "is negative", "tokens_out < 0"),
)

# table -> (column, what is wrong, SQL true for a bad row); checked in this order, first problem raised.
_RULES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "decisions": (
        ("decision_id", "is empty", "decision_id IS NULL OR decision_id = ''"),
        ("ts", "is missing", "ts IS NULL"),
        ("task", "is missing", "task IS NULL"),
        ("eligible", "is empty or missing", "eligible IS NULL OR len(eligible) = 0"),
        ("eligible", f"lists more than {MAX_ELIGIBLE} models", f"len(eligible) > {MAX_ELIGIBLE}"),
        ("probabilities", "has another length than eligible", "probabilities IS NULL OR len(probabilities) != len(eligible)"),
        ("probabilities", "holds a value outside [0, 1] or not finite",  # native list aggregates: no lambda per row
         "list_count(probabilities) != len(probabilities) OR NOT isfinite(list_sum(probabilities)) "
         "OR list_min(probabilities) < 0 OR list_max(probabilities) > 1"),
        ("probabilities", f"do not sum to 1 (within {_SUM_TOLERANCE})", f"abs(list_sum(probabilities) - 1) > {_SUM_TOLERANCE}"),
        ("chosen", "is not among the eligible models", "chosen IS NULL OR NOT list_contains(eligible, chosen)"),
        ("propensity", f"is not a probability in [{MIN_PROPENSITY}, 1]", _finite("propensity", MIN_PROPENSITY, 1.0, nullable=False)),
        ("propensity", "differs from the chosen model's entry in probabilities",
         "abs(propensity - probabilities[list_position(eligible, chosen)]) > 1e-6 * greatest(propensity, 1e-3)"),
        ("features", "is missing", "features IS NULL"),
        ("features", f"has more than {MAX_FEATURES} values", f"len(features) > {MAX_FEATURES}"),
        ("features", "holds a NaN, infinite or NULL value",  # a NaN or infinity makes the sum non-finite
         "list_count(features) != len(features) OR NOT isfinite(list_sum(features))"),
        *((c, "is not a finite weight >= 0", _finite(c, 0.0)) for c in WEIGHT_COLUMNS),
        ("bar", "is not a quality bar in [0, 1]", _finite("bar", 0.0, 1.0)),
        ("bar_effective", "is not a finite number", _finite("bar_effective")),
        ("budget_spent_usd", "is not a finite amount >= 0", _finite("budget_spent_usd", 0.0)),
        ("budget_remaining_usd", "is not a finite amount", _finite("budget_remaining_usd")),
        ("budget_allowance_usd", "is not a finite amount >= 0", _finite("budget_allowance_usd", 0.0)),
        ("lane", "is not 'online' or 'batch'", "lane IS NOT NULL AND lane NOT IN ('online', 'batch')"),
    ),
    "attempts": (
        ("decision_id", "is empty", "decision_id IS NULL OR decision_id = ''"),
        ("seq", "is not a position >= 0", "seq IS NULL OR seq < 0"),
        ("model", "is missing", "model IS NULL"),
        *_CALL_RULES,
        ("cached_tokens", "is negative or above tokens_in", "cached_tokens < 0 OR cached_tokens > tokens_in"),
        *((c, "is not a finite amount >= 0", _finite(c, 0.0)) for c in ("input_cost_usd", "cache_saved_usd", "batch_saved_usd")),
    ),
    "outcomes": (
        ("decision_id", "is empty", "decision_id IS NULL OR decision_id = ''"),
        *_CALL_RULES,
        ("retries", "is negative", "retries < 0"),
        ("n_attempts", "is negative", "n_attempts < 0"),
    ),
    "feedback": (
        ("decision_id", "is empty", "decision_id IS NULL OR decision_id = ''"),
        ("quality", "is not a quality in [0, 1]", _finite("quality", 0.0, 1.0, nullable=False)),
    ),
}

_TWICE = ("SELECT eligible FROM (SELECT DISTINCT eligible FROM decisions WHERE eligible IS NOT NULL) "
          "WHERE len(list_distinct(eligible)) != len(eligible) LIMIT 1")
_ROW_OF_ELIGIBLE = {with_source: "SELECT row, src, decision_id FROM (SELECT row_number() OVER () - 1 AS row, "
                    + (SOURCE if with_source else "NULL") + " AS src, decision_id, eligible FROM decisions) WHERE eligible = ? LIMIT 1"
                    for with_source in (False, True)}
_MODELS = ("SELECT count(*) FROM (SELECT DISTINCT m FROM (SELECT unnest(eligible) AS m FROM decisions "
           "UNION ALL SELECT model FROM attempts))")


def _source_of(sources: Sequence[str], row: Any) -> str:
    if len(sources) == 1 or row is None:
        return sources[0] if len(sources) == 1 else ", ".join(sources)
    return sources[int(row)]


def check_values(con: duckdb.DuckDBPyConnection, sources: Sequence[str], with_source: bool = False) -> None:
    """Every rule of every table; the first bad row raises LogIntegrityError naming where it is."""
    for table, rules in _RULES.items():
        columns = {r[0] for r in _describe(con, table)}
        live = [(c, why, sql) for c, why, sql in rules if c in columns]
        if not live:
            continue
        # The rules' SQL is this module's constant text (_RULES); the table passes the allow-list.
        name = ident(table)
        flag = " OR ".join("coalesce(" + sql + ", false)" for _, _, sql in live)
        if not con.execute("SELECT 1 FROM " + name + " WHERE " + flag + " LIMIT 1").fetchall():  # one scan, no window
            continue
        query = ("SELECT row, src, decision_id FROM (SELECT row_number() OVER () - 1 AS row, " + (SOURCE if with_source else "NULL")
                 + " AS src, decision_id, (" + flag + ") AS bad FROM " + name + ") WHERE bad LIMIT 1")
        found = con.execute(query).fetchall()
        row, src, decision_id = found[0]
        for column, why, sql in live:
            one = "SELECT coalesce(" + sql + ", false) FROM (SELECT row_number() OVER () - 1 AS row, * FROM " + name + ") WHERE row = ?"
            if con.execute(one, [row]).fetchall()[0][0]:
                raise LogIntegrityError(_source_of(sources, src), table, column, int(row), why, decision_id=decision_id)
    # Checked on the distinct lists (a log repeats a few eligible sets row after row): a third of the cost.
    twice = con.execute(_TWICE).fetchall()
    if twice:
        row, src, decision_id = con.execute(_ROW_OF_ELIGIBLE[with_source], [twice[0][0]]).fetchall()[0]
        raise LogIntegrityError(_source_of(sources, src), "decisions", "eligible", int(row),
                                "names a model twice or holds a NULL", decision_id=decision_id)
    models = con.execute(_MODELS).fetchall()[0][0]
    if models > MAX_MODELS:
        raise LogIntegrityError(_source_of(sources, None), "decisions", "eligible", None,
                                f"names {models} distinct models, more than {MAX_MODELS}")


def _describe(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    return con.execute(DESCRIBE[table]).fetchall()




def merge_duplicates(con: duckdb.DuckDBPyConnection, sources: Sequence[str]) -> dict[str, pa.Table]:
    """Each table with rows repeated across (or within) sources read once; a decision, outcome or
    attempt whose copies differ is refused, naming the files."""
    out: dict[str, pa.Table] = {}
    for table in TABLES:
        keys = ROW_KEYS[table]  # the rest of a row must agree between copies of it
        # Column names come from the file: only the schema's (an allow-list) reach the SQL. Any other
        # column is not read further anyway, so it plays no part in what counts as the same row.
        known = set(ARROW_SCHEMAS[table].names)
        listed = idents(r[0] for r in _describe(con, table) if r[0] in known)
        name = ident(table)
        if keys is not None:
            key = idents(keys)
            conflict = con.execute(
                "SELECT " + key + " FROM (SELECT DISTINCT " + listed + " FROM " + name + ") GROUP BY " + key
                + " HAVING count(*) > 1 LIMIT 1"
            ).fetchall()
            if conflict:
                where = " AND ".join(ident(k) + " IS NOT DISTINCT FROM ?" for k in keys)
                srcs = con.execute("SELECT DISTINCT " + SOURCE + " FROM " + name + " WHERE " + where + " ORDER BY 1",
                                   list(conflict[0])).fetchall()
                names = [sources[int(s)] for (s,) in srcs] if srcs and srcs[0][0] is not None else list(sources)
                raise LogIntegrityError(
                    " and ".join(dict.fromkeys(names)), table, key, None,
                    f"{', '.join(map(str, conflict[0]))} appears more than once with different values: "
                    "two logs disagree about one decision (not the same log's snapshots?)",
                    decision_id=str(conflict[0][0]),
                )
        out[table] = fetch_arrow(con, "SELECT DISTINCT " + listed + " FROM " + name)
    return out
