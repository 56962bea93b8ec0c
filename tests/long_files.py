"""Writes hand-made long-format rows as CSV, JSON Lines or Parquet (by suffix), for the importer tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

NUMERIC = ("quality", "cost_usd", "latency_s")


def write_rows(path: Path, rows: list[dict[str, Any]], columns: list[str], *, omit_missing: bool = False) -> Path:
    """``omit_missing``: a JSON object leaves out a key a row does not have (else writes null), and a
    numeric Parquet column given only as text stays text (to test type errors)."""
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            writer.writerows([["" if r.get(c) is None else r.get(c) for c in columns] for r in rows])
    elif path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for r in rows:
                record = {c: r[c] for c in columns if c in r} if omit_missing else {c: r.get(c) for c in columns}
                fh.write(json.dumps(record) + "\n")  # NaN/Infinity literals kept
    else:
        data = {}
        for c in columns:
            values = [r.get(c) for r in rows]
            kinds = {type(v) for v in values if v is not None}
            if len(kinds) > 1 or (omit_missing and c in NUMERIC and kinds == {str}):
                values = [None if v is None else str(v) for v in values]  # a column has one type in Parquet
            data[c] = values
        pq.write_table(pa.table(data), path)
    return path
