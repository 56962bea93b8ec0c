"""Bad input, table-driven: every row is an input, the typed error it must raise, a fragment of the
message, and the check that nothing was written (log row counts, files on disk, the router's policy).

The rows that end in a library defect are marked xfail(strict=True) with the reason; see the report.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import hashlib
import json
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from long_files import write_rows

from adaptroute import LogStore, ModelSpec, RewardWeights, Router, load_policy, read_log
from adaptroute.store import SCHEMA_VERSION
from adaptroute.datasets import load_dataset, read_long, read_routerbench
from adaptroute.errors import (
    AdaptRouteError,
    ConfigError,
    DatasetError,
    InvalidMessagesError,
    InvalidQualityError,
    PolicyStateError,
    SchemaVersionError,
    StoreError,
    UnknownDecisionError,
    UnknownPriceError,
)

MODELS = ["gpt-4o-mini", "gpt-4o"]
HELLO = [{"role": "user", "content": "hello"}]
NAN, INF = float("nan"), float("inf")
LOG = "log.duckdb"  # the router's own log in each test's folder


# -- the environment each row runs in -----------------------------------------------------------------
class Env:
    """A test folder, and a router on a log file there, made on first use."""

    def __init__(self, tmp: Path, router_kwargs: dict[str, Any]) -> None:
        self.tmp = tmp
        self.router_kwargs = router_kwargs
        self._router: Router | None = None
        self._decision: str | None = None
        self.files: dict[str, Path] = {}

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = Router(models=MODELS, store=str(self.tmp / LOG), **self.router_kwargs)
        return self._router

    def decision(self) -> str:
        """The id of a decision already in the log (a finished call)."""
        if self._decision is None:
            self._decision = self.router.complete(HELLO, mock_response="hi").adaptroute.decision_id
        return self._decision

    def path(self, name: str) -> Path:
        return self.tmp / name

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "files": {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.tmp.rglob("*"))
                if p.is_file() and not p.name.startswith(LOG) and p.name != "adaptroute.key"  # the log's key file
            }
        }
        if self._router is not None:
            state["rows"] = self._router.store.counts()
            state["policy"] = (id(self._router.policy), self._router.policy.version)
            state["featurizer"] = id(self._router._featurizer)
        return state

    def close(self) -> None:
        if self._router is not None:
            self._router.close()


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Env], object]
    error: type[BaseException]
    match: str  # a regular expression searched in str(error)
    setup: Callable[[Env], object] | None = None
    router: dict[str, Any] = field(default_factory=dict)  # Router keyword arguments (scorer, ...)
    writes: dict[str, int] = field(default_factory=dict)  # expected new log rows; every other table: none
    typed: bool = True  # the error must be an AdaptRouteError
    check: Callable[[Env], None] | None = None
    xfail: str | None = None

    def param(self) -> Any:
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.id, marks=marks)


def complete(messages: Any, **kwargs: Any) -> Callable[[Env], object]:
    return lambda env: env.router.complete(messages, mock_response="hi", **kwargs)


# -- files the rows read -----------------------------------------------------------------------------
def write_policy(env: Env, name: str = "policy.npz", trained: bool = True) -> Path:
    """A genuine policy file (trained on a few scored calls, so its arrays are not empty)."""
    with Router(models=MODELS, store=":memory:", scorer=lambda m, r: 0.75) as source:
        for i in range(3 if trained else 0):
            source.complete([{"role": "user", "content": f"question {i}"}], mock_response="answer")
        source.save_policy(str(env.path(name)))
    return env.path(name)


def rewrite_policy(
    env: Env, header: Callable[[dict[str, Any]], Any] | None = None, arrays: Callable[[dict[str, np.ndarray]], None] | None = None
) -> Path:
    """A genuine policy file, then its JSON header and/or arrays edited in place."""
    path = write_policy(env)
    with np.load(path) as data:
        content = {k: data[k] for k in data.files}
    if header is not None:
        content["header"] = np.array(json.dumps(header(json.loads(str(content["header"][()])))))
    if arrays is not None:
        arrays(content)
    with path.open("wb") as fh:
        np.savez(fh, **content)
    return path


class Marker:
    """Unpickling this creates a file: proof that code from a file ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def hostile_npz(env: Env) -> Path:
    path = env.path("hostile.npz")
    arrays = {"header": np.array(json.dumps({"format": "adaptroute.policy"})), "P": np.array([Marker(env.path("pwned"))], dtype=object)}
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    return path


