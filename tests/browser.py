"""Headless Chromium for tests that look at a page as a person would (Debian's chromium package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:  # a fresh profile each time
        return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=True)


def dump_dom(url: str, timeout: float = 90) -> str:
    """The DOM after the page loaded, serialised as HTML."""
    return _run(["--virtual-time-budget=3000", "--dump-dom", url], timeout).stdout


def screenshot(url: str, path: Path, width: int = 1280, height: int = 1600, timeout: float = 90) -> Path:
    _run([f"--window-size={width},{height}", f"--screenshot={path}", url], timeout)
    return path
