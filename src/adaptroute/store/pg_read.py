"""Reading the PostgreSQL log: whole tables as Arrow (for read_log, report, replay, tune, retrain), and
the rows other replicas committed since a replica last looked (for replica sync), each in one
snapshot of the database together with the last batch of every replica.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .schema import ARROW_SCHEMAS, TABLES
from .sql import ident

__all__: list[str] = []  # internal to adaptroute.store

HEADS = "SELECT replica, max(batch) FROM batches GROUP BY replica"
_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
def _us(column: str) -> str:
    """A timestamp column as integer microseconds since the epoch."""
    return "(extract(epoch FROM " + column + ") * 1000000)::int8"


def _select_all(table: str) -> str:
    cols = [(_us(ident(f.name)) if pa.types.is_timestamp(f.type) else ident(f.name)) for f in ARROW_SCHEMAS[table]]
    return "SELECT " + ", ".join(cols) + " FROM " + ident(table) + " ORDER BY batch"


_SELECT_ALL = {t: _select_all(t) for t in TABLES}


@contextmanager
def snapshot(con: Any) -> Iterator[None]:
    """A read-only transaction that sees one consistent state of every table."""
    with con.transaction():
        con.execute(_SNAPSHOT)
        yield


def heads(con: Any) -> dict[str, int]:
    return {replica: int(batch) for replica, batch in con.execute(HEADS).fetchall()}


def read_tables(con: Any, on_snapshot: Callable[[], None] | None = None) -> tuple[dict[str, pa.Table], dict[str, int]]:
    """Every table and the replicas' heads, as of one snapshot; ``on_snapshot`` runs once that
    snapshot is fixed (its first query), before the long reads."""
    with snapshot(con):
        last = heads(con)
        if on_snapshot is not None:
            on_snapshot()
        tables = {}
        for table in TABLES:
            with con.cursor(binary=True) as cur:
                cur.execute(_SELECT_ALL[table])
                tables[table] = _to_arrow(table, cur.fetchall())
    return tables, last


def _to_arrow(table: str, rows: list[tuple[Any, ...]]) -> pa.Table:
    schema = ARROW_SCHEMAS[table]
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        if pa.types.is_timestamp(field.type):
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


# -- replica sync ------------------------------------------------------------------------------------
_RANGES = "c(replica, after, upto) AS (SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[]))"

# Every attempt of another replica's committed batches, with its decision's features and the time its
# outcome was logged (the order a single process would have learned them in).
ATTEMPT_CHANGES = "WITH " + _RANGES + "\nSELECT " + _us("o.ts") + """ AS ts_us, a.decision_id, a.seq, a.model, a.quality, a.cost_usd, a.latency_s,
       a.error_class IS NOT NULL AS failed, a.counts_against_model, a.tokens_in, a.tokens_out, d.features
FROM attempts a
JOIN c ON a.replica = c.replica AND a.batch > c.after AND a.batch <= c.upto
JOIN outcomes o ON o.replica = a.replica AND o.batch = a.batch AND o.decision_id = a.decision_id
JOIN decisions d ON d.decision_id = a.decision_id
ORDER BY ts_us, a.decision_id, a.seq
"""

# Feedback committed in those batches that this replica has not learned locally (it learns its own
# feedback on its own decisions as it arrives): with the answer it rates and the quality learned for it
# before (the previous feedback, else the scorer's).
FEEDBACK_CHANGES = "WITH " + _RANGES + "\nSELECT " + _us("f.ts") + """ AS ts_us, f.decision_id, f.quality, d.features, a.model, a.cost_usd, a.latency_s,
       coalesce((SELECT p.quality FROM feedback p
                 WHERE p.decision_id = f.decision_id AND (p.ts, p.replica, p.batch) < (f.ts, f.replica, f.batch)
                 ORDER BY p.ts DESC, p.replica DESC, p.batch DESC LIMIT 1), a.quality) AS learned_before
FROM feedback f
JOIN c ON f.replica = c.replica AND f.batch > c.after AND f.batch <= c.upto
JOIN decisions d ON d.decision_id = f.decision_id
JOIN attempts a ON a.decision_id = f.decision_id AND a.returned
WHERE NOT (f.replica = %s AND d.replica = %s)
ORDER BY ts_us, f.decision_id
"""


@dataclass(frozen=True, slots=True)
class AttemptRow:
    ts: float
    decision_id: str
    model: str
    quality: float | None
    cost_usd: float
    latency_s: float
    failed: bool
    counts_against_model: bool
    tokens_in: int
    tokens_out: int
    features: np.ndarray


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    ts: float
    decision_id: str
    quality: float
    features: np.ndarray
    model: str
    cost_usd: float
    latency_s: float
    learned_before: float | None


@dataclass(frozen=True, slots=True)
class Changes:
    attempts: list[AttemptRow]
    feedback: list[FeedbackRow]
    heads: dict[str, int]  # the last batch of every replica, as of the snapshot read


def read_changes(con: Any, seen: dict[str, int], me: str) -> Changes:
    """What other replicas committed after the batches in ``seen`` (replica -> last batch learned),
    and the feedback this replica logged on their decisions."""
    with snapshot(con):
        last = heads(con)
        others = [(r, seen.get(r, 0), b) for r, b in last.items() if r != me and b > seen.get(r, 0)]
        own = [(me, seen.get(me, 0), last[me])] if last.get(me, 0) > seen.get(me, 0) else []
        attempts: list[AttemptRow] = []
        feedback: list[FeedbackRow] = []
        if others:
            with con.cursor(binary=True) as cur:
                cur.execute(ATTEMPT_CHANGES, _ranges(others))
                for ts, did, _seq, model, q, cost, lat, failed, counts, t_in, t_out, x in cur:
                    attempts.append(AttemptRow(ts / 1e6, did, model, q, cost or 0.0, lat or 0.0, bool(failed),
                                               bool(counts), t_in or 0, t_out or 0, np.asarray(x, dtype=float)))
        if others or own:
            with con.cursor(binary=True) as cur:
                cur.execute(FEEDBACK_CHANGES, [*_ranges(others + own), me, me])
                for ts, did, q, x, model, cost, lat, before in cur:
                    feedback.append(FeedbackRow(ts / 1e6, did, q, np.asarray(x, dtype=float), model, cost or 0.0,
                                                lat or 0.0, before))
    return Changes(attempts, feedback, last)


def _ranges(ranges: list[tuple[str, int, int]]) -> list[list[Any]]:
    return [[r for r, _, _ in ranges], [a for _, a, _ in ranges], [b for _, _, b in ranges]]
