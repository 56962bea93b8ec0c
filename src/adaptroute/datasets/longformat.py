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
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .base import FullInfoDataset

__all__ = ["LONG_COLUMNS", "LONG_FORMATS", "read_long", "write_long"]

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
def _read_parquet(path: Path) -> _Columns:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds on a file that is not Parquet
        raise DatasetError(f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})") from None
    try:
        _check_header(path, names)
        table = parquet.read(columns=[c for c in LONG_COLUMNS if c in names])
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or truncated file
        raise DatasetError(f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})") from None
    finally:
        parquet.close()
    try:
        return _arrow_columns(path, table, _Where(path, "row"))
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt pages can surface only when values are read
        raise DatasetError(f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})") from None


def _arrow_csv(path: Path) -> _Columns | None:
    """CSV through pyarrow's parser (several times faster than the csv module). None when pyarrow
    declines the file; the exact reader then reads it (and says where any problem is)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    raw_header = _csv_raw_header(path)
    header = [h.strip() for h in raw_header]
    _check_header(path, header)  # the same check, and message, as the exact reader
    if header != raw_header:
        return None  # the exact reader strips header names; pyarrow does not
    strings = {c: pa.string() for c in ("prompt_id", "task", "model", "prompt")}
    floats = {c: pa.float64() for c in ("quality", "cost_usd", "latency_s")}
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={**strings, **floats},
                include_columns=[c for c in LONG_COLUMNS if c in header],
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except Exception:  # noqa: BLE001 - any doubt: the exact reader decides
        return None
    return _arrow_columns(path, table, _Where(path, "row"))


def _arrow_jsonl(path: Path) -> _Columns | None:
    """JSON Lines through pyarrow when every line holds exactly one object; None otherwise."""
    import pyarrow.json as pajson

    try:
        data = path.read_bytes()
        lines = [line.strip() for line in data.split(b"\n")]
        lines = [line for line in lines if line]
        # One object per line: each line opens and closes an object, and pyarrow found one row per line.
        # (Inside an object a line break cannot sit right after a "}" and right before a "{".)
        if not lines or data.startswith(b"\xef\xbb\xbf"):
            return None
        if not all(line[:1] == b"{" and line[-1:] == b"}" for line in lines):
            return None
        table = pajson.read_json(path)
    except Exception:  # noqa: BLE001 - any doubt: the exact reader decides
        return None
    if table.num_rows != len(lines):
        return None
    _check_header(path, table.column_names)
    return _arrow_columns(path, table, _Where(path, "row"))


def _arrow_columns(path: Path, table: Any, where: _Where) -> _Columns:
    import pyarrow as pa
    import pyarrow.compute as pc

    def first_null(column: Any) -> int:
        return int(pc.index(pc.is_null(column), True).as_py())

    def first_valid(column: Any) -> tuple[int, Any]:
        i = int(pc.index(pc.is_valid(column), True).as_py())
        return max(i, 0), (column[i].as_py() if i >= 0 else None)

    def plain(name: str) -> tuple[Any, Any]:
        column = table.column(name)
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
            column = column.cast(kind)
        return column, kind

    def strings(name: str, *, nullable: bool = False) -> list[Any]:
        column, kind = plain(name)
        if not nullable and column.null_count:
            raise _cell(where, first_null(column), name, "missing value (null)")
        if pa.types.is_null(kind):
            return [None] * len(column)
        if pa.types.is_integer(kind) and name == "prompt_id":
            column = column.cast(pa.string())
        elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or _is_string_view(kind)):
            i, value = first_valid(column)
            raise _cell(where, i, name, f"{_short(value)} is not a string (the column has type {kind})")
        try:
            return column.to_pylist()
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}, column {name!r}: not valid UTF-8 text ({exc})") from None

    def numbers(name: str, *, booleans: bool = False, nullable: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        column, kind = plain(name)
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
        if not (numeric or (booleans and pa.types.is_boolean(kind)) or pa.types.is_null(kind)):
            i, value = first_valid(column)
            raise _cell(where, i, name, f"{_short(value)} is not a number (the column has type {kind})")
        missing = None
        if column.null_count:
            if not nullable:
                raise _cell(where, first_null(column), name, "missing value (null)")
            missing = pc.is_null(column).to_numpy(zero_copy_only=False).astype(bool)
        try:
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)
        except pa.ArrowException as exc:  # e.g. a decimal too large for a float
            raise DatasetError(f"{path}, column {name!r}: cannot read as numbers ({exc})") from None
        if missing is not None:
            values[missing] = math.nan
        return values, missing

    names = table.column_names
    latency = latency_missing = None
    if "latency_s" in names:
        latency, latency_missing = numbers("latency_s", nullable=True)
        if latency_missing is None:
            latency_missing = np.zeros(table.num_rows, dtype=bool)
    return _Columns(
        where=where,
        ids=strings("prompt_id"),
        tasks=strings("task"),
        models=strings("model"),
        quality=numbers("quality", booleans=True)[0],
        cost=numbers("cost_usd")[0],
        latency=latency,
        latency_missing=latency_missing,
        texts=strings("prompt", nullable=True) if "prompt" in names else None,
    )


def _is_string_view(kind: Any) -> bool:
    import pyarrow.types as types

    check = getattr(types, "is_string_view", None)  # pyarrow >= 16
    return bool(check is not None and check(kind))


# -- checks and pivot -----------------------------------------------------------------------------
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
