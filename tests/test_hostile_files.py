"""Files a user hands in cannot make us crash or allocate without bound: deeply nested JSONL, policy
files declaring huge arrays or strings, featurizer descriptions asking for huge sizes, precision
matrices that are not positive definite; and per-call work stays flat however many tasks arrive."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from adaptroute import ConfigError, HashingFeaturizer, PolicyStateError, Router, load_policy, make_policy
from adaptroute.types import Outcome


@pytest.mark.parametrize("opener", ["[", '{"a": '])
def test_a_deeply_nested_jsonl_value_is_a_dataset_error_not_a_crash(tmp_path: Path, opener: str) -> None:
    depth = 200_000
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    path = tmp_path / "hostile.jsonl"
    good = '{"prompt_id": "p1", "task": "t", "model": "m", "quality": 1, "cost_usd": 0.1}'
    path.write_text(good + "\n" + '{"prompt_id": "p2", "task": "t", "model": "m", "quality": ' + nested + ', "cost_usd": 0.1}\n')
    code = (
        "import sys\nfrom adaptroute.datasets import load_dataset\nfrom adaptroute.errors import DatasetError\n"
        f"try:\n    load_dataset({str(path)!r})\nexcept DatasetError as exc:\n    print('DatasetError', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the process died ({done.returncode}): {done.stderr[-500:]}"  # a segfault is -11
    assert done.stdout.startswith("DatasetError") and "line 2" in done.stdout


def _npy(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """An .npy member that declares ``shape`` but holds no data (what a hostile file costs to write)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.npz"
    with Router(["gpt-4o-mini", "gpt-4o"], scorer=lambda m, r: 0.7) as router:
        for i in range(3):
            router.complete([{"role": "user", "content": f"q{i}"}], mock_response="ok")
        router.save_policy(str(path))
    return path


def _replace_member(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {i.filename: archive.read(i.filename) for i in archive.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)


@pytest.mark.parametrize("member,shape,dtype", [
    ("P.npy", (2, 1 << 21, 1 << 21), "<f8"),  # 64 TiB of features
    ("B.npy", (1 << 40,), "<f8"),
    ("header.npy", (), "<U25000000"),  # a 25 M character header
])
def test_a_policy_file_cannot_ask_for_huge_allocations(tmp_path: Path, member: str, shape: tuple[int, ...], dtype: str) -> None:
    path = _policy_file(tmp_path)
    _replace_member(path, member, _npy(shape, dtype))
    with pytest.raises(PolicyStateError, match="policy.npz"):
        load_policy(path)


def _edit_header(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    header = json.loads(str(arrays.pop("header")[()]))
    change(header, arrays)
    np.savez(path, header=np.array(json.dumps(header)), **arrays)


@pytest.mark.parametrize("field,value", [("max_chars", 25_000_000), ("n_features", 1 << 40), ("tasks", ["t"] * 100_000),
                                         ("ngram_scale", float("nan"))])
def test_a_policy_files_featurizer_cannot_ask_for_huge_sizes(tmp_path: Path, field: str, value: object) -> None:
    path = _policy_file(tmp_path)
    _edit_header(path, lambda header, arrays: header["metadata"]["featurizer"].__setitem__(field, value))
    with Router(["gpt-4o-mini", "gpt-4o"]) as router, pytest.raises(PolicyStateError, match="invalid policy file"):
        router.load_policy(str(path))
    with pytest.raises(ConfigError):
        HashingFeaturizer.from_dict({**HashingFeaturizer().to_dict(), field: value})


def test_a_precision_matrix_that_is_not_positive_definite_is_refused(tmp_path: Path) -> None:
    path = _policy_file(tmp_path)

    def negate(header: dict, arrays: dict) -> None:
        arrays["P"] = -arrays["P"]  # symmetric, finite, negative definite

    _edit_header(path, negate)
    with pytest.raises(PolicyStateError, match="not positive definite"):
        load_policy(path)


def test_per_call_work_does_not_grow_with_the_number_of_tasks() -> None:
    featurizer = HashingFeaturizer()
    policy = make_policy("thompson", seed=0)
    for model in ("a", "b"):
        policy.add_model(model)
    messages = [{"role": "user", "content": "hello there"}]
    dims = []
    for i in range(3000):
        x = featurizer.transform(messages, f"task-{i}")
        policy.update(x, "a" if i % 2 else "b", Outcome(0.5, 1e-4, 0.1))
        if i in (100, 2999):
            dims.append(featurizer.dim)
    bound = 1 + HashingFeaturizer.N_LENGTH + featurizer.n_features + featurizer.max_tasks + featurizer.task_buckets
    assert dims == [bound, bound] == [118, 118]
    assert policy._arms.P.shape[1] == bound  # every model's matrices stay 118 x 118
    # a task keeps its coordinate; the shared ones are stable and survive a save/load
    again = HashingFeaturizer.from_dict(json.loads(json.dumps(featurizer.to_dict())))
    for task in ("task-0", "task-63", "task-64", "task-2999", "never-seen"):
        assert np.array_equal(featurizer.transform(messages, task), again.transform(messages, task))
    assert featurizer.transform(messages, "task-0")[1 + 5 + 32] == 1.0  # the first task's own coordinate


def test_a_crafted_column_name_in_a_log_never_reaches_the_sql(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two copies of a log (so the duplicate check runs) whose decisions table has an extra column
    named like an SQL injection: only the schema's column names are used, the log reads whole."""
    import shutil

    import duckdb

    from adaptroute import Router, read_log

    path = tmp_path / "a.duckdb"
    with Router(["gpt-4o-mini", "gpt-4o"], store=str(path), seed=0) as router:
        for i in range(5):
            router.complete([{"role": "user", "content": f"x {i}"}], task="t", mock_response="ok")
    con = duckdb.connect(str(path))
    con.execute('ALTER TABLE decisions ADD COLUMN "x""); DROP TABLE outcomes; --" INTEGER')
    con.close()
    shutil.copy(path, tmp_path / "b.duckdb")
    batch = read_log(str(tmp_path / "*.duckdb"))
    assert len(batch.decision_ids) == 5  # the two copies read as one log
    con = duckdb.connect(str(path))
    assert con.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 5
    con.close()
