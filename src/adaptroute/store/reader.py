"""Read a log back as aligned arrays (LoggedBatch): for retrain, off-policy evaluation and reports.

Sources: a live store (LogStore, PostgresLogStore), a closed .duckdb file, a glob of them (one per
router process), a folder of Parquet snapshots (LogStore.export_parquet; several folders by glob), or a
``postgresql://`` URL (every replica's rows). No SQL is built from paths.
Logs of an older schema version are read as they are: columns added since are NULL (not logged).
Every file is checked first (store.validate): tables, column types, values, and decisions repeated
across snapshots, which are read once (or refused if their copies disagree). Whatever DuckDB, Arrow
or NumPy raise on a broken file becomes a StoreError naming it.
"""

from __future__ import annotations

import glob as globbing
import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import AdaptRouteError, LogIntegrityError, SchemaVersionError, StoreError
from ..types import ControlColumns, LoggedBatch, Observations
from .base import LogBackend, is_postgres_url
from .migrate import log_version, looks_like_duckdb
from .schema import ARROW_SCHEMAS, CONTROL_COLUMNS, SAVING_COLUMNS, SCHEMA_VERSION, TABLES, WEIGHT_COLUMNS, fetch_arrow
from .sql import NO_ROWS, SELECT_ALL, ident, idents
from .validate import SOURCE, check_schema, check_values, merge_duplicates
from .duck_connect import _connect
from .journal import read_segments, segments
from .writer import LogStore

__all__ = ["read_log"]

_LATEST_FEEDBACK = "fb AS (SELECT decision_id, arg_max(quality, ts) AS quality FROM feedback GROUP BY decision_id)"
# Per request: whether it fell back, what the controls saved, and its own tokens (the prompt as first
# counted, the answer the user got), which price a counterfactual ("always model X") at X's price.
_FALLBACKS = ("fa AS (SELECT decision_id, bool_or(role = 'fallback') AS fell_back, "
              + ", ".join("sum(" + ident(c) + ") AS " + c for c, _, _ in SAVING_COLUMNS)
              + ", arg_min(tokens_in, seq) FILTER (WHERE tokens_in > 0) AS prompt_tokens"
              + ", max(tokens_out) FILTER (WHERE returned) AS answer_tokens FROM attempts GROUP BY decision_id)")

DECISION_ROWS = "WITH " + _LATEST_FEEDBACK + ", " + _FALLBACKS + """
SELECT d.decision_id, epoch_us(d.ts) AS ts_us, d.task, d.features, d.eligible, d.probabilities,
       d.chosen, d.propensity, d.policy_version, """ + idents(WEIGHT_COLUMNS, ", d.").join(("d.", "")) + """,
       """ + idents((c for c, _, _ in CONTROL_COLUMNS), ", d.").join(("d.", "")) + ", " \
    + idents((c for c, _, _ in SAVING_COLUMNS), ", fa.").join(("fa.", "")) + """,
       o.executed_model,
       coalesce(fb.quality, o.quality) AS quality, o.cost_usd, o.latency_s,
       (o.decision_id IS NOT NULL AND o.executed_model IS NULL) AS failed,
       coalesce(o.escalated, false) AS escalated, coalesce(o.retries, 0) > 0 AS retried,
       coalesce(fa.fell_back, false) AS fell_back, fa.prompt_tokens, fa.answer_tokens
FROM decisions d LEFT JOIN outcomes o USING (decision_id) LEFT JOIN fb USING (decision_id)
     LEFT JOIN fa USING (decision_id)
ORDER BY d.ts, d.decision_id
"""

ATTEMPT_ROWS = "WITH " + _LATEST_FEEDBACK + """
SELECT a.decision_id, a.model,
       CASE WHEN a.returned AND fb.quality IS NOT NULL THEN fb.quality ELSE a.quality END AS quality,
       a.cost_usd + coalesce(a.batch_saved_usd, 0) AS cost_usd,
       CASE WHEN a.role = 'batch' THEN NULL ELSE a.latency_s END AS latency_s,
       a.error_class IS NOT NULL AS failed, a.counts_against_model, a.tokens_in, a.tokens_out
FROM attempts a LEFT JOIN fb USING (decision_id)
ORDER BY a.decision_id, a.seq
"""

def read_log(source: LogBackend | str | os.PathLike[str]) -> LoggedBatch:
    """Every decision of a log, with its outcome, latest feedback and per-attempt observations.

    Raises LogIntegrityError (naming file, table, column and row) for a log that cannot be right, and
    StoreError for one that cannot be read."""
    if isinstance(source, LogStore):
        return _assemble(source.fetch_arrow(DECISION_ROWS), source.fetch_arrow(ATTEMPT_ROWS))
    if isinstance(source, LogBackend):
        return assemble_tables(source.read_tables(), source.path)
    name = str(source)
    try:
        return _read(name)
    except AdaptRouteError:
        raise
    except (duckdb.Error, pa.ArrowException, OSError, ValueError, TypeError, IndexError, MemoryError) as exc:
        raise StoreError(f"cannot read the log {name}: {type(exc).__name__}: {exc}") from None


