"""RouterBench's wide layout: one row per prompt, one correctness column and one `<model>|total_cost`
column per model (Hu et al., 2024). Reads a CSV file, a folder of them, or, only with an explicit opt-in,
the full release's pandas pickle (unpickling runs code from the file). Errors name rows as a spreadsheet
does (the header is row 1)."""

from __future__ import annotations

import ast
import csv
import math
import sys
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import FullInfoDataset

__all__ = ["is_routerbench_header", "read_routerbench"]

_COST_SUFFIX = "|total_cost"
_RESPONSE_SUFFIX = "|model_response"


def is_routerbench_header(columns: list[str]) -> bool:
    return "prompt" in columns and "eval_name" in columns and any(c.endswith(_COST_SUFFIX) for c in columns)


def read_routerbench(path: str | Path, *, allow_pickle: bool = False) -> FullInfoDataset:
    """Load RouterBench rows from a CSV file, a folder of CSV files, or (opt-in) a pandas pickle."""
    source = Path(path)
    if source.is_dir():
        files = sorted(source.glob("*.csv"))
        if not files:
            raise DatasetError(f"{source}: folder holds no .csv files")
    elif source.suffix in (".pkl", ".pickle"):
        return _read_pickle(source, allow_pickle)
    else:
        files = [source]
    parts = [_read_csv(f) for f in files]
    return _concat(str(source), parts)


def _parse_prompt(raw: str) -> str:
    """RouterBench stores the prompt as a Python list literal; literal_eval never runs code."""
    text = raw.strip()
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return raw
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
    return raw


def _number(value: str, where: str, *, allow_empty: bool) -> float:
    if value is None or value.strip().lower() in ("", "nan", "none"):
        if allow_empty:
            return math.nan
        raise DatasetError(f"{where}: empty value")
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(f"{where}: {value[:40]!r} is not a number") from None
    if math.isinf(number) or math.isnan(number):
        raise DatasetError(f"{where}: {value!r} is not finite")
    return number


def _read_csv(path: Path) -> dict[str, object]:
    csv.field_size_limit(sys.maxsize)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: empty file")
            return _read_rows(path, header, reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def _read_rows(path: Path, header: list[str], reader: object) -> dict[str, object]:
    columns = {name: i for i, name in enumerate(header)}
    for required in ("sample_id", "prompt", "eval_name"):
        if required not in columns:
            raise DatasetError(f"{path}: missing column {required!r} (not RouterBench's wide layout)")
    models = [c[: -len(_COST_SUFFIX)] for c in header if c.endswith(_COST_SUFFIX)]
    if not models:
        raise DatasetError(f"{path}: no '<model>|total_cost' columns (not RouterBench's wide layout)")
    for model in models:
        if model not in columns:
            raise DatasetError(f"{path}: cost column for {model!r} but no correctness column {model!r}")
    q_cols = [columns[m] for m in models]
    c_cols = [columns[m + _COST_SUFFIX] for m in models]
    ids, tasks, texts, quality, cost, lines = [], [], [], [], [], []
    skipped = 0
    for line, row in enumerate(reader, start=2):  # type: ignore[arg-type]
        if len(row) != len(header):
            raise DatasetError(f"{path}, row {line}: {len(row)} fields, header has {len(header)}")
        q = [_number(row[i], f"{path}, row {line}, column {header[i]!r}", allow_empty=True) for i in q_cols]
        c = [_number(row[i], f"{path}, row {line}, column {header[i]!r}", allow_empty=True) for i in c_cols]
        if any(math.isnan(v) for v in q + c):
            skipped += 1  # RouterBench has a few prompts some model never answered
            continue
        for i, value in zip(q_cols, q, strict=True):
            if not 0.0 <= value <= 1.0:
                raise DatasetError(f"{path}, row {line}, column {header[i]!r}: quality {value} is outside [0, 1]")
        for i, value in zip(c_cols, c, strict=True):
            if value < 0:
                raise DatasetError(f"{path}, row {line}, column {header[i]!r}: negative cost {value}")
        for name in ("sample_id", "eval_name"):
            if not row[columns[name]].strip():
                raise DatasetError(f"{path}, row {line}, column {name!r}: empty value")
        ids.append(row[columns["sample_id"]])
        tasks.append(row[columns["eval_name"]])
        texts.append(_parse_prompt(row[columns["prompt"]]))
        quality.append(q)
        cost.append(c)
        lines.append(line)
    if not ids and not skipped:
        raise DatasetError(f"{path}: no data rows")
    return {"path": path, "models": tuple(models), "ids": ids, "tasks": tasks, "texts": texts,
            "quality": quality, "cost": cost, "skipped": skipped, "lines": lines}


def _concat(source: str, parts: list[dict[str, object]]) -> FullInfoDataset:
    models = parts[0]["models"]
    for part in parts[1:]:
        if set(part["models"]) != set(models):  # type: ignore[arg-type]
            raise DatasetError(f"{part['path']}: models differ from {parts[0]['path']}")
    ids: list[str] = []
    tasks: list[str] = []
    texts: list[str] = []
    quality: list[list[float]] = []
    cost: list[list[float]] = []
    for part in parts:
        order = [part["models"].index(m) for m in models]  # type: ignore[union-attr]
        ids += part["ids"]  # type: ignore[operator]
        tasks += part["tasks"]  # type: ignore[operator]
        texts += part["texts"]  # type: ignore[operator]
        quality += [[row[j] for j in order] for row in part["quality"]]  # type: ignore[union-attr]
        cost += [[row[j] for j in order] for row in part["cost"]]  # type: ignore[union-attr]
    # Name the file and row of both copies (a kept prompt's index says nothing about where it is).
    places = [(part["path"], line) for part in parts for line in part["lines"]]  # type: ignore[attr-defined]
    seen: dict[str, int] = {}
    for i, pid in enumerate(ids):
        j = seen.setdefault(pid, i)
        if j != i:
            (path, line), (first_path, first_line) = places[i], places[j]
            first = f"row {first_line}" if first_path == path else f"{first_path}, row {first_line}"
            raise DatasetError(f"{path}, row {line}, column 'sample_id': duplicate sample_id {pid!r} (first at {first})")
    k = len(models)  # type: ignore[arg-type]
    return FullInfoDataset(
        source=source,
        prompt_ids=np.array(ids, dtype=object),
        tasks=np.array(tasks, dtype=object),
        texts=tuple(texts),
        models=tuple(models),  # type: ignore[arg-type]
        quality=np.array(quality, dtype=float).reshape(-1, k),
        cost_usd=np.array(cost, dtype=float).reshape(-1, k),
        skipped=sum(int(p["skipped"]) for p in parts),  # type: ignore[arg-type]
    )


def _read_pickle(path: Path, allow_pickle: bool) -> FullInfoDataset:
    if not allow_pickle:
        raise DatasetError(
            f"{path}: a pickle runs code from the file when loaded; pass allow_pickle=True "
            "(CLI: --allow-pickle) only for a file you trust, such as RouterBench's own release"
        )
    try:
        import pandas as pd
    except ImportError:
        raise DatasetError(f"{path}: reading RouterBench's pickle needs pandas (pip install pandas)") from None
    frame = pd.read_pickle(path)  # opt-in above: the user vouched for this file
    columns = [str(c) for c in frame.columns]
    rows = ([str(v) if v is not None else "" for v in record] for record in frame.itertuples(index=False))
    return _concat(str(path), [_read_rows(path, columns, rows)])
