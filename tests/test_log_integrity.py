"""A log cannot double-count or lie: decisions repeated across snapshots or copies are read once (or
refused when the copies disagree), impossible values are refused naming file, table, column and row,
and broken files raise typed errors, never DuckDB's, Arrow's or NumPy's own."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from adaptroute import ConfigError, LogIntegrityError, Router, StoreError, read_log
from adaptroute.replay.report import report


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-decision log with two periodic snapshots of it (after 100 and after 200 requests)."""
    d = tmp_path_factory.mktemp("integrity")
    router = Router(["gpt-4o-mini", "gpt-4o"], store=str(d / "a.duckdb"), scorer=lambda m, r: 0.8, seed=3)
    for i in range(100):
        router.complete([{"role": "user", "content": f"q{i}"}], task="t", mock_response="ok")
    router.store.export_parquet(d / "snaps" / "s1")
    for i in range(100):
        router.complete([{"role": "user", "content": f"q{i}"}], task="u", mock_response="ok")
    router.feedback(router.store.query("SELECT min(decision_id) FROM decisions")[0][0], 0.1)
    router.store.export_parquet(d / "snaps" / "s2")
    router.close()
    return d / "a.duckdb"


def test_snapshots_and_copies_are_merged_not_multiplied(log: Path, tmp_path: Path) -> None:
    snaps = log.parent / "snaps"
    assert len(read_log(log)) == 200
    assert len(read_log(f"{snaps}/*")) == 200  # was 300: the first snapshot's rows counted twice
    shutil.copy(log, tmp_path / "a.duckdb")
    shutil.copy(log, tmp_path / "b.duckdb")
    both = read_log(f"{tmp_path}/*.duckdb")
    assert len(both) == 200 and len(both.observations) == len(read_log(log).observations)
    reports = report(both)
    assert reports["all"].requests == 200 and reports["t"].requests == 100  # was 4x: ids fanned out in the join


def test_an_incremental_snapshot_adds_only_its_rows(log: Path, tmp_path: Path) -> None:
    """Snapshot parts that overlap (the second repeats some of the first) read as their union."""
    out = tmp_path / "inc"
    out.mkdir()
    for table in ("decisions", "attempts", "outcomes", "feedback"):
        data = pq.read_table(log.parent / "snaps" / "s2" / f"{table}.parquet")
        half = data.num_rows // 2
        pq.write_table(data.slice(0, half + 10), out / f"{table}-0001.parquet")
        pq.write_table(data.slice(half), out / f"{table}-0002.parquet")
    assert len(read_log(out)) == 200


def test_conflicting_copies_of_a_decision_are_refused(log: Path, tmp_path: Path) -> None:
    shutil.copy(log, tmp_path / "a.duckdb")
    shutil.copy(log, tmp_path / "b.duckdb")
    con = duckdb.connect(str(tmp_path / "b.duckdb"))
    con.execute("UPDATE outcomes SET cost_usd = cost_usd * 2 WHERE decision_id = (SELECT min(decision_id) FROM outcomes)")
    con.close()
    with pytest.raises(LogIntegrityError, match=r"a\.duckdb and .*b\.duckdb, table outcomes.*different values") as info:
        read_log(f"{tmp_path}/*.duckdb")
    assert info.value.table == "outcomes" and info.value.decision_id


def corrupted(log: Path, tmp_path: Path, *statements: str) -> Path:
    path = tmp_path / "bad.duckdb"
    shutil.copy(log, path)
    con = duckdb.connect(str(path))
    for statement in statements:
        con.execute(statement)
    con.close()
    return path