def _read(source: str) -> LoggedBatch:
    if is_postgres_url(source):
        from .pg_connect import read_url, redact  # psycopg imported only for a PostgreSQL log

        return assemble_tables(read_url(source), redact(source))
    files = _log_files(source)
    if isinstance(files, str):  # one DuckDB file: query it in place instead of copying its tables out first
        queried = None if segments(files) else _query_file(files)
        if queried is not None:
            return _assemble(*queried)
        files = [files]  # older schema version, repeated ids or a journal left: its tables, merged
    return _checked(*_load_tables(files))


def assemble_tables(tables: dict[str, pa.Table], where: str) -> LoggedBatch:
    """A LoggedBatch from one log's tables as Arrow (a PostgreSQL log's), checked as a file is."""
    return _checked({name: _tagged(table, 0) for name, table in tables.items()}, [where])


def _checked(tables: dict[str, pa.Table], sources: list[str]) -> LoggedBatch:
    con = duckdb.connect(":memory:")
    try:
        for name, table in tables.items():
            con.register(name, table)
        check_values(con, sources, with_source=True)
        merged = merge_duplicates(con, sources)
        for name, table in merged.items():
            con.unregister(name)
            con.register(name, table)
        return _assemble(fetch_arrow(con, DECISION_ROWS), fetch_arrow(con, ATTEMPT_ROWS))
    finally:
        con.close()


_REPEATS = (
    "SELECT (SELECT count(*) - count(DISTINCT decision_id) FROM decisions) + "
    "(SELECT count(*) - count(DISTINCT decision_id) FROM outcomes) + "
    "(SELECT count(*) FROM (SELECT decision_id, seq FROM attempts GROUP BY ALL HAVING count(*) > 1))"
)


def _query_file(path: str) -> tuple[pa.Table, pa.Table] | None:
    """The query's results on a checked log of this schema version; None for an older one, or one that
    repeats decision ids (read through the merging path)."""
    con, version = _open_log(path)
    try:
        _check_tables(con, path, version)
        if version != SCHEMA_VERSION or con.execute(_REPEATS).fetchall()[0][0]:
            return None
        check_values(con, [path])
        return fetch_arrow(con, DECISION_ROWS), fetch_arrow(con, ATTEMPT_ROWS)
    finally:
        con.close()  # before assembling: DuckDB's buffers go back before the arrays that follow


def _check_tables(con: duckdb.DuckDBPyConnection, path: str, version: int) -> None:
    for table in TABLES:
        try:
            schema = fetch_arrow(con, NO_ROWS[table]).schema
        except duckdb.CatalogException:
            raise LogIntegrityError(path, table, None, None, "the table is missing") from None
        check_schema(path, table, schema, version)




def _log_files(source: str) -> str | list[Path] | list[str]:
    """One DuckDB file (a str), Parquet snapshot folders (Paths), or several DuckDB files (strs)."""
    path = Path(source)
    if path.is_dir():
        return [path]
    matches = sorted(globbing.glob(source)) if any(c in source for c in "*?[") else [source]
    if not matches:
        raise StoreError(f"no log matches {source!r}")
    dirs = [Path(m) for m in matches if Path(m).is_dir()]
    if dirs:
        return dirs
    return matches[0] if len(matches) == 1 else matches


def _load_tables(files: list[Path] | list[str]) -> tuple[dict[str, pa.Table], list[str]]:
    """Every table of every source, each row tagged with its source's index (for errors and merging)."""
    if isinstance(files[0], Path):
        return _parquet_tables(files)  # type: ignore[arg-type]
    parts: list[dict[str, pa.Table]] = []
    sources: list[str] = []
    for m in files:
        parts.append(_duckdb_tables(str(m)))
        sources.append(str(m))
        journal = segments(str(m))
        if journal:  # a writer that did not close: what it had acknowledged is there (store.journal)
            parts.append(_journal_tables(journal))
            sources.append(f"{m}'s journal")
    tables = {t: pa.concat_tables([_tagged(p[t], i) for i, p in enumerate(parts)]) for t in TABLES}
    return tables, sources


def _journal_tables(paths: list[str]) -> dict[str, pa.Table]:
    found = read_segments(paths)
    return {t: found[t] if t in found else ARROW_SCHEMAS[t].empty_table() for t in TABLES}


def _tagged(data: pa.Table, source: int) -> pa.Table:
    return data.append_column(SOURCE, pa.array(np.full(data.num_rows, source, dtype=np.int32)))


