"""The durable DuckDB log's journal: an acknowledged row survives kill -9 whether or not it reached the
DuckDB file (read_log merges the journal, reopening replays it), nothing counts twice when a crash
came after the file had the rows, a torn frame is where reading stops, and a file that is not a
journal gets a clear error instead of an allocation it dictates."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
from test_log_writer import decision, record

from adaptroute import LogStore, StoreError, read_log
from adaptroute.store import journal
from adaptroute.store.journal import read_segments, segments


def _counts(path: Path) -> dict[str, int]:
    with LogStore(path) as store:
        return store.counts()


def test_a_durable_log_closed_cleanly_leaves_no_journal(tmp_path: Path) -> None:
    path = tmp_path / "log.duckdb"
    with LogStore(path, durable=True) as store:
        for i in range(50):
            store.add_decision(decision(i))
            store.add_result(record(i))
        assert segments(str(path))  # acknowledged rows are in the journal before the file has them
    assert segments(str(path)) == []
    counts = _counts(path)
    assert counts["decisions"] == counts["outcomes"] == 50


def test_segments_are_released_once_the_file_has_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.duckdb"
    with LogStore(path, durable=True, flush_interval_s=3600) as store:
        for i in range(10):
            store.add_decision(decision(i))
            store.add_result(record(i))
        assert segments(str(path))
        store.flush()  # the background batch: the file has every row, the journal need not keep them
        assert segments(str(path)) == []
        store.add_decision(decision(10))
        store.add_result(record(10))
        assert len(segments(str(path))) == 1


def test_reopening_after_the_file_had_the_rows_counts_nothing_twice(tmp_path: Path) -> None:
    """A crash between writing a batch to the file and deleting its segments: the replay adds nothing."""
    path = tmp_path / "log.duckdb"
    kept = tmp_path / "kept"
    kept.mkdir()
    with LogStore(path, durable=True, flush_interval_s=3600) as store:
        for i in range(30):
            store.add_decision(decision(i))
            store.add_result(record(i))
            if i % 3 == 0:
                store.add_feedback(f"d{i:07d}", 0.5, "human", ts=1.9e9 + i)
        for segment in segments(str(path)):
            shutil.copy(segment, kept / Path(segment).name)
    for segment in kept.iterdir():  # as if the process died before deleting them
        shutil.copy(segment, tmp_path / segment.name)
    assert segments(str(path))
    assert len(read_log(str(path)).decision_ids) == 30  # read_log merges them without counting twice
    counts = _counts(path)
    assert counts == {"decisions": 30, "attempts": sum(len(record(i).attempts) for i in range(30)),
                      "outcomes": 30, "feedback": 10}
    assert segments(str(path)) == []  # replayed and deleted at that open


# A durable writer acknowledging requests from 8 threads, with background batches pushed out of the way
# half the time (so most acknowledged rows are only in the journal when it dies).
CHILD = textwrap.dedent(
    """
    import os, sys, threading
    sys.path.insert(0, sys.argv[3])
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from test_log_writer import decision, record
    from adaptroute import LogStore

    store = LogStore(sys.argv[1], durable=True, flush_interval_s=float(sys.argv[2]), flush_rows=10**9)
    lock = threading.Lock()

    def work(t):
        i = t
        while True:
            store.add_decision(decision(i))
            store.add_result(record(i))
            with lock:
                print("ACK", i, flush=True)
            i += 8

    for t in range(8):
        threading.Thread(target=work, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


@pytest.mark.parametrize("flush_interval_s", [3600.0, 0.05])
def test_kill_9_loses_no_acknowledged_request(tmp_path: Path, flush_interval_s: float) -> None:
    path = tmp_path / "log.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(flush_interval_s), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, text=True)
    acked: set[int] = set()
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while len(acked) < 2000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("ACK"):
                acked.add(int(line.split()[1]))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 2000
    wanted = {f"d{i:07d}" for i in acked}
    read = read_log(str(path))  # nobody reopened it yet: the journal is merged in
    assert wanted <= set(read.decision_ids)
    with LogStore(path) as store:  # reopening replays the journal into the file
        ids = [r[0] for r in store.query("SELECT decision_id FROM outcomes")]
        assert len(ids) == len(set(ids)) and wanted <= set(ids)
        decisions = {r[0] for r in store.query("SELECT decision_id FROM decisions")}
        assert set(ids) <= decisions  # never an outcome without its decision
    assert segments(str(path)) == []
    print(f"\nkill -9 of a durable writer (flush_interval_s={flush_interval_s}): {len(acked)} acknowledged, "
          f"{len(wanted - set(ids))} lost, {len(ids)} outcomes after replay")


def _journal_with_frames(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    path = tmp_path / "log.duckdb"
    store = LogStore(path, durable=True, flush_interval_s=3600)
    for i in range(n):
        store.add_decision(decision(i))
        store.add_result(record(i))
    found = segments(str(path))
    copies = [shutil.copy(s, tmp_path / f"copy-{k}") for k, s in enumerate(found)]
    store.close()
    return path, [str(c) for c in copies]


def test_reading_stops_at_a_torn_frame(tmp_path: Path) -> None:
    _, copies = _journal_with_frames(tmp_path, 5)
    whole = read_segments(copies)["outcomes"].num_rows
    assert whole == 5
    with open(copies[-1], "ab") as fh:  # a frame cut short by a crash: header promises more than is there
        fh.write(struct.pack("<4sQI", b"ARJ1", 10_000, 0) + b"x" * 100)
    assert read_segments(copies)["outcomes"].num_rows == whole
    data = Path(copies[-1]).read_bytes()
    Path(copies[-1]).write_bytes(data[:-200])  # the last whole frame damaged: it is not read either
    left = read_segments(copies)
    assert 0 < (left["outcomes"].num_rows if "outcomes" in left else 0) < whole


def test_a_frame_that_is_not_the_logs_rows_is_refused_by_name(tmp_path: Path) -> None:
    bogus = tmp_path / "log.duckdb.journal-1-x-000001"
    payload = struct.pack("<BQ", 1, 4) + b"junk"
    bogus.write_bytes(struct.pack("<4sQI", b"ARJ1", len(payload), zlib.crc32(payload)) + payload)
    with pytest.raises(StoreError, match="journal .*journal-1-x-000001.* byte 0"):
        read_segments([str(bogus)])
    payload = struct.pack("<BQ", 9, 0)
    bogus.write_bytes(struct.pack("<4sQI", b"ARJ1", len(payload), zlib.crc32(payload)) + payload)
    with pytest.raises(StoreError, match="malformed"):
        read_segments([str(bogus)])


def test_a_file_larger_than_any_segment_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "log.duckdb.journal-1-x-000001"
    big.write_bytes(b"\0" * 4096)
    monkeypatch.setattr(journal, "MAX_SEGMENT_BYTES", 1024)
    with pytest.raises(StoreError, match="more than a log writes"):
        read_segments([str(big)])
