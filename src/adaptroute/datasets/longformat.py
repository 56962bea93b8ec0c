"""Long format: one row per (prompt, model) with the outcome of that model on that prompt.

Columns (any order; other columns are ignored):

- ``prompt_id``: the prompt's id (a string; integer ids in Parquet/JSONL are read as their decimal text)
- ``task``: the task or step name
- ``model``: the model name
- ``quality``: a number in [0, 1] (booleans count as 0/1)
- ``cost_usd``: dollars, >= 0
- ``latency_s`` (optional): seconds, >= 0; either every row has it or none does
- ``prompt`` (optional): the prompt text; it may be given on one row of a prompt only, and two rows of
  the same prompt may not give different texts

Files: Parquet (``.parquet``/``.pq``, read with pyarrow), CSV (``.csv``, with a header row) or JSON Lines
(``.jsonl``/``.ndjson``, one object per line). The rows are pivoted into a :class:`FullInfoDataset`.
Prompts and models keep the order in which they first appear in the file. Prompts lacking some model's
row are dropped and counted in ``skipped``.

The whole file is validated before anything is built. Errors are :class:`DatasetError` naming the file,
the row (the 1-based data row, header not counted; for CSV also the physical line, for JSON Lines the
line) and the column.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .base import FullInfoDataset
from .long_arrow import _arrow_csv, _arrow_jsonl, _read_parquet
from .long_parsers import (
    LONG_COLUMNS,
    LONG_FORMATS,
    _cell,
    _Columns,
    _read_csv,
    _read_jsonl,
    _short,
)

__all__ = ["LONG_COLUMNS", "LONG_FORMATS", "read_long", "write_long"]

def read_long(path: str | os.PathLike[str], *, format: str | None = None) -> FullInfoDataset:  # noqa: A002
    """Read a long-format file (one row per prompt x model) into a FullInfoDataset.

    ``format`` is "csv", "jsonl" or "parquet"; by default it follows the file's suffix.
    """
    source = Path(path)
    fmt = _format_of(source, format)
    if not source.is_file():
        raise DatasetError(f"{source}: no such file" if not source.exists() else f"{source}: not a file")
    return _read(source, fmt)


def _read(source: Path, fmt: str, *, fast: bool = True) -> FullInfoDataset:
    """CSV and JSON Lines go through pyarrow first; on any problem the exact (stdlib) reader re-reads the
    file, so every error message names the row and line the same way whichever parser found it."""
    if fmt == "parquet":
        return _assemble(source, _read_parquet(source))
    if fast:
        try:
            columns = _arrow_csv(source) if fmt == "csv" else _arrow_jsonl(source)
            if columns is not None:
                return _assemble(source, columns)
        except Exception:  # noqa: BLE001 - a DatasetError or anything pyarrow raised: the exact reader
            pass  # below reads the file again, and says where the problem is
    return _assemble(source, _read_csv(source) if fmt == "csv" else _read_jsonl(source))


def write_long(dataset: FullInfoDataset, path: str | os.PathLike[str], *, format: str | None = None) -> Path:  # noqa: A002
    """Write ``dataset`` in long format (rows prompt by prompt, models in the dataset's order).

    The text of each prompt, when the dataset has texts, is written on every one of its rows.
    """
    target = Path(path)
    fmt = _format_of(target, format)
    n, k = dataset.quality.shape
    ids = [str(p) for p in dataset.prompt_ids]
    columns: dict[str, list[Any]] = {
        "prompt_id": [p for p in ids for _ in range(k)],
        "task": [str(t) for t in dataset.tasks for _ in range(k)],
        "model": list(dataset.models) * n,
        "quality": dataset.quality.astype(float).ravel().tolist(),
        "cost_usd": dataset.cost_usd.astype(float).ravel().tolist(),
    }
    if dataset.latency_s is not None:
        columns["latency_s"] = dataset.latency_s.astype(float).ravel().tolist()
    if dataset.texts is not None:
        columns["prompt"] = [t for t in dataset.texts for _ in range(k)]
    names = list(columns)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"quality": pa.float64(), "cost_usd": pa.float64(), "latency_s": pa.float64()}
        table = pa.table({c: pa.array(v, types.get(c, pa.string())) for c, v in columns.items()})
        pq.write_table(table, target)
    elif fmt == "csv":
        with target.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            writer.writerows(zip(*columns.values(), strict=True))
    else:
        with target.open("w", encoding="utf-8") as fh:
            for values in zip(*columns.values(), strict=True):
                fh.write(json.dumps(dict(zip(names, values, strict=True)), allow_nan=False))
                fh.write("\n")
    return target


def _format_of(path: Path, format: str | None) -> str:  # noqa: A002
    if format is not None:
        if format not in ("csv", "jsonl", "parquet"):
            raise DatasetError(f"{path}: unknown long format {format!r}; expected 'csv', 'jsonl' or 'parquet'")
        return format
    fmt = LONG_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DatasetError(
            f"{path}: cannot tell the long format from the suffix {path.suffix!r}; "
            f"expected one of {sorted(LONG_FORMATS)} (or pass format=...)"
        )
    return fmt


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _check_numbers(cols: _Columns, column: str, values: np.ndarray, upper: float | None, skip: np.ndarray | None = None) -> None:
    where = cols.where
    bad = ~np.isfinite(values)
    if skip is not None:
        bad &= ~skip
    i = _first(bad)
    if i is not None:
        raise _cell(where, i, column, f"{float(values[i])!r} is not finite")
    with np.errstate(invalid="ignore"):
        low = values < 0
        high = values > upper if upper is not None else np.zeros(len(values), dtype=bool)
    i = _first(low | high)
    if i is None:
        return
    value = float(values[i])
    if upper is not None:
        raise _cell(where, i, column, f"{column} {value!r} is outside [0, {upper:g}]")
    what = {"cost_usd": "cost", "latency_s": "latency"}.get(column, column)
    raise _cell(where, i, column, f"negative {what} {value!r}")


def _codes(values: Sequence[Any]) -> tuple[np.ndarray, dict[Any, int]]:
    """Integer codes in first-seen order."""
    index = {value: i for i, value in enumerate(dict.fromkeys(values))}
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values))
    return codes, index


def _assemble(path: Path, cols: _Columns) -> FullInfoDataset:
    where = cols.where
    n = len(cols.ids)
    if n == 0:
        raise DatasetError(f"{path}: no data rows")
    for column, values in (("prompt_id", cols.ids), ("task", cols.tasks), ("model", cols.models)):
        if "" in values:
            raise _cell(where, list(values).index(""), column, "empty value")
    _check_numbers(cols, "quality", cols.quality, upper=1.0)
    _check_numbers(cols, "cost_usd", cols.cost, upper=None)
    latency = cols.latency
    if latency is not None:
        missing = cols.latency_missing if cols.latency_missing is not None else np.zeros(n, dtype=bool)
        _check_numbers(cols, "latency_s", latency, upper=None, skip=missing)
        if missing.all():
            latency = None
        elif missing.any():
            i = _first(missing)
            j = _first(~missing)
            raise _cell(where, int(i), "latency_s", f"empty, but {where.at(int(j))} has a latency: give it on every row or on none")

    prompt, prompt_index = _codes(cols.ids)
    model, model_index = _codes(cols.models)
    n_prompts, k = len(prompt_index), len(model_index)

    # Duplicate (prompt_id, model) rows.
    key = prompt * k + model
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    if same.any():
        later, earlier = order[1:][same], order[:-1][same]
        j = int(np.argmin(later))
        i, first = int(later[j]), int(earlier[j])
        raise DatasetError(
            f"{where(i)}, columns 'prompt_id' and 'model': duplicate row for prompt {cols.ids[i]!r} and model "
            f"{cols.models[i]!r} (first given at {where.at(first)})"
        )

    # Each prompt's first row; its task must hold on every row of the prompt.
    running = np.maximum.accumulate(prompt)
    is_first = np.empty(n, dtype=bool)
    is_first[0] = True
    is_first[1:] = prompt[1:] > running[:-1]
    first_row = np.flatnonzero(is_first)  # indexed by prompt code (codes follow first appearance)
    task, _ = _codes(cols.tasks)
    clash = task != task[first_row[prompt]]
    i = _first(clash)
    if i is not None:
        j = int(first_row[prompt[i]])
        raise _cell(
            where, i, "task",
            f"prompt {cols.ids[i]!r} has task {cols.tasks[i]!r} here but {cols.tasks[j]!r} at {where.at(j)}",
        )

    # Texts: optional on each row, but never two different ones for one prompt.
    texts = cols.texts
    text_row = np.full(n_prompts, -1)  # the first row giving each prompt's text
    if texts is not None:
        text, text_index = _codes(texts)
        given = np.ones(n, dtype=bool)
        for empty in ("", None):
            if empty in text_index:
                given &= text != text_index[empty]
        rows = np.flatnonzero(given)
        if rows.size:
            with_text, first = np.unique(prompt[rows], return_index=True)
            text_row[with_text] = rows[first]
            reference = np.full(n_prompts, -1)
            reference[with_text] = text[rows[first]]
            i = _first(given & (text != reference[prompt]))
            if i is not None:
                j = int(text_row[prompt[i]])
                raise _cell(
                    where, i, "prompt",
                    f"prompt {cols.ids[i]!r} has a different text here than at {where.at(j)}: "
                    f"{_short(texts[i])} versus {_short(texts[j])}",
                )

    counts = np.bincount(prompt, minlength=n_prompts)
    complete = counts == k
    kept = int(complete.sum())
    if kept == 0:
        raise DatasetError(
            f"{path}: no prompt has a row for every model ({n_prompts} prompts, {k} models: "
            f"{_short(list(model_index))}); prompts lacking a model are dropped"
        )

    def matrix(values: np.ndarray) -> np.ndarray:
        out = np.full((n_prompts, k), math.nan)
        out[prompt, model] = values
        return out[complete]

    ids = np.array(list(prompt_index), dtype=object)[complete]
    tasks = np.array(list(cols.tasks), dtype=object)[first_row][complete]
    out_texts: tuple[str, ...] | None = None
    kept_rows = text_row[complete]
    if texts is not None and (kept_rows >= 0).any():  # no kept prompt has a text: the dataset has none
        out_texts = tuple(texts[r] if r >= 0 else "" for r in kept_rows.tolist())  # type: ignore[misc]
    return FullInfoDataset(
        source=str(path),
        prompt_ids=ids,
        tasks=tasks,
        texts=out_texts,
        models=tuple(model_index),
        quality=matrix(cols.quality),
        cost_usd=matrix(cols.cost),
        latency_s=None if latency is None else matrix(latency),
        skipped=n_prompts - kept,
    )
