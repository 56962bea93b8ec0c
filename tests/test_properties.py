"""Property tests (hypothesis): the long-format importer and the reward function.

Importer: random valid tables read back as an independent pivot says they should (CSV, JSON Lines and
Parquet; the pyarrow fast path and the stdlib reader alike); random corruptions of the bytes or of one
cell raise DatasetError and nothing else. Reward: the scalar and vectorised forms agree, reward is
monotone in each component, and scales linearly with the weights.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from long_files import write_rows

from adaptroute.config import RewardWeights
from adaptroute.datasets import FullInfoDataset, longformat
from adaptroute.errors import DatasetError
from adaptroute.reward import reward, rewards
from adaptroute.types import Outcome

FORMATS = ("csv", "jsonl", "parquet")
FILES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHEAP = settings(max_examples=150, deadline=None)

# Text that survives every format: no surrogates (not UTF-8), no NUL (some CSV tools choke on it).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
NAME = TEXT.filter(lambda s: s != "")
QUALITY = st.floats(0.0, 1.0, allow_nan=False)
COST = st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False)


# -- tables ---------------------------------------------------------------------------------------------
@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    """A valid long-format table: rows in random order, some (prompt, model) cells missing."""
    prompts = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    models = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    tasks = {p: draw(NAME) for p in prompts}
    with_latency = draw(st.booleans())
    with_text = draw(st.booleans())
    texts = {p: draw(st.one_of(st.none(), NAME)) for p in prompts}
    cells = [(p, m) for p in prompts for m in models]
    present = draw(st.lists(st.booleans(), min_size=len(cells), max_size=len(cells)))
    assume(any(present))
    rows = []
    for (p, m), keep in zip(cells, present, strict=True):
        if not keep:
            continue
        row: dict[str, Any] = {"prompt_id": p, "task": tasks[p], "model": m, "quality": draw(QUALITY), "cost_usd": draw(COST)}
        if with_latency:
            row["latency_s"] = draw(COST)
        if with_text:
            row["prompt"] = texts[p] if draw(st.booleans()) else None  # the text may sit on some rows only
        rows.append(row)
    rows = draw(st.permutations(rows))
    columns = ["prompt_id", "task", "model", "quality", "cost_usd"] + (["latency_s"] if with_latency else []) + (["prompt"] if with_text else [])
    return {"rows": rows, "columns": columns}


def pivot(table: dict[str, Any]) -> dict[str, Any] | None:
    """What the importer must return, computed the plain way. None when no prompt is complete."""
    rows = table["rows"]
    prompts = list(dict.fromkeys(r["prompt_id"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    cell = {(r["prompt_id"], r["model"]): r for r in rows}
    complete = [p for p in prompts if all((p, m) in cell for m in models)]
    if not complete:
        return None
    texts_given = {r["prompt_id"]: r["prompt"] for r in rows if r.get("prompt")}
    return {
        "prompt_ids": complete,
        "models": tuple(models),
        "tasks": [cell[(p, models[0])]["task"] for p in complete],
        "quality": [[cell[(p, m)]["quality"] for m in models] for p in complete],
        "cost_usd": [[cell[(p, m)]["cost_usd"] for m in models] for p in complete],
        "latency_s": [[cell[(p, m)]["latency_s"] for m in models] for p in complete] if "latency_s" in table["columns"] else None,
        "texts": tuple(texts_given.get(p, "") for p in complete) if any(p in texts_given for p in complete) else None,
        "skipped": len(prompts) - len(complete),
    }


def write(table: dict[str, Any], path: Path) -> Path:
    return write_rows(path, table["rows"], table["columns"])

def check_equal(got: FullInfoDataset, want: dict[str, Any]) -> None:
    assert list(got.prompt_ids) == want["prompt_ids"]
    assert got.models == want["models"]
    assert list(got.tasks) == want["tasks"]
    assert got.texts == want["texts"]
    np.testing.assert_array_equal(got.quality, np.array(want["quality"], dtype=float))
    np.testing.assert_array_equal(got.cost_usd, np.array(want["cost_usd"], dtype=float))
    if want["latency_s"] is None:
        assert got.latency_s is None
    else:
        np.testing.assert_array_equal(got.latency_s, np.array(want["latency_s"], dtype=float))
    assert got.skipped == want["skipped"]


def check_sane(data: FullInfoDataset) -> None:
    """Whatever a (possibly corrupted) file yields, if anything, is a valid dataset."""
    n, k = data.quality.shape
    assert n >= 1 and k == len(data.models) and len(data.prompt_ids) == n
    assert np.all((data.quality >= 0) & (data.quality <= 1))
    assert np.all(np.isfinite(data.cost_usd) & (data.cost_usd >= 0))
    if data.latency_s is not None:
        assert np.all(np.isfinite(data.latency_s) & (data.latency_s >= 0))


def read_both(path: Path, fmt: str) -> list[FullInfoDataset | DatasetError]:
    """The fast path and the exact reader; each either returns a dataset or raises DatasetError."""
    out: list[FullInfoDataset | DatasetError] = []
    for fast in (True, False):
        try:
            out.append(longformat._read(path, fmt, fast=fast))
        except DatasetError as exc:
            out.append(exc)
    return out


# -- importer properties ----------------------------------------------------------------------------------
@FILES
@given(table=tables())
def test_random_valid_tables_read_back_as_pivoted(table: dict[str, Any]) -> None:
    want = pivot(table)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            path = write(table, Path(tmp) / f"t.{fmt}")
            for got in read_both(path, fmt):
                if want is None:
                    assert isinstance(got, DatasetError) and "no prompt has a row for every model" in str(got)
                else:
                    assert isinstance(got, FullInfoDataset), got
                    check_equal(got, want)


@FILES
@given(table=tables(), data=st.data())
def test_write_long_round_trips(table: dict[str, Any], data: st.DataObject) -> None:
    want = pivot(table)
    assume(want is not None)
    with tempfile.TemporaryDirectory() as tmp:
        first = longformat.read_long(write(table, Path(tmp) / "t.parquet"))
        fmt = data.draw(st.sampled_from(FORMATS))
        again = longformat.read_long(longformat.write_long(first, Path(tmp) / f"again.{fmt}"))
        check_equal(again, {**want, "skipped": 0})


TOKENS = [b",", b"\n", b"\r", b'"', b"{", b"}", b"[", b":", b"nan", b"NaN", b"-1", b"1e999", b"\xff", b"null", b"true", b"  ", b"\\"]


@st.composite
def corruptions(draw: st.DrawFn, size: int) -> list[tuple[str, int, Any]]:
    kinds = st.sampled_from(["flip", "cut", "delete", "insert"])
    return draw(st.lists(st.tuples(kinds, st.integers(0, max(size - 1, 0)), st.one_of(st.integers(0, 255), st.sampled_from(TOKENS), st.integers(1, 40))), min_size=1, max_size=3))


def corrupt(data: bytes, steps: list[tuple[str, int, Any]]) -> bytes:
    out = bytearray(data)
    for kind, at, arg in steps:
        at = min(at, max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[at] = arg if isinstance(arg, int) and arg < 256 else 0
        elif kind == "cut":
            del out[at:]
        elif kind == "delete":
            del out[at : at + (arg if isinstance(arg, int) else 1)]
        elif kind == "insert":
            out[at:at] = arg if isinstance(arg, bytes) else bytes([arg % 256])
    return bytes(out)


@FILES
@given(table=tables(), fmt=st.sampled_from(FORMATS), data=st.data())
def test_random_byte_corruptions_raise_only_dataset_errors(table: dict[str, Any], fmt: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write(table, Path(tmp) / f"t.{fmt}")
        original = path.read_bytes()
        path.write_bytes(corrupt(original, data.draw(corruptions(len(original)))))
        fast, exact = read_both(path, fmt)  # anything but a dataset or a DatasetError propagates and fails
        for result in (fast, exact):
            if isinstance(result, FullInfoDataset):
                check_sane(result)
        # The fast path never accepts what the exact reader refuses, nor reads it differently.
        assert type(fast) is type(exact), (fast, exact)
        if isinstance(fast, FullInfoDataset):
            check_equal(fast, _as_dict(exact))  # type: ignore[arg-type]


def _as_dict(data: FullInfoDataset) -> dict[str, Any]:
    return {
        "prompt_ids": list(data.prompt_ids),
        "models": data.models,
        "tasks": list(data.tasks),
        "texts": data.texts,
        "quality": data.quality,
        "cost_usd": data.cost_usd,
        "latency_s": data.latency_s,
        "skipped": data.skipped,
    }


BAD_CELLS: dict[str, list[Any]] = {
    "quality": [-0.5, 1.5, math.nan, math.inf, -math.inf, "x", "0.5", None, 1e300],
    "cost_usd": [-1e-9, -5.0, math.nan, math.inf, "cheap", None, True],
    "latency_s": [-0.1, math.nan, math.inf, "slow"],
    "prompt_id": ["", None, 1.5],
    "task": ["", None, 3],
    "model": ["", None, False],
}


@FILES
@given(table=tables(), fmt=st.sampled_from(FORMATS), data=st.data())
def test_one_bad_cell_raises_a_dataset_error_naming_file_and_column(table: dict[str, Any], fmt: str, data: st.DataObject) -> None:
    rows = [dict(r) for r in table["rows"]]
    column = data.draw(st.sampled_from([c for c in table["columns"] if c in BAD_CELLS]))
    value = data.draw(st.sampled_from(BAD_CELLS[column]))
    if column in ("prompt_id", "task", "model") and value not in ("", None):
        assume(fmt == "jsonl")  # only JSON keeps a number apart from its text; CSV and our Parquet writer do not
    if fmt == "csv":
        assume(value != "0.5")  # CSV cells are text: "0.5" is a fine quality there
        value = "yes" if isinstance(value, bool) else value  # True would be written "True", a fine quality
    i = data.draw(st.integers(0, len(rows) - 1))
    rows[i][column] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = write({"rows": rows, "columns": table["columns"]}, Path(tmp) / f"bad.{fmt}")
        for result in read_both(path, fmt):
            assert isinstance(result, DatasetError), f"{column}={value!r} was accepted"
            message = str(result)
            assert str(path) in message
            assert f"column '{column}'" in message or (column == "latency_s" and "latency" in message), message


@FILES
@given(table=tables(), fmt=st.sampled_from(FORMATS), data=st.data())
def test_duplicate_or_conflicting_rows_raise(table: dict[str, Any], fmt: str, data: st.DataObject) -> None:
    rows = [dict(r) for r in table["rows"]]
    i = data.draw(st.integers(0, len(rows) - 1))
    kind = data.draw(st.sampled_from(["duplicate", "task", "text"]))
    if kind == "duplicate":
        rows.insert(data.draw(st.integers(0, len(rows))), dict(rows[i]))
        expected = "duplicate row"
    else:
        same_prompt = [j for j, r in enumerate(rows) if r["prompt_id"] == rows[i]["prompt_id"] and j != i]
        assume(same_prompt)
        column = "task" if kind == "task" else "prompt"
        assume(column in table["columns"])
        j = same_prompt[0]
        rows[i][column] = (rows[j].get(column) or "x") + "-changed"
        rows[j][column] = rows[j].get(column) or "x"
        expected = "has task" if kind == "task" else "different text"
    with tempfile.TemporaryDirectory() as tmp:
        path = write({"rows": rows, "columns": table["columns"]}, Path(tmp) / f"bad.{fmt}")
        for result in read_both(path, fmt):
            assert isinstance(result, DatasetError) and expected in str(result), result


# -- reward properties ----------------------------------------------------------------------------------
WEIGHT = st.floats(0.0, 1e3, allow_nan=False)


@st.composite
def weights(draw: st.DrawFn) -> RewardWeights:
    q, c, lat, f = draw(WEIGHT), draw(WEIGHT), draw(WEIGHT), draw(WEIGHT)
    assume(max(q, c, lat) > 1e-300)  # subnormal weights underflow to all-zero when a test scales them
    return RewardWeights(quality=q, cost=c, latency=lat, failure=f)


OUTCOMES = st.lists(
    st.builds(Outcome, quality=QUALITY, cost_usd=st.floats(0, 10, allow_nan=False), latency_s=st.floats(0, 100, allow_nan=False), failed=st.booleans()),
    min_size=1,
    max_size=20,
)


def columns_of(outcomes: list[Outcome]) -> tuple[np.ndarray, ...]:
    return tuple(np.array([getattr(o, name) for o in outcomes], dtype=float) for name in ("quality", "cost_usd", "latency_s", "failed"))


@CHEAP
@given(outcomes=OUTCOMES, w=weights())
def test_vectorised_reward_agrees_with_scalar(outcomes: list[Outcome], w: RewardWeights) -> None:
    q, c, lat, f = columns_of(outcomes)
    vector = rewards(q, c, w, latency_s=lat, failed=f.astype(bool))
    scalar = np.array([reward(o, w) for o in outcomes])
    np.testing.assert_allclose(vector, scalar, rtol=1e-12, atol=1e-12)


@CHEAP
@given(o=OUTCOMES.map(lambda xs: xs[0]), w=weights(), bump=st.floats(0, 10, allow_nan=False), which=st.sampled_from(["quality", "cost_usd", "latency_s", "failed"]))
def test_reward_is_monotone_in_each_component(o: Outcome, w: RewardWeights, bump: float, which: str) -> None:
    if which == "quality":
        better, worse = Outcome(min(1.0, o.quality + bump), o.cost_usd, o.latency_s, o.failed), o
    elif which == "cost_usd":
        better, worse = o, Outcome(o.quality, o.cost_usd + bump, o.latency_s, o.failed)
    elif which == "latency_s":
        better, worse = o, Outcome(o.quality, o.cost_usd, o.latency_s + bump, o.failed)
    else:
        better, worse = Outcome(o.quality, o.cost_usd, o.latency_s, False), Outcome(o.quality, o.cost_usd, o.latency_s, True)
    assert reward(better, w) >= reward(worse, w)
    vb, vw = (rewards(*[np.array([v]) for v in (x.quality, x.cost_usd)], w, latency_s=np.array([x.latency_s]), failed=np.array([x.failed])) for x in (better, worse))
    assert vb[0] >= vw[0]


@CHEAP
@given(outcomes=OUTCOMES, w=weights(), scale=st.floats(1e-3, 1e3, allow_nan=False))
def test_reward_scales_linearly_with_the_weights(outcomes: list[Outcome], w: RewardWeights, scale: float) -> None:
    q, c, lat, f = columns_of(outcomes)
    scaled = RewardWeights(quality=w.quality * scale, cost=w.cost * scale, latency=w.latency * scale, failure=w.failure * scale)
    got = rewards(q, c, scaled, latency_s=lat, failed=f.astype(bool))
    want = scale * rewards(q, c, w, latency_s=lat, failed=f.astype(bool))
    # Terms can cancel: compare against the size of the terms, not of their difference.
    size = scale * (w.quality * q + w.cost * c + w.latency * lat + w.failure * f)
    np.testing.assert_array_less(np.abs(got - want), 1e-9 * size + 1e-12)


@CHEAP
@given(outcomes=OUTCOMES, w=weights())
def test_unweighted_latency_may_be_missing(outcomes: list[Outcome], w: RewardWeights) -> None:
    q, c, lat, f = columns_of(outcomes)
    unweighted = RewardWeights(quality=w.quality or 1.0, cost=w.cost, latency=0.0, failure=w.failure)
    with_nan = rewards(q, c, unweighted, latency_s=np.full_like(lat, np.nan), failed=f.astype(bool))
    without = rewards(q, c, unweighted, latency_s=None, failed=f.astype(bool))
    assert np.all(np.isfinite(with_nan))
    np.testing.assert_array_equal(with_nan, without)
    if w.latency > 0:
        with pytest.raises(ValueError, match="latency is weighted"):
            rewards(q, c, w, latency_s=None)
