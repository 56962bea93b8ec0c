"""No lost rows and no hidden faults: a real SIGTERM/SIGHUP to a child process flushes its log (keeping
the host's own handler), and a real full filesystem (a small tmpfs, mounted as root) reports the real
error, keeps the rows, writes them once there is room, and never leaves half a request."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import duckdb
import pytest

from adaptroute import Router, StoreError

HELLO = [{"role": "user", "content": "hello"}]

CHILD = """
import os, signal, sys, time
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
{before}
from adaptroute import Router
router = Router(["gpt-4o-mini", "gpt-4o"], store={path!r}, flush_interval_s=3600, flush_rows=1_000_000)
{after}
for i in range({n}):
    router.complete([{{"role": "user", "content": f"q{{i}}"}}], mock_response="ok")
assert router.store.buffered_rows > 0  # nothing written yet: only a flush on the signal can save them
print("ready", flush=True)
time.sleep(60)
print("not stopped", flush=True)
"""

HOST_HANDLER = """
def host_handler(signum, frame):
    print("host handler ran", flush=True)
    sys.exit(0)
signal.signal(signal.{sig}, host_handler)
"""


def run_child(tmp_path: Path, sig: signal.Signals, before: str = "", after: str = "", n: int = 40) -> tuple[int, str, Path]:
    path = tmp_path / f"child-{uuid.uuid4().hex[:6]}.duckdb"
    code = CHILD.format(path=str(path), n=n, before=textwrap.dedent(before), after=textwrap.dedent(after))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "ready", line + child.stderr.read()
    child.send_signal(sig)
    out, err = child.communicate(timeout=60)
    return child.returncode, out + err, path


def counts(path: Path) -> tuple[int, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (con.execute("SELECT count(*) FROM decisions").fetchone()[0],  # type: ignore[index]
                con.execute("SELECT count(*) FROM outcomes").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


@pytest.mark.slow  # a child process imports litellm: ~10 s each
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_flushes_every_buffered_row_and_still_ends_the_process(tmp_path: Path, sig: signal.Signals) -> None:
    code, output, path = run_child(tmp_path, sig)
    assert code == -sig, output  # ended by the signal, as without adaptroute
    assert "not stopped" not in output
    assert counts(path) == (40, 40)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["before", "after"])
def test_the_host_applications_handler_is_kept(tmp_path: Path, where: str) -> None:
    handler = HOST_HANDLER.format(sig="SIGTERM")
    code, output, path = run_child(tmp_path, signal.SIGTERM, **{where: handler})
    assert "host handler ran" in output and code == 0, output  # the host decided how to stop
    assert counts(path) == (40, 40)  # flushed first (before), or at exit through atexit (after)


@pytest.mark.slow
def test_an_ignored_signal_stays_ignored(tmp_path: Path) -> None:
    before = "signal.signal(signal.SIGHUP, signal.SIG_IGN)"
    path = tmp_path / "ignored.duckdb"
    code = CHILD.format(path=str(path), n=3, before=before, after="").replace("time.sleep(60)", "time.sleep(1.5)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGHUP)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and "not stopped" in out, out + err


# -- a real full filesystem -----------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a filesystem that really fills up. Needs root (mount); skipped otherwise."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root on Linux")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the filesystem; deleting the returned file gives the room back."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        block = b"\0" * (1 << 16)
        try:
            while True:
                fh.write(block)
                fh.flush()
        except OSError:
            pass
    return filler


def wide_calls(router: Router, n: int) -> None:
    for i in range(n):
        router.complete([{"role": "user", "content": f"q{i} " + "x" * 3000}], mock_response="ok")


def test_full_disk_in_buffered_mode_reports_keeps_and_retries(small_disk: Path) -> None:
    path = small_disk / "log.duckdb"
    router = Router(["gpt-4o-mini", "gpt-4o"], store=str(path), flush_interval_s=0.2, store_prompts=True)
    wide_calls(router, 5)
    router.store.flush()
    filler = fill(small_disk)
    wide_calls(router, 300)  # every call still succeeds: the answers were paid for
    with pytest.raises(StoreError) as info:
        router.store.flush()
    assert "No space left" in str(info.value) and "cannot rollback" not in str(info.value)
    assert router.store.write_error is not None and router.store.buffered_rows > 0
    filler.unlink()  # room again: the next flush writes everything that was kept
    deadline = time.monotonic() + 10
    while router.store.write_error is not None or router.store.buffered_rows:
        assert time.monotonic() < deadline, "the kept rows were not written once there was room"
        time.sleep(0.1)
    router.close()
    assert counts(path) == (305, 305)


def test_full_disk_refuses_new_requests_past_the_bound_and_close_reports_the_rows(small_disk: Path) -> None:
    from adaptroute import LogStore

    path = small_disk / "bounded.duckdb"
    store = LogStore(path, flush_interval_s=0.2, max_unwritten_rows=60)
    router = Router(["gpt-4o-mini", "gpt-4o"], store=store, store_prompts=True)
    wide_calls(router, 2)
    store.flush()
    filler = fill(small_disk)
    wide_calls(router, 5)
    with pytest.raises(StoreError):
        store.flush()
    refused = 0
    for _ in range(100):
        try:
            wide_calls(router, 1)
        except StoreError as exc:
            assert "new requests are refused" in str(exc) and "No space left" in str(exc)
            refused += 1
    assert refused > 0 and store.buffered_rows <= 60 + 3
    with pytest.raises(StoreError) as info:
        store.close()
    assert "rows could not be written" in str(info.value) and "No space left" in str(info.value)
    filler.unlink()
    decisions, outcomes = counts(path)
    assert decisions == outcomes  # never half a request


def test_full_disk_in_durable_mode_logs_requests_whole_and_refuses_calls_once_failing(small_disk: Path) -> None:
    """A durable decision is committed during its call, with its outcome at the latest: the request
    under way when the disk fills is answered with the error after its call, and its rows stay buffered
    until there is room; once the log is known to fail, each decision waits for its own commit, so
    later requests fail before their call and leave nothing behind."""
    path = small_disk / "durable.duckdb"
    router = Router(["gpt-4o-mini", "gpt-4o"], store=str(path), durable=True, store_prompts=True)
    wide_calls(router, 3)
    store = router.store
    results_logged: list[str] = []  # add_result comes after the call: a call that was made
    real_add_result = store.add_result

    def add_result(record: Any, ts: float | None = None) -> None:
        results_logged.append(record.decision_id)
        real_add_result(record, ts)

    store.add_result = add_result  # type: ignore[method-assign]
    filler = fill(small_disk)
    failed = 0
    for _ in range(5):
        try:
            wide_calls(router, 1)
        except StoreError as exc:
            assert "No space left" in str(exc)
            failed += 1
    assert failed == 5
    assert len(results_logged) == 1  # only the first call was made: the log was not yet known to fail
    filler.unlink()
    wide_calls(router, 2)
    router.close()
    decisions, outcomes = counts(path)
    assert decisions == outcomes == 3 + 1 + 2  # the call that was made is logged whole; the refused left nothing
