"""What the log writer does when the disk refuses a write (full, read-only, gone).

The rows of a failed write are kept in memory and written again at the next flush (every
flush_interval_s); the real error is logged once when the trouble starts and again when it ends, and
raised by close() if rows still cannot be written. Memory stays bounded: once ``max_unwritten_rows``
rows wait to be written, new decisions are refused with a StoreError before their call is made
(requests already under way still get their outcome rows), so no request is half logged. A healthy log
never gets there (appends wait for the writer long before), so the bound bites only when writes fail,
including a disk that flaps between full and not.
"""

from __future__ import annotations

import logging
import threading

from ..errors import StoreError

__all__ = ["WriteHealth"]

log = logging.getLogger("adaptroute.store")


class WriteHealth:
    def __init__(self, path: str, max_unwritten_rows: int) -> None:
        self.path = path
        self.max_unwritten_rows = max_unwritten_rows
        self.error: BaseException | None = None  # the last write's error, None once a write succeeds
        self.failures = 0  # failed writes since the last success
        self.last_error: BaseException | None = None  # kept after a success: what the trouble was
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, kept_rows: int) -> None:
        with self._lock:
            first = self.error is None
            self.error = self.last_error = exc
            self.failures += 1
        if first:
            log.error("adaptroute: writing the log %s failed; %d rows kept in memory and retried: %s",
                      self.path, kept_rows, exc)

    def succeeded(self) -> None:
        if self.error is None:
            return
        with self._lock:
            failures, self.error, self.failures = self.failures, None, 0
        log.warning("adaptroute: the log %s is written again (after %d failed writes)", self.path, failures)

    def check_room(self, pending_rows: int) -> None:
        """Refuse a new request once the rows waiting to be written reached the bound."""
        if pending_rows >= self.max_unwritten_rows:
            error = self.error or self.last_error
            raise StoreError(
                f"the log {self.path} cannot be written ({error}); {pending_rows} rows are kept in memory "
                f"(at most max_unwritten_rows={self.max_unwritten_rows}): new requests are refused until a write succeeds"
            )

    def unwritten(self, rows: int, exc: BaseException) -> StoreError:
        return StoreError(f"closing the log {self.path}: {rows} rows could not be written: {exc}")
