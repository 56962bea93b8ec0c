"""The live Router when the world changes: does the traffic move, on every seed?

Mock responses (no provider call; 10 prompt and 20 answer tokens a call, priced from litellm's bundled
table), reward = quality - 1000 * cost_usd, a scorer that passes each answer with its model's pass rate.

- degrades: gpt-4o-mini 0.9, gpt-4o 0.8, gpt-4.1-nano 0.3; after 300 calls gpt-4o-mini's rate drops to
  0.35, so gpt-4o (reward 0.8 - 0.225) becomes the best.
- arrives: gpt-4o-mini 0.6, gpt-4o 0.7, gpt-4.1-nano 0.3; after 150 calls router.add_model() brings
  "better" (0.95, priced below gpt-4o-mini, configured expected quality 0.8).

Per seed pair (router seed s, scorer seed 1000 + s, feature key from s) it reports the new best's share
of the last 100 of the 300 calls after the change, and the calls it takes the new best to hold half of
a sliding window of 50, with the default policy and with ``ThompsonSampling(reexplore=False)`` (the
exploring share does not come back after a detected change or an arrival), measured in one run.

Writes experiments/results/live_change.md. Run: .venv/bin/python experiments/live_change.py [--seeds 0-29]
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

from adaptroute import ModelSpec, RewardWeights, Router
from adaptroute.policy import make_policy

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]
WEIGHTS = RewardWeights(quality=1, cost=1000)
BETTER = ModelSpec(name="better", litellm_model="gpt-4o-mini", input_cost_per_token=1e-7,
                   output_cost_per_token=2e-7, expected_quality=0.8)
# scenario: (pass rates, calls before the change, the new best)
SCENARIOS = {
    "degrades": ({"gpt-4o-mini": 0.9, "gpt-4o": 0.8, "gpt-4.1-nano": 0.3}, 300, "gpt-4o"),
    "arrives": ({"gpt-4o-mini": 0.6, "gpt-4o": 0.7, "gpt-4.1-nano": 0.3, "better": 0.95}, 150, "better"),
}
AFTER, WINDOW, LAST = 300, 50, 100
VARIANTS = {"default": {}, "reexplore=False": {"reexplore": False}}


class Scorer:
    """Pass/fail drawn from each model's pass rate (a seeded stream of its own, not the router's)."""

    def __init__(self, rates: dict[str, float], seed: int) -> None:
        self.rates = dict(rates)
        self.rng = np.random.default_rng(seed)

    def __call__(self, messages, response, model: str) -> float:  # type: ignore[no-untyped-def]
        return float(self.rng.random() < self.rates[model])


def run(job: tuple[str, str, int]) -> dict:
    scenario, variant, seed = job
    rates, before, best = SCENARIOS[scenario]
    scorer = Scorer(rates, 1000 + seed)
    policy = make_policy("thompson", weights=WEIGHTS, seed=seed, **VARIANTS[variant])
    picks: list[str] = []
    with Router(MODELS, reward=WEIGHTS, policy=policy, scorer=scorer, seed=seed,
                hash_key=f"live-change-{seed}".encode()) as router:
        for i in range(before + AFTER):
            if i == before and scenario == "degrades":
                scorer.rates["gpt-4o-mini"] = 0.35
            elif i == before:
                router.add_model(BETTER)
            reply = router.complete([{"role": "user", "content": f"triage ticket {i}"}], task="triage", mock_response="ok")
            picks.append(reply.adaptroute.model)
    after = np.array([m == best for m in picks[before:]], dtype=float)
    share = np.convolve(after, np.ones(WINDOW) / WINDOW, mode="valid")
    hit = np.flatnonzero(share >= 0.5)
    return {"scenario": scenario, "variant": variant, "seed": seed, "last": float(after[-LAST:].mean()),
            "half": int(hit[0] + WINDOW) if hit.shape[0] else None}


def _seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi) + 1)) if hi else [int(s) for s in text.split(",")]


def write(results: list[dict], seeds: list[int]) -> str:
    by = {(r["scenario"], r["variant"], r["seed"]): r for r in results}
    lines = [
        "# The live Router when the world changes",
        "",
        f"`.venv/bin/python experiments/live_change.py --seeds {seeds[0]}-{seeds[-1]}` (mock responses, simulated",
        "scorer; see the script's docstring). degrades: gpt-4o-mini passes 0.9 for 300 calls, then 0.35, and",
        "gpt-4o (0.8) is then the best reward. arrives: after 150 calls router.add_model() brings a model that",
        "passes 0.95 at a lower price. Share: the new best's share of the last 100 of the 300 calls after the",
        "change. Half: calls after the change until it holds half of a window of 50 (never: not within 300).",
        "",
        "| scenario | variant | seeds with share >= 0.6 | mean share | worst share | median calls to half | never half |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario in SCENARIOS:
        for variant in VARIANTS:
            rows = [by[(scenario, variant, s)] for s in seeds]
            shares = [r["last"] for r in rows]
            halves = [r["half"] for r in rows if r["half"] is not None]
            median = f"{float(np.median(halves)):.0f}" if halves else "-"
            lines.append(f"| {scenario} | {variant} | {sum(s >= 0.6 for s in shares)} of {len(rows)} | {np.mean(shares):.2f} | "
                         f"{min(shares):.2f} | {median} | {len(rows) - len(halves)} |")
    columns = [(sc, v) for sc in SCENARIOS for v in VARIANTS]
    lines += ["", "Per seed: share, calls to half.", "",
              "| seed | " + " | ".join(f"{sc}, {v}" for sc, v in columns) + " |",
              "| ---: | " + " | ".join("---:" for _ in columns) + " |"]
    for s in seeds:
        cells = []
        for sc, v in columns:
            r = by[(sc, v, s)]
            cells.append(f"{r['last']:.2f}, {r['half'] if r['half'] is not None else 'never'}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-29", help="e.g. 0-29 or 0,3,5")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-write", dest="write", action="store_false", help="print the table only")
    args = parser.parse_args(argv)
    seeds = _seeds(args.seeds)
    jobs = [(sc, v, s) for sc in SCENARIOS for v in VARIANTS for s in seeds]
    from tqdm import tqdm

    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="live change", file=sys.stderr))
    text = write(results, seeds)
    print(text)
    if args.write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "live_change.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
