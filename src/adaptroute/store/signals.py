"""Flush the open logs when the process is told to stop.

SIGTERM is how docker, Kubernetes and systemd stop a process, and SIGHUP how a closed terminal does: by
default both end Python at once, without atexit, losing every buffered row. The first LogStore opened
in the main thread installs a handler for each of them that flushes every open log, then does what was
there before: the host application's own handler if it had installed one (it runs as before, so it is
never stolen), or the default (the logs are closed and the process ends by that same signal, so its exit
status is unchanged). A signal the host ignores stays ignored; a handler installed later replaces
this one (and atexit still flushes if it exits through Python). SIGINT already raises KeyboardInterrupt,
after which atexit closes the logs.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import weakref
from typing import Any, Protocol

__all__ = ["STOP_SIGNALS", "watch"]

log = logging.getLogger("adaptroute.store")

STOP_SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGHUP")
_FLUSH_TIMEOUT_S = 10.0  # a flush that cannot finish (a dead disk) must not keep the process alive


class _Flushable(Protocol):
    def flush(self) -> None: ...

    def close(self) -> None: ...


_stores: weakref.WeakSet[Any] = weakref.WeakSet()
_previous: dict[int, Any] = {}  # signal number -> the handler that was installed before ours
_lock = threading.Lock()


def watch(store: _Flushable) -> None:
    """Flush ``store`` on SIGTERM/SIGHUP (installing the handlers if this is the main thread)."""
    _stores.add(store)
    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal works only there; a later store opened in the main thread installs them
    with _lock:
        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None or signum in _previous:
                continue
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN or current is None:  # ignored by the host, or not set from Python
                continue
            signal.signal(signum, _on_stop)
            _previous[signum] = current


def _each_store(action: str) -> None:
    for store in list(_stores):
        try:
            getattr(store, action)()
        except Exception as exc:  # noqa: BLE001 - report and go on: the other logs still get flushed
            log.error("adaptroute: %s of the log %s on a stop signal failed: %s", action,
                      getattr(store, "path", "?"), exc)


def _run_bounded(action: str) -> None:
    # In a thread of its own: the signal may have interrupted this thread while it held a store's lock.
    worker = threading.Thread(target=_each_store, args=(action,), name="adaptroute-stop-flush", daemon=True)
    worker.start()
    worker.join(_FLUSH_TIMEOUT_S)


def _on_stop(signum: int, frame: Any) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):  # the host's handler: flush, then let it decide what stopping means
        _run_bounded("flush")
        previous(signum, frame)
        return
    _run_bounded("close")  # the default action ends the process: close the logs first
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
