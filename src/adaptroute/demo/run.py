"""`adaptroute demo`: the real Router code path on a generated workload, with no network.

Requests go through Router.acomplete -> litellm, which hands them to a simulated provider (litellm's
custom-provider interface, provider.py), many in flight at once as in a service. Which model answers
well, what it costs and how long it takes come from the profile shipped in data/demo_profile.json:
prices are real list prices, pass rates and latencies are illustrative and simulated (the provider waits
each call's latency, so the router measures real seconds). A seeded grader plays the user's acceptance
check; failed answers are escalated once. Halfway
through, one model's price is cut (Router.update_model), which changes the best model of one task.
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

from ..config import ModelSpec, RewardWeights
from ..datasets.synthetic import WorkloadProfile
from ..errors import AdaptRouteError
from .change import Following, PriceChange, following, format_following
from .expected import TaskTarget, expected_targets
from .provider import PROVIDER, SimulatedProvider, simulated_provider

__all__ = ["DEMO_WEIGHTS", "DemoSummary", "demo_controls", "load_profile", "run_demo"]

# A quality point is worth 2.5 cents and a second 5 hundredths of one: price matters as much as quality
# on long prompts, so the cheapest model that does the job well wins.
DEMO_WEIGHTS = RewardWeights(quality=1.0, cost=40.0, latency=0.05)
BAR = {"extract": 0.9}
BUDGET_SHARE = 0.45  # draft's budget: this share of what always using the priciest model would cost


def _profile_json(path: str | Path | None) -> dict[str, Any]:
    text = Path(path).read_text() if path else resources.files("adaptroute").joinpath("data/demo_profile.json").read_text()
    return json.loads(text)


def load_profile(path: str | Path | None = None) -> WorkloadProfile:
    """The shipped profile (data/demo_profile.json) or another file of the same shape."""
    return WorkloadProfile.from_dict(_profile_json(path))


@dataclass(frozen=True)
class _Prompt:
    index: int
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
        self.index = {m.name: i for i, m in enumerate(profile.models)}
        self.spread = {t.name: t.difficulty_spread for t in profile.tasks}
        self.prompts = prompts
        self.seed = seed

    def __call__(self, messages: list[dict[str, Any]], response: Any, model: str) -> float:
        prompt = self.prompts[messages[-1]["content"]]
        p = float(np.clip(self.rates[model][prompt.task], 1e-4, 1 - 1e-4))
        logit = np.log(p / (1 - p)) - self.spread[prompt.task] * prompt.difficulty
        # one verdict per (prompt, model), whatever order the concurrent calls finish in
        u = np.random.default_rng([self.seed, prompt.index, self.index[model]]).random()
        return float(u < 1.0 / (1.0 + np.exp(-logit)))


def _workload(profile: WorkloadProfile, n: int, seed: int) -> list[_Prompt]:
    rng = np.random.default_rng(seed)
    shares = np.array([t.share for t in profile.tasks])
    prompts = []
    for i, t in enumerate(rng.choice(len(profile.tasks), size=n, p=shares / shares.sum())):
        task = profile.tasks[t]
        words = " ".join(rng.choice(task.words or (task.name,), size=int(rng.integers(8, 24))))
        prompts.append(_Prompt(i, task.name, f"[{i}] {task.name}: {words}", float(rng.normal()),
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
    expected_best: dict[str, str]  # per task, the model the router should settle on (after the change)
    targets: dict[str, TaskTarget]  # the same with runner-up, gap and why (after the change)
    targets_before: dict[str, TaskTarget]  # before the change
    settled: dict[str, tuple[str, float]]  # per task, the largest share of first choices in the last quarter
    change: PriceChange | None
    following: list[Following]  # per task whose best the change moved


def run_demo(
    out_dir: str | Path = "out/demo",
    *,
    requests: int = 2000,
    concurrency: int = 100,
    seed: int = 0,
    weights: RewardWeights | None = None,
    progress: bool = True,
    change: bool = True,
) -> DemoSummary:
    """Route ``requests`` generated requests through a Router, ``concurrency`` at a time; ``change``:
    make the profile's mid-run change (its price cut). Writes the log, report.md and the plot."""
    from ..replay.report import format_report, plot_report, report
    from ..replay.report_controls import controls_report, format_controls
    from ..router import Router  # imported here: the CLI stays fast for other commands
    from ..store import read_log

    data = _profile_json(None)
    profile = WorkloadProfile.from_dict(data)
    cut = PriceChange.from_profile(data.get("change"), requests) if change else None
    weights = weights or DEMO_WEIGHTS
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "demo.duckdb"
    for stale in (log_path, log_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    prompts = _workload(profile, requests, seed)
    models = [
        ModelSpec(name=m.name, litellm_model=f"{PROVIDER}/{m.name}", input_cost_per_token=m.input_cost_per_token,
                  output_cost_per_token=m.output_cost_per_token)
        for m in profile.models
    ]
    bar, budget = demo_controls(profile, prompts)
    before = expected_targets(profile, weights, bars=bar, budget=budget)
    after = expected_targets(profile, weights, bars=bar, budget=budget, prices=cut.prices) if cut else before
    router = Router(models=models, reward=weights, store=str(log_path),
                    scorer=_Grader(profile, {p.text: p for p in prompts}, seed + 1),
                    seed=seed, escalate_below=0.5, quality_bar=bar, budget=budget)
    changed_at: list[float] = []
    started = time.perf_counter()
    provider = SimulatedProvider({p.text: (p.index, p.tokens_in, p.tokens_out) for p in prompts},
                                 {m.name: m.latency_s for m in profile.models}, seed + 2)
    try:
        with simulated_provider(provider):
            asyncio.run(_drive(router, prompts, concurrency, progress, cut, {m.name: m for m in models}, changed_at))
    finally:
        router.close()
    seconds = time.perf_counter() - started
    batch = read_log(str(log_path))
    reports = report(batch)
    markdown = format_report(reports)
    moves = [following(batch, t, before[t].best, after[t].best, changed_at[0])
             for t in after if cut and changed_at and before[t].best != after[t].best]
    if cut is not None:
        markdown += "\n\n" + format_following(cut, moves, cut.at)
    markdown += (f"\n\nOperator controls: a quality bar on {', '.join(f'{t} ({v:g})' for t, v in bar.items())}, "
                 f"a budget on {budget.task} ({budget.describe()}).\n\n" + format_controls(controls_report(batch)))
    marks = [(changed_at[0], f"{cut.model} price cut")] if cut and changed_at else []
    plots = plot_report(batch, out, marks=marks)
    settled = {t: max(r.settled_on.items(), key=lambda kv: kv[1]) for t, r in reports.items() if t != "all" and r.settled_on}
    text = _header(profile, weights, requests, seconds, before, after, cut) + markdown + "\n"
    (out / "report.md").write_text(text)
    return DemoSummary(requests, seconds, log_path, _targets_text(before, after, cut) + "\n\n" + markdown, plots, weights,
                       {t: x.best for t, x in after.items()}, after, before, settled, cut, moves)


def demo_controls(profile: WorkloadProfile, prompts: list[_Prompt]) -> tuple[dict[str, float], Any]:
    """The demo's operator controls: a quality bar on extraction (0.9), and a budget on drafting of
    BUDGET_SHARE of what its requests would cost on the priciest model, paced over them."""
    from ..policy.pacing import Budget

    draft = next(t for t in profile.tasks if t.name == "draft")
    priciest = max(profile.models, key=lambda m: m.input_cost_per_token * draft.tokens_in + m.output_cost_per_token * draft.tokens_out)
    n = max(1, sum(p.task == "draft" for p in prompts))
    per_request = priciest.input_cost_per_token * draft.tokens_in + priciest.output_cost_per_token * draft.tokens_out
    return dict(BAR), Budget(usd=round(BUDGET_SHARE * per_request * n, 4), per_requests=n, task="draft")


async def _drive(router: Any, prompts: list[_Prompt], concurrency: int, progress: bool, cut: PriceChange | None,
                 specs: dict[str, ModelSpec], changed_at: list[float]) -> None:
    from tqdm import tqdm

    gate = asyncio.Semaphore(concurrency)  # FIFO: requests start in arrival order
    bar = tqdm(total=len(prompts), desc="demo requests", unit="req", file=sys.stderr, disable=not progress)

    async def one(prompt: _Prompt) -> None:
        async with gate:
            if cut is not None and prompt.index == cut.at:  # from this request on, the new price
                router.update_model(cut.spec(specs[cut.model]))
                changed_at.append(time.time())
            try:
                await router.acomplete([{"role": "user", "content": prompt.text}], task=prompt.task)
            except AdaptRouteError:
                pass  # logged by the router; the report counts it
            bar.update(1)

    await asyncio.gather(*(one(p) for p in prompts))
    bar.close()


def _targets_text(before: dict[str, TaskTarget], after: dict[str, TaskTarget], cut: PriceChange | None) -> str:
    lines = ["Best expected per task, on the objective the router learns (each call's own pass rate, cost and "
             "latency; the bar met with escalations, the budget charged with them):"]
    for task, target in after.items():
        was = before[task]
        if cut is not None and was.best != target.best:
            lines.append(f"- {task}: before the change {was.describe()}; after it {target.describe()}")
        else:
            lines.append(f"- {target.describe()}")
    return "\n".join(lines)


def _header(profile: WorkloadProfile, weights: RewardWeights, requests: int, seconds: float,
            before: dict[str, TaskTarget], after: dict[str, TaskTarget], cut: PriceChange | None) -> str:
    return (
        f"# adaptroute demo\n\n{requests} requests through Router.acomplete in {seconds:.1f} s; reward weights "
        f"quality={weights.quality}, cost={weights.cost}/USD, latency={weights.latency}/s. Prices: "
        f"{profile.sources.get('prices', '?')}. Pass rates and latencies are simulated "
        "(illustrative profile in data/demo_profile.json).\n\n"
        f"{_targets_text(before, after, cut)}\n\n"
    )
