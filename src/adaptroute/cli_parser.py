"""The `adaptroute` command's arguments: every option with its help, its default and examples.

Kept apart from cli.py (which runs the commands) so that `adaptroute --help` stays readable as one
piece. Environment (read here, at the edge): ADAPTROUTE_SEED sets the default --seed.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from typing import NoReturn

__all__ = ["ARGUMENT_ERROR", "build_parser"]

ARGUMENT_ERROR = 2

POLICIES = ["thompson", "linucb", "egreedy"]
ESTIMATORS = ["ips", "snips", "dm", "dr", "switch-dr"]
WEIGHTS_HELP = ("reward weights per unit, comma-separated name=value: quality (per quality point, quality in [0, 1]), "
                "cost (per USD), latency (per second), failure (per failed call); e.g. quality=1,cost=200")
TARGET_HELP = ("the constraint the chosen weights must meet: METRIC>=VALUE or METRIC<=VALUE with METRIC one of quality, "
               "cost (USD per request), latency (seconds); for quality VALUE may be a fraction of the best single "
               "model's: 'quality>=0.95*best'")
PLOT_HELP = ("write the plot to this .png (or .svg, .pdf) file; a folder, or a path without a suffix, gets {name} inside; the path "
             "written is printed")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (where it has one worth saying), examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Argument mistakes as one line naming the command, with where to look, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(ARGUMENT_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (quality is), got {value}")
    return value


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=int(os.environ.get("ADAPTROUTE_SEED", "0")),
                   help="seed of every random choice (policy draws, folds, bootstrap); ADAPTROUTE_SEED sets the default")


def _policy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default="thompson", choices=POLICIES,
                   help="the policy: Thompson sampling, LinUCB or epsilon-greedy")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")


def _add(sub: argparse._SubParsersAction, name: str, summary: str, description: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=textwrap.fill(description, 100), epilog=examples,
                          formatter_class=_Formatter)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="adaptroute", formatter_class=_Formatter,
        description="Adaptive LLM routing: a demo, offline simulation, off-policy evaluation, weight tuning and "
                    "reports on a router's log.",
        epilog=_examples("adaptroute demo", "adaptroute report routes.duckdb",
                         "adaptroute replay routes.duckdb --policy linucb",
                         "adaptroute simulate evals.csv --weights quality=1,cost=20",
                         "adaptroute tune evals.csv --plot frontier.png", "python -m adaptroute --help"),
    )
    parser.add_argument("--version", action="version", version=f"adaptroute {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    demo = _add(sub, "demo", "route a generated workload through the real Router (offline, mocked providers)",
                "Routes generated requests through Router.acomplete with litellm's mock_response: real prices, "
                "simulated pass rates and latencies (data/demo_profile.json). Writes the log, report.md and a plot.",
                _examples("adaptroute demo", "adaptroute demo --requests 500 --out /tmp/demo"))
    demo.add_argument("--out", default="out/demo", help="folder for the log, report.md and the plot")
    demo.add_argument("--requests", type=_positive_int, default=2000, help="number of requests to route")
    demo.add_argument("--concurrency", type=_positive_int, default=100, help="requests in flight at once")
    _seed(demo)

    sim = _add(sub, "simulate", "replay full-information data (every model's outcome known) through a policy",
               "Streams the prompts of a full-information dataset to a policy that sees only the outcome of the "
               "model it chose, and prints it next to the reference points (best single model, cheapest, random, "
               "best fixed model per task in hindsight, per-prompt oracle).",
               _examples("adaptroute simulate evals.csv --weights quality=1,cost=20",
                         "adaptroute simulate routerbench/ --policy linucb --passes 3 --json",
                         "adaptroute simulate routerbench/ --passes 4 --change 2:gpt-4-1106-preview:cost*=0.1 --plot run.png"))
    sim.add_argument("data", metavar="DATA", help="RouterBench wide CSV or folder, or a long-format parquet/CSV/JSONL "
                     "file with prompt_id, task, model, quality, cost_usd[, latency_s, prompt]")
    sim.add_argument("--passes", type=int, default=1, help="times the prompts are streamed (in a new order each pass)")
    sim.add_argument("--warm-start", dest="warm_start", metavar="TRAIN",
                     help="full-information data to fit the policy on first (its prior precision chosen by evidence)")
    sim.add_argument("--priors", metavar="P.json", help='JSON file of what is known per model before its first request, '
                     'e.g. {"gpt-4o": {"quality": 0.9}} (fields: quality, cost_usd, latency_s)')
    sim.add_argument("--bar", help="quality bar per task, e.g. extract=0.95,draft=0.8 (*=0.7 for the other tasks), "
                     "one number for every task (0.9), or 0.9*best (within 90%% of the task's best model). Without "
                     "--weights, --bar or --budget-per-request the default reward applies: the priciest model's mean "
                     "cost is worth 0.1 quality points")
    sim.add_argument("--budget-per-request", dest="budget_per_request", type=float, metavar="USD",
                     help="mean spend per request to pace to (a hard cap on the run's total)")
    sim.add_argument("--change", action="append", default=[], metavar="PASS:MODEL:EFFECT",
                     help="from pass PASS (1-based) on, EFFECT holds for MODEL: quality-=D, quality+=D, cost*=F, "
                     "arrive (absent before PASS) or leave (absent from PASS on); repeatable, e.g. "
                     "--change 2:gpt-4o:quality-=0.3")
    sim.add_argument("--plot", metavar="FILE_OR_DIR",
                     help="image of the reward per window of requests against each pass's references, changes "
                     "marked (.png/.svg/.pdf, or a folder for simulate.png)")
    sim.add_argument("--allow-pickle", action="store_true",
                     help="allow reading RouterBench's pandas pickle: unpickling runs code from the file, so only for files you trust")
    _policy(sim)
    sim.add_argument("--weights", help=WEIGHTS_HELP + " (default: none; the default bar applies)")
    _seed(sim)
    _json(sim)

    rep = _add(sub, "replay", "estimate, from a router's log, what another policy or other weights would have earned",
               "Off-policy evaluation: the candidate (a policy kind, a saved policy file, or always one model) is "
               "scored on the logged decisions by IPS, SNIPS, DM, DR or Switch-DR, with bootstrap intervals, the "
               "effective sample size, and which estimate to trust. Without --weights the candidate is scored "
               "under the weights the log was collected under.",
               _examples("adaptroute replay routes.duckdb", "adaptroute replay routes.duckdb --policy linucb --estimator snips",
                         "adaptroute replay routes.duckdb --policy-file policy.npz",
                         "adaptroute replay routes.duckdb --always gpt-4o --weights quality=1,cost=200",
                         "adaptroute replay routes.duckdb --bar extract=0.95,draft=0.8",
                         "adaptroute replay 'routes-*.duckdb' --json"))
    rep.add_argument("log", metavar="LOG", help="a router's .duckdb log (closed), a glob of them, or a folder of Parquet snapshots")
    candidate = rep.add_mutually_exclusive_group()
    candidate.add_argument("--policy", default="thompson", choices=POLICIES,
                           help="the candidate policy kind, learning from the log (cross-fitted)")
    candidate.add_argument("--policy-file", metavar="FILE",
                           help="a policy saved by router.save_policy, evaluated as trained (not refitted)")
    candidate.add_argument("--always", metavar="MODEL", help="the policy that always picks this model")
    rep.add_argument("--weights", help=WEIGHTS_HELP + " (default: the weights logged with the decisions)")
    rep.add_argument("--bar", help="evaluate the candidate under a quality bar per task (as for simulate --bar: "
                     "extract=0.95,draft=0.8, 0.9, 0.9*best): the least cost at mean quality >= bar, at the bar's "
                     "settled price; per task the estimated quality and cost under it are shown")
    rep.add_argument("--estimator", default="dr", choices=ESTIMATORS,
                     help="the estimator of the headline figures (every estimator's reward is shown too)")
    rep.add_argument("--bootstrap", type=_positive_int, default=200, help="bootstrap resamples for the intervals")
    _seed(rep)
    _json(rep)

    tune = _add(sub, "tune", "sweep reward weights, keep the quality/cost(/latency) frontier, pick weights for a target",
                "On full-information data each weight setting is simulated; on a router's log, each setting and "
                "each 'always model X' policy is estimated off-policy (doubly robust, with intervals). The cheapest "
                "setting on the frontier that meets --target is chosen.",
                _examples("adaptroute tune evals.csv --plot frontier.png",
                          "adaptroute tune evals.csv --grid cost=0,10,50,200 latency=0,0.1 --target 'quality>=0.8'",
                          "adaptroute tune routes.duckdb --target 'cost<=0.001' --json"))
    tune.add_argument("data", metavar="DATA_OR_LOG", help="full-information data (as for simulate) or a router's log (as for replay)")
    tune.add_argument("--grid", nargs="*", default=None, metavar="NAME=V1,V2",
                      help="weight values to sweep, e.g. cost=0,50,200 latency=0,0.1 (quality stays 1); default: cost "
                           "weights worth 0 to 3 quality points at the priciest model's cost")
    tune.add_argument("--target", default="quality>=0.95*best", help=TARGET_HELP)
    tune.add_argument("--plot", metavar="PNG", help=PLOT_HELP.format(name="frontier.png"))
    tune.add_argument("--bar", nargs="*", default=None, metavar="BAR",
                      help="sweep quality bars instead of weights (on data): each BAR as for simulate --bar, e.g. "
                           "0.8 0.9 extract=0.95,draft=0.8; --bar alone: each task at 0.8-0.98 x its best model")
    tune.add_argument("--allow-pickle", action="store_true", help="allow reading RouterBench's pandas pickle (runs code from the file)")
    _policy(tune)
    _seed(tune)
    _json(tune)

    rpt = _add(sub, "report", "what teams track, from a router's log: cost per completed task, latency, escalations, savings",
               "Per task and overall: requests, mean quality, cost per completed task, latency p50/p95, retry, fallback, "
               "escalation and failure rates, where the router settled, and savings against always the premium model "
               "(priced at that model's price for each request's own tokens).",
               _examples("adaptroute report routes.duckdb", "adaptroute report snapshots/ --plot shares.png",
                         "adaptroute report routes.duckdb --json | jq .tasks.all"))
    rpt.add_argument("log", metavar="LOG", help="a router's .duckdb log (closed), a glob of them, or a folder of Parquet snapshots")
    rpt.add_argument("--plot", metavar="PNG", help=PLOT_HELP.format(name="model_shares.png")
                     + "; with a budget in use, budget.png goes beside it")
    rpt.add_argument("--pass-threshold", type=_fraction, default=0.5, help="quality at which a request counts as a completed task")
    _json(rpt)

    mig = _add(sub, "migrate", "bring a log written by an older adaptroute to this schema version",
               "Adds the columns newer versions log (NULL for the old rows), in one transaction per step.",
               _examples("adaptroute migrate routes.duckdb"))
    mig.add_argument("log", metavar="LOG", help="a .duckdb log file that no process has open")

    srv = _add(sub, "serve", "run the OpenAI-compatible routing gateway (needs adaptroute[server])",
               "Serves /v1/chat/completions (and the dashboard) over a Router configured by a TOML file.",
               _examples("adaptroute serve --config examples/gateway.toml",
                         "adaptroute serve --check examples/gateway.toml",
                         "adaptroute serve --config gateway.toml --port 8080 --workers 4"))
    srv.add_argument("--config", metavar="FILE", help="the gateway's TOML config file (see examples/gateway.toml)")
    srv.add_argument("--check", nargs="?", const=True, metavar="CONFIG",
                     help="validate the config (this file, or --config's) and exit without serving")
    srv.add_argument("--host", help="address to bind (default: server.host, else 127.0.0.1)")
    srv.add_argument("--port", type=int, help="port (default: server.port, else 4000)")
    srv.add_argument("--workers", type=int, help="worker processes, each with its own Router (more than 1 needs a PostgreSQL store)")
    return parser


def prog_of(argv: list[str]) -> str:
    """``adaptroute <command>`` for messages, from raw arguments (before or without parsing)."""
    known = {"demo", "simulate", "replay", "tune", "report", "migrate", "serve"}
    command = next((a for a in argv if a in known), None)
    return f"adaptroute {command}" if command else "adaptroute"


def stderr_line(text: str) -> None:
    """One line on stderr: newlines inside a message would split it."""
    print(" ".join(text.split()), file=sys.stderr)
