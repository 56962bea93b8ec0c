"""Sweep reward weights offline, keep the Pareto frontier, pick the cheapest weights meeting a target.

On full-information data each weight setting is simulated (the policy learns online, as it would in
production), and each single model's mean is exact. On a router log both are estimated off-policy
(doubly robust, cross-fitted, with bootstrap intervals): each weight setting as a policy, and "always
model X" as the policy that always picks X. A plain mean of the requests X happened to answer would be
biased (a premium model that mostly answers escalations answers the hard prompts), so it is never used;
an "always X" whose estimate cannot be trusted (too little overlap) is left out, and said so.
"""

from __future__ import annotations

import itertools
import re
import sys
import warnings
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
    quality_interval: tuple[float, float] | None = None  # off-policy estimates only
    cost_interval: tuple[float, float] | None = None
    unreliable: str | None = None  # why the estimate cannot be trusted: kept off the frontier and the choice
    bar: str | None = None  # a bar sweep's point: the bar simulated (weights then quality only)

    def to_dict(self) -> dict[str, Any]:
        out = {"weights": self.weights.model_dump(), "quality": self.quality, "cost_usd": self.cost_usd,
               "latency_s": self.latency_s, "quality_interval": self.quality_interval, "cost_interval": self.cost_interval,
               "unreliable": self.unreliable}
        return out if self.bar is None else {**out, "bar": self.bar}

    @property
    def label(self) -> str:
        if self.bar is not None:
            return f"bar {self.bar}"
        w = self.weights
        parts = [f"cost={w.cost:.3g}"] + ([f"lat={w.latency:.3g}"] if w.latency else [])
        return ",".join(parts)


