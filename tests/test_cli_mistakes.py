"""The usual mistakes at the command line: each gets one line on stderr naming what is wrong and what to
do, exit status 2, and never a traceback. Also: --help with defaults and examples for every command and
option, --version, `python -m adaptroute`, --plot meaning one thing everywhere, and a closed pipe."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaptroute import RewardWeights, Router
from adaptroute.cli import main
from adaptroute.cli_parser import build_parser
from adaptroute.datasets.longformat import write_long
from adaptroute.datasets.synthetic import generate, random_profile


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("mistakes")
    data = generate(random_profile(3, 2, seed=1), 120, seed=1)
    long_csv = root / "long.csv"
    write_long(data, long_csv)
    folder = root / "dataset"
    folder.mkdir()
    write_long(data, folder / "bench.parquet")
    log = root / "routes.duckdb"
    with Router(["gpt-4o-mini", "gpt-4o"], reward=RewardWeights(cost=100), store=str(log), seed=2,
                scorer=lambda m, r: 1.0) as router:
        for i in range(40):
            router.complete([{"role": "user", "content": f"q{i}"}], task="t", mock_response="ok")
        router.save_policy(str(root / "policy.npz"))
    read_only = root / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    return {"root": root, "csv": long_csv, "folder": folder, "log": log, "read_only": read_only,
            "policy": root / "policy.npz"}


MISTAKES = [
    # (arguments, a piece of the one line that must be there)
    (["replay", "{csv}"], "is not a DuckDB log file"),
    (["replay", "{csv}"], "adaptroute simulate"),
    (["report", "{folder}"], "is a dataset: `adaptroute simulate`"),
    (["report", "{csv}"], "is not a DuckDB log file"),
    (["simulate", "{log}"], "`adaptroute replay`, `report` and `tune` read logs"),
    (["report", "{root}/missing.duckdb"], "does not exist"),
    (["report", "{log}", "--plot", "{read_only}/shares.png"], "cannot write"),
    (["report", "{log}", "--plot", "/proc/shares.png"], "choose another path"),
    (["report", "{log}", "--plot", "shares.jpg"], "expected a .png, .svg or .pdf file"),
    (["tune", "{csv}", "--plot", "{read_only}/f.png"], "cannot write"),
    (["simulate", "{csv}", "--weights", "qualty=1"], "unknown weight 'qualty' (did you mean 'quality'?); known weights: quality, cost"),
    (["simulate", "{csv}", "--weights", "cost=-1"], "cost: must be a finite number >= 0"),
    (["simulate", "{csv}", "--weights", "cost"], "expected name=value"),
    (["tune", "{csv}", "--target", "qual>=1"], "expected e.g. 'quality>=0.95*best'"),
    (["tune", "{csv}", "--grid", "cost=a"], "is not a number"),
    (["replay", "{log}", "--always", "gpt-4o-mni"], "never appears in the log"),
    (["replay", "{log}", "--policy-file", "{csv}"], "not a saved policy"),
    (["replay", "{log}", "--policy-file", "{root}/none.npz"], "not a saved policy"),
    (["replay", "{log}", "--bootstrap", "0"], "must be at least 1"),
    (["replay", "{log}", "--estimator", "bogus"], "invalid choice: 'bogus'"),
    (["report", "{log}", "--pass-threshold", "2"], "must be in [0, 1]"),
    (["report"], "the following arguments are required: LOG"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["migrate", "{csv}"], "is not a DuckDB log file"),
]


@pytest.mark.parametrize(("argv", "hint"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_gets_one_line_and_exit_2(argv: list[str], hint: str, files: dict[str, Path], capsys) -> None:  # type: ignore[no-untyped-def]
    if "read_only" in " ".join(argv) and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    args = [a.format(**files) for a in argv]
    code = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("adaptroute"), err
    assert hint in lines[0], err
    assert "Extra inputs are not permitted" not in err and out == ""


def test_a_running_routers_log_points_to_snapshots_and_router_report(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "live.duckdb"
    code = ("import sys, time; from adaptroute import Router, RewardWeights; "
            f"r = Router(['gpt-4o-mini'], reward=RewardWeights(cost=1), store={str(path)!r}); "
            "r.complete([{'role': 'user', 'content': 'hi'}], task='t', mock_response='ok'); "
            "print('ready', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert main(["report", str(path)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "snapshot_dir" in err and "router.report()" in err
    finally:
        holder.kill()
        holder.wait()


def test_plot_means_a_file_everywhere_and_says_where_it_went(files: dict[str, Path], tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    shares = tmp_path / "shares.png"
    assert main(["report", str(files["log"]), "--plot", str(shares)]) == 0
    assert shares.is_file() and f"Plot: {shares}" in capsys.readouterr().out  # a file, not a folder named shares.png
    frontier = tmp_path / "frontier.png"
    assert main(["tune", str(files["csv"]), "--grid", "cost=0,100", "--plot", str(frontier)]) == 0
    assert frontier.is_file() and f"Plot: {frontier}" in capsys.readouterr().out
    folder = tmp_path / "plots"
    assert main(["report", str(files["log"]), "--plot", str(folder) + "/", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plots"] == [str(folder / "model_shares.png")]
    assert main(["tune", str(files["csv"]), "--grid", "cost=0", "--plot", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plots"] == [str(folder / "frontier.png")]


def test_replay_a_saved_policy_file(files: dict[str, Path], capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["replay", str(files["log"]), "--policy-file", str(files["policy"]), "--json", "--bootstrap", "30"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"].endswith("(as trained)") and result["weights_source"] == "logged"
    assert set(result["by_estimator"]) == {"ips", "snips", "dm", "dr", "switch-dr"}
    assert result["trust_reason"]


def _every_action(parser: argparse.ArgumentParser):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_action(sub)
        else:
            yield parser.prog, action


def test_every_option_has_help_and_every_command_examples(capsys) -> None:  # type: ignore[no-untyped-def]
    parser = build_parser()
    missing = [f"{prog} {action.dest}" for prog, action in _every_action(parser) if not action.help]
    assert not missing
    for command in ["demo", "simulate", "replay", "tune", "report", "migrate"]:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([command, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"adaptroute {command}" in text
        if command != "migrate":
            assert "(default: " in text
    assert main(["tune", "--help"]) == 0
    assert "METRIC>=VALUE" in capsys.readouterr().out  # --target's syntax is written down


def test_version_and_python_dash_m() -> None:
    for command in (["adaptroute", "--version"], [sys.executable, "-m", "adaptroute", "--version"]):
        if command[0] == "adaptroute":
            command[0] = str(Path(sys.executable).parent / "adaptroute")
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip().startswith("adaptroute 0."), done.stderr
    done = subprocess.run([sys.executable, "-m", "adaptroute", "nonsense"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_a_closed_pipe_is_one_line_not_a_traceback(files: dict[str, Path]) -> None:
    reader = subprocess.Popen([sys.executable, "-m", "adaptroute", "tune", str(files["csv"]), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    reader.stdout.close()  # as `| head` does, before the command has written anything
    time.sleep(0.1)
    _, err = reader.communicate(timeout=120)
    text = err.decode()
    assert "Traceback" not in text and "Exception ignored" not in text, text
    assert reader.returncode == 2 and "closed it" in text.strip().splitlines()[-1]
