"""Parquet snapshots of a live log: whole, or incremental (only the rows appended since the last one).

A retrain job on another process or machine reads a folder of them with read_log; decisions repeated
between a full snapshot and later parts, or between overlapping parts, are read once (store.validate).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .schema import TABLES, fetch_arrow
from .sql import ROWS_FROM, SELECT_ALL

if TYPE_CHECKING:
    from .writer import LogStore

__all__ = ["export_parquet"]



def export_parquet(store: LogStore, directory: str | os.PathLike[str], incremental: bool = False) -> Path:
    """Write ``directory/<table>.parquet`` (every row), or with ``incremental`` a new part file per table,
    ``<table>-<microseconds since the epoch>.parquet``, holding the rows this store appended since its
    previous incremental export (every row the first time)."""
    import pyarrow.parquet as pq

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    store.flush()
    stamp = f"{time.time_ns() // 1000:017d}"
    with store._db_lock:
        for table in TABLES:
            if not incremental:
                pq.write_table(fetch_arrow(store._con, SELECT_ALL[table]), out / f"{table}.parquet")
                continue
            start = store._exported.get(table, 0)
            data = fetch_arrow(store._con, ROWS_FROM[table], [start])
            pq.write_table(data, out / f"{table}-{stamp}.parquet")
            store._exported[table] = start + data.num_rows
    return out