@dataclass(frozen=True)
class TuneResult:
    source: str
    kind: str  # "data" (simulated) or "log" (off-policy estimates)
    points: list[TunePoint]
    frontier: list[int]
    target: str
    best_quality: float
    chosen: int | None
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimator: str = "simulated"  # how points and references were obtained
    left_out: dict[str, str] = field(default_factory=dict)  # reference -> why it could not be estimated
    best_from: str = ""  # what "best" in the target refers to
    bound: float | None = None  # the target's value (for '*best', the fraction times best)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "estimator": self.estimator,
            "target": self.target,
            "target_bound": self.bound,
            "best_quality": self.best_quality,
            "best_from": self.best_from,
            "left_out": self.left_out,
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
    """Indices of the reliable points no other reliable point dominates (quality up; cost and, where
    known, latency down)."""
    keep = []
    for i, p in enumerate(points):
        if p.unreliable:
            continue
        dominated = False
        for j, o in enumerate(points):
            if i == j or o.unreliable:
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

    left_out: dict[str, str] = {}
    if bars is not None:
        from .tune_bars import tune_bars

        if is_log_path(source):
            raise ConfigError("tune --bar simulates each bar, so it needs full-information data, not a router log")
        points, refs, _ = tune_bars(source, bars, policy, seed, allow_pickle, progress)
        kind, estimator = "data", "simulated"
    elif is_log_path(source):
        points, refs, left_out = _tune_log(source, grid, policy, seed, progress)
        kind, estimator = "log", "DR (doubly robust, cross-fitted, 100 bootstrap resamples)"
    else:
        points, refs = _tune_data(source, grid, policy, seed, allow_pickle, progress)
        kind, estimator = "data", "simulated"
    singles = {k: v["quality"] for k, v in refs.items() if k != "oracle" and v.get("quality") is not None}
    if singles:
        best_model = max(singles, key=lambda k: singles[k])
        best, best_from = float(singles[best_model]), f"always {best_model}"
    else:  # no single model could be estimated: the best weight setting stands in, and says so
        trusted = [p.quality for p in points if not p.unreliable] or [p.quality for p in points]
        best, best_from = max(trusted), "the best weight setting (no single model could be estimated)"
    bound = value * best if relative else value
    frontier = pareto(points)
    meeting = [i for i in frontier if _meets(points[i], metric, op, bound)]
    chosen = min(meeting, key=lambda i: points[i].cost_usd) if meeting else None
    result = TuneResult(str(source), kind, points, frontier, target, best, chosen, refs, estimator, left_out,
                        best_from, bound)
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
    refs, _ = data_references(data)
    return points, refs


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
    from .estimators import EstimatorWarning
    from .ope import evaluate

    batch = read_log(source)
    answered = batch.executed >= 0
    per_model = [batch.cost_usd[answered & (batch.executed == m)] for m in range(len(batch.models))]
    cost_scale = max((float(c.mean()) for c in per_model if c.size), default=1.0) or 1.0
    latency = batch.latency_s[answered]
    latency_scale = float(np.nanmean(latency)) if np.isfinite(latency).any() else None
    settings = parse_grid(grid, cost_scale, latency_scale)
    jobs: list[tuple[RewardWeights, str | None]] = [(w, None) for w in settings]
    jobs += [(settings[0], m) for m in batch.models]  # "always X": weights do not change what it picks
    points, refs, left_out = [], {}, {}
    for weights, always in _bar(jobs, progress, "tune"):
        candidate = make_policy(policy, weights=weights, seed=seed)
        with warnings.catch_warnings():  # each estimate's trust is judged below and reported with the result
            warnings.simplefilter("ignore", EstimatorWarning)
            r = evaluate(batch, candidate, weights, "dr", n_boot=100, seed=seed, always=always)
            if r.trusted == "switch-dr":  # partial overlap: the steadier estimate (see replay.trust)
                r = evaluate(batch, candidate, weights, "switch-dr", n_boot=100, seed=seed, always=always)
        q, c, lat = r.components["quality"], r.components["cost_usd"], r.components["latency_s"]
        if always is None:
            points.append(TunePoint(weights, q.value, c.value, lat.value if lat.n else None, (q.low, q.high),
                                    (c.low, c.high), None if r.trusted else r.trust_reason))
        elif r.trusted is None:
            left_out[always] = r.trust_reason
        else:
            refs[always] = {"quality": q.value, "cost_usd": c.value, "latency_s": lat.value if lat.n else None,
                            "quality_interval": (q.low, q.high), "cost_interval": (c.low, c.high)}
    return points, refs, left_out


