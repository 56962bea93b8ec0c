"""Sweep reward weights offline, keep the Pareto frontier, pick the cheapest weights meeting a target.

On full-information data each weight setting is simulated (the policy learns online, as it would in
production); on a router log each setting is estimated by off-policy evaluation (doubly robust).
"""

from __future__ import annotations

import itertools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RewardWeights
from ..errors import ConfigError

__all__ = ["TunePoint", "TuneResult", "format_tuning", "parse_grid", "parse_target", "tune"]

_TARGET = re.compile(r"^\s*(quality|cost|latency)\s*(>=|<=)\s*([0-9.eE+-]+)\s*(\*\s*best)?\s*$")


@dataclass(frozen=True, slots=True)
class TunePoint:
    weights: RewardWeights
    quality: float
    cost_usd: float
    latency_s: float | None
    bar: str | None = None  # a bar sweep's point: the bar simulated (weights then quality only)

    def to_dict(self) -> dict[str, Any]:
        out = {"weights": self.weights.model_dump(), "quality": self.quality, "cost_usd": self.cost_usd, "latency_s": self.latency_s}
        return out if self.bar is None else {**out, "bar": self.bar}


@dataclass(frozen=True)
class TuneResult:
    source: str
    kind: str  # "data" (simulated) or "log" (off-policy estimates)
    points: list[TunePoint]
    frontier: list[int]
    target: str
    best_quality: float
    chosen: int | None
    references: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "target": self.target,
            "best_quality": self.best_quality,
            "chosen": None if self.chosen is None else self.points[self.chosen].to_dict(),
            "frontier": [self.points[i].to_dict() for i in self.frontier],
            "points": [p.to_dict() for p in self.points],
            "references": self.references,
        }


def parse_grid(items: list[str] | None, cost_scale: float, latency_scale: float | None) -> list[RewardWeights]:
    """``["cost=0,50,200", "latency=0,0.1"]`` -> the cartesian product (quality weight 1). Without a grid:
    cost weights that make the priciest model's cost worth 0 .. 3 quality points, and latency weights
    worth 0 .. 0.3 quality points per mean latency when latency is known."""
    if items:
        axes: dict[str, list[float]] = {}
        for item in items:
            key, sep, values = item.partition("=")
            if not sep or key.strip() not in ("quality", "cost", "latency", "failure"):
                raise ConfigError(f"grid: expected name=v1,v2,... with name quality|cost|latency|failure, got {item!r}")
            try:
                axes[key.strip()] = [float(v) for v in values.split(",") if v.strip()]
            except ValueError:
                raise ConfigError(f"grid: {item!r} has a value that is not a number") from None
    else:
        axes = {"cost": [lam / cost_scale for lam in (0.0, 0.03, 0.1, 0.3, 1.0, 3.0)]}
        if latency_scale:
            axes["latency"] = [lam / latency_scale for lam in (0.0, 0.1, 0.3)]
    names = list(axes)
    grid = []
    for combo in itertools.product(*(axes[n] for n in names)):
        values = dict(zip(names, combo, strict=True))
        values.setdefault("quality", 1.0)
        try:
            grid.append(RewardWeights(**values))
        except ValueError as exc:
            raise ConfigError(f"grid point {values}: {exc}") from None
    return grid


def parse_target(text: str) -> tuple[str, str, float, bool]:
    """``quality>=0.95*best`` -> ("quality", ">=", 0.95, True); ``cost<=0.002`` -> absolute."""
    match = _TARGET.match(text)
    if not match:
        raise ConfigError(f"target {text!r}: expected e.g. 'quality>=0.95*best', 'quality>=0.8' or 'latency<=2'")
    metric, op, value, relative = match.groups()
    if relative and metric != "quality":
        raise ConfigError("target: '*best' applies to quality only")
    return metric, op, float(value), bool(relative)


