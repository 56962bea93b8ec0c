"""Dataset importers: RouterBench's wide layout (real rows from ../shared), the long format in CSV, JSON
Lines and Parquet, load_dataset's dispatch and is_log_path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adaptroute.datasets import (
    FullInfoDataset,
    is_log_path,
    load_dataset,
    read_long,
    read_routerbench,
    write_long,
)
from adaptroute.datasets import longformat
from adaptroute.errors import DatasetError

FORMATS = ("csv", "jsonl", "parquet")
ROUTERBENCH_TASKS = {"arc-challenge", "mbpp", "winogrande"}


# -- helpers ----------------------------------------------------------------------------------------
def small(latency: bool = True, texts: bool = True) -> FullInfoDataset:
    """Three prompts x three models, models deliberately not in sorted order, awkward texts."""
    return FullInfoDataset(
        source="hand-made",
        prompt_ids=np.array(["p-2", "p-10", "p-1"], dtype=object),
        tasks=np.array(["extract", "code", "extract"], dtype=object),
        texts=('Say "hi", then stop.', "line one\nline two, with a comma", "ünïcödé ✓ and a tab\there") if texts else None,
        models=("gpt-4o", "claude-3-haiku", "a-small-model"),
        quality=np.array([[1.0, 0.5, 0.0], [0.25, 1.0, 0.125], [0.1, 0.2, 0.30000000000000004]]),
        cost_usd=np.array([[0.003, 0.00025, 1e-07], [0.0031, 0.0002, 0.0], [0.0123456789, 1.5e-05, 3.3e-06]]),
        latency_s=np.array([[1.5, 0.5, 0.25], [2.0, 0.75, 0.2], [1.25, 0.6, 0.3]]) if latency else None,
    )


def rows_of(data: FullInfoDataset) -> list[dict[str, object]]:
    """The long-format rows of ``data``, prompt by prompt, written out independently of write_long."""
    rows = []
    for i, pid in enumerate(data.prompt_ids):
        for j, model in enumerate(data.models):
            row: dict[str, object] = {
                "prompt_id": str(pid),
                "task": str(data.tasks[i]),
                "model": model,
                "quality": float(data.quality[i, j]),
                "cost_usd": float(data.cost_usd[i, j]),
            }
            if data.latency_s is not None:
                row["latency_s"] = float(data.latency_s[i, j])
            if data.texts is not None:
                row["prompt"] = data.texts[i]
            rows.append(row)
    return rows


def write_rows(rows: list[dict[str, object]], path: Path, columns: list[str] | None = None) -> Path:
    """Write rows by hand with the stdlib (CSV, JSON Lines) or pyarrow (Parquet)."""
    columns = columns or list(rows[0])
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows({c: ("" if r.get(c) is None else r.get(c)) for c in columns} for r in rows)
    elif path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({c: r[c] for c in columns if c in r}) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), path)
    return path


def assert_same(got: FullInfoDataset, want: FullInfoDataset) -> None:
    assert got.models == want.models
    assert [str(p) for p in got.prompt_ids] == [str(p) for p in want.prompt_ids]
    assert list(got.tasks) == list(want.tasks)
    assert got.texts == want.texts
    np.testing.assert_array_equal(got.quality, want.quality)  # exact: floats survive text formats bit for bit
    np.testing.assert_array_equal(got.cost_usd, want.cost_usd)
    if want.latency_s is None:
        assert got.latency_s is None
    else:
        np.testing.assert_array_equal(got.latency_s, want.latency_s)
    assert got.skipped == want.skipped


# -- RouterBench (real rows) --------------------------------------------------------------------------
def test_routerbench_folder_matches_source_figures(routerbench_path: Path) -> None:
    data = load_dataset(routerbench_path)
    assert len(data) == 3150
    assert data.skipped == 28
    assert len(data.models) == 11
    assert set(data.tasks) == ROUTERBENCH_TASKS
    assert len(set(data.prompt_ids)) == len(data)
    assert set(np.unique(data.quality)) <= {0.0, 1.0}
    assert data.latency_s is None  # RouterBench records no latency
    gpt4 = data.models.index("gpt-4-1106-preview")
    mistral = data.models.index("mistralai/mistral-7b-chat")
    # SOURCE.md: gpt-4-1106-preview 0.880 at $0.00502 a call; mistral-7b 0.584 at $0.000081.
    assert data.quality[:, gpt4].mean() == pytest.approx(0.880, abs=0.002)
    assert data.cost_usd[:, gpt4].mean() == pytest.approx(0.00502, rel=0.01)
    assert data.quality[:, mistral].mean() == pytest.approx(0.584, abs=0.002)
    assert data.cost_usd[:, mistral].mean() == pytest.approx(0.000081, rel=0.02)
    # The prompt column is a Python list literal in the file; the importer stores the text itself.
    assert data.texts is not None and not any(t.startswith("['") for t in data.texts[:50])


def test_routerbench_single_files_add_up_to_the_folder(routerbench_path: Path) -> None:
    files = sorted(routerbench_path.glob("*.csv"))
    assert len(files) == 6
    parts = [load_dataset(f) for f in files]  # a wide .csv is recognised by its header
    assert sum(len(p) for p in parts) == 3150
    assert sum(p.skipped for p in parts) == 28
    assert {t for p in parts for t in p.tasks} == ROUTERBENCH_TASKS
    assert all(p.models == parts[0].models for p in parts)


def test_routerbench_round_trips_through_the_long_format(routerbench_path: Path, tmp_path: Path) -> None:
    data = read_routerbench(routerbench_path)
    back = read_long(write_long(data, tmp_path / "routerbench.parquet"))
    assert_same(back, FullInfoDataset(**{**data.__dict__, "skipped": 0}))
    assert back.source == str(tmp_path / "routerbench.parquet")


# -- long format: round trips ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_hand_written_long_file_reads_back_identically(fmt: str, tmp_path: Path) -> None:
    want = small()
    path = write_rows(rows_of(want), tmp_path / f"long.{fmt}")
    assert_same(read_long(path), want)
    assert_same(load_dataset(path), want)
    assert_same(longformat._read(path, fmt, fast=False), want)  # the exact (stdlib) reader agrees


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("latency,texts", [(True, True), (False, True), (True, False), (False, False)], ids=["all", "no-latency", "no-text", "bare"])
def test_write_long_then_read_long(fmt: str, latency: bool, texts: bool, tmp_path: Path) -> None:
    want = small(latency=latency, texts=texts)
    path = write_long(want, tmp_path / f"out.{fmt}")
    assert_same(read_long(path), want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_prompts_and_models_keep_first_seen_order(fmt: str, tmp_path: Path) -> None:
    rows = [
        {"prompt_id": "b", "task": "t", "model": "zeta", "quality": 1.0, "cost_usd": 0.1},
        {"prompt_id": "a", "task": "t", "model": "alpha", "quality": 0.0, "cost_usd": 0.2},
        {"prompt_id": "a", "task": "t", "model": "zeta", "quality": 0.5, "cost_usd": 0.3},
        {"prompt_id": "b", "task": "t", "model": "alpha", "quality": 0.25, "cost_usd": 0.4},
    ]
    data = read_long(write_rows(rows, tmp_path / f"order.{fmt}"))
    assert data.models == ("zeta", "alpha")
    assert list(data.prompt_ids) == ["b", "a"]
    np.testing.assert_array_equal(data.quality, [[1.0, 0.25], [0.5, 0.0]])
    np.testing.assert_array_equal(data.cost_usd, [[0.1, 0.4], [0.3, 0.2]])


@pytest.mark.parametrize("fmt", FORMATS)
def test_incomplete_prompts_are_dropped_and_counted(fmt: str, tmp_path: Path) -> None:
    want = small()
    rows = rows_of(want)
    del rows[4]  # prompt p-10 loses its claude-3-haiku row
    del rows[0]  # prompt p-2 loses its gpt-4o row
    data = read_long(write_rows(rows, tmp_path / f"gaps.{fmt}"))
    assert data.skipped == 2
    assert list(data.prompt_ids) == ["p-1"]
    assert data.models == ("claude-3-haiku", "a-small-model", "gpt-4o")  # gpt-4o now first appears on p-10
    row = want.subset(np.array([2])).select_models(data.models)
    np.testing.assert_array_equal(data.quality, row.quality)
    np.testing.assert_array_equal(data.latency_s, row.latency_s)


def test_routerbench_wide_rows_with_an_empty_cell_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(
        ",sample_id,prompt,eval_name,m1,m2,m1|model_response,m2|model_response,m1|total_cost,m2|total_cost\n"
        "0,s1,\"['first prompt']\",t,1.0,0.0,a,b,0.1,0.01\n"
        "1,s2,\"['second prompt']\",t,0.0,,a,b,0.1,0.01\n"
        "2,s3,plain text,u,0.0,1.0,a,b,0.2,0.02\n",
        encoding="utf-8",
    )
    data = load_dataset(path)
    assert list(data.prompt_ids) == ["s1", "s3"] and data.skipped == 1
    assert data.texts == ("first prompt", "plain text")
    np.testing.assert_array_equal(data.cost_usd, [[0.1, 0.01], [0.2, 0.02]])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_prompt_incomplete_is_an_error(fmt: str, tmp_path: Path) -> None:
    rows = [
        {"prompt_id": "a", "task": "t", "model": "m1", "quality": 1.0, "cost_usd": 0.1},
        {"prompt_id": "b", "task": "t", "model": "m2", "quality": 1.0, "cost_usd": 0.1},
    ]
    with pytest.raises(DatasetError, match="no prompt has a row for every model"):
        read_long(write_rows(rows, tmp_path / f"none.{fmt}"))


# -- long format: lenient where it is safe ------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_text_may_be_given_on_one_row_of_a_prompt(fmt: str, tmp_path: Path) -> None:
    want = small()
    rows = rows_of(want)
    for r in rows:
        if r["model"] != "claude-3-haiku":
            r["prompt"] = None
    data = read_long(write_rows(rows, tmp_path / f"sparse-text.{fmt}"))
    assert data.texts == want.texts


@pytest.mark.parametrize("fmt", FORMATS)
def test_extra_columns_are_ignored(fmt: str, tmp_path: Path) -> None:
    want = small()
    rows = [{**r, "judge": "gpt-4o", "tokens_out": 12} for r in rows_of(want)]
    assert_same(read_long(write_rows(rows, tmp_path / f"extra.{fmt}")), want)


def test_jsonl_integer_ids_boolean_quality_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "typed.jsonl"
    path.write_text(
        '{"prompt_id": 7, "task": "t", "model": "a", "quality": true, "cost_usd": 0}\n'
        "\n"
        '{"prompt_id": 7, "task": "t", "model": "b", "quality": 0.5, "cost_usd": 1}\n'
        "   \n",
        encoding="utf-8",
    )
    data = read_long(path)
    assert list(data.prompt_ids) == ["7"]
    np.testing.assert_array_equal(data.quality, [[1.0, 0.5]])
    assert data.texts is None and data.latency_s is None


def test_csv_booleans_byte_order_mark_and_header_spaces(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffprompt_id, task ,model,quality,cost_usd\r\np1,t,a,True,0.5\r\np1,t,b,false,0.25\r\n\r\n".encode("utf-8")
    )
    data = read_long(path)
    assert data.models == ("a", "b")
    np.testing.assert_array_equal(data.quality, [[1.0, 0.0]])


def test_parquet_integer_ids_and_dictionary_columns(tmp_path: Path) -> None:
    table = pa.table(
        {
            "prompt_id": pa.array([1, 1, 2, 2], pa.int32()),
            "task": pa.array(["t", "t", "u", "u"]).dictionary_encode(),
            "model": pa.array(["a", "b", "a", "b"]).dictionary_encode(),
            "quality": pa.array([True, False, True, True]),
            "cost_usd": pa.array([1, 2, 3, 4], pa.int64()),
            "latency_s": pa.array([0.5, 0.25, 1.0, 2.0], pa.float32()),
        }
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    data = read_long(tmp_path / "typed.parquet")
    assert list(data.prompt_ids) == ["1", "2"] and list(data.tasks) == ["t", "u"]
    np.testing.assert_array_equal(data.quality, [[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(data.cost_usd, [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(data.latency_s, [[0.5, 0.25], [1.0, 2.0]])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_plain_files_take_the_pyarrow_path(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stdlib readers are the fallback (odd files, and error messages); a plain file never needs them."""
    want = small()
    path = write_rows(rows_of(want), tmp_path / f"plain.{fmt}")

    def refuse(path: Path) -> None:
        raise AssertionError("the exact reader was used")

    monkeypatch.setattr(longformat, "_read_csv", refuse)
    monkeypatch.setattr(longformat, "_read_jsonl", refuse)
    assert_same(read_long(path), want)


