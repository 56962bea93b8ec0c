"""`adaptroute demo`: the real Router code path on a generated workload, with no network.

Requests go through Router.acomplete -> litellm with mock_response (litellm's offline mode), many in
flight at once as in a service. Which model answers well, what it costs and how long it takes come from
the profile shipped in data/demo_profile.json: prices are real list prices, pass rates and latencies are
illustrative and simulated (each model's latency is litellm's mock_delay, so the router measures real
seconds). A seeded grader plays the user's acceptance check; failed answers are escalated once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .config import ModelSpec, RewardWeights
from .datasets.synthetic import WorkloadProfile
from .errors import AdaptRouteError

__all__ = ["DemoSummary", "expected_best", "load_profile", "run_demo"]


def load_profile(path: str | Path | None = None) -> WorkloadProfile:
    """The shipped profile (data/demo_profile.json) or another file of the same shape."""
    text = Path(path).read_text() if path else resources.files("adaptroute").joinpath("data/demo_profile.json").read_text()
    return WorkloadProfile.from_dict(json.loads(text))


@dataclass(frozen=True)
class _Prompt:
    task: str
    text: str
    difficulty: float
    tokens_in: int
    tokens_out: int


class _Grader:
    """Simulated acceptance check: passes with the profile's pass rate for (task, model), moved by
    the prompt's hidden difficulty. Takes ``model`` so it knows who answered."""

    def __init__(self, profile: WorkloadProfile, prompts: dict[str, _Prompt], seed: int) -> None:
        self.rates = {m.name: m.quality for m in profile.models}
        self.spread = {t.name: t.difficulty_spread for t in profile.tasks}
        self.prompts = prompts
        self.rng = np.random.default_rng(seed)

    def __call__(self, messages: list[dict[str, Any]], response: Any, model: str) -> float:
        prompt = self.prompts[messages[-1]["content"]]
        p = float(np.clip(self.rates[model][prompt.task], 1e-4, 1 - 1e-4))
        logit = np.log(p / (1 - p)) - self.spread[prompt.task] * prompt.difficulty
        return float(self.rng.random() < 1.0 / (1.0 + np.exp(-logit)))


def _workload(profile: WorkloadProfile, n: int, seed: int) -> list[_Prompt]:
    rng = np.random.default_rng(seed)
    shares = np.array([t.share for t in profile.tasks])
    prompts = []
    for i, t in enumerate(rng.choice(len(profile.tasks), size=n, p=shares / shares.sum())):
        task = profile.tasks[t]
        words = " ".join(rng.choice(task.words or (task.name,), size=int(rng.integers(8, 24))))
        prompts.append(_Prompt(task.name, f"[{i}] {task.name}: {words}", float(rng.normal()),
                               int(task.tokens_in * rng.lognormal(0, 0.4)), int(task.tokens_out * rng.lognormal(0, 0.3)) + 1))
    return prompts


@dataclass(frozen=True)
class DemoSummary:
    requests: int
    seconds: float
    log_path: Path
    report_markdown: str
    plot_paths: list[Path]
    weights: RewardWeights
    expected_best: dict[str, str]


