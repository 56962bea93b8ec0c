"""The long format through pyarrow: Parquet, and the fast path for CSV and JSON Lines (plain columns). Anything it
cannot take as is (a bad cell, an odd type) makes it give up, and the exact stdlib reader in
long_parsers.py re-reads the file to say where the problem is."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .long_parsers import LONG_COLUMNS, _cell, _check_header, _Columns, _csv_raw_header, _short, _Where

__all__: list[str] = []  # internal: longformat.py uses _arrow_csv, _arrow_jsonl, _read_parquet


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


# -- checks and pivot -----------------------------------------------------------------------------


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


_MAX_NESTING = 4
_BRACKETS = np.zeros(256, dtype=np.int8)
_BRACKETS[list(b"[{")] = 1
_BRACKETS[list(b"]}")] = -1


def _nesting_bound(data: bytes, block: int = 1 << 24) -> int:
    """An upper bound of the bracket nesting depth (brackets inside strings count too), block by block."""
    depth = deepest = 0
    for start in range(0, len(data), block):
        steps = _BRACKETS[np.frombuffer(data, dtype=np.uint8, count=min(block, len(data) - start), offset=start)]
        if steps.size:
            running = np.cumsum(steps, dtype=np.int64) + depth
            deepest = max(deepest, int(running.max()))
            depth = int(running[-1])
    return deepest


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
        if _nesting_bound(data) > _MAX_NESTING:
            return None  # long-format values are flat; deep nesting crashed pyarrow (the exact reader refuses it)
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
