"""Many models, short histories: where exploration eats the gains.

    .venv/bin/python experiments/many_models.py      # writes experiments/results/many_models.{md,png}

Generated markets (adaptroute.datasets.synthetic.random_profile: prices log-uniform over three decades,
pass rates rising with price by a set correlation, task-specific deviations, per-prompt difficulty shared
by all models) with 10 to 60 models and 300 to 1,000 requests, plus RouterBench subsampled to 500
prompts when ../shared is present. Score: normalised reward, 0 = a uniformly random model, 1 = the best
fixed model per task chosen in hindsight, on the same stream. Reward = quality - lam * cost / c_max with
c_max the priciest model's mean cost, lam in (0.1, 1). Seeds 0-4. Also an ablation of the default's parts,
and the default given what a deployment knows before its first request: list prices (the Router's price
table), a rough expected quality per model, or an eval set that every model has answered.
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
from adaptroute.policy import ModelPrior, Policy, make_policy
from adaptroute.replay.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "routerbench"
RESULTS = ROOT / "experiments" / "results"
SEEDS = (0, 1, 2, 3, 4)
LAMS = (0.1, 1.0)
# (models, requests, price-quality correlation)
MARKETS = ((10, 1000, 0.5), (40, 1000, 0.3), (40, 1000, 0.7), (40, 300, 0.5), (60, 500, 0.3), (60, 500, 0.7))
# label: (policy, its parameters, what is known before the first request)
POLICIES = {
    "thompson (default)": ("thompson", {}, None),
    "thompson + list prices": ("thompson", {}, "prices"),
    "thompson + list prices + expected quality (true pass rate ± 0.1)": ("thompson", {}, "prices+quality"),
    "thompson + warm start on an eval set (every model on 100 other prompts)": ("thompson", {}, "eval-set"),
    "thompson, plain (scale 1 whatever the number of models, no shrinkage)":
        ("thompson", {"scale": 1.0, "scale_at": None, "shrinkage": False}, None),
    "thompson, no shrinkage": ("thompson", {"shrinkage": False}, None),
    "thompson, scale 1 (at 10 models)": ("thompson", {"scale": 1.0}, None),
    "thompson, width 0.5 whatever the number of models": ("thompson", {"scale_at": None}, None),
    "linucb (alpha 1)": ("linucb", {}, None),
    "egreedy (epsilon 0.1)": ("egreedy", {}, None),
}
REFERENCE = "best single model in hindsight (reference)"
EVAL_SET = 100


def market(spec: tuple[int, int, float], seed: int) -> tuple[FullInfoDataset, FullInfoDataset]:
    """The stream, and an eval set of other prompts from the same market."""
    k, n, corr = spec
    profile = random_profile(k, 3, seed=1000 + seed, price_quality_corr=corr)
    return generate(profile, n, seed=seed), generate(profile, EVAL_SET, seed=10_000 + seed, name="eval set")


def routerbench_subset(seed: int, n: int = 500) -> tuple[FullInfoDataset, FullInfoDataset]:
    data = read_routerbench(DATA)
    rows = np.random.default_rng(seed).permutation(len(data))
    return data.subset(rows[:n]), data.subset(rows[n : n + EVAL_SET])


def with_knowledge(policy: Policy, data: FullInfoDataset, known: str | None, seed: int) -> None:
    """Configure the priors a deployment would have: list prices as each model's mean cost, and a guess
    at its pass rate off by N(0, 0.1) (a leaderboard figure, say)."""
    if known not in ("prices", "prices+quality"):
        return
    cost = data.cost_usd.mean(axis=0)
    guess = np.clip(data.quality.mean(axis=0) + np.random.default_rng(seed).normal(0.0, 0.1, len(data.models)), 0.0, 1.0)
    for j, model in enumerate(data.models):
        quality = float(guess[j]) if known == "prices+quality" else None
        policy.add_model(model, ModelPrior(quality=quality, cost_usd=float(cost[j])))


def run_one(job: tuple[str, object, int, float]) -> tuple[str, object, int, float, float]:
    label, spec, seed, lam = job
    data, eval_set = routerbench_subset(seed) if spec == "routerbench-500" else market(spec, seed)  # type: ignore[arg-type]
    c_max = float(data.cost_usd.mean(axis=0).max())
    weights = RewardWeights(quality=1.0, cost=lam / c_max, failure=0.0)
    name, params, known = POLICIES[label]
    policy = make_policy(name, weights=weights, seed=seed, **params)
    with_knowledge(policy, data, known, seed)
    warm = eval_set if known == "eval-set" else None
    result = simulate(data, policy, weights, seed=seed, warm_start=warm)
    refs = result.baselines
    low, high = refs["random"].mean_reward, refs["best_fixed_per_task"].mean_reward
    return label, spec, seed, lam, (result.mean_reward - low) / (high - low), (refs["best_single"].mean_reward - low) / (high - low)


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
    # The reference's score is the same in every policy's jobs: read it from the default's.
    rows = [(r[0], r[1], r[2], r[4]) for r in results]
    rows += [(REFERENCE, r[1], r[2], r[5]) for r in results if r[0] == "thompson (default)"]
    labels = [*POLICIES, REFERENCE]
    table = {label: [np.mean([v for lb, sp, _, v in rows if lb == label and sp == spec]) for spec in specs] for label in labels}
    spread = {label: [np.std([np.mean([v for lb, sp, sd, v in rows if lb == label and sp == spec and sd == s]) for s in SEEDS])
                      for spec in specs] for label in labels}
    lines = [
        "# Many models, short histories",
        "",
        "Command: `.venv/bin/python experiments/many_models.py`. Normalised reward on the same stream: 0 = a",
        "uniformly random model, 1 = the best fixed model per task in hindsight (the oracle is above 1). Mean over",
        f"seeds {list(SEEDS)} and lam in {list(LAMS)} (cost weight lam / c_max); ± is the spread over seeds.",
        "Markets are generated (simulated quality, cost and latency); the last column, when present, is real",
        "RouterBench data subsampled to 500 prompts.",
        "",
        "What the default knows before the first request: nothing (the first row, as in `simulate`); list",
        "prices (each model's mean cost as its cost prior, as the Router sets from its price table); also an",
        "expected quality per model (`ModelSpec(expected_quality=...)`), here the model's true mean pass rate",
        "plus N(0, 0.1) noise; or a warm start on an eval set, every model's outcome on 100 other prompts.",
        "The best single model is a hindsight reference: it needs the same knowledge as the best model per task.",
        "",
        "| policy | " + " | ".join(_name(s) for s in specs) + " | mean |",
        "|---|" + "---|" * (len(specs) + 1),
    ]
    for label in labels:
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
