"""A real, throwaway PostgreSQL server for tests and benchmarks: initdb on a temporary directory, one
postmaster on 127.0.0.1 and a free port, stopped (and the directory removed) at the end.

Binaries come from the ``pgserver`` wheel (PostgreSQL 16 bundled) when it is installed, else from a
system installation (``pg_config --bindir``, Debian's /usr/lib/postgresql/<version>/bin). PostgreSQL
refuses to run as root, so under root the server runs as the ``postgres`` user (or ``nobody``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PostgresUnavailable", "TemporaryPostgres", "find_postgres_bin", "temporary_postgres"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or the server would not start (the reason is the message)."""


def find_postgres_bin() -> Path:
    """The folder holding initdb and postgres."""
    candidates: list[Path] = []
    import importlib.util

    spec = importlib.util.find_spec("pgserver")  # located, not imported: its import pulls in psutil and more
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")  # the wheel bundles PostgreSQL 16
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)  # type: ignore[arg-type]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    raise PostgresUnavailable("no PostgreSQL binaries: pip install pgserver, or apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to drop to when running as root, else None."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _runs_as(bin_dir: Path, user: tuple[int, int]) -> bool:
    def drop() -> None:
        os.setgid(user[1])
        os.setuid(user[0])

    try:
        done = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, preexec_fn=drop,
                              cwd="/", timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _reachable(bin_dir: Path, user: tuple[int, int]) -> Path:
    """``bin_dir`` if ``user`` can run it, else a copy of its installation where it can: a virtualenv
    under a folder only root may enter (/root) holds pgserver's binaries, which PostgreSQL run as
    another user cannot reach. PostgreSQL finds its lib/ and share/ relative to its binaries; the
    wheel's binaries find its bundled libraries in ../../../pgserver.libs, so the copy keeps that layout."""
    if _runs_as(bin_dir, user):
        return bin_dir
    install = bin_dir.parent  # .../pgserver/pginstall
    layout = [(install, Path(install.parent.name) / install.name)]
    bundled = install.parents[1] / "pgserver.libs"
    if bundled.is_dir():
        layout.append((bundled, Path(bundled.name)))
    target = Path(tempfile.gettempdir()) / f"adaptroute-pg-install-{user[0]}"
    copied_bin = target / layout[0][1] / "bin"
    if not _runs_as(copied_bin, user):
        staging = Path(tempfile.mkdtemp(prefix="adaptroute-pg-install-"))
        os.chmod(staging, 0o755)
        for source, relative in layout:
            shutil.copytree(source, staging / "copy" / relative, symlinks=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging / "copy", target)
        shutil.rmtree(staging, ignore_errors=True)
    if not _runs_as(copied_bin, user):
        raise PostgresUnavailable(f"PostgreSQL in {bin_dir} cannot be run as uid {user[0]}, even from a copy in {target}")
    return copied_bin


class TemporaryPostgres:
    """One server; ``url`` connects as superuser ``postgres`` (trust auth on loopback only)."""

    def __init__(self, bin_dir: Path | None = None, *, fsync: bool = True) -> None:
        self.bin_dir = bin_dir or find_postgres_bin()
        self.port = _free_port()
        self.fsync = fsync
        self.data_dir = Path(tempfile.mkdtemp(prefix="adaptroute-pg-"))
        self._user = _run_as()
        if self._user:
            self.bin_dir = _reachable(self.bin_dir, self._user)
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.data_dir / "server.log"
        if self._user:
            os.chown(self.data_dir, *self._user)
        self._initdb()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _preexec(self) -> None:
        if self._user:
            os.setgid(self._user[1])
            os.setuid(self._user[0])

    def _initdb(self) -> None:
        done = subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data_dir / "data"), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--no-locale"],
            capture_output=True, preexec_fn=self._preexec, cwd=self.data_dir, check=False, timeout=120,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the postmaster (again, after stop(): same directory, same port) and wait until it accepts."""
        if self._process is not None:
            return
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir / "data"), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", "", "-c", "max_connections=100", "-c", "shared_buffers=64MB",
                "-c", f"fsync={'on' if self.fsync else 'off'}"]
        log = open(self._log, "ab")  # noqa: SIM115 - the server writes it for its whole life
        if self._user:
            os.chown(self._log, *self._user)
        self._process = subprocess.Popen(args, stdout=log, stderr=log, preexec_fn=self._preexec, cwd=self.data_dir)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise PostgresUnavailable(f"postgres exited: {self._log.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self._accepts():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise PostgresUnavailable(f"postgres did not accept connections within {timeout_s} s")

    def _accepts(self) -> bool:
        try:
            import psycopg
        except ImportError:
            return True  # the port answers; nothing better to check with
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False  # "the database system is starting up"

    def stop(self, mode: str = "fast") -> None:
        """Stop the server ("fast": roll back and disconnect clients; "immediate": like a crash)."""
        process, self._process = self._process, None
        if process is None:
            return
        import signal

        process.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def temporary_postgres(*, fsync: bool = True) -> Iterator[TemporaryPostgres]:
    server = TemporaryPostgres(fsync=fsync)
    try:
        server.start()
        yield server
    finally:
        server.close()