def _open_log(path: str) -> tuple[duckdb.DuckDBPyConnection, int]:
    """A read-only connection to an adaptroute log file of this or an older schema version."""
    if not Path(path).exists():
        raise StoreError(f"log file {path} does not exist")
    if Path(path).is_file() and not looks_like_duckdb(path):
        raise StoreError(f"{path} is not a DuckDB log file (a router writes one; a dataset goes to `adaptroute simulate`)")
    con = _connect(path, read_only=True)
    try:
        version = log_version(con, path)
        if not 1 <= version <= SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{path} has log schema version {version}; this adaptroute reads versions 1 to {SCHEMA_VERSION}: upgrade adaptroute"
            )
    except BaseException:
        con.close()
        raise
    return con, version


def _duckdb_tables(path: str) -> dict[str, pa.Table]:
    con, version = _open_log(path)
    try:
        _check_tables(con, path, version)
        return {t: _conform(t, fetch_arrow(con, SELECT_ALL[t])) for t in TABLES}
    finally:
        con.close()


def _conform(table: str, data: pa.Table) -> pa.Table:
    """The table's columns in schema order and type (an older schema version's missing columns NULL);
    its schema was checked first, so casts are between types of one kind."""
    columns = []
    for field in ARROW_SCHEMAS[table]:
        if field.name not in data.column_names:
            columns.append(pa.nulls(data.num_rows, field.type))
        else:
            column = data.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMAS[table])




def _parquet_tables(dirs: list[Path]) -> tuple[dict[str, pa.Table], list[str]]:
    import pyarrow.parquet as pq

    out: dict[str, pa.Table] = {}
    sources: list[str] = []
    for table in TABLES:
        files = [f for d in dirs for f in sorted(d.glob(f"{table}*.parquet"))]
        if not files and table != "decisions":  # snapshots of a log with no such rows yet
            out[table] = _tagged(ARROW_SCHEMAS[table].empty_table(), 0)
            continue
        if not files:
            raise StoreError(
                f"{', '.join(map(str, dirs))} holds no decisions*.parquet, so it is not a log snapshot "
                "(LogStore.export_parquet writes one). A folder of benchmark data is a dataset: "
                "`adaptroute simulate` or `adaptroute tune` read those"
            )
        parts = []
        for f in files:
            try:
                data = pq.read_table(f)
            except (pa.ArrowException, OSError) as exc:
                raise LogIntegrityError(str(f), table, None, None, f"cannot be read: {exc}") from None
            check_schema(str(f), table, data.schema, version=1)  # a snapshot may predate later columns
            sources.append(str(f))
            parts.append(_tagged(_conform(table, data), len(sources) - 1))
        out[table] = pa.concat_tables(parts)
    return out, sources


def _list_to_matrix(column: pa.ChunkedArray | pa.Array, dtype: type = np.float64) -> np.ndarray:
    """A list column of varying lengths as a zero-padded 2-D array, filled chunk by chunk (no combined
    copy of the column, no index arrays the size of the matrix: a million feature vectors once took
    gigabytes here)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    lengths = [pc.list_value_length(c).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64) for c in chunks]
    n = sum(len(c) for c in chunks)
    width = max((int(x.max()) for x in lengths if x.shape[0]), default=0)
    out = np.zeros((n, width), dtype=dtype)
    if not width:
        return out
    start = 0
    for chunk, size in zip(chunks, lengths, strict=True):
        block = out[start : start + size.shape[0]]
        start += size.shape[0]
        values = pc.list_flatten(chunk).to_numpy(zero_copy_only=False)
        if (size == width).all():  # the usual case (one feature layout): a reshape
            block[:] = values.reshape(-1, width)
            continue
        offsets = np.cumsum(size) - size
        for length in np.unique(size[size > 0]):  # features only ever append: few distinct lengths
            rows = np.flatnonzero(size == length)
            block[rows, :length] = values[offsets[rows, None] + np.arange(length)]
    return out


def _codes(values: pa.Array | pa.ChunkedArray, names: pa.Array, missing: int = -1) -> np.ndarray:
    """Index of each value in ``names`` (``missing`` for nulls and unknown values), computed by Arrow:
    no Python string per row."""
    found = pc.index_in(values, value_set=names).fill_null(missing)
    return found.to_numpy(zero_copy_only=False).astype(np.int64)


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """A string column as an object array; repeated values share one Python string."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    names = np.array(encoded.dictionary.to_pylist() + [None], dtype=object)
    return names[encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)]


