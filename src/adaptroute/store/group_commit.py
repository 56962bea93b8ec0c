"""Group commit for durable logs: concurrent writers share commits instead of paying one each.

Every append gets a ticket (the store's running row count after it). A durable append waits until
the rows through its ticket are committed. The first waiter that finds no commit under way becomes
the leader: it writes everything buffered so far in one transaction, while the others wait; when that
commit is done every waiter whose ticket it covered returns, and one of those still waiting leads the
next commit, which by then holds what arrived during the last one. With n concurrent requests a
commit carries about n rows, so throughput grows with concurrency while each row still returns only
once it is on disk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__: list[str] = []  # internal to adaptroute.store


class GroupCommit:
    """``flush()`` writes every buffered row and returns the ticket through which rows are committed."""

    __slots__ = ("_cond", "_committed", "_flush", "_leading", "_waiting", "commit_delay_s", "commits")

    def __init__(self, flush: Callable[[], int], commit_delay_s: float = 0.0005) -> None:
        self._flush = flush
        self._cond = threading.Condition(threading.Lock())
        self._committed = 0
        self._leading = False
        self._waiting = 0  # threads inside wait()
        # As PostgreSQL's commit_delay: a leader with company pauses this long before it takes the batch,
        # so that the requests its last commit released (still waking up) join this one instead of the
        # next: without it groups alternated between large and tiny.
        self.commit_delay_s = commit_delay_s
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

    def wait(self, ticket: int, timeout_s: float | None = None) -> bool:
        """Return once rows through ``ticket`` are committed (True), or False after ``timeout_s``.
        An error of the commit this thread leads is raised here; the rows stay buffered for the next."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        cond = self._cond
        with cond:
            self._waiting += 1
            try:
                return self._wait(ticket, deadline)
            finally:
                self._waiting -= 1

    def _wait(self, ticket: int, deadline: float | None) -> bool:
        cond = self._cond
        if True:
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
                    if company and self.commit_delay_s > 0:
                        time.sleep(self.commit_delay_s)
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
