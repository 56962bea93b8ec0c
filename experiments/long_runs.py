"""Long runs and change: does the router converge over several passes, and follow a changing world?

RouterBench (the 3,150 prompts every model answered, read from ../shared at run time), reward =
quality - (lam / c_max) * cost_usd with c_max the priciest model's mean cost, 4 passes, seeds 0-9:

- converge: lam 0.1 and 1, no change; the last pass against its best fixed model per task in hindsight;
- change at pass 2, lam 0.1: (a) the largest task's hindsight winner loses 0.3 quality, (b) the priciest
  model gets 10x cheaper, (c) the largest task's winner arrives only at pass 2, (d) it leaves at pass 2;
  the last pass against the best fixed model per task of the world as it then is, and how many of the
  largest task's requests after the change it takes that task's new best model to get half of the
  task's traffic (share over a sliding window of 50 of its requests);
- the same on generated workloads with many models (datasets.synthetic: 16-48 models, 300-1,500
  prompts, simulated), for generality.

Writes experiments/results/long_runs.md and long_runs.png. Run: .venv/bin/python experiments/long_runs.py
(--seeds 0-4 --quick for a screen; --policy-kw '{"explore": 0.3}' to try other settings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

from adaptroute.config import RewardWeights
from adaptroute.datasets import FullInfoDataset, load_dataset
from adaptroute.datasets.synthetic import generate, random_profile
from adaptroute.features import HashingFeaturizer
from adaptroute.policy import make_policy
from adaptroute.replay.changes import parse_change, worlds
from adaptroute.replay.simulate import SimulationResult, simulate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "routerbench"
RESULTS = ROOT / "experiments" / "results"
PASSES = 4
WINDOW = 50
# (models, prompts, tasks, seed offset) of the generated markets
MARKETS = ((16, 300, 2), (30, 800, 3), (48, 1500, 4))


def weights_for(lam: float, c_max: float) -> RewardWeights:
    return RewardWeights(quality=1.0, cost=lam / c_max, failure=0.0)


def routerbench() -> FullInfoDataset:
    return load_dataset(str(DATA))


def market(spec: tuple[int, int, int], seed: int) -> FullInfoDataset:
    models, prompts, tasks = spec
    profile = random_profile(n_models=models, n_tasks=tasks, seed=1000 + seed)
    return generate(profile, prompts, seed=2000 + seed)


def change_specs(data: FullInfoDataset, weights: RewardWeights) -> dict[str, str]:
    """The four changes of the issue, named by what they do, with the models this data gives them."""
    tasks, counts = np.unique(data.tasks, return_counts=True)
    largest = tasks[counts.argmax()]
    rows = data.tasks == largest
    reward = data.quality[rows] - weights.cost * data.cost_usd[rows]
    winner = data.models[int(reward.mean(axis=0).argmax())]
    priciest = data.models[int(data.cost_usd.mean(axis=0).argmax())]
    return {
        "a: winner -0.3": f"2:{winner}:quality-=0.3",
        "b: priciest 10x cheaper": f"2:{priciest}:cost*=0.1",
        "c: winner arrives": f"2:{winner}:arrive",
        "d: winner leaves": f"2:{winner}:leave",
    }


def half_traffic(result: SimulationResult, data: FullInfoDataset, weights: RewardWeights) -> int | None:
    """Requests of the largest task after the change (pass 2) until that task's best model of the new
    world holds half of the task's traffic over a window of WINDOW requests; None: never within the run."""
    tasks, counts = np.unique(data.tasks, return_counts=True)
    largest = tasks[counts.argmax()]
    n = len(data)
    w2 = worlds(data.quality, data.cost_usd, data.models, result.passes, result.changes)[1]
    rows = data.tasks == largest
    reward = w2.quality[rows] - weights.cost * w2.cost_usd[rows]
    reward = np.where(w2.present, reward, -np.inf)
    best = int(reward.mean(axis=0).argmax())
    steps = np.arange(n, result.n)
    in_task = data.tasks[result.prompt_rows[steps]] == largest
    picks = result.chosen[steps][in_task] == best
    if picks.shape[0] < WINDOW:
        return None
    share = np.convolve(picks.astype(float), np.ones(WINDOW) / WINDOW, mode="valid")
    hit = np.flatnonzero(share >= 0.5)
    return None if hit.shape[0] == 0 else int(hit[0] + WINDOW)


def run(job: tuple[str, str, float, int, dict, str | None]) -> dict:
    kind, name, lam, seed, policy_kw, spec = job
    policy_kw = dict(policy_kw)
    featurizer = HashingFeaturizer(**policy_kw.pop("featurizer", {}))
    data = routerbench() if kind == "routerbench" else market(MARKETS[int(name)], seed)
    c_max = float(data.cost_usd.mean(axis=0).max())
    weights = weights_for(lam, c_max)
    changes = () if spec is None else (parse_change(change_specs(data, weights)[spec], data.models, PASSES),)
    policy = make_policy("thompson", weights=weights, seed=seed, **policy_kw)
    result = simulate(data, policy, weights, seed=seed, passes=PASSES, changes=changes, featurizer=featurizer)
    last = result.per_pass[-1]
    return {
        "kind": kind, "name": name, "lam": lam, "seed": seed, "change": spec,
        "per_pass": [p.mean_reward for p in result.per_pass],
        "last_gap": last.mean_reward - last.best_fixed_per_task_reward,
        "first_gap": result.per_pass[0].mean_reward - result.per_pass[0].best_fixed_per_task_reward,
        "fixed": last.best_fixed_per_task_reward, "oracle": last.oracle_reward,
        "half": None if spec is None else half_traffic(result, data, weights),
        "windows": _windows(result),
    }


