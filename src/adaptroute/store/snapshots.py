"""Incremental Parquet snapshots of a live log: what `adaptroute report DIR` (and read_log) read while
the router that owns the DuckDB file keeps writing it (DuckDB locks other processes out of the file).

Each write adds the rows appended since the last one as ``<table>-<seq>.parquet`` part files (written
to a temporary name, then renamed: a reader never sees half a file), taken from one consistent view of
the log. ``manifest.json`` records how many rows of each table are exported, so a router reopening the
same log resumes where it stopped instead of exporting everything twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError
from .schema import TABLES
from .sql import ROWS_FROM

if TYPE_CHECKING:
    from .writer import LogStore

__all__ = ["SnapshotWriter"]

_MANIFEST = "manifest.json"
_LOG_ID = "SELECT value FROM meta WHERE key = 'created_at'"


class SnapshotWriter:
    """Exports the rows of ``store`` not yet in ``directory``, each time ``write()`` is called."""

    def __init__(self, store: LogStore, directory: str | os.PathLike[str]) -> None:
        self.store = store
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the snapshot folder {self.directory}: {exc.strerror or exc}") from None
        rows = store.query(_LOG_ID)
        self._log = f"{store.path}@{rows[0][0] if rows else '?'}"
        self._exported, self._seq = self._resume()

    def _resume(self) -> tuple[dict[str, int], int]:
        manifest = self.directory / _MANIFEST
        if not manifest.exists():
            if any(self.directory.glob("*.parquet")):
                raise StoreError(f"{self.directory} already holds Parquet files but no {_MANIFEST}: give each "
                                 "router's snapshots a folder of their own")
            return {t: 0 for t in TABLES}, 0
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            exported = {t: int(data["exported"][t]) for t in TABLES}
            seq, log = int(data["seq"]), str(data["log"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{manifest} is unreadable ({exc}): remove the folder or choose another one") from None
        if log != self._log:
            raise StoreError(f"{self.directory} holds snapshots of another log ({log}): give each log its own folder")
        return exported, seq

    def write(self) -> list[Path]:
        """Export the rows appended since the last write; returns the part files written."""
        import pyarrow.parquet as pq

        written: list[Path] = []
        with self.store.snapshot():  # one view of every table: no flush lands half-way through
            parts = {t: self.store.fetch_arrow(ROWS_FROM[t], [self._exported[t]]) for t in TABLES}
        if not any(part.num_rows for part in parts.values()):
            return written
        self._seq += 1
        for table in ("attempts", "outcomes", "feedback", "decisions"):  # a decision lands with its outcome or after
            part = parts[table]
            if not part.num_rows:
                continue
            path = self.directory / f"{table}-{self._seq:06d}.parquet"
            temporary = path.with_suffix(".parquet.tmp")
            pq.write_table(part, temporary)
            os.replace(temporary, path)
            written.append(path)
            self._exported[table] += part.num_rows
        self._save_manifest()
        return written

    def _save_manifest(self) -> None:
        manifest = self.directory / _MANIFEST
        temporary = manifest.with_suffix(".json.tmp")
        temporary.write_text(json.dumps({"log": self._log, "seq": self._seq, "exported": self._exported}), encoding="utf-8")
        os.replace(temporary, manifest)
