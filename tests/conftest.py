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


# -- a real PostgreSQL server (adaptroute.testing.postgres), started once per session -----------------
@pytest.fixture(scope="session")
def postgres_server():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[dev]' brings it)")
    from adaptroute.testing.postgres import PostgresUnavailable, TemporaryPostgres

    try:
        server = TemporaryPostgres()
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server could be started here: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(postgres_server, request):
    """A fresh, empty database on the session's server, dropped after the test."""
    import re
    import uuid

    import psycopg

    name = re.sub(r"[^a-z0-9_]", "_", f"t_{request.node.name.lower()}")[:40] + "_" + uuid.uuid4().hex[:8]
    with psycopg.connect(postgres_server.url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url.rsplit("/", 1)[0] + "/" + name
    if not postgres_server.running:  # a test stopped the server: bring it back for the drop
        postgres_server.start()
    with psycopg.connect(postgres_server.url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def router_log(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A closed router log of 150 mock requests over two tasks and three models with fixed pass rates."""
    import numpy as np

    from adaptroute import RewardWeights, Router

    path = tmp_path_factory.mktemp("log") / "routes.duckdb"
    rng = np.random.default_rng(7)
    rates = {"gpt-4o-mini": 0.7, "gpt-4o": 0.9, "gpt-4.1-nano": 0.4}
    router = Router(models=list(rates), reward=RewardWeights(quality=1, cost=500), store=str(path), seed=1,
                    scorer=lambda messages, response, model: float(rng.random() < rates[model]))
    for i in range(150):
        router.complete([{"role": "user", "content": f"question {i}"}], task="qa" if i % 3 else "code", mock_response="ok")
    router.close()
    return path