def _windows(result: SimulationResult, size: int = 250) -> list[float]:
    r = result.rewards
    return [float(r[i : i + size].mean()) for i in range(0, r.shape[0] - size + 1, size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,5")
    parser.add_argument("--policy-kw", default="{}", help="JSON keyword arguments for the Thompson sampling policy")
    parser.add_argument("--quick", action="store_true", help="RouterBench only, no file written")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-write", dest="write", action="store_false", help="print the table only")
    args = parser.parse_args(argv)
    seeds = _seeds(args.seeds)
    kw = json.loads(args.policy_kw)
    jobs = [("routerbench", "rb", lam, s, kw, None) for lam in (0.1, 1.0) for s in seeds]
    jobs += [("routerbench", "rb", 0.1, s, kw, spec) for spec in change_specs(routerbench(), weights_for(0.1, 1.0)) for s in seeds]
    if not args.quick:
        jobs += [("market", str(i), 0.1, s, kw, None) for i in range(len(MARKETS)) for s in seeds]
        jobs += [("market", str(i), 0.1, s, kw, spec) for i in range(len(MARKETS)) for s in seeds
                 for spec in ("a: winner -0.3", "b: priciest 10x cheaper", "c: winner arrives")]
    from tqdm import tqdm

    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="long runs", file=sys.stderr))
    text = write(results, seeds, kw)
    print(text)
    if args.write and not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "long_runs.md").write_text(text + "\n")
        plot(results)
    return 0


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def write(results: list[dict], seeds: list[int], kw: dict) -> str:
    lines = [
        "# Long runs and change",
        "",
        f"`.venv/bin/python experiments/long_runs.py` (policy: thompson{'' if not kw else ' ' + json.dumps(kw)}, "
        f"seeds {seeds[0]}-{seeds[-1]}, {PASSES} passes). Gap = mean reward of the pass minus that pass's best "
        "fixed model per task in hindsight (for the world as it then is); worst = the lowest seed.",
        "",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["kind"], r["name"], r["lam"], r["change"]), []).append(r)
    lines += ["| data | lam | change | last pass gap: mean | worst seed | first pass gap: mean | "
              "half of the task's traffic after (requests of that task): median / worst | per seed (last pass gap) |",
              "|---|---|---|---|---|---|---|---|"]
    for (kind, name, lam, change), rs in groups.items():
        gaps = [r["last_gap"] for r in rs]
        halves = [r["half"] for r in rs]
        if change is None:
            half = "-"
        else:
            known = [h for h in halves if h is not None]
            never = len(halves) - len(known)
            half = (f"{int(np.median(known))} / {max(known)}" if known else "never") + (f" ({never} never)" if never else "")
        label = "RouterBench" if kind == "routerbench" else f"generated, {MARKETS[int(name)][0]} models x {MARKETS[int(name)][1]} prompts"
        lines.append(f"| {label} | {lam:g} | {change or 'none'} | {np.mean(gaps):+.4f} | {min(gaps):+.4f} | "
                     f"{np.mean([r['first_gap'] for r in rs]):+.4f} | {half} | {' '.join(f'{g:+.3f}' for g in gaps)} |")
    return "\n".join(lines)


def plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rb = [r for r in results if r["kind"] == "routerbench" and r["lam"] == 0.1]
    changes = [None, "a: winner -0.3", "b: priciest 10x cheaper", "c: winner arrives", "d: winner leaves"]
    fig, axes = plt.subplots(1, len(changes), figsize=(4 * len(changes), 3.4), sharey=True)
    for ax, change in zip(axes, changes, strict=True):
        rs = [r for r in rb if r["change"] == change]
        for r in rs:
            ax.plot(r["windows"], color="tab:blue", alpha=0.25, lw=0.8)
        ax.plot(np.mean([r["windows"] for r in rs], axis=0), color="tab:blue", lw=1.8, label="adaptroute (mean; thin: seeds)")
        per_window = len(rs[0]["windows"]) / PASSES
        ax.axhline(float(np.mean([r["fixed"] for r in rs])), color="k", ls="--", lw=1, label="best fixed per task, last pass")
        if change:
            ax.axvline(per_window, color="tab:red", lw=1)
        ax.set_title(change or "no change", fontsize=9)
        ax.set_xlabel("window of 250 requests")
    axes[0].set_ylabel("mean reward (lam = 0.1)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "long_runs.png", dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
