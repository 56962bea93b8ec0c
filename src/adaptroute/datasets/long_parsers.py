"""Parsers of the long format: each reads one file kind into plain columns (_Columns) and says where
a cell is wrong (file, row, line, column). longformat.py validates and pivots what they return.

CSV and JSON Lines have two readers: a fast one through pyarrow, and an exact stdlib one that the
fast path falls back to on any problem, so every error names its row and line the same way.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError

REQUIRED = ("prompt_id", "task", "model", "quality", "cost_usd")
OPTIONAL = ("latency_s", "prompt")
LONG_COLUMNS: tuple[str, ...] = REQUIRED + OPTIONAL
# file suffix -> format name
LONG_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


# -- what every reader hands to _assemble ------------------------------------------------------------
@dataclass
class _Columns:
    """The columns of a file, type-checked; ``where(i)`` names data row i (0-based) for messages."""

    where: _Where
    ids: Sequence[str]
    tasks: Sequence[str]
    models: Sequence[str]
    quality: np.ndarray
    cost: np.ndarray
    latency: np.ndarray | None  # NaN where the cell is empty
    latency_missing: np.ndarray | None  # bool, True where the cell is empty (so a literal NaN is an error)
    texts: Sequence[str | None] | None  # None or "" where not given


class _Where:
    """Names data row ``i`` (0-based) in messages: ``where(i)`` with the file, ``where.at(i)`` without."""

    def __init__(self, path: Path, label: str, numbers: Sequence[int] | None = None, lines: Any = None) -> None:
        self.path, self.label, self.numbers, self.lines = path, label, numbers, lines

    def at(self, i: int) -> str:
        number = self.numbers[i] if self.numbers is not None else i + 1
        line = self.lines[i] if self.lines is not None else -1
        line = f" (line {line})" if line >= 0 else ""
        return f"{self.label} {number}{line}"

    def __call__(self, i: int) -> str:
        return f"{self.path}, {self.at(i)}"


def _cell(where: _Where, i: int, column: str, why: str) -> DatasetError:
    return DatasetError(f"{where(i)}, column {column!r}: {why}")


def _check_header(path: Path, names: Sequence[str]) -> None:
    for name in LONG_COLUMNS:
        if list(names).count(name) > 1:
            raise DatasetError(f"{path}: column {name!r} appears more than once")
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        from .routerbench import is_routerbench_header

        hint = ""
        if is_routerbench_header(list(names)):
            hint = " (this is RouterBench's wide layout: read it with read_routerbench or load_dataset)"
        shown = ", ".join(repr(n) for n in list(names)[:12]) + (", ..." if len(names) > 12 else "")
        raise DatasetError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}; "
            f"the long format needs {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)}); found {shown or 'none'}{hint}"
        )


# -- CSV ------------------------------------------------------------------------------------------
def _csv_header(path: Path) -> list[str]:
    return [h.strip() for h in _csv_raw_header(path)]


def _csv_raw_header(path: Path) -> list[str]:
    csv.field_size_limit(sys.maxsize)  # prompt texts can be long
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read as CSV ({type(exc).__name__}: {exc})") from None
    if header is None:
        raise DatasetError(f"{path}: empty file (no header row)")
    return header


def _read_csv(path: Path) -> _Columns:
    header = _csv_header(path)
    _check_header(path, header)
    width = len(header)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            next(reader)
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read as CSV ({type(exc).__name__}: {exc})") from None
    numbers: list[int] | None = None
    if [] in records:  # blank lines: keep the data row numbers of the others
        numbers = [n for n, row in enumerate(records, start=1) if row]
        records = [row for row in records if row]
    where = _Where(path, "row", numbers, _LazyLines(path))
    if set(map(len, records)) - {width}:
        i = next(i for i, row in enumerate(records) if len(row) != width)
        raise DatasetError(f"{where(i)}: {len(records[i])} fields, the header has {width}")
    index = {name: i for i, name in enumerate(header)}
    columns = list(zip(*records, strict=True)) if records else [() for _ in header]

    def text(name: str) -> tuple[str, ...]:
        return columns[index[name]]  # type: ignore[return-value]

    latency = latency_missing = None
    if "latency_s" in index:
        raw = text("latency_s")
        latency_missing = np.fromiter((not v.strip() for v in raw), dtype=bool, count=len(raw))
        latency = _csv_numbers(where, "latency_s", raw, latency_missing)
    return _Columns(
        where=where,
        ids=text("prompt_id"),
        tasks=text("task"),
        models=text("model"),
        quality=_csv_numbers(where, "quality", text("quality"), None, booleans=True),
        cost=_csv_numbers(where, "cost_usd", text("cost_usd"), None),
        latency=latency,
        latency_missing=latency_missing,
        texts=text("prompt") if "prompt" in index else None,
    )


class _LazyLines:
    """The physical line each non-blank CSV record ends on, computed only when a message needs it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[int] | None = None

    def __getitem__(self, i: int) -> int:
        if self._lines is None:
            lines: list[int] = []
            try:
                with self.path.open(newline="", encoding="utf-8-sig") as fh:
                    reader = csv.reader(fh)
                    next(reader, None)
                    for row in reader:
                        if row:
                            lines.append(reader.line_num)
            except (OSError, UnicodeDecodeError, csv.Error):
                pass
            self._lines = lines
        return self._lines[i] if i < len(self._lines) else -1