def run_demo(
    out_dir: str | Path = "out/demo",
    *,
    requests: int = 2000,
    concurrency: int = 100,
    seed: int = 0,
    weights: RewardWeights | None = None,
    progress: bool = True,
) -> DemoSummary:
    from .router import Router  # imported here: the CLI stays fast for other commands
    from .replay.report import format_report, plot_report, report
    from .store import read_log

    profile = load_profile()
    weights = weights or RewardWeights(quality=1.0, cost=20.0, latency=0.05)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "demo.duckdb"
    for stale in (log_path, log_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    prompts = _workload(profile, requests, seed)
    by_text = {p.text: p for p in prompts}
    models = [
        ModelSpec(name=m.name, input_cost_per_token=m.input_cost_per_token, output_cost_per_token=m.output_cost_per_token,
                  mock_delay=m.latency_s)
        for m in profile.models
    ]
    bar, budget = demo_controls(profile, prompts)
    router = Router(models=models, reward=weights, store=str(log_path), scorer=_Grader(profile, by_text, seed + 1),
                    seed=seed, escalate_below=0.5, quality_bar=bar, budget=budget)
    started = time.perf_counter()
    try:
        asyncio.run(_drive(router, prompts, concurrency, progress))
    finally:
        router.close()
    seconds = time.perf_counter() - started
    batch = read_log(str(log_path))
    markdown = format_report(report(batch))
    from .replay.report_controls import controls_report, format_controls

    markdown += (f"\n\nOperator controls: a quality bar on {', '.join(f'{t} ({v:g})' for t, v in bar.items())}, "
                 f"a budget on {budget.task} ({budget.describe()}).\n\n" + format_controls(controls_report(batch)))
    plots = plot_report(batch, out)
    (out / "report.md").write_text(_header(profile, weights, requests, seconds) + markdown + "\n")
    return DemoSummary(requests, seconds, log_path, markdown, plots, weights, expected_best(profile, weights))


def demo_controls(profile: WorkloadProfile, prompts: list[_Prompt]) -> tuple[dict[str, float], Any]:
    """The demo's operator controls: a quality bar on extraction (0.9), and a budget on drafting of 30%
    of what its requests would cost on the priciest model, paced over them."""
    from .policy.pacing import Budget

    draft = next(t for t in profile.tasks if t.name == "draft")
    priciest = max(profile.models, key=lambda m: m.input_cost_per_token * draft.tokens_in + m.output_cost_per_token * draft.tokens_out)
    n = max(1, sum(p.task == "draft" for p in prompts))
    per_request = priciest.input_cost_per_token * draft.tokens_in + priciest.output_cost_per_token * draft.tokens_out
    return {"extract": 0.9}, Budget(usd=round(0.3 * per_request * n, 4), per_requests=n, task="draft")


async def _drive(router: Any, prompts: list[_Prompt], concurrency: int, progress: bool) -> None:
    from tqdm import tqdm

    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(prompts), desc="demo requests", unit="req", file=sys.stderr, disable=not progress)

    async def one(prompt: _Prompt) -> None:
        async with gate:
            mock = {"choices": [{"message": {"role": "assistant", "content": f"answer to {prompt.task}"}}],
                    "usage": {"prompt_tokens": prompt.tokens_in, "completion_tokens": prompt.tokens_out,
                              "total_tokens": prompt.tokens_in + prompt.tokens_out}}
            try:
                await router.acomplete([{"role": "user", "content": prompt.text}], task=prompt.task, mock_response=mock)
            except AdaptRouteError:
                pass  # logged by the router; the report counts it
            bar.update(1)

    await asyncio.gather(*(one(p) for p in prompts))
    bar.close()


def expected_best(profile: WorkloadProfile, weights: RewardWeights) -> dict[str, str]:
    """What the router should find: per task, the two models with the best expected reward under the
    profile (pass rate, median-token cost, simulated latency), with those rewards."""
    best = {}
    for task in profile.tasks:
        def reward(m: Any, task: Any = task) -> float:
            cost = task.tokens_in * m.input_cost_per_token + task.tokens_out * m.output_cost_per_token
            return weights.quality * m.quality[task.name] - weights.cost * cost - weights.latency * m.latency_s
        first, second = sorted(profile.models, key=reward, reverse=True)[:2]
        best[task.name] = f"{first.name} ({reward(first):.3f}; next {second.name} {reward(second):.3f})"
    return best


def _header(profile: WorkloadProfile, weights: RewardWeights, requests: int, seconds: float) -> str:
    targets = ", ".join(f"{task} -> {model}" for task, model in expected_best(profile, weights).items())
    return (
        f"# adaptroute demo\n\n{requests} requests through Router.acomplete in {seconds:.1f} s; reward weights "
        f"quality={weights.quality}, cost={weights.cost}/USD, latency={weights.latency}/s. Prices: "
        f"{profile.sources.get('prices', '?')}. Pass rates and latencies are simulated "
        "(illustrative profile in data/demo_profile.json).\n\n"
        f"Best expected reward per task under the profile (what the router has to discover): {targets}.\n\n"
    )