ONE = "WHERE decision_id = (SELECT min(decision_id) FROM {t})"
BAD_VALUES = {
    "quality-above-1": ("UPDATE outcomes SET quality = 5.0 " + ONE.format(t="outcomes"), "outcomes", "quality"),
    "negative-cost": ("UPDATE attempts SET cost_usd = -0.01 " + ONE.format(t="attempts"), "attempts", "cost_usd"),
    "nan-latency": ("UPDATE outcomes SET latency_s = 'nan'::DOUBLE " + ONE.format(t="outcomes"), "outcomes", "latency_s"),
    "chosen-not-eligible": ("UPDATE decisions SET chosen = 'gpt-5-imaginary' " + ONE.format(t="decisions"), "decisions", "chosen"),
    "probabilities-wrong-length": ("UPDATE decisions SET probabilities = [1.0] " + ONE.format(t="decisions"), "decisions", "probabilities"),
    "probabilities-not-summing": ("UPDATE decisions SET probabilities = [0.9, 0.9] " + ONE.format(t="decisions"), "decisions", "probabilities"),
    "tiny-propensity": ("UPDATE decisions SET propensity = 1e-300 " + ONE.format(t="decisions"), "decisions", "propensity"),
    "propensity-not-its-probability": ("UPDATE decisions SET propensity = 0.999 " + ONE.format(t="decisions"), "decisions", "propensity"),
    "feedback-out-of-range": ("UPDATE feedback SET quality = -3", "feedback", "quality"),
    "nan-feature": ("UPDATE decisions SET features = list_transform(features, lambda v: 'nan'::FLOAT) " + ONE.format(t="decisions"), "decisions", "features"),
    "negative-weight": ("UPDATE decisions SET weight_cost = -5 " + ONE.format(t="decisions"), "decisions", "weight_cost"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_impossible_values_are_refused_with_their_location(log: Path, tmp_path: Path, case: str) -> None:
    statement, table, column = BAD_VALUES[case]
    path = corrupted(log, tmp_path, statement)
    with pytest.raises(LogIntegrityError) as info:
        read_log(path)
    error = info.value
    assert (error.source, error.table, error.column) == (str(path), table, column), str(error)
    assert error.row is not None and f"row {error.row}" in str(error) and str(path) in str(error)
    # the same file as a snapshot, or next to a good copy: the same error, naming the bad file
    shutil.copy(log, tmp_path / "good.duckdb")
    with pytest.raises(LogIntegrityError) as again:
        read_log(f"{tmp_path}/*.duckdb")
    assert again.value.source == str(path) and again.value.column == column


BROKEN_FILES = {
    "dropped-column": ("ALTER TABLE outcomes DROP COLUMN cost_usd", "column cost_usd: the column is missing"),
    "dropped-table": ("DROP TABLE attempts", "table attempts: the table is missing"),
    "wrong-column-type": ("ALTER TABLE outcomes ALTER quality TYPE VARCHAR", "column quality: has type string"),
    "list-as-text": ("ALTER TABLE decisions ALTER features TYPE VARCHAR", "column features: has type string"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_broken_tables_are_typed_errors_naming_where(log: Path, tmp_path: Path, case: str) -> None:
    statement, message = BROKEN_FILES[case]
    path = corrupted(log, tmp_path, statement)
    with pytest.raises(LogIntegrityError, match=message):
        read_log(path)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.02])
def test_a_truncated_file_is_a_store_error(log: Path, tmp_path: Path, cut: float) -> None:
    data = log.read_bytes()
    path = tmp_path / "cut.duckdb"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(StoreError, match="cut.duckdb"):
        read_log(path)


def test_a_truncated_or_retyped_snapshot_is_a_typed_error(log: Path, tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    shutil.copytree(log.parent / "snaps" / "s2", snap)
    table = pq.read_table(snap / "outcomes.parquet")
    pq.write_table(table.drop_columns(["quality"]), snap / "outcomes.parquet")
    with pytest.raises(LogIntegrityError, match="outcomes.parquet, table outcomes, column quality"):
        read_log(snap)
    data = (log.parent / "snaps" / "s2" / "decisions.parquet").read_bytes()
    (snap / "decisions.parquet").write_bytes(data[: len(data) // 3])
    with pytest.raises(LogIntegrityError, match="decisions.parquet.*cannot be read"):
        read_log(snap)


@pytest.mark.parametrize("threshold", [float("nan"), -0.1, 1.5, float("inf")])
def test_report_refuses_an_impossible_pass_threshold(log: Path, threshold: float) -> None:
    with pytest.raises(ConfigError, match="pass_threshold"):
        report(read_log(log), pass_threshold=threshold)


def test_incremental_exports_add_up_to_the_log(tmp_path: Path) -> None:
    router = Router(["gpt-4o-mini", "gpt-4o"], store=str(tmp_path / "live.duckdb"), scorer=lambda m, r: 0.6)
    snaps = tmp_path / "parts"
    sizes = []
    for batch in range(3):
        for i in range(40):
            router.complete([{"role": "user", "content": f"b{batch} q{i}"}], mock_response="ok")
        router.store.export_parquet(snaps, incremental=True)
        sizes.append(pq.read_metadata(sorted(snaps.glob("decisions-*.parquet"))[-1]).num_rows)
        assert len(read_log(snaps)) == 40 * (batch + 1)
    assert sizes == [40, 40, 40]  # each part holds only the new rows
    router.store.export_parquet(snaps)  # a full snapshot beside the parts: still read once
    assert len(read_log(snaps)) == 120
    router.close()


def test_an_eligible_list_naming_a_model_twice_is_refused(log: Path, tmp_path: Path) -> None:
    path = corrupted(log, tmp_path, "UPDATE decisions SET eligible = [chosen, chosen], probabilities = [propensity, 1 - propensity] "
                     + ONE.format(t="decisions"))
    with pytest.raises(LogIntegrityError, match="column eligible, row .*names a model twice") as info:
        read_log(path)
    assert info.value.row is not None