_BOOLEANS = {"true": 1.0, "false": 0.0}


def _csv_numbers(
    where: _Where, column: str, values: Sequence[str], missing: np.ndarray | None, *, booleans: bool = False
) -> np.ndarray:
    """Parse a CSV column as floats (fast path in numpy); empty cells are NaN where ``missing`` allows."""
    if missing is not None and missing.any():
        values = [("nan" if m else v) for v, m in zip(values, missing, strict=True)]
    try:
        return np.array(values, dtype=float).reshape(len(values))
    except (ValueError, OverflowError, TypeError):
        pass
    out = np.empty(len(values))
    for i, value in enumerate(values):
        try:
            out[i] = float(value)
            continue
        except (ValueError, OverflowError):
            pass
        stripped = value.strip()
        if booleans and stripped.lower() in _BOOLEANS:
            out[i] = _BOOLEANS[stripped.lower()]
        elif not stripped:
            raise _cell(where, i, column, "empty value, expected a number")
        else:
            raise _cell(where, i, column, f"{value[:40]!r} is not a number")
    return out


# -- JSON Lines -------------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> _Columns:
    objects: list[dict[str, Any]] = []
    lines: list[int] = []
    required = frozenset(REQUIRED)
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}, line {lineno}: not valid JSON ({exc.msg} at character {exc.pos + 1})") from None
                except (ValueError, RecursionError) as exc:  # too many digits, nested too deep
                    raise DatasetError(f"{path}, line {lineno}: not valid JSON ({str(exc)[:200]})") from None
                if not isinstance(obj, dict):
                    raise DatasetError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
                if not required <= obj.keys():
                    missing = [c for c in REQUIRED if c not in obj]
                    raise DatasetError(
                        f"{path}, line {lineno}: missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(m) for m in missing)} (the long format needs {', '.join(REQUIRED)})"
                    )
                objects.append(obj)
                lines.append(lineno)
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read as JSON Lines ({type(exc).__name__}: {exc})") from None
    where = _Where(path, "line", lines)

    def column(name: str) -> list[Any]:
        return [o.get(name) for o in objects]

    latency = latency_missing = None
    raw_latency = column("latency_s")
    if any(v is not None for v in raw_latency):
        latency_missing = np.fromiter((v is None for v in raw_latency), dtype=bool, count=len(raw_latency))
        latency = _json_numbers(where, "latency_s", raw_latency, allow_none=True)
    texts = None
    if any("prompt" in o for o in objects):
        texts = column("prompt")
        _json_types(where, "prompt", texts, (str, type(None)), "a string or null")
    return _Columns(
        where=where,
        ids=_json_ids(where, column("prompt_id")),
        tasks=_json_types(where, "task", column("task"), (str,), "a string"),
        models=_json_types(where, "model", column("model"), (str,), "a string"),
        quality=_json_numbers(where, "quality", column("quality"), booleans=True),
        cost=_json_numbers(where, "cost_usd", column("cost_usd")),
        latency=latency,
        latency_missing=latency_missing,
        texts=texts,
    )


def _json_types(where: _Where, column: str, values: list[Any], types: tuple[type, ...], expected: str) -> list[Any]:
    if not set(map(type, values)) <= set(types):
        for i, value in enumerate(values):
            if type(value) not in types:
                raise _cell(where, i, column, f"{_short(value)} is not {expected}")
    return values


def _json_ids(where: _Where, values: list[Any]) -> list[str]:
    kinds = set(map(type, values))
    if kinds <= {str}:
        return values
    for i, value in enumerate(values):
        if type(value) not in (str, int):
            raise _cell(where, i, "prompt_id", f"{_short(value)} is not a string or an integer")
    return [v if type(v) is str else str(v) for v in values]


def _json_numbers(
    where: _Where, column: str, values: list[Any], *, booleans: bool = False, allow_none: bool = False
) -> np.ndarray:
    allowed: set[type] = {int, float}
    if booleans:
        allowed.add(bool)
    if allow_none:
        allowed.add(type(None))
    if not set(map(type, values)) <= allowed:
        for i, value in enumerate(values):
            if type(value) not in allowed:
                what = "a number" + (" or a boolean" if booleans else "") + (" or null" if allow_none else "")
                raise _cell(where, i, column, f"{_short(value)} is not {what}")
    values = [math.nan if v is None else v for v in values] if allow_none else values
    try:
        return np.array(values, dtype=float).reshape(len(values))
    except OverflowError:
        for i, value in enumerate(values):
            try:
                float(value)
            except OverflowError:
                raise _cell(where, i, column, f"{_short(value)} is not finite") from None
        raise  # pragma: no cover - numpy and float() disagree


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- Parquet, and the Arrow fast paths for CSV and JSON Lines -----------------------------------------