def plot_frontier(result: TuneResult, path: str | Path) -> Path:
    """Weight settings (labelled with their weights, with intervals when estimated), the frontier, the
    single models, the target and the chosen setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    points = result.points
    xs, ys = [p.cost_usd for p in points], [p.quality for p in points]
    if result.kind == "log":
        yerr = np.array([[max(0.0, p.quality - p.quality_interval[0]), max(0.0, p.quality_interval[1] - p.quality)]
                         if p.quality_interval else [0.0, 0.0] for p in points]).T
        ax.errorbar(xs, ys, yerr=yerr, fmt="none", ecolor="0.8", elinewidth=1)
    ax.scatter(xs, ys, c=["none" if p.unreliable else "0.6" for p in points], edgecolors="0.6", s=18,
               label="weight settings (hollow: not estimable)" if any(p.unreliable for p in points) else "weight settings",
               zorder=3)
    for p in points:
        ax.annotate(p.label, (p.cost_usd, p.quality), fontsize=6, color="0.35", xytext=(3, -8), textcoords="offset points")
    front = [points[i] for i in result.frontier]
    ax.plot([p.cost_usd for p in front], [p.quality for p in front], "-o", color="C0", label="frontier", zorder=4)
    for name, ref in result.references.items():
        if ref.get("quality") is None or ref.get("cost_usd") is None:
            continue
        oracle = name == "oracle"
        ax.scatter([ref["cost_usd"]], [ref["quality"]], marker="*" if oracle else "s", s=60 if oracle else 22,
                   color="C3" if oracle else "C1", zorder=4)
        shown = name if oracle else f"always {name.split('/')[-1][:18]}"
        ax.annotate(shown, (ref["cost_usd"], ref["quality"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    if result.bound is not None:
        metric = result.target.split(">")[0].split("<")[0].strip()
        if metric == "quality":
            ax.axhline(result.bound, color="C2", linestyle="--", linewidth=1, label=f"target {result.target} = {result.bound:.3f}")
        elif metric == "cost":
            ax.axvline(result.bound, color="C2", linestyle="--", linewidth=1, label=f"target {result.target}")
    if result.chosen is not None:
        p = points[result.chosen]
        ax.scatter([p.cost_usd], [p.quality], s=120, facecolors="none", edgecolors="C2", linewidths=2,
                   label=f"chosen: {p.label}", zorder=5)
    positive = [x for x in xs if x > 0]
    ax.set_xscale("symlog", linthresh=max(1e-6, min(positive, default=1e-6)))
    ax.set_xlabel("mean cost per request (USD)")
    ax.set_ylabel("mean quality")
    how = "simulated" if result.kind == "data" else "off-policy estimates, " + result.estimator.split(" (")[0]
    ax.set_title(f"quality-cost frontier ({how})", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _interval(interval: tuple[float, float] | None, digits: str) -> str:
    return "" if interval is None else f" [{interval[0]:{digits}}, {interval[1]:{digits}}]"


def format_tuning(result: TuneResult) -> str:
    how = "simulated" if result.kind == "data" else f"off-policy estimates by {result.estimator}"
    bound = f" = {result.bound:.4f}" if result.bound is not None and "best" in result.target else ""
    lines = [f"tune ({how}): {len(result.points)} weight settings, {len(result.frontier)} on the frontier; target "
             f"{result.target}{bound} (best: {result.best_from}, quality {result.best_quality:.4f})", "",
             "| quality w | cost w (/USD) | latency w (/s) | quality | cost (USD) | latency (s) | frontier |", "|---|---|---|---|---|---|---|"]
    for i, p in enumerate(result.points):
        mark = "chosen" if i == result.chosen else ("yes" if i in result.frontier else "")
        mark = "not estimable (see below)" if p.unreliable else mark
        latency = "-" if p.latency_s is None else f"{p.latency_s:.3f}"
        lines.append(f"| {p.weights.quality:g} | {p.weights.cost:g} | {p.weights.latency:g} | {p.quality:.4f}"
                     f"{_interval(p.quality_interval, '.4f')} | {p.cost_usd:.6f}{_interval(p.cost_interval, '.6f')} | "
                     f"{latency} | {mark} |")
    singles = {k: v for k, v in result.references.items() if k != "oracle"}
    if singles:
        lines += ["", "Always one model (as the first choice; escalations and fallbacks as the log has them):", "",
                  "| always | quality | cost (USD) |", "|---|---|---|"]
        for name, ref in singles.items():
            lines.append(f"| {name} | {ref['quality']:.4f}{_interval(ref.get('quality_interval'), '.4f')} | "
                         f"{ref['cost_usd']:.6f}{_interval(ref.get('cost_interval'), '.6f')} |")
    for name, why in result.left_out.items():
        lines.append(f"- always {name}: left out, it cannot be estimated from this log: {why}")
    unreliable = [p for p in result.points if p.unreliable]
    if unreliable:
        lines.append(f"- {len(unreliable)} weight setting(s) kept off the frontier, their estimates cannot be "
                     f"trusted ({'; '.join(p.label for p in unreliable)}): {unreliable[0].unreliable}")
    if result.points and result.points[0].bar is not None:
        from .tune_bars import format_bar_points

        return format_bar_points(result)
    if result.chosen is None:
        lines.append("\nNo frontier point meets the target.")
    else:
        w = result.points[result.chosen].weights
        lines.append(f"\nCheapest weights meeting the target: quality={w.quality:g},cost={w.cost:g},latency={w.latency:g}")
    return "\n".join(lines)
