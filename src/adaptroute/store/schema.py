"""The log's tables. Every SQL string is a constant here: table and column names never come from input.

Append-only tables:
- decisions: one row per routed request, written before the call (x, chosen model, propensity).
- attempts: one row per model call inside a request (primary, retry, fallback, escalation).
- outcomes: one row per request, written when it ends (what the user got, in total).
- feedback: delayed quality, joined by decision id; the latest row per decision wins.

Each version's changes are listed in MIGRATIONS (applied by store.migrate, explicitly); a column added
by a migration is NULL in the rows written before it, and readers treat NULL as "not logged".
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

__all__ = [
    "ARROW_SCHEMAS", "CONTROL_COLUMNS", "CREATE_TABLES", "MIGRATIONS", "ROW_KEYS", "SAVING_COLUMNS", "SCHEMA_VERSION", "TABLES",
    "WEIGHT_COLUMNS", "fetch_arrow",
]


def fetch_arrow(con: Any, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Rows of a query as an Arrow table, through a relation (no extra copy), on DuckDB 1.x and 2.x."""
    relation = con.sql(sql, params=params) if params else con.sql(sql)
    for name in ("to_arrow_table", "arrow"):
        method = getattr(relation, name, None)
        if method is not None:
            return method()
    raise AttributeError("this DuckDB version offers no Arrow export")


SCHEMA_VERSION = 3

# The reward weights each decision was made under (types.WEIGHT_NAMES order), one DOUBLE column each:
# plain columns read back as arrays, and a log file stays queryable by hand.
WEIGHT_COLUMNS: tuple[str, ...] = ("weight_quality", "weight_cost", "weight_latency", "weight_failure")

# What operator controls did to each decision (router.controls.ControlNote; NULL where nothing applied):
# the bar it had to meet and the shifted bar its draws cleared, whether no model was expected to meet it,
# whether a budget shaped it and what that budget had left, the tenant, the caller's metadata (JSON
# text), and the lane ("online" or "batch").
CONTROL_COLUMNS: tuple[tuple[str, str, pa.DataType], ...] = (
    ("bar", "DOUBLE", pa.float64()),
    ("bar_effective", "DOUBLE", pa.float64()),
    ("bar_unreachable", "BOOLEAN", pa.bool_()),
    ("budget_shaped", "BOOLEAN", pa.bool_()),
    ("budget_spent_usd", "DOUBLE", pa.float64()),
    ("budget_remaining_usd", "DOUBLE", pa.float64()),
    ("budget_allowance_usd", "DOUBLE", pa.float64()),
    ("tenant", "VARCHAR", pa.string()),
    ("metadata", "VARCHAR", pa.string()),
    ("lane", "VARCHAR", pa.string()),
)
# Per attempt: prompt tokens billed at the cached rate, what the prompt would have cost uncached, and
# what the cache and the batch discount saved against list prices.
SAVING_COLUMNS: tuple[tuple[str, str, pa.DataType], ...] = (
    ("cached_tokens", "INTEGER", pa.int32()),
    ("input_cost_usd", "DOUBLE", pa.float64()),
    ("cache_saved_usd", "DOUBLE", pa.float64()),
    ("batch_saved_usd", "DOUBLE", pa.float64()),
)

TABLES = ("decisions", "attempts", "outcomes", "feedback")

_UTC_US = pa.timestamp("us", tz="UTC")

