"""Shared test setup: no network, litellm's bundled price table, the RouterBench rows from ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROUTERBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "routerbench"


@pytest.fixture(scope="session")
def routerbench_path() -> Path:
    if not (ROUTERBENCH / "SOURCE.md").exists():
        pytest.skip(f"RouterBench rows not found at {ROUTERBENCH} (they live in ../shared beside the repo in CI)")
    return ROUTERBENCH
