"""A running router's numbers, seen from outside its process: Parquet snapshots of its log written
every ``snapshot_interval_s`` (and at close), which `adaptroute report DIR` and read_log(DIR) read
while the router keeps the DuckDB file locked."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ..errors import ConfigError
from ..store import LogStore
from ..store.snapshots import SnapshotWriter

__all__ = ["Snapshots"]

log = logging.getLogger("adaptroute.router")


class Snapshots:
    """A background thread that exports the log's new rows to ``directory`` at each interval."""

    def __init__(self, store: LogStore, directory: str | os.PathLike[str], interval_s: float) -> None:
        if not isinstance(store, LogStore):
            raise ConfigError("snapshot_dir is for a DuckDB log, which other processes cannot open while the router "
                              "runs; a PostgreSQL log is read as it is (`adaptroute report postgresql://...`)")
        self.writer = SnapshotWriter(store, directory)
        self.interval_s = interval_s
        self._lock = threading.Lock()  # one export at a time (the thread, snapshot(), close())
        self._stop = threading.Event()
        self._failed = False
        self._thread = threading.Thread(target=self._loop, name="adaptroute-snapshots", daemon=True)
        self._thread.start()

    def write(self) -> list[Path]:
        with self._lock:
            return self.writer.write()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.write()
                self._failed = False
            except Exception as exc:  # noqa: BLE001 - a background thread must not die; said once
                if not self._failed:
                    log.error("adaptroute: writing a log snapshot to %s failed: %s", self.writer.directory, exc)
                self._failed = True

    def close(self) -> None:
        """Stop the thread and write the last rows (before the log closes)."""
        self._stop.set()
        self._thread.join(timeout=max(5.0, self.interval_s))
        self.write()
