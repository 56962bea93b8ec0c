"""Read a log back as aligned arrays (LoggedBatch): for retrain, off-policy evaluation and reports.

Sources: a live LogStore, a closed .duckdb file, a glob of them (one per router process), or a folder
of Parquet snapshots (LogStore.export_parquet; several folders by glob). No SQL is built from paths.
"""

from __future__ import annotations

import glob as globbing
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaVersionError, StoreError
from ..types import LoggedBatch, Observations
from .schema import SCHEMA_VERSION, TABLES, fetch_arrow
from .writer import LogStore, _connect

__all__ = ["read_log"]

_LATEST_FEEDBACK = "fb AS (SELECT decision_id, arg_max(quality, ts) AS quality FROM feedback GROUP BY decision_id)"
_FALLBACKS = "fa AS (SELECT decision_id, bool_or(role = 'fallback') AS fell_back FROM attempts GROUP BY decision_id)"

DECISION_ROWS = f"""
WITH {_LATEST_FEEDBACK}, {_FALLBACKS}
SELECT d.decision_id, epoch_us(d.ts) AS ts_us, d.task, d.features, d.eligible, d.probabilities,
       d.chosen, d.propensity, d.policy_version, o.executed_model,
       coalesce(fb.quality, o.quality) AS quality, o.cost_usd, o.latency_s,
       (o.decision_id IS NOT NULL AND o.executed_model IS NULL) AS failed,
       coalesce(o.escalated, false) AS escalated, coalesce(o.retries, 0) > 0 AS retried,
       coalesce(fa.fell_back, false) AS fell_back
FROM decisions d LEFT JOIN outcomes o USING (decision_id) LEFT JOIN fb USING (decision_id)
     LEFT JOIN fa USING (decision_id)
ORDER BY d.ts, d.decision_id
"""

ATTEMPT_ROWS = f"""
WITH {_LATEST_FEEDBACK}
SELECT a.decision_id, a.model,
       CASE WHEN a.returned AND fb.quality IS NOT NULL THEN fb.quality ELSE a.quality END AS quality,
       a.cost_usd, a.latency_s, a.error_class IS NOT NULL AS failed, a.counts_against_model
FROM attempts a LEFT JOIN fb USING (decision_id)
ORDER BY a.decision_id, a.seq
"""

_META_VERSION = "SELECT value FROM meta WHERE key = 'schema_version'"


def read_log(source: LogStore | str | os.PathLike[str]) -> LoggedBatch:
    """Every decision of a log, with its outcome, latest feedback and per-attempt observations."""
    if isinstance(source, LogStore):
        return _assemble(source.fetch_arrow(DECISION_ROWS), source.fetch_arrow(ATTEMPT_ROWS))
    tables = _load_tables(str(source))
    con = duckdb.connect(":memory:")
    try:
        for name, table in tables.items():
            con.register(name, table)
        return _assemble(fetch_arrow(con, DECISION_ROWS), fetch_arrow(con, ATTEMPT_ROWS))
    finally:
        con.close()


def _load_tables(source: str) -> dict[str, pa.Table]:
    path = Path(source)
    if path.is_dir():
        return _parquet_tables([path])
    matches = sorted(globbing.glob(source)) if any(c in source for c in "*?[") else [source]
    if not matches:
        raise StoreError(f"no log matches {source!r}")
    dirs = [Path(m) for m in matches if Path(m).is_dir()]
    if dirs:
        return _parquet_tables(dirs)
    parts = [_duckdb_tables(m) for m in matches]
    return {t: pa.concat_tables([p[t] for p in parts]) for t in TABLES}


def _duckdb_tables(path: str) -> dict[str, pa.Table]:
    if not Path(path).exists():
        raise StoreError(f"log file {path} does not exist")
    con = _connect(path, read_only=True)
    try:
        try:
            rows = con.execute(_META_VERSION).fetchall()
            version = rows[0] if rows else None
        except duckdb.CatalogException:
            raise SchemaVersionError(f"{path} is not an adaptroute log (no meta table)") from None
        if version is None or version[0] != str(SCHEMA_VERSION):
            raise SchemaVersionError(f"{path} has log schema version {version and version[0]!r}, expected {SCHEMA_VERSION}")
        return {t: fetch_arrow(con, _SELECT_ALL[t]) for t in TABLES}
    finally:
        con.close()


_SELECT_ALL = {table: f"SELECT * FROM {table}" for table in TABLES}


