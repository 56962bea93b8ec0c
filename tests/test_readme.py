"""Every python and sh code block of the README runs as written, in order, in one fresh folder.

Python blocks run as scripts of their own (each must be complete, as a reader copies it); sh blocks run
under bash with the installed `adaptroute` command on PATH. Not run: the quickstart's `make demo` /
`make test` (the suite itself and the demo) and blocks whose first line says "# not run by
tests/test_readme.py: <reason>" (the reason shows as the skip reason).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```(python|sh)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_SKIP = re.compile(r"^# not run by tests/test_readme\.py: (.+)$")
_MAKE_ONLY = re.compile(r"^make (demo|test)\b")


def _blocks() -> list[tuple[str, str, str | None]]:
    out = []
    for match in _BLOCK.finditer(README.read_text(encoding="utf-8")):
        language, code = match.groups()
        first = code.splitlines()[0] if code.strip() else ""
        skip = _SKIP.match(first)
        lines = [line for line in code.splitlines() if line.strip()]
        reason = skip.group(1) if skip else None
        if reason is None and lines and all(_MAKE_ONLY.match(line) for line in lines):
            reason = "the quickstart's make targets are the demo and this suite themselves"
        out.append((language, code, reason))
    return out


BLOCKS = _blocks()


def test_the_readme_has_runnable_blocks() -> None:
    runnable = [b for b in BLOCKS if b[2] is None]
    assert sum(b[0] == "python" for b in runnable) >= 3 and sum(b[0] == "sh" for b in runnable) >= 1
    assert len(BLOCKS) - len(runnable) <= 3, "skipping is for blocks that install, or start long jobs"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(README.parent / "examples", folder / "examples")  # as in a checkout: the README names them
    return folder


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # this test's own setting: litellm's bundled price table
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.slow
@pytest.mark.parametrize(("index", "language"), [(i, b[0]) for i, b in enumerate(BLOCKS)],
                         ids=[f"block{i}-{b[0]}" for i, b in enumerate(BLOCKS)])
def test_readme_block_runs(index: int, language: str, workdir: Path) -> None:
    _, code, reason = BLOCKS[index]
    if reason is not None:
        pytest.skip(reason)
    script = workdir / f"block{index}.{'py' if language == 'python' else 'sh'}"
    script.write_text(code, encoding="utf-8")
    command = [sys.executable, str(script)] if language == "python" else ["bash", "-euo", "pipefail", str(script)]
    done = subprocess.run(command, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README block {index} ({language}) failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
