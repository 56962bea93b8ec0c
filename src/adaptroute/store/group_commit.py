"""Group commit for durable logs: concurrent writers share commits instead of paying one each.

Every append gets a ticket (the store's running row count after it). A durable append waits until
the rows through its ticket are committed. The first waiter that finds no commit under way becomes
the leader: it writes everything buffered so far in one transaction, while the others wait; when that
commit is done every waiter whose ticket it covered returns, and one of those still waiting leads the
next commit, which by then holds what arrived during the last one. With n concurrent requests a
commit carries about n rows, so throughput grows with concurrency while each row still returns only
once it is on disk.

``soon(ticket)`` asks for rows to be committed without waiting for it: a durable decision is appended
before its call and committed during the call, by a commit that a waiter leads anyway under load, else
by a background thread that leads one after ``soon_delay_s`` (the request's own outcome, appended right
after a fast call, is then in that commit too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__: list[str] = []  # internal to adaptroute.store


class GroupCommit:
    """``flush()`` writes every buffered row and returns the ticket through which rows are committed."""

    __slots__ = ("_arrivals", "_closed", "_cond", "_committed", "_flush", "_leading", "_soon", "_soon_thread", "_wanted",
                 "_waiting", "commit_delay_s", "commits", "max_commit_delay_s", "soon_delay_s")

    def __init__(self, flush: Callable[[], int], commit_delay_s: float = 0.0005, max_commit_delay_s: float = 0.002,
                 soon_delay_s: float = 0.001) -> None:
        self._flush = flush
        self._cond = threading.Condition(threading.Lock())
        self._committed = 0
        self._leading = False
        self._waiting = 0  # threads inside wait()
        self._wanted = 0  # the highest ticket asked for by soon()
        self._soon = threading.Condition(threading.Lock())  # wakes the thread that serves soon()
        self._soon_thread: threading.Thread | None = None
        self._closed = False
        self.soon_delay_s = soon_delay_s
        self._arrivals = 0  # calls of wait() so far: a leader gathering a group watches it (see _gather)
        self.commit_delay_s = commit_delay_s
        self.max_commit_delay_s = max_commit_delay_s
        self.commits = 0  # transactions this object led (for benchmarks: rows per commit)

    @property
    def committed(self) -> int:
        return self._committed

    def advance(self, ticket: int) -> None:
        """Rows through ``ticket`` were committed by another path (a background flush)."""
        with self._cond:
            if ticket > self._committed:
                self._committed = ticket
                self._cond.notify_all()

    def soon(self, ticket: int) -> None:
        """Have rows through ``ticket`` committed shortly, without waiting for it."""
        with self._soon:
            if self._closed or ticket <= self._wanted:
                return
            self._wanted = ticket
            if self._soon_thread is None:
                self._soon_thread = threading.Thread(target=self._serve_soon, name="adaptroute-log-commit", daemon=True)
                self._soon_thread.start()
            self._soon.notify()

    def _serve_soon(self) -> None:
        failures = 0
        while True:
            with self._soon:
                self._soon.wait_for(lambda: self._closed or self._wanted > self._committed)
                if self._closed:
                    return
                wanted = self._wanted
            time.sleep(self.soon_delay_s if not failures else min(1.0, 0.05 * 2**failures))
            try:
                self.wait(wanted)  # joins a commit under way, or leads one
                failures = 0
            except Exception:  # noqa: BLE001 - the store records the error; the rows stay buffered
                failures = min(failures + 1, 5)

    def close(self) -> None:
        """Stop the thread serving soon() (rows it was asked for stay buffered for the store's close)."""
        with self._soon:
            self._closed = True
            self._soon.notify()
            thread = self._soon_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def wait(self, ticket: int, timeout_s: float | None = None) -> bool:
        """Return once rows through ``ticket`` are committed (True), or False after ``timeout_s``.
        An error of the commit this thread leads is raised here; the rows stay buffered for the next."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        cond = self._cond
        with cond:
            self._waiting += 1
            self._arrivals += 1
            try:
                return self._wait(ticket, deadline)
            finally:
                self._waiting -= 1

    def _wait(self, ticket: int, deadline: float | None) -> bool:
        cond = self._cond
        while self._committed < ticket:
            if self._leading:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                cond.wait(remaining)
                continue
            self._leading = True
            company = self._waiting > 1
            cond.release()
            try:
                if company:
                    self._gather()
                through = self._flush()
            except BaseException:
                cond.acquire()
                self._leading = False
                cond.notify_all()  # another waiter may lead the next attempt
                raise
            cond.acquire()
            self._leading = False
            self.commits += 1
            if through > self._committed:
                self._committed = through
            cond.notify_all()
        return True

    def _gather(self) -> None:
        """As PostgreSQL's commit_delay: a leader with company pauses before it takes the batch, so that
        the requests its last commit released (still waking up, appending their next rows) join this
        commit instead of the next; it pauses again while waiters keep arriving, up to
        ``max_commit_delay_s``. Without it, groups alternated between large and small."""
        if self.commit_delay_s <= 0:
            return
        started = time.monotonic()
        arrivals = self._arrivals
        time.sleep(self.commit_delay_s)
        while self._arrivals != arrivals and time.monotonic() - started < self.max_commit_delay_s:
            arrivals = self._arrivals
            time.sleep(self.commit_delay_s)