def _assemble(dec: pa.Table, att: pa.Table) -> LoggedBatch:
    # Model names and decision ids are matched by Arrow compute (unique, index_in): per-row Python strings
    # and sorting object arrays took most of read_log's time on large logs.
    n = dec.num_rows
    dec_ids = dec.column("decision_id").combine_chunks()
    ids = np.array(dec_ids.to_pylist(), dtype=object)
    eligible = dec.column("eligible").combine_chunks()
    probs = dec.column("probabilities").combine_chunks()
    names_flat = pc.list_flatten(eligible)
    everything = [names_flat, dec.column("chosen"), dec.column("executed_model"), att.column("model")]
    models = tuple(sorted({str(m) for part in everything for m in pc.unique(part).drop_null().to_pylist()}))
    model_names = pa.array(models, pa.string())

    lengths = pc.list_value_length(eligible).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    p_flat = pc.list_flatten(probs).to_numpy(zero_copy_only=False).astype(float)
    probabilities = np.zeros((n, len(models)))
    if len(names_flat):
        probabilities[np.repeat(np.arange(n), lengths), _codes(names_flat, model_names)] = p_flat

    def floats(name: str) -> np.ndarray:
        return dec.column(name).to_numpy(zero_copy_only=False).astype(float)

    def flags(table: pa.Table, name: str) -> np.ndarray:
        return table.column(name).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)

    # Observations: one per attempt the policy can learn from, matched to the first decision with its id.
    row = _codes(att.column("decision_id"), dec_ids)
    found = row >= 0
    failed = flags(att, "failed")
    counts = flags(att, "counts_against_model")
    quality = att.column("quality").to_numpy(zero_copy_only=False).astype(float)
    learnable = found & ((failed & counts) | (~failed & ~np.isnan(quality)))
    quality = np.where(failed, 0.0, quality)
    observations = Observations(
        row=row[learnable],
        model=_codes(att.column("model"), model_names)[learnable],
        quality=quality[learnable],
        cost_usd=np.nan_to_num(att.column("cost_usd").to_numpy(zero_copy_only=False).astype(float))[learnable],
        latency_s=att.column("latency_s").to_numpy(zero_copy_only=False).astype(float)[learnable],
        failed=failed[learnable],
    )
    return LoggedBatch(
        decision_ids=ids,
        tasks=_strings(dec.column("task")),
        features=_list_to_matrix(dec.column("features")),
        models=models,
        chosen=_codes(dec.column("chosen"), model_names),
        propensity=floats("propensity"),
        probabilities=probabilities,
        executed=_codes(dec.column("executed_model"), model_names),
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
        weights=np.column_stack([floats(c) for c in WEIGHT_COLUMNS]) if n else np.zeros((0, len(WEIGHT_COLUMNS))),
        controls=ControlColumns(
            bar=floats("bar"), bar_unreachable=flags(dec, "bar_unreachable"), budget_shaped=flags(dec, "budget_shaped"),
            budget_spent_usd=floats("budget_spent_usd"), budget_remaining_usd=floats("budget_remaining_usd"), budget_allowance_usd=floats("budget_allowance_usd"),
            tenant=_strings(dec.column("tenant")), lane=_strings(dec.column("lane")),
            cached_tokens=np.nan_to_num(floats("cached_tokens")).astype(np.int64),
            input_cost_usd=np.nan_to_num(floats("input_cost_usd")), cache_saved_usd=np.nan_to_num(floats("cache_saved_usd")),
            batch_saved_usd=np.nan_to_num(floats("batch_saved_usd")),
        ),
        tokens=np.column_stack([floats("prompt_tokens"), floats("answer_tokens")]) if n else np.zeros((0, 2)),
        model_prices=_implied_prices(att, model_names, failed),
    )


def _implied_prices(att: pa.Table, model_names: pa.Array, failed: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per model, the (input, output) price per token its logged calls imply: least squares of cost on
    tokens, exact when prices held still. A model whose calls all share one input/output ratio gets its
    mean cost per token for both."""
    models = _codes(att.column("model"), model_names)
    cost = np.nan_to_num(att.column("cost_usd").to_numpy(zero_copy_only=False).astype(float))
    tokens = np.column_stack([att.column(c).fill_null(0).to_numpy(zero_copy_only=False).astype(float)
                              for c in ("tokens_in", "tokens_out")])
    usable = ~failed & (tokens.sum(axis=1) > 0) & (models >= 0)
    out: dict[str, tuple[float, float]] = {}
    for k, name in enumerate(model_names.to_pylist()):
        rows = usable & (models == k)
        if not rows.any():
            continue
        X, y = tokens[rows], cost[rows]
        if np.linalg.matrix_rank(X) == 2:
            price, *_ = np.linalg.lstsq(X, y, rcond=None)
            if (price >= -1e-15).all():
                out[name] = (max(float(price[0]), 0.0), max(float(price[1]), 0.0))
                continue
        per_token = float(y.sum() / X.sum())
        out[name] = (per_token, per_token)
    return out
