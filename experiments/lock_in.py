"""Why a long run locks in: one seeded RouterBench run of 4 passes, and what the policy believes of one
task's best models every half pass.

    .venv/bin/python experiments/lock_in.py --lam 1 --seed 7 --task winogrande

Runs the loop of adaptroute simulate (no change; the same shuffles and draws as `simulate --passes 4`
and experiments/long_runs.py) and prints, for the task's four best models in hindsight: their true mean
reward on the task, the policy's mean predicted reward (and sd) over the task's first 150 prompts,
shared (what its settled draws use) and on the model's own evidence (what its exploring share uses),
how many of the task's requests it got so far and in the last half pass, and the mean reward of those
it got. Reward = quality - (lam / c_max) * cost_usd, as in long_runs.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_runs import PASSES, routerbench, weights_for  # noqa: E402

from adaptroute.features import HashingFeaturizer  # noqa: E402
from adaptroute.policy import make_policy  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--task", default="winogrande")
    parser.add_argument("--policy-kw", default="{}", help="JSON keyword arguments for the Thompson sampling policy")
    args = parser.parse_args(argv)
    data = routerbench()
    weights = weights_for(args.lam, float(data.cost_usd.mean(axis=0).max()))
    policy = make_policy("thompson", weights=weights, seed=args.seed, **json.loads(args.policy_kw))
    policy.weights = weights
    for model in data.models:
        policy.add_model(model)
    X = data.features(HashingFeaturizer())
    n = len(data)
    zeros = np.zeros_like(data.cost_usd)
    targets = np.stack([data.quality, data.cost_usd, zeros, zeros], axis=2)
    reward = data.quality - weights.cost * data.cost_usd
    rng = np.random.default_rng(args.seed)
    order = np.concatenate([rng.permutation(n) for _ in range(PASSES)])  # as simulate draws them
    rows = np.flatnonzero(data.tasks == args.task)
    if rows.shape[0] == 0:
        parser.error(f"no task {args.task!r} in {data.source}")
    truth = reward[rows].mean(axis=0)
    top = np.argsort(-truth)[:4]
    in_task = np.zeros(n, dtype=bool)
    in_task[rows] = True
    chosen = np.empty(order.shape[0], dtype=np.int64)
    half = n // 2
    print(f"lam {args.lam}, seed {args.seed}, task {args.task} ({rows.shape[0]} prompts a pass)")
    print("| step | explore share | model | true reward | shared prediction | own prediction | requests of the task | share, last half pass | their mean reward |")
    print("|---|---|---|---|---|---|---|---|---|")
    for step, row in enumerate(order):
        k = policy.sample(X[row], rng)
        policy.update(X[row], data.models[k], targets[row, k])
        chosen[step] = k
        if (step + 1) % half:
            continue
        done, seen = chosen[: step + 1], order[: step + 1]
        recent = slice(step + 1 - half, step + 1)
        probe = [policy._fit_dim(X[r]) for r in rows[:150]]
        shared = [policy._reward_stats(x, None, None, shared=True) for x in probe]
        own = [policy._reward_stats(x, None, None, shared=False) for x in probe]
        for m in top:
            at = list(policy._models).index(data.models[m])
            got = (done == m) & in_task[seen]
            lately = in_task[seen[recent]]
            print(f"| {step + 1} | {policy.explore_share():.3f} | {data.models[m]} | {truth[m]:.3f} "
                  f"| {np.mean([s[1][at] for s in shared]):.3f} ± {np.mean([s[2][at] for s in shared]):.3f} "
                  f"| {np.mean([s[1][at] for s in own]):.3f} ± {np.mean([s[2][at] for s in own]):.3f} | {int(got.sum())} "
                  f"| {float((done[recent][lately] == m).mean()):.2f} "
                  f"| {reward[seen[got], m].mean() if got.any() else float('nan'):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
