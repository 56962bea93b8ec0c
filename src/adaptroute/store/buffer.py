"""The log's write buffer: rows kept as one Python list per column, filled as each record is appended,
and turned into Arrow tables at a flush (LogStore in writer.py owns the locking and the writes)."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import pyarrow as pa

from ..types import CONTROL_NAMES, Decision, RoutingRecord
from .schema import ARROW_SCHEMAS, TABLES

__all__: list[str] = []  # internal to adaptroute.store


# -- the buffer ------------------------------------------------------------------------------------
# Rows are buffered in their table's column order, with every derived value (attempt numbers, token
# sums, fallback chains, timestamps in microseconds) computed as the request is appended, when its
# objects are at hand. The flush then only hands Python lists to pa.array, which keeps the GIL: NumPy
# and Arrow compute calls release it, and each release let a busy request thread hold it for a switch
# interval (5 ms), which made converting a batch five times slower than its work.
class _Rows:
    """Buffered rows of one table as one list per column, with each list's bound append at hand."""

    __slots__ = ("append", "columns")

    def __init__(self, table: str) -> None:
        self.columns: tuple[list[Any], ...] = tuple([] for _ in ARROW_SCHEMAS[table])
        self.append = tuple(column.append for column in self.columns)

    def __len__(self) -> int:
        return len(self.columns[0])

    def truncate(self, n: int) -> None:
        for column in self.columns:
            del column[n:]

    def prepend(self, older: _Rows) -> None:
        for column, rows in zip(self.columns, older.columns, strict=True):
            column[:0] = rows


class _Buffer:
    """Everything appended since the last flush."""

    __slots__ = TABLES

    def __init__(self) -> None:
        for table in TABLES:
            setattr(self, table, _Rows(table))

    def tables(self) -> dict[str, _Rows]:
        return {table: getattr(self, table) for table in TABLES}

    def drop_partial(self) -> None:
        """After a failed append: drop the row it left half-written (its first columns got a value, the
        rest did not), and the attempt rows of a request whose outcome row is not complete."""
        for table in ("decisions", "outcomes", "feedback"):
            rows = getattr(self, table)
            rows.truncate(min(map(len, rows.columns)))
        self.attempts.truncate(sum(self.outcomes.columns[-1]))  # n_attempts, the outcome row's last column

    def remove_decision(self, decision_id: str) -> bool:
        """Drop one buffered decision row (a durable write of it failed: its call is not made)."""
        ids = self.decisions.columns[0]
        for i in range(len(ids) - 1, -1, -1):
            if ids[i] == decision_id:
                for column in self.decisions.columns:
                    del column[i]
                return True
        return False

    def prepend(self, older: _Buffer) -> None:
        for table in TABLES:
            getattr(self, table).prepend(getattr(older, table))


def _put_decision(buf: _Buffer, d: Decision) -> None:
    (decision_id, ts, task, prompt_hash, prompt_text, features, eligible, probabilities, chosen, propensity,
     policy_name, policy_version, w_quality, w_cost, w_latency, w_failure, *controls) = buf.decisions.append
    decision_id(d.id)
    ts(int(d.ts * 1e6))
    task(d.task)
    prompt_hash(d.prompt_hash)
    prompt_text(d.prompt_text)
    features(d.features)
    eligible(d.eligible)
    probabilities(d.probabilities)
    chosen(d.chosen)
    propensity(d.propensity)
    policy_name(d.policy_name)
    policy_version(d.policy_version)
    w = d.weights or _NO_WEIGHTS
    w_quality(w[0])
    w_cost(w[1])
    w_latency(w[2])
    w_failure(w[3])
    for put, value in zip(controls, d.controls or _NO_CONTROLS, strict=True):
        put(value)


_NO_WEIGHTS = (None, None, None, None)
_NO_CONTROLS = (None,) * len(CONTROL_NAMES)


def _put_result(buf: _Buffer, item: tuple[RoutingRecord, float]) -> None:
    r, ts = item
    did, tries, answered = r.decision_id, r.attempts, r.returned_seq
    (decision_id, seq, model, role, latency_s, first_token_s, cost_usd, tokens_in, tokens_out, quality, error_class,
     error_message, counts_against_model, returned, cached_tokens, input_cost_usd, cache_saved_usd,
     batch_saved_usd) = buf.attempts.append
    i = sum_in = sum_out = retries = 0
    for a in tries:  # the attempts first: the outcome row below counts them
        decision_id(did)
        seq(i)
        model(a.model)
        role(a.role)
        latency_s(a.latency_s)
        first_token_s(a.first_token_s)
        cost_usd(a.cost_usd)
        tokens_in(n_in := a.tokens_in)
        tokens_out(n_out := a.tokens_out)
        quality(a.quality)
        error_class(a.error_class)
        error_message(a.error_message)
        counts_against_model(a.counts_against_model)
        returned(i == answered)
        cached_tokens(a.cached_tokens)
        input_cost_usd(a.input_cost_usd)
        cache_saved_usd(a.cache_saved_usd)
        batch_saved_usd(a.batch_saved_usd)
        sum_in += n_in
        sum_out += n_out
        retries += a.role == "retry"
        i += 1
    (decision_id, ts_, executed_model, quality, cost_usd, latency_s, first_token_s, tokens_in, tokens_out,
     error_class, fallback_chain, escalated, retries_, n_attempts) = buf.outcomes.append
    decision_id(did)
    ts_(int(ts * 1e6))
    executed_model(r.model)
    quality(r.quality)
    cost_usd(r.cost_usd)
    latency_s(r.latency_s)
    first_token_s(r.first_token_s)
    tokens_in(sum_in)
    tokens_out(sum_out)
    error_class(None if r.model is not None else (tries[-1].error_class if tries else "NoAttempt"))
    fallback_chain((tries[0].model,) if i == 1 else tuple(map(_MODEL, tries)))  # most requests: one call
    escalated(r.escalated)
    retries_(retries)
    n_attempts(i)  # last: the outcome row is complete


_MODEL = attrgetter("model")


def _put_feedback(buf: _Buffer, row: tuple[str, float, float, str]) -> None:
    decision_id, ts, quality, source = buf.feedback.append
    decision_id(row[0])
    ts(int(row[1] * 1e6))
    quality(row[2])
    source(row[3])


# -- buffer to Arrow -------------------------------------------------------------------------------
def _to_tables(buf: _Buffer) -> dict[str, pa.Table]:
    return {table: _table(table, rows.columns) for table, rows in buf.tables().items() if len(rows)}


def _table(table: str, columns: tuple[list[Any], ...]) -> pa.Table:
    schema = ARROW_SCHEMAS[table]
    arrays = [_array(values, field.type) for field, values in zip(schema, columns, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    if pa.types.is_list(kind) and pa.types.is_string(kind.value_type):
        return _repeated_lists(values, kind)  # eligible models, fallback chains: a few lists, row after row
    return pa.array(values, kind)  # timestamps are integer microseconds, features arrays become lists


def _repeated_lists(values: list[Any], kind: pa.DataType) -> pa.Array:
    """A list column whose rows repeat a few distinct lists: each distinct one converted once."""
    codes: dict[Any, int] = {}
    try:
        index = [codes.setdefault(v, len(codes)) for v in values]
    except TypeError:  # unhashable rows (lists): convert them one by one
        return pa.array(values, kind)
    return pa.array(list(codes), kind).take(pa.array(index, pa.int32()))
