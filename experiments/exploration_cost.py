"""What a long run's last pass pays for exploring, and what is left when nothing explores.

    .venv/bin/python experiments/exploration_cost.py [--seeds 0-9]

Each seeded RouterBench run of experiments/long_runs.py (4 passes, no change, lam 0.1 and 1) is run
twice: as released, and with Thompson sampling's exploring share (the decisions drawn from each
model's own evidence at full width) switched off from the start of the last pass. The same seed draws
the same prompts in the same order, so the first three passes are identical and the difference in the
last pass is the price of its exploring share. What remains with it off is where the settled policy
stands after three passes: close to the best fixed model per task, or locked in on a worse one.

Writes experiments/results/exploration_cost.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_runs import PASSES, RESULTS, _seeds, routerbench, weights_for  # noqa: E402

from adaptroute.policy import ThompsonSampling  # noqa: E402
from adaptroute.replay.simulate import simulate  # noqa: E402

LAMS = (0.1, 1.0)
# A last-pass gap at least this close to the best fixed model per task counts as settled on it.
SETTLED = -0.005


class QuietFrom(ThompsonSampling):
    """Thompson sampling whose exploring share is 0 once ``quiet_from`` outcomes have been learned."""

    name = "thompson-quiet-from"

    def __init__(self, *, quiet_from: float, **kwargs: Any) -> None:
        self.quiet_from = float(quiet_from)
        super().__init__(**kwargs)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "quiet_from": self.quiet_from}

    def explore_share(self) -> float:
        return 0.0 if self._arms.clock >= self.quiet_from else super().explore_share()


def run(job: tuple[float, int, bool]) -> tuple[float, int, bool, float]:
    lam, seed, quiet = job
    data = routerbench()
    weights = weights_for(lam, float(data.cost_usd.mean(axis=0).max()))
    if quiet:
        policy: ThompsonSampling = QuietFrom(weights=weights, seed=seed, quiet_from=(PASSES - 1) * len(data))
    else:
        policy = ThompsonSampling(weights=weights, seed=seed)
    last = simulate(data, policy, weights, seed=seed, passes=PASSES).per_pass[-1]
    return lam, seed, quiet, last.mean_reward - last.best_fixed_per_task_reward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,5")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    seeds = _seeds(args.seeds)
    jobs = [(lam, s, quiet) for lam in LAMS for s in seeds for quiet in (False, True)]
    from tqdm import tqdm

    with ProcessPoolExecutor(args.jobs) as pool:
        gaps = {(lam, s, q): g for lam, s, q, g in tqdm(pool.map(run, jobs), total=len(jobs), desc="runs", file=sys.stderr)}
    text = write(gaps, seeds)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "exploration_cost.md").write_text(text + "\n")
    return 0


def write(gaps: dict[tuple[float, int, bool], float], seeds: list[int]) -> str:
    lines = [
        "# The last pass's price of exploring",
        "",
        f"`.venv/bin/python experiments/exploration_cost.py --seeds {seeds[0]}-{seeds[-1]}`: RouterBench, "
        f"{PASSES} passes, no change. Last-pass gap = its mean reward minus its best fixed model per task "
        "in hindsight, as in long_runs.md; \"quiet\" = the same run with the exploring share off from the "
        "start of the last pass (the first three passes are identical).",
        "",
        "| lam | run | mean | worst seed | seeds within 0.005 | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for lam in LAMS:
        for quiet in (False, True):
            g = np.array([gaps[(lam, s, quiet)] for s in seeds])
            label = "exploring share off in the last pass" if quiet else "as released"
            lines.append(f"| {lam:g} | {label} | {g.mean():+.4f} | {g.min():+.4f} | {int((g >= SETTLED).sum())} of {len(seeds)} "
                         f"| {' '.join(f'{x:+.3f}' for x in g)} |")
        price = np.array([gaps[(lam, s, False)] - gaps[(lam, s, True)] for s in seeds])
        lines.append(f"| {lam:g} | difference (the price of exploring in the last pass) | {price.mean():+.4f} | "
                     f"{price.min():+.4f} | | {' '.join(f'{x:+.3f}' for x in price)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
