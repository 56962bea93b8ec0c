"""The journal of a durable DuckDB log: where a durable row is on disk before it is in the DuckDB file.

A DuckDB commit costs a fixed few milliseconds per table (parse, bind, plan, and WAL entries for every
column), whatever the row count, so commits of a few dozen rows capped a durable log near 4,000
outcomes/s. A durable LogStore therefore commits each group of rows (see group_commit) to this file
instead, with one write and one fsync (about 0.5 ms for 60 requests), and acknowledges them then; the
same rows reach the DuckDB file in large background batches, after which the journal segments they were
in are deleted. Opening the log again replays whatever segments a crash left behind (rows already in
the file are recognised by their keys, so nothing counts twice), and read_log merges them the same way
when it reads a log nobody has reopened.

Segments are files next to the log, ``<log>.journal-<writer>-<n>``; one frame per group commit:

    "ARJ1" | payload length (u64) | CRC-32 of the payload (u32) | payload
    payload = per table: table index (u8) | length (u64) | an Arrow IPC stream of that table's rows

A frame is written whole or, after a crash mid-write, fails its length or CRC check: reading stops
there (that frame was never acknowledged). Lengths are checked against the bytes the file holds before
anything is allocated, and each table's schema against the log's.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import struct
import threading
import zlib
import pyarrow as pa

from ..errors import StoreError
from .schema import ARROW_SCHEMAS, TABLES

__all__: list[str] = []  # internal to adaptroute.store

log = logging.getLogger("adaptroute.store")

_MAGIC = b"ARJ1"
_HEADER = struct.Struct("<4sQI")  # magic, payload length, CRC-32
_PART = struct.Struct("<BQ")  # table index, IPC stream length
# What reading one segment may allocate. A writer starts a new segment after each background batch and
# past _ROTATE_BYTES (one frame is one group commit: far smaller), so a larger file was not written by a log.
MAX_SEGMENT_BYTES = 1 << 30
_ROTATE_BYTES = 64 << 20  # a segment this large is closed and a new one started


def segment_pattern(log_path: str) -> str:
    return glob.escape(log_path) + ".journal-*"


def segments(log_path: str) -> list[str]:
    """The journal segments a log has on disk, oldest first within each writer."""
    return sorted(glob.glob(segment_pattern(log_path)))


def encode(tables: dict[str, pa.Table]) -> bytes:
    parts = []
    for index, table in enumerate(TABLES):
        data = tables.get(table)
        if data is None or not data.num_rows:
            continue
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        stream = sink.getvalue()
        parts.append(_PART.pack(index, stream.size))
        parts.append(stream.to_pybytes())
    payload = b"".join(parts)
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


class Journal:
    """The segments one LogStore appends to. ``append`` is called by one thread at a time (the group
    commit's leader); ``release`` by the thread that wrote a batch to DuckDB."""

    def __init__(self, log_path: str) -> None:
        where = os.path.abspath(log_path)  # a later chdir of the process must not move the journal
        self._prefix = f"{where}.journal-{os.getpid()}-{secrets.token_hex(4)}-"
        self._dir = os.path.dirname(where)
        self._lock = threading.Lock()
        self._number = 0
        self._fd: int | None = None
        self._path = ""
        self._size = 0
        self._through = 0  # the highest ticket in the open segment
        self._closed_segments: list[tuple[str, int]] = []  # (path, highest ticket), oldest first

    def append(self, frame: bytes, through: int) -> None:
        """Write one frame and fsync it; on an error the segment is cut back to its last whole frame."""
        with self._lock:
            if self._fd is not None and self._size >= _ROTATE_BYTES:
                self._close_segment()  # while DuckDB writes fail nothing is released: keep segments small
            if self._fd is None:
                self._open_segment()
            assert self._fd is not None
            good = self._size
            try:
                view = memoryview(frame)
                while view:
                    view = view[os.write(self._fd, view):]
                os.fsync(self._fd)
            except OSError:
                self._cut_back(good)
                raise
            self._size = good + len(frame)
            self._through = through

    def release(self, through: int) -> None:
        """Rows through ``through`` are committed in the DuckDB file: delete the segments holding only those."""
        with self._lock:
            if self._fd is not None and self._size:
                # The next frame starts a new segment: this one can go once its newest rows are written.
                self._close_segment()
            kept = []
            for path, last in self._closed_segments:
                if last <= through:
                    _unlink(path)
                else:
                    kept.append((path, last))
            self._closed_segments = kept

    def close(self, remove: bool) -> None:
        """Close the open segment; ``remove``: every row is in the DuckDB file, delete all segments."""
        with self._lock:
            if self._fd is not None:
                self._close_segment()
            if remove:
                for path, _ in self._closed_segments:
                    _unlink(path)
                self._closed_segments = []

    def _open_segment(self) -> None:
        self._number += 1
        self._path = f"{self._prefix}{self._number:06d}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._size = 0
        _fsync_dir(self._dir)  # the new file's name must survive a crash, as its contents will

    def _close_segment(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        if self._size:
            self._closed_segments.append((self._path, self._through))
        else:
            _unlink(self._path)

    def _cut_back(self, good: int) -> None:
        """After a failed write: drop the partial frame, or leave the segment for a new one."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, good)
        except OSError:
            os.close(self._fd)  # a torn frame stays at its end: reading stops there, before any newer one
            self._fd = None
            if good:
                self._closed_segments.append((self._path, self._through))


def read_segments(paths: list[str]) -> dict[str, pa.Table]:
    """Every whole frame of the segments as one table per log table (tables without rows left out)."""
    parts: dict[str, list[pa.Table]] = {table: [] for table in TABLES}
    for path in paths:
        for index, table in _frames(path):
            parts[TABLES[index]].append(table)
    return {name: pa.concat_tables(tables) for name, tables in parts.items() if tables}


def _frames(path: str) -> list[tuple[int, pa.Table]]:
    size = os.path.getsize(path)
    if size > MAX_SEGMENT_BYTES:
        raise StoreError(f"journal {path} holds {size:,} bytes, more than a log writes ({MAX_SEGMENT_BYTES:,}): "
                         "not a journal of this log")
    with open(path, "rb") as fh:
        data = fh.read()
    out: list[tuple[int, pa.Table]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            return _torn(path, offset, out)
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if magic != _MAGIC or length > len(data) - start:
            return _torn(path, offset, out)
        payload = memoryview(data)[start : start + length]
        if zlib.crc32(payload) != crc:
            return _torn(path, offset, out)
        out.extend(_parts(path, offset, payload))
        offset = start + length
    return out


def _parts(path: str, offset: int, payload: memoryview) -> list[tuple[int, pa.Table]]:
    out = []
    at = 0
    while at < len(payload):
        if len(payload) - at < _PART.size:
            raise StoreError(f"journal {path}: the frame at byte {offset} is malformed")
        index, length = _PART.unpack_from(payload, at)
        at += _PART.size
        if index >= len(TABLES) or length > len(payload) - at:
            raise StoreError(f"journal {path}: the frame at byte {offset} is malformed")
        try:
            table = pa.ipc.open_stream(pa.py_buffer(payload[at : at + length])).read_all()
        except pa.ArrowException as exc:
            raise StoreError(f"journal {path}: the frame at byte {offset} does not hold Arrow rows: {exc}") from None
        name = TABLES[index]
        if not table.schema.equals(ARROW_SCHEMAS[name]):
            raise StoreError(f"journal {path}: the {name} rows at byte {offset} are not of this adaptroute's log schema")
        out.append((index, table))
        at += length
    return out


def _torn(path: str, offset: int, out: list[tuple[int, pa.Table]]) -> list[tuple[int, pa.Table]]:
    log.warning("adaptroute: journal %s ends in a partial frame at byte %d (a write cut short: never acknowledged)",
                path, offset)
    return out


def remove_segments(paths: list[str]) -> None:
    for path in paths:
        _unlink(path)
    if paths:
        _fsync_dir(os.path.dirname(os.path.abspath(paths[0])))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # a platform without directory handles
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