def no_marker(env: Env) -> None:
    assert not env.path("pwned").exists(), "code from a file ran"


def log_with_schema(env: Env, version: str | None) -> Path:
    path = env.path("old.duckdb")
    LogStore(path).close()
    con = duckdb.connect(str(path))
    if version is None:
        con.execute("DELETE FROM meta WHERE key = 'schema_version'")
    else:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version])
    con.close()
    return path


def foreign_duckdb(env: Env) -> Path:
    path = env.path("other.duckdb")
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (id INTEGER, amount DOUBLE)")
    con.execute("INSERT INTO sales VALUES (1, 9.5)")
    con.close()
    return path


def tables_of(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall())
    finally:
        con.close()


# -- long-format files --------------------------------------------------------------------------------
LONG_COLUMNS = ["prompt_id", "task", "model", "quality", "cost_usd", "latency_s", "prompt"]


def long_rows() -> list[dict[str, Any]]:
    """Two prompts x two models; data rows 1..4."""
    return [
        {"prompt_id": "p1", "task": "t", "model": "m1", "quality": 1.0, "cost_usd": 0.1, "latency_s": 0.5, "prompt": "first"},
        {"prompt_id": "p1", "task": "t", "model": "m2", "quality": 0.0, "cost_usd": 0.01, "latency_s": 0.25, "prompt": "first"},
        {"prompt_id": "p2", "task": "t", "model": "m1", "quality": 0.5, "cost_usd": 0.2, "latency_s": 1.5, "prompt": "second"},
        {"prompt_id": "p2", "task": "t", "model": "m2", "quality": 1.0, "cost_usd": 0.02, "latency_s": 0.75, "prompt": "second"},
    ]


def long_file(name: str, *, row: int | None = None, drop: str | None = None, append: dict[str, Any] | None = None, **changes: Any) -> Callable[[Env], Path]:
    """Setup: the good long-format rows with ``changes`` on data row ``row`` (1-based), or a column dropped."""

    def make(env: Env) -> Path:
        rows = long_rows()
        if row is not None:
            rows[row - 1].update(changes)
        if append is not None:
            rows.append({**rows[-1], **append})
        columns = [c for c in LONG_COLUMNS if c != drop]
        env.files["data"] = write_rows(env.path(name), rows, columns, omit_missing=True)
        return env.files["data"]

    return make


def read_data(env: Env) -> object:
    return read_long(env.files["data"])


def load_data(env: Env) -> object:
    return load_dataset(env.files["data"])


def at(fmt: str, row: int, column: str | None = None) -> str:
    """Where a message must point: file, row (and line for CSV, or line for JSON Lines), column."""
    place = {"csv": f"row {row} \\(line {row + 1}\\)", "jsonl": f"line {row}", "parquet": f"row {row}"}[fmt]
    return rf"bad\.{fmt}, {place}" + (f", column '{column}'" if column else "")