def test_format_can_be_forced_for_an_odd_suffix(tmp_path: Path) -> None:
    want = small()
    path = write_long(want, tmp_path / "data.txt", format="jsonl")
    assert_same(read_long(path, format="jsonl"), want)
    with pytest.raises(DatasetError, match="cannot tell the long format"):
        read_long(path)


# -- folders, dispatch, log paths ---------------------------------------------------------------------
WIDE_HEADER = ",sample_id,prompt,eval_name,{a},{b},{a}|total_cost,{b}|total_cost\n"


def test_folder_of_wide_csvs_aligns_model_columns(tmp_path: Path) -> None:
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "one.csv").write_text(WIDE_HEADER.format(a="m1", b="m2") + "0,s1,x,t,1,0,0.1,0.01\n", encoding="utf-8")
    (folder / "two.csv").write_text(WIDE_HEADER.format(a="m2", b="m1") + "0,s2,y,u,1,0,0.02,0.2\n", encoding="utf-8")
    data = load_dataset(folder)
    assert data.models == ("m1", "m2")
    assert list(data.prompt_ids) == ["s1", "s2"]
    np.testing.assert_array_equal(data.quality, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(data.cost_usd, [[0.1, 0.01], [0.2, 0.02]])


def test_folder_errors_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "bench"
    folder.mkdir()
    with pytest.raises(DatasetError, match="holds no .csv files"):
        load_dataset(folder)
    (folder / "one.csv").write_text(WIDE_HEADER.format(a="m1", b="m2") + "0,s1,x,t,1,0,0.1,0.01\n", encoding="utf-8")
    (folder / "two.csv").write_text("prompt_id,task,model,quality,cost_usd\np,t,m1,1,0.1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"two\.csv: missing column 'sample_id'"):
        load_dataset(folder)


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    want = small()
    for fmt in FORMATS:
        assert_same(load_dataset(write_long(want, tmp_path / f"d.{fmt}")), want)
    assert_same(load_dataset(write_long(want, tmp_path / "d.ndjson", format="jsonl")), want)
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(tmp_path / "missing.csv")
    (tmp_path / "d.xlsx").write_bytes(b"PK")
    with pytest.raises(DatasetError, match="unknown dataset format '.xlsx'"):
        load_dataset(tmp_path / "d.xlsx")
    (tmp_path / "log.duckdb").write_bytes(b"")
    with pytest.raises(DatasetError, match="adaptroute log"):
        load_dataset(tmp_path / "log.duckdb")


def test_load_dataset_refuses_pickles_unless_opted_in(tmp_path: Path) -> None:
    path = tmp_path / "routerbench.pkl"
    path.write_bytes(b"\x80\x04N.")  # a harmless pickle of None; it is never opened anyway
    with pytest.raises(DatasetError, match="allow_pickle=True"):
        load_dataset(path)


def test_is_log_path(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    (snapshot / "decisions.parquet").write_bytes(b"")
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("x\n")
    assert is_log_path(tmp_path / "routes.duckdb")  # need not exist yet
    assert is_log_path(str(tmp_path / "routes-*.duckdb"))
    assert is_log_path(snapshot)
    assert is_log_path(str(tmp_path / "sn*"))  # a glob of snapshot folders
    assert not is_log_path(other)
    assert not is_log_path(tmp_path / "data.csv")
    assert not is_log_path(str(tmp_path / "oth*"))
    assert not is_log_path(str(tmp_path / "nothing-*.parquet"))
