"""tune --bar: sweep quality bars instead of weights, each simulated on full-information data, and keep
the quality/cost frontier (the same frontier and target as a weight sweep)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import RewardWeights
from ..policy.constraints import QualityBar
from .tune import TunePoint, TuneResult, _bar, data_references

__all__ = ["DEFAULT_BAR_SHARES", "format_bar_points", "tune_bars"]

# Without bars given: each task's bar at these shares of its best single model's mean quality.
DEFAULT_BAR_SHARES = (0.8, 0.85, 0.9, 0.95, 0.98)


def _default_bars(data: Any) -> list[str]:
    out = []
    for share in DEFAULT_BAR_SHARES:
        bars = {str(t): share * float(data.quality[data.tasks == t].mean(axis=0).max()) for t in np.unique(data.tasks)}
        out.append(",".join(f"{t}={v:.4f}" for t, v in bars.items()))
    return out


def tune_bars(source: str, bars: list[str], policy: str, seed: int, allow_pickle: bool, progress: bool):  # type: ignore[no-untyped-def]
    from ..datasets import load_dataset
    from .simulate import simulate

    data = load_dataset(source, allow_pickle=allow_pickle)
    specs = list(bars) or _default_bars(data)
    for spec in specs:
        QualityBar.parse(spec)  # every spec checked before the first simulation
    points = []
    for spec in _bar(specs, progress, "tune --bar"):
        r = simulate(data, policy, RewardWeights(), seed=seed, bar=spec)
        points.append(TunePoint(RewardWeights(), r.mean_quality, r.mean_cost_usd, r.mean_latency_s, bar=spec))
    refs, best = data_references(data)
    return points, refs, best


def format_bar_points(result: TuneResult) -> str:
    lines = [f"tune --bar (simulated): {len(result.points)} bars, {len(result.frontier)} on the frontier; target "
             f"{result.target} (best single-model quality {result.best_quality:.4f})", "",
             "| bar | quality | cost (USD) | latency (s) | frontier |", "|---|---|---|---|---|"]
    for i, p in enumerate(result.points):
        mark = "chosen" if i == result.chosen else ("yes" if i in result.frontier else "")
        latency = "-" if p.latency_s is None else f"{p.latency_s:.3f}"
        lines.append(f"| {p.bar} | {p.quality:.4f} | {p.cost_usd:.6f} | {latency} | {mark} |")
    if result.chosen is None:
        lines.append("\nNo bar on the frontier meets the target.")
    else:
        lines.append(f"\nCheapest bar meeting the target: {result.points[result.chosen].bar}")
    return "\n".join(lines)