def long_cases() -> list[Case]:
    cases: list[Case] = []
    for fmt in ("csv", "jsonl", "parquet"):
        name = f"bad.{fmt}"
        type_row = 1 if fmt == "parquet" else 2  # Parquet: the whole column has the wrong type
        missing = rf"bad\.{fmt}, line 1: missing column 'quality'" if fmt == "jsonl" else rf"bad\.{fmt}: missing column 'quality'"
        null_task = {"csv": "empty value", "jsonl": "None is not a string", "parquet": r"missing value \(null\)"}[fmt]
        table = [
            ("missing-column", long_file(name, drop="quality"), missing),
            ("quality-not-a-number", long_file(name, row=2, quality="good"), at(fmt, type_row, "quality") + ": '.*' is not a number"),
            ("cost-not-a-number", long_file(name, row=2, cost_usd="cheap"), at(fmt, type_row, "cost_usd") + ": '.*' is not a number"),
            ("quality-above-1", long_file(name, row=3, quality=1.5), at(fmt, 3, "quality") + r": quality 1\.5 is outside \[0, 1\]"),
            ("quality-below-0", long_file(name, row=4, quality=-0.25), at(fmt, 4, "quality") + r": quality -0\.25 is outside"),
            ("quality-nan", long_file(name, row=2, quality=NAN), at(fmt, 2, "quality") + ": nan is not finite"),
            ("cost-negative", long_file(name, row=2, cost_usd=-0.01), at(fmt, 2, "cost_usd") + r": negative cost -0\.01"),
            ("cost-inf", long_file(name, row=4, cost_usd=INF), at(fmt, 4, "cost_usd") + ": inf is not finite"),
            ("latency-negative", long_file(name, row=4, latency_s=-1.0), at(fmt, 4, "latency_s") + r": negative latency -1\.0"),
            ("latency-nan", long_file(name, row=1, latency_s=NAN), at(fmt, 1, "latency_s") + ": nan is not finite"),
            ("latency-on-some-rows", long_file(name, row=3, latency_s=None), at(fmt, 3, "latency_s") + ": empty, but .* has a latency"),
            ("duplicate-row", long_file(name, append={"quality": 0.5}), at(fmt, 5) + ", columns 'prompt_id' and 'model': duplicate row for prompt 'p2' and model 'm2'"),
            ("two-tasks", long_file(name, row=2, task="other"), at(fmt, 2, "task") + ": prompt 'p1' has task 'other' here but 't'"),
            ("two-texts", long_file(name, row=4, prompt="changed"), at(fmt, 4, "prompt") + ": prompt 'p2' has a different text"),
            ("empty-prompt-id", long_file(name, row=3, prompt_id=""), at(fmt, 3, "prompt_id") + ": empty value"),
            ("null-task", long_file(name, row=2, task=None), at(fmt, 2, "task") + ": " + null_task),
        ]
        cases += [Case(f"long-{fmt}-{case_id}", read_data, DatasetError, match, setup=setup) for case_id, setup, match in table]

    def raw(name: str, content: bytes) -> Callable[[Env], Path]:
        def make(env: Env) -> Path:
            env.files["data"] = env.path(name)
            env.files["data"].write_bytes(content)
            return env.files["data"]

        return make

    header = b"prompt_id,task,model,quality,cost_usd\n"
    good_line = json.dumps(long_rows()[0]).encode()
    parquet_bytes = _parquet_bytes()
    cases += [
        Case("long-csv-ragged-row", read_data, DatasetError, r"bad\.csv, row 2 \(line 3\): 4 fields, the header has 5",
             setup=raw("bad.csv", header + b"p1,t,m1,1,0.1\np1,t,m2,1\n")),
        Case("long-csv-empty-cell", read_data, DatasetError, r"bad\.csv, row 1 \(line 2\), column 'quality': empty value",
             setup=raw("bad.csv", header + b"p1,t,m1,,0.1\n")),
        Case("long-csv-empty-file", read_data, DatasetError, r"bad\.csv: empty file", setup=raw("bad.csv", b"")),
        Case("long-csv-header-only", read_data, DatasetError, r"bad\.csv: no data rows", setup=raw("bad.csv", header)),
        Case("long-csv-not-utf8", read_data, DatasetError, r"bad\.csv: cannot read as CSV \(UnicodeDecodeError",
             setup=raw("bad.csv", header + b"p1,t,m\xff\xfe,1,0.1\n")),
        Case("long-csv-multiline-text-counts-lines", read_data, DatasetError, r"bad\.csv, row 2 \(line 4\), column 'cost_usd': negative cost",
             setup=raw("bad.csv", b"prompt_id,task,model,quality,cost_usd,prompt\np1,t,m1,1,0.1,\"two\nlines\"\np1,t,m2,1,-1,\n")),
        Case("long-jsonl-broken-line", read_data, DatasetError, r"bad\.jsonl, line 2: not valid JSON",
             setup=raw("bad.jsonl", good_line + b"\n" + good_line[:-5] + b"\n")),
        Case("long-jsonl-not-an-object", read_data, DatasetError, r"bad\.jsonl, line 1: expected a JSON object, got list",
             setup=raw("bad.jsonl", b"[1, 2]\n")),
        Case("long-jsonl-quality-as-string", read_data, DatasetError, r"bad\.jsonl, line 1, column 'quality': '0\.5' is not a number",
             setup=raw("bad.jsonl", json.dumps({**long_rows()[0], "quality": "0.5"}).encode())),
        Case("long-jsonl-cost-as-boolean", read_data, DatasetError, r"bad\.jsonl, line 1, column 'cost_usd': True is not a number",
             setup=raw("bad.jsonl", json.dumps({**long_rows()[0], "cost_usd": True}).encode())),
        Case("long-jsonl-huge-number", read_data, DatasetError, r"bad\.jsonl, line 1, column 'quality': .* is not finite",
             setup=raw("bad.jsonl", json.dumps({**long_rows()[0], "quality": 10**400}).encode())),
        Case("long-parquet-not-parquet", read_data, DatasetError, r"bad\.parquet: cannot read as Parquet",
             setup=raw("bad.parquet", header + b"p1,t,m1,1,0.1\n")),
        Case("long-parquet-truncated", read_data, DatasetError, r"bad\.parquet: cannot read as Parquet",
             setup=raw("bad.parquet", parquet_bytes[: len(parquet_bytes) // 2])),
        Case("long-parquet-float-ids", read_data, DatasetError, r"bad\.parquet, row 1, column 'prompt_id': 1\.5 is not a string",
             setup=lambda env: _parquet(env, prompt_id=[1.5, 1.5])),
        Case("load-dataset-unknown-suffix", load_data, DatasetError, r"unknown dataset format '\.xlsx'", setup=raw("bad.xlsx", b"PK\x03\x04")),
        Case("load-dataset-missing-file", lambda env: load_dataset(env.path("nowhere.csv")), DatasetError, r"nowhere\.csv: no such file"),
        Case("load-dataset-long-csv", load_data, DatasetError, r"bad\.csv, row 2 \(line 3\), column 'quality': quality 2\.0 is outside",
             setup=long_file("bad.csv", row=2, quality=2.0)),
    ]
    return cases


def _parquet_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(long_rows()), sink)
    return sink.getvalue().to_pybytes()


def _parquet(env: Env, **columns: list[Any]) -> Path:
    base = {"prompt_id": ["p", "p"], "task": ["t", "t"], "model": ["a", "b"], "quality": [1.0, 0.0], "cost_usd": [0.1, 0.2]}
    env.files["data"] = env.path("bad.parquet")
    pq.write_table(pa.table({**base, **columns}), env.files["data"])
    return env.files["data"]


# -- RouterBench's wide layout ------------------------------------------------------------------------
WIDE = ",sample_id,prompt,eval_name,m1,m2,m1|model_response,m2|model_response,m1|total_cost,m2|total_cost\n"
WIDE_ROWS = ["0,s1,\"['first']\",t,1.0,0.0,a,b,0.1,0.01", "1,s2,\"['second']\",t,0.0,1.0,a,b,0.1,0.01"]


def wide_file(rows: list[str] | None = None, header: str = WIDE, name: str = "wide.csv", folder: str | None = None) -> Callable[[Env], Path]:
    def make(env: Env) -> Path:
        base = env.path(folder) if folder else env.tmp
        base.mkdir(exist_ok=True)
        if folder:
            (base / "a-good.csv").write_text(WIDE + "\n".join(WIDE_ROWS) + "\n", encoding="utf-8")
        path = base / name
        path.write_text(header + "\n".join(WIDE_ROWS if rows is None else rows) + "\n", encoding="utf-8")
        env.files["data"] = base if folder else path
        return path

    return make


def hostile_pickle(env: Env) -> Path:
    env.files["data"] = env.path("routerbench.pkl")
    env.files["data"].write_bytes(pickle.dumps(Marker(env.path("pwned"))))
    return env.files["data"]


def wide_cases() -> list[Case]:
    s1, s2 = WIDE_ROWS
    return [
        Case("wide-missing-eval-name", load_data, DatasetError, r"wide\.csv: missing column 'eval_name'",
             setup=wide_file(header=WIDE.replace(",eval_name", ""), rows=[r.replace(",t,", ",", 1) for r in WIDE_ROWS])),
        Case("wide-no-cost-columns", lambda env: read_routerbench(env.files["data"]), DatasetError, r"wide\.csv: no '<model>\|total_cost' columns",
             setup=wide_file(header=",sample_id,prompt,eval_name,m1\n", rows=["0,s1,x,t,1.0"])),
        Case("wide-cost-without-correctness", load_data, DatasetError, r"wide\.csv: cost column for 'm2' but no correctness column",
             setup=wide_file(header=",sample_id,prompt,eval_name,m1,m1|total_cost,m2|total_cost\n", rows=["0,s1,x,t,1.0,0.1,0.2"])),
        Case("wide-correctness-not-a-number", load_data, DatasetError, r"wide\.csv, row 3, column 'm2': 'yes' is not a number",
             setup=wide_file(rows=[s1, s2.replace("0.0,1.0,a", "0.0,yes,a")])),
        Case("wide-quality-above-1", load_data, DatasetError, r"wide\.csv, row 2, column 'm1': quality 2\.0 is outside \[0, 1\]",
             setup=wide_file(rows=[s1.replace("t,1.0,", "t,2.0,"), s2])),
        Case("wide-negative-cost", load_data, DatasetError, r"wide\.csv, row 3, column 'm1\|total_cost': negative cost -0\.1",
             setup=wide_file(rows=[s1, s2.replace("a,b,0.1", "a,b,-0.1")])),
        Case("wide-infinite-cost", load_data, DatasetError, r"wide\.csv, row 2, column 'm2\|total_cost': 'inf' is not finite",
             setup=wide_file(rows=[s1.replace("0.1,0.01", "0.1,inf"), s2])),
        Case("wide-duplicate-sample-id", load_data, DatasetError, r"wide\.csv, row 3, column 'sample_id': duplicate sample_id 's1' \(first at row 2\)",
             setup=wide_file(rows=[s1, s2.replace(",s2,", ",s1,")])),
        Case("wide-ragged-row", load_data, DatasetError, r"wide\.csv, row 3: 3 fields, header has 10",
             setup=wide_file(rows=[s1, "1,s2,x"])),
        Case("wide-folder-names-the-bad-file", load_data, DatasetError, r"b-bad\.csv, row 2, column 'm1\|total_cost': negative cost",
             setup=wide_file(rows=[s1.replace("a,b,0.1", "a,b,-0.5")], name="b-bad.csv", folder="bench")),
        Case("wide-pickle-refused-without-opt-in", load_data, DatasetError, r"routerbench\.pkl: a pickle runs code .* allow_pickle=True",
             setup=hostile_pickle, check=no_marker),
    ]


# -- the table ----------------------------------------------------------------------------------------
def feedback_of(quality: Any) -> Callable[[Env], object]:
    return lambda env: env.router.feedback(env.decision(), quality)


CASES: list[Case] = [
    # messages
    Case("messages-empty", complete([]), InvalidMessagesError, "messages is empty"),
    Case("messages-a-string", complete("hello"), InvalidMessagesError, "messages must be a list .* got str"),
    Case("messages-a-dict", complete({"role": "user", "content": "hi"}), InvalidMessagesError, "must be a list .* got dict"),
    Case("messages-none", complete(None), InvalidMessagesError, "got NoneType"),
    Case("message-not-a-dict", complete(["hello"]), InvalidMessagesError, r"messages\[0\] is a str, expected a dict"),
    Case("message-without-role", complete([{"content": "hi"}]), InvalidMessagesError, r"messages\[0\] has role None"),
    Case("message-without-content", complete([{"role": "user"}]), InvalidMessagesError, r"messages\[0\] \(user\) has no content"),
    Case("message-bad-role", complete([{"role": "bot", "content": "hi"}]), InvalidMessagesError, r"messages\[0\] has role 'bot'; expected one of"),
    Case("message-content-an-int", complete([{"role": "user", "content": 5}]), InvalidMessagesError, r"messages\[0\]\.content is a int"),
    Case("message-part-without-type", complete([{"role": "user", "content": [{"text": "hi"}]}]), InvalidMessagesError, r"content\[0\] must be a dict with a 'type'"),
    Case("messages-empty-async", lambda env: asyncio.run(env.router.acomplete([], mock_response="hi")), InvalidMessagesError, "messages is empty"),
    Case("recommend-messages-empty", lambda env: env.router.recommend([]), InvalidMessagesError, "messages is empty"),
    Case("task-empty", complete(HELLO, task=""), ConfigError, "task must be a non-empty string"),
    Case("task-not-a-string", complete(HELLO, task=3), ConfigError, "task must be a non-empty string"),
    Case("model-passed-per-call", complete(HELLO, model="gpt-4o"), ConfigError, r"pass models to Router\(models=\.\.\.\)"),
    # the model list and router settings (nothing is created: not even the log file)
    Case("model-without-price", lambda env: Router(models=["gpt-4o", "no-such-model-xyz"], store=str(env.path("r.duckdb"))),
         UnknownPriceError, r"no price known for 'no-such-model-xyz'", check=lambda env: None if not env.path("r.duckdb").exists() else pytest.fail("log created")),
    Case("model-spec-without-price", lambda env: Router(models=[ModelSpec(name="mine", litellm_model="openai/mine")]), UnknownPriceError, r"no price known for 'mine' \(litellm model 'openai/mine'\)"),
    Case("models-duplicate", lambda env: Router(models=["gpt-4o", "gpt-4o"]), ConfigError, r"duplicate model names: \['gpt-4o'\]"),
    Case("models-empty", lambda env: Router(models=[]), ConfigError, "non-empty list"),
    Case("models-a-string", lambda env: Router(models="gpt-4o"), ConfigError, "non-empty list"),
    Case("models-not-names", lambda env: Router(models=[3]), ConfigError, "expected a model name or ModelSpec, got int"),
    Case("setting-timeout-zero", lambda env: Router(models=MODELS, timeout_s=0), ConfigError, "timeout_s must be a finite number > 0"),
    Case("setting-unknown", lambda env: Router(models=MODELS, bogus=1), ConfigError, "bogus"),
    Case("policy-unknown", lambda env: Router(models=MODELS, policy="nope"), ConfigError, "unknown policy 'nope'"),
    Case("scorer-not-callable", lambda env: Router(models=MODELS, scorer=3), ConfigError, "scorer must be callable"),
    Case("reward-a-dict", lambda env: Router(models=MODELS, reward={"quality": 1}), ConfigError, "reward must be a RewardWeights"),
    Case("reward-set-to-a-string", lambda env: setattr(env.router, "reward", "cheap"), ConfigError, "reward must be a RewardWeights"),
    # reward weights: the constructor raises pydantic's ValidationError (a ValueError); parse() a ConfigError
    Case("weights-negative", lambda env: RewardWeights(quality=-1), ValueError, r"must be a finite number >= 0, got -1", typed=False),
    Case("weights-nan", lambda env: RewardWeights(cost=NAN), ValueError, "must be a finite number >= 0, got nan", typed=False),
    Case("weights-inf", lambda env: RewardWeights(latency=INF), ValueError, "must be a finite number >= 0, got inf", typed=False),
    Case("weights-all-zero", lambda env: RewardWeights(quality=0, cost=0, latency=0), ValueError, "all zero", typed=False),
    Case("weights-not-a-number", lambda env: RewardWeights(quality="lots"), ValueError, "valid number", typed=False),
    Case("model-spec-negative-price", lambda env: ModelSpec(name="m", input_cost_per_token=-1), ValueError, "must be a finite number >= 0", typed=False),
    Case("weights-parse-negative", lambda env: RewardWeights.parse("quality=-1"), ConfigError, "must be a finite number >= 0, got -1"),
    Case("weights-parse-nan", lambda env: RewardWeights.parse("quality=1,cost=nan"), ConfigError, "got nan"),
    Case("weights-parse-inf", lambda env: RewardWeights.parse("latency=inf"), ConfigError, "got inf"),
    Case("weights-parse-all-zero", lambda env: RewardWeights.parse("quality=0,cost=0"), ConfigError, "all zero"),
    Case("weights-parse-not-a-number", lambda env: RewardWeights.parse("cost=cheap"), ConfigError, "cost='cheap' is not a number"),
    Case("weights-parse-no-equals", lambda env: RewardWeights.parse("quality"), ConfigError, "expected name=value"),
    Case("weights-parse-unknown-name", lambda env: RewardWeights.parse("speed=1"), ConfigError, "speed"),
    # quality from a scorer: the answer is returned with quality unknown (tests/test_failure_handling.py)
    # quality from feedback(): nothing is written
    *[
        Case(f"feedback-quality-{name}", feedback_of(value), InvalidQualityError, rf"feedback\(\) gave quality {pattern}", setup=Env.decision)
        for name, value, pattern in [("above-1", 1.5, r"1\.5"), ("below-0", -0.1, r"-0\.1"), ("nan", NAN, "nan"), ("inf", INF, "inf"), ("a-word", "high", "'high'"), ("none", None, "None")]
    ],
    Case("feedback-unknown-decision", lambda env: env.router.feedback("no-such-decision", 0.5), UnknownDecisionError,
         "no decision 'no-such-decision' in the log", setup=Env.decision),
    Case("feedback-empty-decision-id", lambda env: env.router.feedback("", 0.5), UnknownDecisionError, "must be a non-empty string", setup=Env.decision),
    Case("feedback-source-too-long", lambda env: env.router.feedback(env.decision(), 0.5, source="x" * 500), ConfigError, "source must be a string", setup=Env.decision),
    # policy files: refused, and the router keeps the policy it had
    Case("policy-corrupt", lambda env: env.router.load_policy(str(env.path("p.npz"))), PolicyStateError, "not a readable adaptroute policy file",
         setup=lambda env: env.path("p.npz").write_bytes(b"this is not a policy" * 50)),
    Case("policy-empty-file", lambda env: env.router.load_policy(str(env.path("p.npz"))), PolicyStateError, "not a readable adaptroute policy file",
         setup=lambda env: env.path("p.npz").write_bytes(b"")),
    Case("policy-missing-file", lambda env: env.router.load_policy(str(env.path("none.npz"))), PolicyStateError, "FileNotFoundError"),
    Case("policy-truncated-half", lambda env: env.router.load_policy(str(env.path("policy.npz"))), PolicyStateError, "not a readable adaptroute policy file",
         setup=lambda env: (p := write_policy(env)).write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
    Case("policy-truncated-last-bytes", lambda env: env.router.load_policy(str(env.path("policy.npz"))), PolicyStateError, "not a readable adaptroute policy file",
         setup=lambda env: (p := write_policy(env)).write_bytes(p.read_bytes()[:-7])),
    Case("policy-bytes-flipped", lambda env: env.router.load_policy(str(env.path("policy.npz"))), PolicyStateError, r"policy\.npz",
         setup=lambda env: (p := write_policy(env)).write_bytes(_flip(p.read_bytes()))),
    Case("policy-pickled-object-array", lambda env: env.router.load_policy(str(env.path("hostile.npz"))), PolicyStateError, "allow_pickle=False",
         setup=hostile_npz, check=no_marker),
    Case("policy-pickled-object-array-load_policy", lambda env: load_policy(env.path("hostile.npz")), PolicyStateError, "allow_pickle=False",
         setup=hostile_npz, check=no_marker),
    Case("policy-foreign-format", lambda env: env.router.load_policy(str(env.path("policy.npz"))), PolicyStateError, "missing or foreign header",
         setup=lambda env: rewrite_policy(env, lambda h: {**h, "format": "sklearn.pipeline"})),
    Case("policy-header-not-an-object", lambda env: load_policy(env.path("policy.npz")), PolicyStateError, "missing or foreign header",
         setup=lambda env: rewrite_policy(env, lambda h: ["adaptroute.policy"])),
    Case("policy-header-not-json", lambda env: load_policy(env.path("policy.npz")), PolicyStateError, "JSONDecodeError",
         setup=lambda env: rewrite_policy(env, arrays=lambda a: a.update(header=np.array("{not json")))),
    Case("policy-newer-format-version", lambda env: env.router.load_policy(str(env.path("policy.npz"))), PolicyStateError, "format version 99",
         setup=lambda env: rewrite_policy(env, lambda h: {**h, "format_version": 99})),
    Case("policy-unknown-policy-class", lambda env: load_policy(env.path("policy.npz")), PolicyStateError, "unknown policy 'os.system'",
         setup=lambda env: rewrite_policy(env, lambda h: {**h, "policy": "os.system"})),
    Case("policy-bad-weights", lambda env: load_policy(env.path("policy.npz")), PolicyStateError, "bad parameters",
         setup=lambda env: rewrite_policy(env, lambda h: {**h, "weights": {"quality": -1}})),
    Case("policy-unexpected-parameter", lambda env: load_policy(env.path("policy.npz")), PolicyStateError, "bad parameters",
         setup=lambda env: rewrite_policy(env, lambda h: {**h, "params": {**h["params"], "exec": "print(1)"}})),
    Case("policy-nan-statistics", lambda env: env.router.load_policy(str(env.path("policy.npz"))), PolicyStateError, "holds NaN or infinite values",
         setup=lambda env: rewrite_policy(env, arrays=lambda a: a.update(B=np.full_like(a["B"], np.nan)))),
    Case("policy-wrong-array-shape", lambda env: load_policy(env.path("policy.npz")), PolicyStateError, "array n has shape",
         setup=lambda env: rewrite_policy(env, arrays=lambda a: a.update(n=np.zeros(7)))),
    Case("policy-featurizer-not-an-object", lambda env: env.router.load_policy(str(env.path("policy.npz"))), PolicyStateError, r"policy\.npz",
         setup=lambda env: rewrite_policy(env, lambda h: {**h, "metadata": {"featurizer": "hashing"}})),
    Case("policy-featurizer-incomplete", lambda env: env.router.load_policy(str(env.path("policy.npz"))), PolicyStateError, r"policy\.npz",
         setup=lambda env: rewrite_policy(env, lambda h: {**h, "metadata": {"featurizer": {"kind": "hashing"}}})),
    # log files
    Case("log-other-schema-version", lambda env: LogStore(env.path("old.duckdb")), SchemaVersionError,
         r"old\.duckdb has log schema version '99'; this adaptroute writes version " + str(SCHEMA_VERSION), setup=lambda env: log_with_schema(env, "99")),
    Case("log-other-schema-version-router", lambda env: Router(models=MODELS, store=str(env.path("old.duckdb"))), SchemaVersionError,
         "schema version '99'", setup=lambda env: log_with_schema(env, "99")),
    Case("log-other-schema-version-read_log", lambda env: read_log(env.path("old.duckdb")), SchemaVersionError,
         "schema version 99; this adaptroute reads versions 1 to " + str(SCHEMA_VERSION), setup=lambda env: log_with_schema(env, "99")),
    Case("log-no-schema-version", lambda env: LogStore(env.path("old.duckdb")), SchemaVersionError, "schema version None",
         setup=lambda env: log_with_schema(env, None)),
    Case("log-foreign-duckdb", lambda env: LogStore(env.path("other.duckdb")), SchemaVersionError,
         r"other\.duckdb is a DuckDB file but not an adaptroute log", setup=foreign_duckdb,
         check=lambda env: None if tables_of(env.path("other.duckdb")) == ["sales"] else pytest.fail("tables were added")),
    Case("log-foreign-duckdb-read_log", lambda env: read_log(env.path("other.duckdb")), SchemaVersionError, "not an adaptroute log", setup=foreign_duckdb),
    Case("log-not-duckdb-at-all", lambda env: LogStore(env.path("notes.duckdb")), StoreError, "not a valid DuckDB database file",
         setup=lambda env: env.path("notes.duckdb").write_text("just some notes\n" * 20)),
    Case("log-missing-read_log", lambda env: read_log(env.path("absent.duckdb")), StoreError, "does not exist"),
    Case("log-glob-matches-nothing", lambda env: read_log(str(env.path("routes-*.duckdb"))), StoreError, "no log matches"),
    *long_cases(),
    *wide_cases(),
]


def _flip(data: bytes) -> bytes:
    """Flip bytes in the middle of the first array's data: the zip's CRC check must catch it."""
    out = bytearray(data)
    for i in range(len(out) // 3, len(out) // 3 + 16):
        out[i] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    env = Env(tmp_path, case.router)
    try:
        if case.setup is not None:
            case.setup(env)
        before = env.snapshot()
        with pytest.raises(case.error) as info:
            case.run(env)
        message = str(info.value)
        assert re.search(case.match, message), f"{case.match!r} not in {message!r}"
        if case.typed:
            assert isinstance(info.value, AdaptRouteError), f"untyped {type(info.value).__name__}: {message}"
        after = env.snapshot()
        assert after["files"] == before["files"], "a file changed"
        if "rows" in after:
            rows_before = before.get("rows", dict.fromkeys(after["rows"], 0))
            added = {t: after["rows"][t] - rows_before[t] for t in after["rows"]}
            assert added == {t: case.writes.get(t, 0) for t in added}, f"log rows added: {added}"
        if "policy" in before:
            assert after["policy"] == before["policy"] and after["featurizer"] == before["featurizer"], "the router's policy changed"
        if case.check is not None:
            case.check(env)
        if env._router is not None and not case.router:  # the router still works after refusing the input
            env.router.complete(HELLO, mock_response="still fine")
    finally:
        env.close()


# -- the defects above, as plain statements -------------------------------------------------------

def test_reward_weights_constructor_raises_a_typed_error() -> None:
    with pytest.raises(AdaptRouteError):
        RewardWeights(quality=-1)


def test_model_spec_constructor_raises_a_typed_error() -> None:
    with pytest.raises(AdaptRouteError):
        ModelSpec(name="m", input_cost_per_token=-1)
