"""Many models, short histories: where exploration eats the gains.

    .venv/bin/python experiments/many_models.py      # writes experiments/results/many_models.{md,png}

Generated markets (adaptroute.datasets.synthetic.random_profile: prices log-uniform over three decades,
pass rates rising with price by a set correlation, task-specific deviations, per-prompt difficulty shared
by all models) with 10 to 60 models and 300 to 1,000 requests, plus RouterBench subsampled to 500
prompts when ../shared is present. Score: normalised reward, 0 = a uniformly random model, 1 = the best
fixed model per task chosen in hindsight, on the same stream. Reward = quality - lam * cost / c_max with
c_max the priciest model's mean cost, lam in (0.1, 1). Seeds 0-4. Also an ablation of the default's parts.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from adaptroute import RewardWeights
from adaptroute.datasets import read_routerbench
from adaptroute.datasets.base import FullInfoDataset
from adaptroute.datasets.synthetic import generate, random_profile
from adaptroute.policy import make_policy
from adaptroute.replay.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "routerbench"
RESULTS = ROOT / "experiments" / "results"
SEEDS = (0, 1, 2, 3, 4)
LAMS = (0.1, 1.0)
# (models, requests, price-quality correlation)
MARKETS = ((10, 1000, 0.5), (40, 1000, 0.3), (40, 1000, 0.7), (40, 300, 0.5), (60, 500, 0.3), (60, 500, 0.7))
POLICIES = {
    "thompson (default)": ("thompson", {}),
    "thompson, plain (scale 1, no shrinkage)": ("thompson", {"scale": 1.0, "shrinkage": False}),
    "thompson, scale 0.5, no shrinkage": ("thompson", {"shrinkage": False}),
    "thompson, scale 1, shrinkage": ("thompson", {"scale": 1.0}),
    "linucb (alpha 1)": ("linucb", {}),
    "egreedy (epsilon 0.1)": ("egreedy", {}),
}


def market(spec: tuple[int, int, float], seed: int) -> FullInfoDataset:
    k, n, corr = spec
    return generate(random_profile(k, 3, seed=1000 + seed, price_quality_corr=corr), n, seed=seed)


def routerbench_subset(seed: int, n: int = 500) -> FullInfoDataset:
    data = read_routerbench(DATA)
    return data.subset(np.random.default_rng(seed).choice(len(data), size=n, replace=False))


def run_one(job: tuple[str, object, int, float]) -> tuple[str, object, int, float, float]:
    label, spec, seed, lam = job
    data = routerbench_subset(seed) if spec == "routerbench-500" else market(spec, seed)  # type: ignore[arg-type]
    c_max = float(data.cost_usd.mean(axis=0).max())
    weights = RewardWeights(quality=1.0, cost=lam / c_max, failure=0.0)
    name, params = POLICIES[label]
    result = simulate(data, make_policy(name, weights=weights, seed=seed, **params), weights, seed=seed)
    refs = result.baselines
    low, high = refs["random"].mean_reward, refs["best_fixed_per_task"].mean_reward
    return label, spec, seed, lam, (result.mean_reward - low) / (high - low)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    specs: list[object] = list(MARKETS)
    if (DATA / "SOURCE.md").exists():
        specs.append("routerbench-500")
    jobs = [(label, spec, seed, lam) for label in POLICIES for spec in specs for seed in SEEDS for lam in LAMS]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(tqdm(pool.map(run_one, jobs, chunksize=4), total=len(jobs), desc="many models", file=sys.stderr))
    text = write(results, specs)
    print(text)
    return 0


def _name(spec: object) -> str:
    if spec == "routerbench-500":
        return "RouterBench, 500 prompts, 11 models"
    k, n, corr = spec  # type: ignore[misc]
    return f"{k} models, {n} requests, corr {corr}"


def write(results: list, specs: list[object]) -> str:  # type: ignore[type-arg]
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = {label: [np.mean([r[4] for r in results if r[0] == label and r[1] == spec]) for spec in specs] for label in POLICIES}
    spread = {label: [np.std([np.mean([r[4] for r in results if r[0] == label and r[1] == spec and r[2] == s]) for s in SEEDS])
                      for spec in specs] for label in POLICIES}
    lines = [
        "# Many models, short histories",
        "",
        "Command: `.venv/bin/python experiments/many_models.py`. Normalised reward on the same stream: 0 = a",
        "uniformly random model, 1 = the best fixed model per task in hindsight (the oracle is above 1). Mean over",
        f"seeds {list(SEEDS)} and lam in {list(LAMS)} (cost weight lam / c_max); ± is the spread over seeds.",
        "Markets are generated (simulated quality, cost and latency); the last column, when present, is real",
        "RouterBench data subsampled to 500 prompts.",
        "",
        "| policy | " + " | ".join(_name(s) for s in specs) + " | mean |",
        "|---|" + "---|" * (len(specs) + 1),
    ]
    for label in POLICIES:
        cells = [f"{m:.2f} ± {s:.2f}" for m, s in zip(table[label], spread[label], strict=True)]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {np.mean(table[label]):.2f} |")
    lines += ["", "![normalised reward per market](many_models.png)", ""]
    text = "\n".join(lines)
    (RESULTS / "many_models.md").write_text(text + "\n")
    _plot(table, specs)
    return text


def _plot(table: dict[str, list[float]], specs: list[object]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(table)
    x = np.arange(len(specs))
    for i, (label, values) in enumerate(table.items()):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=label)
    ax.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
    ax.axhline(0.0, color="k", linewidth=0.8)
    ax.set_xticks(x, [_name(s).replace(", ", "\n") for s in specs], fontsize=7)
    ax.set_ylabel("normalised reward (0 random, 1 best fixed per task)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(RESULTS / "many_models.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
