"""Group commit: a durable append returns only once a commit covered it, concurrent appends share
commits, a failed commit is raised to a waiter and its rows are committed by the next one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from test_log_writer import decision, record

from adaptroute import LogStore, StoreError
from adaptroute.store.group_commit import GroupCommit
from adaptroute.store.journal import read_segments, segments


class FakeLog:
    """Tickets appended under a lock; a commit takes all of them (slowly, as an fsync would)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.lock = threading.Lock()
        self.appended = 0
        self.committed: list[int] = []
        self.fail_first = fail_first

    def append(self) -> int:
        with self.lock:
            self.appended += 1
            return self.appended

    def flush(self) -> int:
        with self.lock:
            through = self.appended
        time.sleep(0.005)
        if self.fail_first:
            self.fail_first -= 1
            raise StoreError("disk said no")
        self.committed.append(through)
        return through


def test_every_waiter_returns_after_a_commit_that_covers_it() -> None:
    log = FakeLog()
    group = GroupCommit(log.flush)
    returned: list[tuple[int, int]] = []  # (ticket, committed when it returned)

    def worker() -> None:
        for _ in range(20):
            ticket = log.append()
            assert group.wait(ticket)
            returned.append((ticket, group.committed))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(returned) == 320 and all(committed >= ticket for ticket, committed in returned)
    assert len(log.committed) < 320 / 4  # commits were shared
    assert log.committed == sorted(log.committed)


def test_a_failed_commit_is_raised_and_the_next_one_covers_the_rows() -> None:
    log = FakeLog(fail_first=1)
    group = GroupCommit(log.flush)
    ticket = log.append()
    with pytest.raises(StoreError, match="disk said no"):
        group.wait(ticket)
    assert group.committed == 0
    assert group.wait(ticket) and group.committed >= ticket


def test_a_waiter_gives_up_after_its_timeout() -> None:
    started, release = threading.Event(), threading.Event()

    def slow_flush() -> int:
        started.set()
        release.wait(5)
        return 2

    group = GroupCommit(slow_flush)
    leader = threading.Thread(target=group.wait, args=(1,))
    leader.start()
    started.wait(5)
    assert group.wait(2, timeout_s=0.05) is False  # the leader's commit is still under way
    release.set()
    leader.join()
    assert group.committed == 2


def test_durable_duckdb_appends_from_many_threads_share_commits(tmp_path: Path) -> None:
    path = tmp_path / "durable.duckdb"
    with LogStore(path, durable=True) as store:
        def worker(start: int) -> None:
            for i in range(start, start + 10):
                store.add_decision(decision(i))
                store.add_result(record(i))

        threads = [threading.Thread(target=worker, args=(10 * k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.counts()["decisions"] == 160 and store.counts()["outcomes"] == 160
        assert store._group.commits < 320  # shared


def test_soon_commits_without_a_waiter_and_stops_at_close() -> None:
    log = FakeLog()
    group = GroupCommit(log.flush)
    ticket = log.append()
    group.soon(ticket)  # returns at once
    deadline = time.monotonic() + 5
    while group.committed < ticket and time.monotonic() < deadline:
        time.sleep(0.001)
    assert group.committed >= ticket and len(log.committed) == 1
    group.close()
    group.soon(log.append())  # after close: nothing runs it, and nothing hangs
    time.sleep(0.05)
    assert len(log.committed) == 1


def _committed_counts(store: LogStore) -> tuple[int, int]:
    """Decisions and outcomes on disk: committed in the file (seen from another connection) or in its
    journal's segments (read from disk as a new process would)."""
    other = store._con.cursor()
    try:
        other.execute("USE log")
        in_file = [{r[0] for r in other.execute(f"SELECT decision_id FROM {t}").fetchall()} for t in ("decisions", "outcomes")]
    finally:
        other.close()
    journaled = read_segments(segments(store.path))
    for ids, table in zip(in_file, ("decisions", "outcomes"), strict=True):
        if table in journaled:
            ids.update(journaled[table].column("decision_id").to_pylist())
    return len(in_file[0]), len(in_file[1])


def test_a_durable_outcome_is_acknowledged_only_with_its_decision_committed(tmp_path: Path) -> None:
    """The decision is not waited for before its call; the outcome's acknowledgement covers both, and
    a decision whose outcome has not come is committed shortly anyway (during its call)."""
    with LogStore(tmp_path / "durable.duckdb", durable=True, flush_interval_s=3600) as store:
        for i in range(20):
            store.add_decision(decision(i))
            store.add_result(record(i))
            decisions, outcomes = _committed_counts(store)
            assert decisions == outcomes == i + 1  # acknowledged: both on disk
        store.add_decision(decision(20))  # its call is under way: no outcome yet
        deadline = time.monotonic() + 5
        while _committed_counts(store)[0] < 21 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _committed_counts(store) == (21, 20)
