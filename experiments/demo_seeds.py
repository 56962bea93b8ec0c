"""Does the demo's router settle on the demo's own best expected model, seed after seed?

Runs `adaptroute demo` (run_demo, the same code path) for each seed, one after another, and writes
experiments/results/demo_seeds.md: per seed and task the model with the largest share of first choices
over the last quarter of the task's requests, that share, the best expected model (after the mid-run
price cut, on the objective the router learns: demo/expected.py) and whether they match; then how the
router followed the price cut. Measured in one run:

    .venv/bin/python experiments/demo_seeds.py            # seeds 0-4, 2,000 requests each (~4 min)
    .venv/bin/python experiments/demo_seeds.py --seeds 0 1 --requests 1000 --no-compare

Then, unless --no-compare, the same seeds once more with the price cut left to the change detector alone
(Router.update_model's rescaling of the learned cost switched off): which mechanism follows a price cut.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from adaptroute.demo import DemoSummary, run_demo  # noqa: E402
from adaptroute.router.learning import Learner  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "demo_seeds.md"


@contextmanager
def _detector_only() -> Iterator[None]:
    """update_model() changes the prices the router bills and plans with, but the policy keeps what it
    learned of the model's cost: only the change detector can notice the cut (from the calls that follow)."""
    original = Learner.rescale_cost
    Learner.rescale_cost = lambda self, model, factor: None  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Learner.rescale_cost = original  # type: ignore[method-assign]


def _follow_rows(seed: int, summary: DemoSummary) -> list[str]:
    rows = []
    for f in summary.following:
        half = str(f.requests_to_half) if f.requests_to_half is not None else "never"
        rows.append(f"| {seed} | {f.task} | {f.before} -> {f.after} | {100 * f.share_before:.0f}% | "
                    f"{100 * f.share_after:.0f}% | {half} | {f.requests_after} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-compare", action="store_true", help="skip the runs with the change detector alone")
    args = parser.parse_args(argv)
    rows, follow_rows, all_right = [], [], 0
    targets = None
    started = time.perf_counter()
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="demo-seed-") as folder:
            summary = run_demo(folder, requests=args.requests, seed=seed, progress=False)
        targets = summary.targets
        right = 0
        for task, target in summary.targets.items():
            model, share = summary.settled.get(task, ("-", 0.0))
            match = model == target.best
            right += match
            rows.append(f"| {seed} | {task} | {model} | {100 * share:.0f}% | {target.best} | {'yes' if match else 'NO'} |")
        all_right += right == len(summary.targets)
        follow_rows += _follow_rows(seed, summary)
        print(f"seed {seed}: {right}/{len(summary.targets)} tasks settled on the best expected model "
              f"({summary.seconds:.1f} s)", file=sys.stderr)
    assert targets is not None
    compare_rows: list[str] = []
    if not args.no_compare:
        with _detector_only():
            for seed in args.seeds:
                with tempfile.TemporaryDirectory(prefix="demo-seed-") as folder:
                    summary = run_demo(folder, requests=args.requests, seed=seed, progress=False)
                compare_rows += _follow_rows(seed, summary)
                print(f"seed {seed}, change detector alone: done", file=sys.stderr)
    header = ["| seed | task | best expected | share before | share after | requests to half | task requests after |",
              "|---|---|---|---|---|---|---|"]
    lines = [
        "# The demo's router against its own best expected model, per seed",
        "",
        f"`.venv/bin/python experiments/demo_seeds.py --seeds {' '.join(map(str, args.seeds))} --requests {args.requests}` "
        f"(measured in one run, {time.perf_counter() - started:.0f} s). Each seed is one `adaptroute demo --seed N` "
        f"run: {args.requests} requests through Router.acomplete and litellm to the demo's simulated provider, the "
        "profile's price cut at the halfway request. \"Settled\" is the model with the largest share of the task's first choices "
        "over its last quarter of requests (the report's \"where the router settled\"); \"best expected\" is "
        "computed on the objective the router learns (adaptroute/demo/expected.py), after the price cut.",
        "",
        f"**Seeds with every task right: {all_right} of {len(args.seeds)}.**",
        "",
        "Best expected (and why): " + "; ".join(t.describe() for t in targets.values()) + ".",
        "",
        "| seed | task | settled on | share | best expected | match |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "## Following the price cut",
        "",
        "The new best's share of the task's first choices in the last quarter before the change and in the last "
        "quarter of the task's requests after it, and by which of the task's requests after the change it first had "
        "half of a trailing window (its last 30 requests since the change, at least 10).",
        "",
        *header,
        *follow_rows,
        "",
    ]
    if compare_rows:
        lines += [
            "### The same seeds with the change detector alone",
            "",
            "Router.update_model() rescales what the policy learned of the model's cost by new price / old price, "
            "so the next decision prices it right. Without that rescaling (the router bills and plans with the new "
            "price, the policy still predicts the old cost), only the change detector (policy/drift.py) can notice "
            "the cut, from the cheaper calls that follow, and only where the model still gets calls:",
            "",
            *header,
            *compare_rows,
            "",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