def pareto(points: list[TunePoint]) -> list[int]:
    """Indices of points no other point dominates (quality up; cost and, where known, latency down)."""
    keep = []
    for i, p in enumerate(points):
        dominated = False
        for j, o in enumerate(points):
            if i == j:
                continue
            no_worse = o.quality >= p.quality and o.cost_usd <= p.cost_usd and (
                p.latency_s is None or o.latency_s is None or o.latency_s <= p.latency_s)
            better = o.quality > p.quality or o.cost_usd < p.cost_usd or (
                p.latency_s is not None and o.latency_s is not None and o.latency_s < p.latency_s)
            if no_worse and better:
                dominated = True
                break
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: points[i].cost_usd)


def _meets(point: TunePoint, metric: str, op: str, bound: float) -> bool:
    value = {"quality": point.quality, "cost": point.cost_usd, "latency": point.latency_s}[metric]
    if value is None:
        return False
    return value >= bound if op == ">=" else value <= bound


def tune(
    source: str,
    *,
    grid: list[str] | None = None,
    target: str = "quality>=0.95*best",
    policy: str = "thompson",
    seed: int = 0,
    plot: str | Path | None = None,
    allow_pickle: bool = False,
    progress: bool = False,
    bars: list[str] | None = None,
) -> TuneResult:
    """``bars`` (a list of bar specs, [] for the default sweep) sweeps quality bars instead of weights
    (on full-information data: see replay.tune_bars)."""
    metric, op, value, relative = parse_target(target)
    from ..datasets import is_log_path

    if bars is not None:
        from .tune_bars import tune_bars

        if is_log_path(source):
            raise ConfigError("tune --bar simulates each bar, so it needs full-information data, not a router log")
        points, refs, best = tune_bars(source, bars, policy, seed, allow_pickle, progress)
        kind = "data"
    elif is_log_path(source):
        points, refs, best = _tune_log(source, grid, policy, seed, progress)
        kind = "log"
    else:
        points, refs, best = _tune_data(source, grid, policy, seed, allow_pickle, progress)
        kind = "data"
    bound = value * best if relative else value
    frontier = pareto(points)
    meeting = [i for i in frontier if _meets(points[i], metric, op, bound)]
    chosen = min(meeting, key=lambda i: points[i].cost_usd) if meeting else None
    result = TuneResult(str(source), kind, points, frontier, target, best, chosen, refs)
    if plot:
        plot_frontier(result, plot)
    return result


def _bar(items: list[Any], show: bool, label: str) -> Any:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, file=sys.stderr, leave=False)


def _tune_data(source: str, grid: list[str] | None, policy: str, seed: int, allow_pickle: bool, progress: bool):  # type: ignore[no-untyped-def]
    from ..datasets import load_dataset
    from .simulate import simulate

    data = load_dataset(source, allow_pickle=allow_pickle)
    means_cost = data.cost_usd.mean(axis=0)
    latency_scale = float(data.latency_s.mean()) if data.latency_s is not None else None
    points = []
    for weights in _bar(parse_grid(grid, float(means_cost.max()), latency_scale), progress, "tune"):
        r = simulate(data, policy, weights, seed=seed)
        points.append(TunePoint(weights, r.mean_quality, r.mean_cost_usd, r.mean_latency_s))
    refs, best = data_references(data)
    return points, refs, best


def data_references(data: Any) -> tuple[dict[str, dict[str, float | None]], float]:
    """Each model's mean quality, cost and latency, the per-prompt oracle's, and the best model's quality."""
    means_cost = data.cost_usd.mean(axis=0)
    refs: dict[str, dict[str, float | None]] = {}
    for k, model in enumerate(data.models):
        refs[model] = {"quality": float(data.quality[:, k].mean()), "cost_usd": float(means_cost[k]),
                       "latency_s": None if data.latency_s is None else float(data.latency_s[:, k].mean())}
    best_rows = np.array([np.lexsort((data.cost_usd[i], -data.quality[i]))[0] for i in range(len(data))])
    rows = np.arange(len(data))
    refs["oracle"] = {"quality": float(data.quality[rows, best_rows].mean()), "cost_usd": float(data.cost_usd[rows, best_rows].mean()),
                      "latency_s": None if data.latency_s is None else float(data.latency_s[rows, best_rows].mean())}
    best = max(v["quality"] for k, v in refs.items() if k != "oracle")  # type: ignore[type-var]
    return refs, float(best)  # type: ignore[arg-type]


