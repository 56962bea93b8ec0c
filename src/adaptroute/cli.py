"""The `adaptroute` command, on top of the public API only (arguments in cli_parser).

Long runs show progress on stderr; with --json, stdout holds exactly one JSON object. Every mistake
ends in one line on stderr saying what is wrong and what to do, and exit status 2: no traceback
(ADAPTROUTE_DEBUG=1 shows one for an unexpected error).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli_parser import ARGUMENT_ERROR, build_parser, prog_of, stderr_line

__all__ = ["main"]


class CommandError(Exception):
    """A mistake found by the CLI itself (a path it cannot write, a file of the wrong kind)."""


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


_IMAGE_SUFFIXES = (".png", ".svg", ".pdf")


def plot_path(value: str | None, default_name: str) -> Path | None:
    """What --plot means everywhere: an image file (.png, .svg or .pdf); a folder (one that exists, or a
    path ending in / or without a suffix) gets ``default_name`` inside. Checked before any work, so a
    long run never ends in an unwritable path."""
    if not value:
        return None
    path = Path(value)
    if value.endswith(("/", os.sep)) or path.is_dir() or not path.suffix:
        path = path / default_name
    elif path.suffix.lower() not in _IMAGE_SUFFIXES:
        raise CommandError(f"--plot {value}: expected a .png, .svg or .pdf file, or a folder to put {default_name} in")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--plot {value}: cannot create folder {folder}: {exc.strerror or exc}") from None
    existed = path.exists()
    try:  # the one sure test (permissions, read-only or special file systems): open it for writing
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise CommandError(f"--plot {value}: cannot write {path}: {exc.strerror or exc}; choose another path") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    prog = prog_of(raw)
    try:
        args = build_parser().parse_args(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # results carry their warnings (tables and JSON): no Python warning lines
            code = int(_COMMANDS[args.command](args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return code
    except SystemExit as exc:  # argparse: --help, --version (0) or a mistake (2, already said in one line)
        return int(exc.code) if isinstance(exc.code, int) else ARGUMENT_ERROR
    except KeyboardInterrupt:
        stderr_line(f"{prog}: interrupted")
        return 130
    except BrokenPipeError:
        _silence_stdout()
        stderr_line(f"{prog}: stopped: the program reading the output closed it (as `| head` does)")
        return ARGUMENT_ERROR
    except Exception as exc:  # noqa: BLE001 - the one place that turns every failure into one line
        return _fail(prog, exc)


def _fail(prog: str, exc: BaseException) -> int:
    from .errors import AdaptRouteError, StoreLockedError

    if isinstance(exc, StoreLockedError) and prog != "adaptroute migrate":
        stderr_line(f"{prog}: error: {exc}. While a router runs, read its snapshots instead (Router(..., "
                    f"snapshot_dir='snapshots/'), then `{prog} snapshots/`) or call router.report() in its process")
    elif isinstance(exc, (AdaptRouteError, CommandError)):
        stderr_line(f"{prog}: error: {exc}")
    elif isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        stderr_line(f"{prog}: error:{where}: {exc.strerror or exc}")
    else:
        if os.environ.get("ADAPTROUTE_DEBUG"):
            raise exc
        stderr_line(f"{prog}: error: {type(exc).__name__}: {exc} (unexpected; ADAPTROUTE_DEBUG=1 shows the traceback)")
    return ARGUMENT_ERROR


def _silence_stdout() -> None:
    """After a broken pipe, Python flushes stdout again at exit and fails once more: point it at devnull."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _demo(args: argparse.Namespace) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # the demo's own choice: offline prices
    from .demo import run_demo

    summary = run_demo(args.out, requests=args.requests, concurrency=args.concurrency, seed=args.seed)
    print(f"\nadaptroute demo: {summary.requests} requests in {summary.seconds:.1f} s "
          f"(weights quality={summary.weights.quality}, cost={summary.weights.cost}/USD, latency={summary.weights.latency}/s)\n")
    print(summary.report_markdown)
    print(f"\nLog: {summary.log_path}   report: {summary.log_path.parent / 'report.md'}")
    for path in summary.plot_paths:
        print(f"Plot: {path}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .datasets import load_dataset, read_priors
    from .replay.changes import parse_change
    from .replay.simulate import simulate

    data = load_dataset(args.data, allow_pickle=args.allow_pickle)
    warm = load_dataset(args.warm_start, allow_pickle=args.allow_pickle) if args.warm_start else None
    priors = read_priors(args.priors) if args.priors else None
    if args.passes < 1:
        raise CommandError(f"--passes must be >= 1, got {args.passes}")
    changes = [parse_change(spec, data.models, args.passes) for spec in args.change]
    plot = plot_path(args.plot, "simulate.png")
    result = simulate(data, args.policy, _weights(args.weights) if args.weights else None, seed=args.seed,
                      passes=args.passes, warm_start=warm, priors=priors, progress=not args.json, bar=args.bar,
                      budget_per_request=args.budget_per_request, changes=changes)
    if plot is not None:
        from .replay.simulate_plot import plot_simulation

        plot_simulation(result, plot)
    if args.json:
        _print_json({**result.to_dict(), **({"plot": str(plot)} if plot else {})})
        return 0
    from .replay.formatting import format_simulation

    print(format_simulation(result))
    if plot is not None:
        print(f"Plot: {plot}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .policy import load_policy, make_policy
    from .replay.ope import evaluate, format_text
    from .reward import logged_weights
    from .store import read_log

    batch = read_log(args.log)
    logged, _ = logged_weights(batch)
    # Without --weights the candidate is scored under the weights the log was collected under.
    weights = _weights(args.weights) if args.weights or logged is None else logged
    source = "given" if args.weights else "logged" if logged is not None else "default"
    if args.policy_file:
        import zipfile

        if not Path(args.policy_file).is_file() or not zipfile.is_zipfile(args.policy_file):
            raise CommandError(f"--policy-file {args.policy_file}: not a saved policy (router.save_policy writes an .npz file)")
        candidate, _ = load_policy(args.policy_file)
        candidate.weights = weights
    else:
        candidate = make_policy(args.policy, weights=weights, seed=args.seed)
    bar = None
    if args.bar is not None:
        from .policy.constraints import QualityBar

        if args.always:
            raise CommandError("--bar shapes a policy's choices; --always picks one model whatever the bar")
        bar = QualityBar.parse(args.bar)
    result = evaluate(batch, candidate, weights, args.estimator, n_boot=args.bootstrap, seed=args.seed,
                      refit=not args.policy_file, always=args.always, bar=bar)
    result = replace(result, weights_source=source)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_text(result))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from .replay.tune import format_tuning, tune

    plot = plot_path(args.plot, "frontier.png")
    result = tune(args.data, grid=args.grid, target=args.target, policy=args.policy, seed=args.seed,
                  plot=plot, allow_pickle=args.allow_pickle, progress=not args.json, bars=args.bar)
    if args.json:
        _print_json({**result.to_dict(), "plots": [str(plot)] if plot else []})
    else:
        print(format_tuning(result))
        if plot:
            print(f"Plot: {plot}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .replay.report import format_report, plot_report, report, savings_note
    from .replay.report_controls import controls_report, format_controls, plot_budget
    from .store import read_log

    plot = plot_path(args.plot, "model_shares.png")
    batch = read_log(args.log)
    reports = report(batch, pass_threshold=args.pass_threshold)
    controls = controls_report(batch)
    plots = [str(p) for p in plot_report(batch, plot)] if plot else []
    budget_plot = plot_budget(batch, plot.parent) if plot else None  # beside it, when a budget was in use
    plots += [str(budget_plot)] if budget_plot else []
    if args.json:
        _print_json({"tasks": {k: v.to_dict() for k, v in reports.items()}, "savings_basis": savings_note(reports),
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


_COMMANDS = {"demo": _demo, "simulate": _simulate, "replay": _replay, "tune": _tune, "report": _report,
             "migrate": _migrate, "serve": _serve}

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
