"""The numbers a manager quotes: savings against the premium model priced honestly (its price times each
request's own tokens), and a running router's report seen in process (router.report()) and from
another process (incremental snapshots that `adaptroute report DIR` reads)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from adaptroute import RewardWeights, Router, StoreError, StoreLockedError, read_log
from adaptroute.cli import main
from adaptroute.replay.report import report
from adaptroute.router.prices import lookup_model_info

MODELS = ["gpt-4o-mini", "gpt-4o"]


def _mock(i: int) -> dict:
    tokens_in, tokens_out = 100 + 37 * (i % 11), 20 + 13 * (i % 7)
    return {"choices": [{"message": {"role": "assistant", "content": "ok" if i % 3 else "no"}}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}}


def _route(router: Router, n: int, offset: int = 0) -> list:
    records = []
    for i in range(offset, offset + n):
        response = router.complete([{"role": "user", "content": f"question {i}"}], task=("a", "b")[i % 2],
                                   mock_response=_mock(i))
        records.append(response.adaptroute)
    return records


def _scorer(messages, response) -> float:
    return 0.0 if response.choices[0].message.content == "no" else 1.0


def test_savings_price_the_premium_model_at_each_requests_own_tokens(tmp_path) -> None:
    path = tmp_path / "routes.duckdb"
    with Router(MODELS, reward=RewardWeights(cost=100), store=str(path), scorer=_scorer, escalate_below=0.5,
                seed=3) as router:
        records = _route(router, 120)
    assert any(r.escalated for r in records)  # escalations' extra calls are part of the router's spend

    premium = lookup_model_info("gpt-4o")
    price_in, price_out = premium["input_cost_per_token"], premium["output_cost_per_token"]
    counterfactual = sum(_mock(i)["usage"]["prompt_tokens"] * price_in + _mock(i)["usage"]["completion_tokens"] * price_out
                         for i in range(120))
    spent = sum(r.cost_usd for r in records)

    overall = report(read_log(path))["all"]
    assert overall.premium_model == "gpt-4o"
    assert overall.premium_price_per_million_tokens == pytest.approx((price_in * 1e6, price_out * 1e6), rel=1e-9)
    assert overall.premium_spend_estimate_usd == pytest.approx(counterfactual, rel=1e-9)
    assert overall.savings_vs_premium == pytest.approx(1 - spent / counterfactual, rel=1e-9)
    assert overall.savings_requests == 120


def test_the_report_says_how_savings_were_computed(tmp_path, capsys) -> None:
    path = tmp_path / "routes.duckdb"
    with Router(MODELS, reward=RewardWeights(cost=100), store=str(path), seed=1) as router:
        _route(router, 40)
    assert main(["report", str(path)]) == 0
    text = capsys.readouterr().out
    assert "against always gpt-4o" in text and "times each request's own tokens" in text
    assert main(["report", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "each request's own tokens" in data["savings_basis"]


def test_router_report_in_process(tmp_path) -> None:
    with Router(MODELS, reward=RewardWeights(cost=100), store=str(tmp_path / "live.duckdb"), scorer=_scorer) as router:
        _route(router, 30)
        live = router.report()
        assert live["all"].requests == 30 and set(live) == {"a", "b", "all"}
        _route(router, 10, offset=30)
        assert router.report()["all"].requests == 40  # the live log, flushed at each call
        with pytest.raises(StoreLockedError):
            read_log(tmp_path / "live.duckdb")  # the file itself is the router's while it runs


def test_snapshots_are_incremental_and_report_reads_them_from_another_process(tmp_path) -> None:
    snapshots = tmp_path / "snapshots"
    router = Router(MODELS, reward=RewardWeights(cost=100), store=str(tmp_path / "live.duckdb"),
                    snapshot_dir=str(snapshots), snapshot_interval_s=3600)
    try:
        _route(router, 25)
        first = router.snapshot()
        assert {p.name.split("-")[0] for p in first} == {"decisions", "attempts", "outcomes"}
        assert router.snapshot() == []  # nothing new: nothing written
        _route(router, 15, offset=25)
        second = router.snapshot()
        assert all("-000002" in p.name for p in second)
        assert len(read_log(snapshots)) == 40  # parts add up, no row twice

        cli = [sys.executable, "-m", "adaptroute", "report", str(snapshots), "--json"]
        done = subprocess.run(cli, capture_output=True, text=True, timeout=120)  # while the router runs
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["tasks"]["all"]["requests"] == 40
        _route(router, 5, offset=40)
    finally:
        router.close()  # the last rows are exported at close
    assert len(read_log(snapshots)) == 45

    with Router(MODELS, store=str(tmp_path / "live.duckdb"), snapshot_dir=str(snapshots)) as again:
        _route(again, 2, offset=45)  # reopened: the export resumes, nothing exported twice
    assert len(read_log(snapshots)) == 47
    with pytest.raises(StoreError, match="another log"):
        Router(MODELS, store=str(tmp_path / "other.duckdb"), snapshot_dir=str(snapshots))
