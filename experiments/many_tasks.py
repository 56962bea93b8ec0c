"""Per-decision work against the number of distinct task names seen: featurize, predict and learn with
the router's default featurizer and policy (no provider call). Prints one table, measured in one run.

    .venv/bin/python experiments/many_tasks.py [--tasks 3000] [--max-tasks 64]
"""

from __future__ import annotations

import argparse
import resource
import time

from adaptroute import HashingFeaturizer, make_policy
from adaptroute.types import Outcome

MODELS = ("small", "medium", "large")
MESSAGES = [{"role": "user", "content": "extract the total from this invoice: 3 items, 12.50 EUR"}]


def per_call_ms(featurizer: HashingFeaturizer, policy, tasks: list[str], repeats: int = 200) -> float:
    start = time.perf_counter()
    for i in range(repeats):
        x = featurizer.transform(MESSAGES, tasks[i % len(tasks)])
        policy.predict(x, MODELS)
        policy.update(x, MODELS[i % 3], Outcome(0.7, 1e-4, 0.5))
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--max-tasks", type=int, default=64,
                        help="tasks with a feature of their own (64, the default; 4096: as before the cap)")
    args = parser.parse_args()
    featurizer = HashingFeaturizer(max_tasks=args.max_tasks)
    policy = make_policy("thompson", seed=0)
    for model in MODELS:
        policy.add_model(model)
    rows = []
    seen = 0
    for mark in sorted({10, 100, 1000, args.tasks}):
        while seen < mark:
            x = featurizer.transform(MESSAGES, f"task-{seen}")
            policy.update(x, MODELS[seen % 3], Outcome(0.7, 1e-4, 0.5))
            seen += 1
        recent = [f"task-{seen - 1 - j}" for j in range(10)]
        rows.append((mark, featurizer.dim, per_call_ms(featurizer, policy, recent)))
    print(f"max_tasks={args.max_tasks}\n")
    print("| distinct tasks seen | features per decision | ms per decision (featurize + predict + learn) |")
    print("|---|---|---|")
    for mark, dim, ms in rows:
        print(f"| {mark:,} | {dim} | {ms:.3f} |")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
