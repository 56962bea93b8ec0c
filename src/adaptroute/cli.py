"""The `adaptroute` command, on top of the public API only.

Long runs show progress on stderr; with --json, stdout holds exactly one JSON object.
Environment (read here, at the edge, and nowhere else): ADAPTROUTE_SEED sets the default --seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN and infinities become null: stdout must be strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _print_json(data: Any) -> None:
    print(json.dumps(_clean(data), default=_json_default, indent=2))


def _weights(text: str | None) -> Any:
    from .config import RewardWeights

    return RewardWeights.parse(text) if text else RewardWeights()


def _add_common(p: argparse.ArgumentParser, *, weights: bool = True, policy: bool = True) -> None:
    if policy:
        p.add_argument("--policy", default="thompson", choices=["thompson", "linucb", "egreedy"])
    if weights:
        p.add_argument("--weights", help="reward weights per unit, e.g. quality=1,cost=200,latency=0 (per quality point, per USD, per second)")
    p.add_argument("--seed", type=int, default=int(os.environ.get("ADAPTROUTE_SEED", "0")))
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adaptroute", description="Adaptive LLM routing: demo, offline simulation, off-policy evaluation, tuning, reports.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="route a generated workload through the real Router (offline, mocked providers)")
    demo.add_argument("--out", default="out/demo", help="folder for the log, report.md and plots")
    demo.add_argument("--requests", type=int, default=2000)
    demo.add_argument("--concurrency", type=int, default=100)
    demo.add_argument("--seed", type=int, default=int(os.environ.get("ADAPTROUTE_SEED", "0")))

    sim = sub.add_parser("simulate", help="replay full-information benchmark data through a policy")
    sim.add_argument("data", help="RouterBench CSV / folder, or long-format parquet/CSV/JSONL")
    sim.add_argument("--passes", type=int, default=1)
    sim.add_argument("--warm-start", dest="warm_start",
                     help="full-information data to fit the policy on first (its prior precision chosen by evidence)")
    sim.add_argument("--priors", help='JSON file of what is known per model before its first request, e.g. '
                     '{"gpt-4o": {"quality": 0.9}} (fields: quality, cost_usd, latency_s)')
    sim.add_argument("--bar", help="quality bar per task, e.g. extract=0.95,draft=0.8 (*=0.7 for the other tasks), "
                     "one number for every task (0.9), or 0.9*best (within 90%% of the best model). Without --weights, "
                     "--bar or --budget-per-request the default bar 0.9*best applies")
    sim.add_argument("--budget-per-request", dest="budget_per_request", type=float, metavar="USD",
                     help="mean spend per request to pace to (a hard cap on the run's total)")
    sim.add_argument("--allow-pickle", action="store_true",
                     help="allow reading RouterBench's pandas pickle: unpickling runs code from the file, so only for files you trust")
    _add_common(sim)

    rep = sub.add_parser("replay", help="off-policy evaluation of a policy / weights on a router log")
    rep.add_argument("log", help="a .duckdb log, a glob of them, or a folder of Parquet snapshots")
    rep.add_argument("--estimator", default="dr", choices=["ips", "snips", "dm", "dr", "switch-dr"])
    rep.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the interval")
    _add_common(rep)

    tune = sub.add_parser("tune", help="sweep reward weights and keep the quality/cost(/latency) frontier")
    tune.add_argument("data", metavar="DATA_OR_LOG")
    tune.add_argument("--grid", nargs="*", default=None, help="e.g. cost=0,50,200 latency=0,0.1 (quality stays 1)")
    tune.add_argument("--target", default="quality>=0.95*best", help="constraint the chosen weights must meet")
    tune.add_argument("--plot", help="PNG path for the frontier plot")
    tune.add_argument("--bar", nargs="*", default=None, metavar="BAR",
                      help="sweep quality bars instead of weights (on data): each BAR as for simulate --bar, e.g. "
                           "0.8 0.9 extract=0.95,draft=0.8; --bar alone: each task at 0.8-0.98 x its best model")
    tune.add_argument("--allow-pickle", action="store_true")
    _add_common(tune, weights=False)

    rpt = sub.add_parser("report", help="cost per completed task, latency, retries, escalations, savings, from a log")
    rpt.add_argument("log")
    rpt.add_argument("--plot", help="folder for PNG plots of model shares over time")
    rpt.add_argument("--pass-threshold", type=float, default=0.5, help="quality at which a task counts as completed")
    rpt.add_argument("--json", action="store_true")

    mig = sub.add_parser("migrate", help="bring a closed log file written by an older adaptroute to this schema version")
    mig.add_argument("log", help="a .duckdb log file no process has open")

    srv = sub.add_parser("serve", help="run the OpenAI-compatible routing gateway (needs adaptroute[server])")
    srv.add_argument("--config", help="the gateway's TOML config file (see examples/gateway.toml)")
    srv.add_argument("--check", nargs="?", const=True, metavar="CONFIG",
                     help="validate the config (this file, or --config's) and exit without serving")
    srv.add_argument("--host", help="address to bind (default: server.host, else 127.0.0.1)")
    srv.add_argument("--port", type=int, help="port (default: server.port, else 4000)")
    srv.add_argument("--workers", type=int, help="worker processes, each with its own Router (more than 1 needs a PostgreSQL store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import AdaptRouteError

    args = build_parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except AdaptRouteError as exc:
        print(f"adaptroute {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(args.out, requests=args.requests, concurrency=args.concurrency, seed=args.seed)
    print(f"\nadaptroute demo: {summary.requests} requests in {summary.seconds:.1f} s "
          f"(weights quality={summary.weights.quality}, cost={summary.weights.cost}/USD, latency={summary.weights.latency}/s)\n")
    print("Best expected reward per task under the (simulated) profile: "
          + ", ".join(f"{task} -> {model}" for task, model in summary.expected_best.items()) + "\n")
    print(summary.report_markdown)
    print(f"\nLog: {summary.log_path}   report: {summary.log_path.parent / 'report.md'}")
    for path in summary.plot_paths:
        print(f"Plot: {path}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .datasets import load_dataset, read_priors
    from .replay.simulate import simulate

    data = load_dataset(args.data, allow_pickle=args.allow_pickle)
    warm = load_dataset(args.warm_start, allow_pickle=args.allow_pickle) if args.warm_start else None
    priors = read_priors(args.priors) if args.priors else None
    result = simulate(data, args.policy, _weights(args.weights) if args.weights else None, seed=args.seed,
                      passes=args.passes, warm_start=warm, priors=priors, progress=not args.json, bar=args.bar,
                      budget_per_request=args.budget_per_request)
    if args.json:
        _print_json(result.to_dict())
        return 0
    from .replay.formatting import format_simulation

    print(format_simulation(result))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from .policy import make_policy
    from .replay.ope import evaluate, format_text
    from .store import read_log

    from dataclasses import replace

    from .reward import logged_weights

    batch = read_log(args.log)
    logged, _ = logged_weights(batch)
    # Without --weights the candidate is scored under the weights the log was collected under.
    weights = _weights(args.weights) if args.weights or logged is None else logged
    source = "logged" if not args.weights and logged is not None else "given" if args.weights else "default"
    candidate = make_policy(args.policy, weights=weights, seed=args.seed)
    result = evaluate(batch, candidate, weights, args.estimator, n_boot=args.bootstrap, seed=args.seed)
    result = replace(result, weights_source=source)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_text(result))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from .replay.tune import format_tuning, tune

    result = tune(args.data, grid=args.grid, target=args.target, policy=args.policy, seed=args.seed,
                  plot=args.plot, allow_pickle=args.allow_pickle, progress=not args.json, bars=args.bar)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_tuning(result))
    return 0


def _report(args: argparse.Namespace) -> int:
    from .replay.report import format_report, plot_report, report
    from .store import read_log

    from .replay.report_controls import controls_report, format_controls, plot_budget

    batch = read_log(args.log)
    reports = report(batch, pass_threshold=args.pass_threshold)
    controls = controls_report(batch)
    plots = [str(p) for p in plot_report(batch, args.plot)] if args.plot else []
    budget_plot = plot_budget(batch, args.plot) if args.plot else None
    plots += [str(budget_plot)] if budget_plot else []
    if args.json:
        _print_json({"tasks": {k: v.to_dict() for k, v in reports.items()},
                     "controls": {k: v.to_dict() for k, v in controls.items()}, "plots": plots})
    else:
        print(format_report(reports))
        if controls:
            print("\nOperator controls (quality bars, budgets, the batch lane, the prompt cache):\n")
            print(format_controls(controls))
        for path in plots:
            print(f"Plot: {path}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from .store import migrate_log

    before, after = migrate_log(args.log)
    if before == after:
        print(f"{args.log}: already at log schema version {after}")
    else:
        print(f"{args.log}: migrated from log schema version {before} to {after}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .server.config_file import load_config

    path = args.check if isinstance(args.check, str) else args.config
    if not path:
        raise ConfigError("serve: give the config file: --config FILE (or --check FILE)")
    if args.check:
        from .server.run import check_config

        print(check_config(load_config(path)))
        return 0
    from .server.run import serve

    serve(path, host=args.host, port=args.port, workers=args.workers)
    return 0


_COMMANDS = {"migrate": _migrate, "demo": _demo, "simulate": _simulate, "replay": _replay, "tune": _tune, "report": _report, "serve": _serve}

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

