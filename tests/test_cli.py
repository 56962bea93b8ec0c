"""The `adaptroute` command as a user runs it: JSON stays clean, errors are one line, files appear."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adaptroute.cli import main
from adaptroute.datasets.longformat import write_long
from adaptroute.datasets.synthetic import generate, random_profile


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("data") / "bench.jsonl"
    write_long(generate(random_profile(5, 2, seed=4), 300, seed=4), path)
    return path


def run_cli(*args: str, capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulate_json_has_the_promised_fields(long_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("simulate", str(long_file), "--weights", "quality=1,cost=200,latency=0", "--seed", "2", "--json", capsys=capsys)
    assert code == 0
    data = json.loads(out)  # stdout is exactly one JSON object
    for key in ("n", "mean_quality", "mean_cost_usd", "mean_latency_s", "mean_reward", "model_shares", "baselines", "skipped"):
        assert key in data
    assert data["n"] == 300 and data["mean_latency_s"] is not None
    assert set(data["baselines"]) == {"best_single", "cheapest", "random", "best_fixed_per_task", "oracle"}
    for ref in data["baselines"].values():
        assert {"mean_quality", "mean_cost_usd", "mean_reward"} <= set(ref)


def test_simulate_table_and_passes(long_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("simulate", str(long_file), "--passes", "2", "--policy", "linucb", capsys=capsys)
    assert code == 0 and "| best_fixed_per_task |" in out and "600 decisions" in out


def test_errors_are_one_clear_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt_id,task,model,quality,cost_usd\np1,t,m,2.0,0.1\n")
    code, out, err = run_cli("simulate", str(bad), capsys=capsys)
    assert code == 2 and out == ""
    assert "bad.csv" in err and "quality" in err and "Traceback" not in err
    code, _, err = run_cli("simulate", str(bad), "--weights", "quality=-1", capsys=capsys)
    assert code == 2 and "quality" in err


def test_simulate_with_priors_uses_them_and_names_bad_fields(long_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from adaptroute.datasets import load_dataset

    data = load_dataset(long_file)
    truth = data.quality.mean(axis=0)
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({m: {"quality": float(q)} for m, q in zip(data.models, truth, strict=True)}))
    args = ("simulate", str(long_file), "--weights", "quality=1,cost=200", "--json")
    _, plain, _ = run_cli(*args, capsys=capsys)
    code, informed, _ = run_cli(*args, "--priors", str(priors), capsys=capsys)
    assert code == 0 and json.loads(informed)["model_shares"] != json.loads(plain)["model_shares"]

    priors.write_text(json.dumps({data.models[0]: {"quality": 1.5}}))
    code, out, err = run_cli(*args, "--priors", str(priors), capsys=capsys)
    assert code == 2 and out == "" and "priors.json" in err and "quality" in err and data.models[0] in err
    priors.write_text('{"%s": {"cost_usd": Infinity}}' % data.models[0])  # Python's json reads it: refused all the same
    code, _, err = run_cli(*args, "--priors", str(priors), capsys=capsys)
    assert code == 2 and "cost_usd" in err
    priors.write_text(json.dumps({"no-such-model": {"quality": 0.5}}))
    code, _, err = run_cli(*args, "--priors", str(priors), capsys=capsys)
    assert code == 2 and "no-such-model" in err
    priors.write_text("{not json")
    code, _, err = run_cli(*args, "--priors", str(priors), capsys=capsys)
    assert code == 2 and "not valid JSON" in err


def test_report_replay_and_tune_on_a_router_log(router_log: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("report", str(router_log), "--json", "--plot", str(tmp_path / "plots"), capsys=capsys)
    assert code == 0
    report = json.loads(out)
    assert report["tasks"]["all"]["requests"] == 150 and (tmp_path / "plots" / "model_shares.png").exists()
    code, out, _ = run_cli("replay", str(router_log), "--weights", "quality=1,cost=100", "--estimator", "snips", "--json", capsys=capsys)
    assert code == 0
    replay = json.loads(out)
    assert replay["estimator"] == "snips" and replay["ess"] > 0
    code, out, _ = run_cli("tune", str(router_log), "--grid", "cost=0,100,1000", "--plot", str(tmp_path / "f.png"), "--json", capsys=capsys)
    assert code == 0
    tuned = json.loads(out)
    assert len(tuned["points"]) == 3 and tuned["kind"] == "log" and (tmp_path / "f.png").exists()


def test_tune_on_data_names_the_cheapest_weights_meeting_the_target(long_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("tune", str(long_file), "--target", "quality>=0.9*best", "--json", capsys=capsys)
    assert code == 0
    tuned = json.loads(out)
    chosen = tuned["chosen"]
    assert chosen is not None and chosen["quality"] >= 0.9 * tuned["best_quality"]
    cheaper = [p for p in tuned["frontier"] if p["cost_usd"] < chosen["cost_usd"]]
    assert all(p["quality"] < 0.9 * tuned["best_quality"] for p in cheaper)


@pytest.mark.slow
def test_demo_runs_the_real_router_end_to_end(tmp_path: Path) -> None:
    """The console script itself, in a fresh interpreter, on a short workload."""
    out = subprocess.run(
        [sys.executable, "-m", "adaptroute.cli", "demo", "--requests", "80", "--concurrency", "40", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cost / completed task" in out.stdout and "savings vs premium" in out.stdout
    assert (tmp_path / "demo.duckdb").exists() and (tmp_path / "model_shares.png").exists()
    assert (tmp_path / "report.md").read_text().startswith("# adaptroute demo")