def _parquet_tables(dirs: list[Path]) -> dict[str, pa.Table]:
    import pyarrow.parquet as pq

    out = {}
    for table in TABLES:
        files = [f for d in dirs for f in sorted(d.glob(f"{table}*.parquet"))]
        if not files:
            raise StoreError(f"no {table}*.parquet in {', '.join(map(str, dirs))}")
        out[table] = pa.concat_tables([pq.read_table(f) for f in files])
    return out


def _list_to_matrix(column: pa.ChunkedArray, dtype: type = np.float64) -> np.ndarray:
    """A list column of varying lengths as a zero-padded 2-D array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    width = int(lengths.max()) if n else 0
    out = np.zeros((n, width), dtype=dtype)
    if n and width:
        values = pc.list_flatten(array).to_numpy(zero_copy_only=False).astype(dtype)
        rows = np.repeat(np.arange(n), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[rows, np.arange(values.shape[0]) - starts] = values
    return out


def _assemble(dec: pa.Table, att: pa.Table) -> LoggedBatch:
    n = dec.num_rows
    ids = np.array(dec.column("decision_id").to_pylist(), dtype=object)
    eligible = dec.column("eligible").combine_chunks()
    probs = dec.column("probabilities").combine_chunks()
    names_flat = pc.list_flatten(eligible).to_numpy(zero_copy_only=False)
    chosen = np.array(dec.column("chosen").to_pylist(), dtype=object)
    executed = np.array(dec.column("executed_model").to_pylist(), dtype=object)
    att_models = np.array(att.column("model").to_pylist(), dtype=object)
    everything = [names_flat, chosen, executed[executed != None], att_models]  # noqa: E711
    models = tuple(sorted({str(m) for part in everything for m in part}))
    index = {m: i for i, m in enumerate(models)}

    lengths = pc.list_value_length(eligible).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    p_flat = pc.list_flatten(probs).to_numpy(zero_copy_only=False).astype(float)
    probabilities = np.zeros((n, len(models)))
    if names_flat.shape[0]:
        cols = np.fromiter((index[str(m)] for m in names_flat), dtype=np.int64, count=names_flat.shape[0])
        probabilities[np.repeat(np.arange(n), lengths), cols] = p_flat

    def floats(name: str) -> np.ndarray:
        return dec.column(name).to_numpy(zero_copy_only=False).astype(float)

    def flags(table: pa.Table, name: str) -> np.ndarray:
        return table.column(name).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)

    # Observations: one per attempt the policy can learn from.
    order = np.argsort(ids, kind="stable")
    att_ids = np.array(att.column("decision_id").to_pylist(), dtype=object)
    pos = np.searchsorted(ids[order], att_ids) if n else np.zeros(len(att_ids), dtype=np.int64)
    pos = np.minimum(pos, max(n - 1, 0))
    found = (ids[order][pos] == att_ids) if n else np.zeros(len(att_ids), dtype=bool)
    failed = flags(att, "failed")
    counts = flags(att, "counts_against_model")
    quality = att.column("quality").to_numpy(zero_copy_only=False).astype(float)
    learnable = found & ((failed & counts) | (~failed & ~np.isnan(quality)))
    quality = np.where(failed, 0.0, quality)
    observations = Observations(
        row=order[pos][learnable].astype(np.int64),
        model=np.fromiter((index[str(m)] for m in att_models[learnable]), dtype=np.int64),
        quality=quality[learnable],
        cost_usd=np.nan_to_num(att.column("cost_usd").to_numpy(zero_copy_only=False).astype(float))[learnable],
        latency_s=att.column("latency_s").to_numpy(zero_copy_only=False).astype(float)[learnable],
        failed=failed[learnable],
    )
    return LoggedBatch(
        decision_ids=ids,
        tasks=np.array(dec.column("task").to_pylist(), dtype=object),
        features=_list_to_matrix(dec.column("features")),
        models=models,
        chosen=np.fromiter((index[str(m)] for m in chosen), dtype=np.int64, count=n),
        propensity=floats("propensity"),
        probabilities=probabilities,
        executed=np.fromiter((index[m] if m is not None else -1 for m in executed), dtype=np.int64, count=n),
        quality=floats("quality"),
        cost_usd=floats("cost_usd"),
        latency_s=floats("latency_s"),
        failed=flags(dec, "failed"),
        escalated=flags(dec, "escalated"),
        retried=flags(dec, "retried"),
        fell_back=flags(dec, "fell_back"),
        ts=dec.column("ts_us").to_numpy(zero_copy_only=False).astype(float) / 1e6,
        policy_versions=dec.column("policy_version").fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64),
        observations=observations,
    )