def _tune_log(source: str, grid: list[str] | None, policy: str, seed: int, progress: bool):  # type: ignore[no-untyped-def]
    from ..policy import make_policy
    from ..store import read_log
    from .ope import evaluate

    batch = read_log(source)
    answered = batch.executed >= 0
    per_model = [batch.cost_usd[answered & (batch.executed == m)] for m in range(len(batch.models))]
    cost_scale = max((float(c.mean()) for c in per_model if c.size), default=1.0) or 1.0
    latency = batch.latency_s[answered]
    latency_scale = float(np.nanmean(latency)) if np.isfinite(latency).any() else None
    points = []
    for weights in _bar(parse_grid(grid, cost_scale, latency_scale), progress, "tune"):
        r = evaluate(batch, make_policy(policy, weights=weights, seed=seed), weights, "dr", n_boot=20, seed=seed)
        comp = r.to_dict()["components"]
        points.append(TunePoint(weights, float(comp["quality"]["value"]), float(comp["cost_usd"]["value"]),
                                None if comp.get("latency_s") is None else comp["latency_s"]["value"]))
    refs = {
        m: {"quality": float(np.nanmean(batch.quality[answered & (batch.executed == k)])) if per_model[k].size else None,
            "cost_usd": float(per_model[k].mean()) if per_model[k].size else None, "latency_s": None}
        for k, m in enumerate(batch.models)
    }
    qualities = [v["quality"] for v in refs.values() if v["quality"] is not None and np.isfinite(v["quality"])]
    best = max(qualities) if qualities else max(p.quality for p in points)
    return points, refs, float(best)


def plot_frontier(result: TuneResult, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p.cost_usd for p in result.points], [p.quality for p in result.points], c="0.7", s=18, label="weight settings")
    front = [result.points[i] for i in result.frontier]
    ax.plot([p.cost_usd for p in front], [p.quality for p in front], "-o", color="C0", label="frontier")
    for name, ref in result.references.items():
        if ref.get("quality") is None or ref.get("cost_usd") is None:
            continue
        marker = "*" if name == "oracle" else "s"
        ax.scatter([ref["cost_usd"]], [ref["quality"]], marker=marker, s=60 if name == "oracle" else 22, color="C3" if name == "oracle" else "C1")
        ax.annotate(name.split("/")[-1][:18], (ref["cost_usd"], ref["quality"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    if result.chosen is not None:
        p = result.points[result.chosen]
        ax.scatter([p.cost_usd], [p.quality], s=120, facecolors="none", edgecolors="C2", linewidths=2, label=f"chosen ({result.target})")
    ax.set_xscale("symlog", linthresh=max(1e-6, min((p.cost_usd for p in result.points if p.cost_usd > 0), default=1e-6)))
    ax.set_xlabel("mean cost per request (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"quality-cost frontier ({'simulated' if result.kind == 'data' else 'off-policy estimate'})")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def format_tuning(result: TuneResult) -> str:
    lines = [f"tune ({'simulated' if result.kind == 'data' else 'off-policy estimates'}): {len(result.points)} weight settings, "
             f"{len(result.frontier)} on the frontier; target {result.target} (best single-model quality {result.best_quality:.4f})", "",
             "| quality w | cost w (/USD) | latency w (/s) | quality | cost (USD) | latency (s) | frontier |", "|---|---|---|---|---|---|---|"]
    if result.points and result.points[0].bar is not None:
        from .tune_bars import format_bar_points

        return format_bar_points(result)
    for i, p in enumerate(result.points):
        mark = "chosen" if i == result.chosen else ("yes" if i in result.frontier else "")
        latency = "-" if p.latency_s is None else f"{p.latency_s:.3f}"
        lines.append(f"| {p.weights.quality:g} | {p.weights.cost:g} | {p.weights.latency:g} | {p.quality:.4f} | {p.cost_usd:.6f} | {latency} | {mark} |")
    if result.chosen is None:
        lines.append("\nNo frontier point meets the target.")
    else:
        w = result.points[result.chosen].weights
        lines.append(f"\nCheapest weights meeting the target: quality={w.quality:g},cost={w.cost:g},latency={w.latency:g}")
    return "\n".join(lines)
