"""The reward weights each decision was made under are logged with it, read back by read_log, carried
through an explicit migration of older logs, and are what replay scores a candidate under by default."""

from __future__ import annotations

import json
import math
import re

import duckdb
import numpy as np
import pytest

from adaptroute import LogStore, RewardWeights, Router, SchemaVersionError, read_log
from adaptroute.cli import main
from adaptroute.config import RewardWeights as Weights
from adaptroute.reward import logged_weights
from adaptroute.store import SCHEMA_VERSION, migrate_log
from adaptroute.store.schema import MIGRATIONS, WEIGHT_COLUMNS
from adaptroute.types import WEIGHT_NAMES

MODELS = ["gpt-4o-mini", "gpt-4o"]


def _route(router: Router, n: int, offset: int = 0) -> list[str]:
    ids = []
    for i in range(n):
        resp = router.complete([{"role": "user", "content": f"total of invoice {offset + i}?"}], task="extract",
                               mock_response="42")
        router.feedback(resp.adaptroute.decision_id, quality=0.5 + 0.1 * (i % 5))
        ids.append(resp.adaptroute.decision_id)
    return ids


def test_weight_names_are_the_reward_weights_fields() -> None:
    assert tuple(Weights.model_fields) == WEIGHT_NAMES
    assert len(WEIGHT_COLUMNS) == len(WEIGHT_NAMES)


def test_each_decision_logs_the_weights_it_was_made_under(tmp_path) -> None:
    path = tmp_path / "routes.duckdb"
    first, second = RewardWeights(quality=1, cost=50, latency=0.1), RewardWeights(quality=2, cost=400, failure=0.5)
    with Router(MODELS, reward=first, store=str(path), seed=1) as router:
        early = _route(router, 4)
        router.reward = second
        late = _route(router, 3, offset=4)
    batch = read_log(path)
    assert batch.weights is not None and batch.weights.shape == (7, len(WEIGHT_NAMES))
    by_id = dict(zip(batch.decision_ids, batch.weights, strict=True))
    for did in early:
        assert tuple(by_id[did]) == (1.0, 50.0, 0.1, 0.25)
    for did in late:
        assert tuple(by_id[did]) == (2.0, 400.0, 0.0, 0.5)
    latest, distinct = logged_weights(batch)
    assert latest == second and distinct == 2


def test_live_store_and_parquet_snapshot_carry_the_weights(tmp_path) -> None:
    weights = RewardWeights(quality=1, cost=123)
    with Router(MODELS, reward=weights, store=str(tmp_path / "live.duckdb")) as router:
        _route(router, 3)
        live = read_log(router.store)
        snapshot = router.store.export_parquet(tmp_path / "snap")
    assert logged_weights(live) == (weights, 1)
    assert logged_weights(read_log(snapshot)) == (weights, 1)


def _make_version_1_log(path) -> None:
    """A log as adaptroute wrote it before the weights were logged (schema version 1)."""
    with Router(MODELS, store=str(path), seed=2) as router:
        _route(router, 5)
    con = duckdb.connect(str(path))
    for steps in MIGRATIONS.values():  # every column added since version 1 (the weights, and later ones)
        for statement in steps:
            table, column = re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", statement).groups()  # type: ignore[union-attr]
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()


def test_an_older_log_is_read_as_is_and_migrated_explicitly(tmp_path) -> None:
    path = tmp_path / "old.duckdb"
    _make_version_1_log(path)

    old = read_log(path)  # readable without migrating: the weights are "not logged"
    assert len(old) == 5 and np.isnan(old.weights).all()
    assert logged_weights(old) == (None, 0)

    with pytest.raises(SchemaVersionError, match=r"version '1'.*adaptroute migrate"):
        LogStore(path)  # appending rows without their weights would be a silent gap: refused, with the fix

    assert migrate_log(path) == (1, SCHEMA_VERSION)
    assert migrate_log(path) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent
    with Router(MODELS, reward=RewardWeights(cost=10), store=str(path), seed=3) as router:
        _route(router, 2, offset=10)
    batch = read_log(path)
    assert len(batch) == 7
    assert np.isnan(batch.weights).all(axis=1).sum() == 5  # the rows written before: still "not logged"
    assert logged_weights(batch) == (RewardWeights(cost=10), 1)


def test_migrate_cli(tmp_path, capsys) -> None:
    path = tmp_path / "old.duckdb"
    _make_version_1_log(path)
    assert main(["migrate", str(path)]) == 0
    assert f"version 1 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["migrate", str(tmp_path / "missing.duckdb")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_replay_defaults_to_the_logged_weights(tmp_path, capsys) -> None:
    path = tmp_path / "routes.duckdb"
    weights = RewardWeights(quality=1, cost=300, latency=0.05)
    with Router(MODELS, reward=weights, store=str(path), seed=4) as router:
        _route(router, 30)
    assert main(["replay", str(path), "--json", "--bootstrap", "20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weights_source"] == "logged"
    assert out["weights"] == weights.model_dump()

    assert main(["replay", str(path), "--json", "--bootstrap", "20", "--weights", "quality=1,cost=7"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert given["weights_source"] == "given" and math.isclose(given["weights"]["cost"], 7.0)