ARROW_SCHEMAS: dict[str, pa.Schema] = {
    "decisions": pa.schema(
        [
            ("decision_id", pa.string()),
            ("ts", _UTC_US),
            ("task", pa.string()),
            ("prompt_hash", pa.string()),
            ("prompt_text", pa.string()),
            ("features", pa.list_(pa.float32())),
            ("eligible", pa.list_(pa.string())),
            ("probabilities", pa.list_(pa.float64())),
            ("chosen", pa.string()),
            ("propensity", pa.float64()),
            ("policy_name", pa.string()),
            ("policy_version", pa.int32()),
            *((column, pa.float64()) for column in WEIGHT_COLUMNS),
            *((column, kind) for column, _, kind in CONTROL_COLUMNS),
        ]
    ),
    "attempts": pa.schema(
        [
            ("decision_id", pa.string()),
            ("seq", pa.int16()),
            ("model", pa.string()),
            ("role", pa.string()),
            ("latency_s", pa.float64()),
            ("first_token_s", pa.float64()),
            ("cost_usd", pa.float64()),
            ("tokens_in", pa.int32()),
            ("tokens_out", pa.int32()),
            ("quality", pa.float64()),
            ("error_class", pa.string()),
            ("error_message", pa.string()),
            ("counts_against_model", pa.bool_()),
            ("returned", pa.bool_()),
            *((column, kind) for column, _, kind in SAVING_COLUMNS),
        ]
    ),
    "outcomes": pa.schema(
        [
            ("decision_id", pa.string()),
            ("ts", _UTC_US),
            ("executed_model", pa.string()),
            ("quality", pa.float64()),
            ("cost_usd", pa.float64()),
            ("latency_s", pa.float64()),
            ("first_token_s", pa.float64()),
            ("tokens_in", pa.int32()),
            ("tokens_out", pa.int32()),
            ("error_class", pa.string()),
            ("fallback_chain", pa.list_(pa.string())),
            ("escalated", pa.bool_()),
            ("retries", pa.int16()),
            ("n_attempts", pa.int16()),
        ]
    ),
    "feedback": pa.schema(
        [
            ("decision_id", pa.string()),
            ("ts", _UTC_US),
            ("quality", pa.float64()),
            ("source", pa.string()),
        ]
    ),
}

CREATE_TABLES: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_id VARCHAR, ts TIMESTAMPTZ, task VARCHAR, prompt_hash VARCHAR, prompt_text VARCHAR,
        features FLOAT[], eligible VARCHAR[], probabilities DOUBLE[], chosen VARCHAR, propensity DOUBLE,
        policy_name VARCHAR, policy_version INTEGER, weight_quality DOUBLE, weight_cost DOUBLE,
        weight_latency DOUBLE, weight_failure DOUBLE, """ + ", ".join(f"{c} {t}" for c, t, _ in CONTROL_COLUMNS) + ")",
    """CREATE TABLE IF NOT EXISTS attempts (
        decision_id VARCHAR, seq SMALLINT, model VARCHAR, role VARCHAR, latency_s DOUBLE,
        first_token_s DOUBLE, cost_usd DOUBLE, tokens_in INTEGER, tokens_out INTEGER, quality DOUBLE,
        error_class VARCHAR, error_message VARCHAR, counts_against_model BOOLEAN, returned BOOLEAN, """
    + ", ".join(f"{c} {t}" for c, t, _ in SAVING_COLUMNS) + ")",
    """CREATE TABLE IF NOT EXISTS outcomes (
        decision_id VARCHAR, ts TIMESTAMPTZ, executed_model VARCHAR, quality DOUBLE, cost_usd DOUBLE,
        latency_s DOUBLE, first_token_s DOUBLE, tokens_in INTEGER, tokens_out INTEGER, error_class VARCHAR,
        fallback_chain VARCHAR[], escalated BOOLEAN, retries SMALLINT, n_attempts SMALLINT)""",
    """CREATE TABLE IF NOT EXISTS feedback (
        decision_id VARCHAR, ts TIMESTAMPTZ, quality DOUBLE, source VARCHAR)""",
)

# version -> the statements that bring a log of that version to the next one (store.migrate runs them in
# one transaction with the version bump). Columns are only ever added, at the end of their table.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: tuple("ALTER TABLE decisions ADD COLUMN " + column + " DOUBLE" for column in WEIGHT_COLUMNS),
    2: tuple("ALTER TABLE decisions ADD COLUMN " + c + " " + t for c, t, _ in CONTROL_COLUMNS)
    + tuple("ALTER TABLE attempts ADD COLUMN " + c + " " + t for c, t, _ in SAVING_COLUMNS),
}

COUNT_ROWS: dict[str, str] = {table: "SELECT count(*) FROM " + table for table in TABLES}

# Columns that identify a row of each table (feedback: none, a row is the same only if it is equal).
ROW_KEYS: dict[str, tuple[str, ...] | None] = {
    "decisions": ("decision_id",), "outcomes": ("decision_id",), "attempts": ("decision_id", "seq"), "feedback": None,
}
