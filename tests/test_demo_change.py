"""The demo's mid-run price cut goes through Router.update_model: logged, billed at the new price from
the change on (calls decided before it keep the old one), reported, and marked in the plot."""

from __future__ import annotations

import logging

import duckdb
import pytest

from adaptroute import ConfigError
from adaptroute.demo import PriceChange, run_demo
from adaptroute.demo.change import following
from adaptroute.store import read_log

pytestmark = pytest.mark.slow  # one short demo run (~13 s: the router's litellm warm-up, 160 requests, the plot)

HAIKU = "claude-haiku-4-5"
REQUESTS, CONCURRENCY = 160, 80


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, request):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("demo")
    caplog = logging.getLogger("adaptroute.router")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    caplog.addHandler(handler)
    level = caplog.level
    caplog.setLevel(logging.INFO)
    try:
        summary = run_demo(out, requests=REQUESTS, concurrency=CONCURRENCY, seed=0, progress=False)
    finally:
        caplog.removeHandler(handler)
        caplog.setLevel(level)
    return summary, records


def test_the_cut_is_made_halfway_and_logged(short_run) -> None:  # type: ignore[no-untyped-def]
    summary, records = short_run
    assert summary.change is not None and summary.change.at == REQUESTS // 2 and summary.change.model == HAIKU
    assert any(f"model {HAIKU} updated" in r.getMessage() for r in records)
    text = (summary.log_path.parent / "report.md").read_text()
    assert f"Change at request {REQUESTS // 2}: a price cut" in text
    assert (summary.log_path.parent / "model_shares.png").stat().st_size > 10_000
    # the report says what the router should find, with the runner-up and the gap, before and after
    assert "before the change code -> deepseek/deepseek-chat" in text and "after it code -> claude-haiku-4-5" in text
    assert "next deepseek/deepseek-chat" in text and "gap" in text
    assert [(f.task, f.before, f.after) for f in summary.following] == [("code", "deepseek/deepseek-chat", HAIKU)]


def test_calls_are_billed_at_the_price_of_their_decision(short_run) -> None:  # type: ignore[no-untyped-def]
    summary, _ = short_run
    con = duckdb.connect(str(summary.log_path), read_only=True)
    try:
        rows = con.execute(
            "SELECT d.ts, a.tokens_in, a.tokens_out, a.cost_usd FROM attempts a JOIN decisions d USING (decision_id) "
            "WHERE a.model = ? AND a.error_class IS NULL ORDER BY d.ts", [HAIKU]).fetchall()
    finally:
        con.close()
    assert rows, "haiku was never called"
    old = [c == pytest.approx(i * 1e-6 + o * 5e-6) for _, i, o, c in rows]
    new = [c == pytest.approx(i * 4e-7 + o * 2e-6) for _, i, o, c in rows]
    assert all(a or b for a, b in zip(old, new, strict=True))
    # once the new price appears, the old one never comes back (copy-on-write: only calls decided earlier)
    first_new = new.index(True) if any(new) else len(new)
    assert not any(old[first_new + CONCURRENCY:])  # at most the calls in flight at the change


def test_following_is_measured_on_the_log(short_run) -> None:  # type: ignore[no-untyped-def]
    summary, _ = short_run
    batch = read_log(str(summary.log_path))
    code = batch.tasks == "code"
    cut = float(sorted(batch.ts[code])[len(batch.ts[code]) // 2])
    moved = following(batch, "code", "deepseek/deepseek-chat", HAIKU, cut)
    assert moved.requests_after == int((batch.ts[code] >= cut).sum())
    assert 0.0 <= moved.share_before <= 1.0 and 0.0 <= moved.share_after <= 1.0


def test_a_bad_change_section_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="change"):
        PriceChange.from_profile({"model": HAIKU, "after_share": 0.5}, 100)
    with pytest.raises(ConfigError, match="after_share"):
        PriceChange.from_profile({"model": HAIKU, "after_share": 1.5, "input_cost_per_token": 1e-7,
                                  "output_cost_per_token": 1e-7}, 100)
    assert PriceChange.from_profile(None, 100) is None
