"""The report's operator-control sections, from a router's log: per task the quality bar and how often
it was met, how often a budget shaped decisions, and what the batch lane and the prompt cache saved
(in dollars, and the cache as a share of the prompt cost it applied to); a plot of spend against each
budget's pace over time."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..types import LoggedBatch

__all__ = ["TaskControls", "controls_report", "format_controls", "plot_budget"]


@dataclass(frozen=True, slots=True)
class TaskControls:
    task: str
    requests: int
    bar: float | None  # the bar its requests had to meet (the mean, if it changed)
    bar_requests: int  # requests decided under a bar
    bar_mean_quality: float | None  # their mean scored quality
    bar_met: bool | None  # that mean meets the bar
    bar_met_rate: float | None  # share of scored requests whose own quality met the bar
    bar_unreachable_rate: float | None  # share decided when no model was expected to meet it
    budget_requests: int  # requests a budget covered
    budget_shaped_rate: float | None  # share of those a budget shaped
    batch_requests: int
    batch_saved_usd: float
    cache_saved_usd: float
    cache_saved_share: float | None  # of the prompt cost (at full price) of the cached requests' attempts
    cached_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def controls_report(batch: LoggedBatch) -> dict[str, TaskControls]:
    """Per task, then "all"; empty when the log has no control columns (written before version 3)."""
    c = batch.controls
    if c is None:
        return {}
    out: dict[str, TaskControls] = {}
    tasks = sorted({str(t) for t in batch.tasks})
    for task in [*tasks, "all"]:
        rows = np.ones(len(batch), dtype=bool) if task == "all" else batch.tasks == task
        barred = rows & np.isfinite(c.bar)
        scored = barred & np.isfinite(batch.quality)
        budgeted = rows & np.isfinite(c.budget_allowance_usd)
        lanes = np.array([lane == "batch" for lane in c.lane], dtype=bool)
        bar = float(np.mean(c.bar[barred])) if barred.any() else None
        mean_q = float(batch.quality[scored].mean()) if scored.any() else None
        input_cost = float(c.input_cost_usd[rows & (c.cached_tokens > 0)].sum())
        saved = float(c.cache_saved_usd[rows].sum())
        out[task] = TaskControls(
            task=task,
            requests=int(rows.sum()),
            bar=bar,
            bar_requests=int(barred.sum()),
            bar_mean_quality=mean_q,
            bar_met=None if bar is None or mean_q is None or task == "all" else bool(mean_q >= bar),
            bar_met_rate=float((batch.quality[scored] >= c.bar[scored]).mean()) if scored.any() else None,
            bar_unreachable_rate=float(c.bar_unreachable[barred].mean()) if barred.any() else None,
            budget_requests=int(budgeted.sum()),
            budget_shaped_rate=float(c.budget_shaped[budgeted].mean()) if budgeted.any() else None,
            batch_requests=int((rows & lanes).sum()),
            batch_saved_usd=float(c.batch_saved_usd[rows].sum()),
            cache_saved_usd=saved,
            cache_saved_share=saved / input_cost if input_cost > 0 else None,
            cached_tokens=int(c.cached_tokens[rows].sum()),
        )
    return out


def _f(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return {"q": f"{value:.3f}", "pct": f"{100 * value:.1f}%", "usd": f"${value:.5f}"}[kind]


def format_controls(reports: dict[str, TaskControls]) -> str:
    if not reports:
        return ""
    lines = ["| task | bar | mean quality under it | met | requests meeting it | no model expected to | "
             "budget shaped | batch requests | batch saved | cache saved (share of prompt cost) |",
             "|" + "---|" * 10]
    for r in reports.values():
        met = "-" if r.bar_met is None else ("yes" if r.bar_met else "no")
        share = f" ({_f(r.cache_saved_share, 'pct')})" if r.cache_saved_share is not None else ""
        lines.append(f"| {r.task} | {_f(r.bar, 'q')} | {_f(r.bar_mean_quality, 'q')} | {met} | {_f(r.bar_met_rate, 'pct')} | "
                     f"{_f(r.bar_unreachable_rate, 'pct')} | {_f(r.budget_shaped_rate, 'pct')} | {r.batch_requests} | "
                     f"{_f(r.batch_saved_usd, 'usd')} | {_f(r.cache_saved_usd, 'usd')}{share} |")
    return "\n".join(lines)


def plot_budget(batch: LoggedBatch, directory: str | Path) -> Path | None:
    """budget.png: spend in the budget's period (before each decision) against what its pace allowed by
    then, over time; None when no decision was under a budget."""
    c = batch.controls
    if c is None or not np.isfinite(c.budget_allowance_usd).any():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.flatnonzero(np.isfinite(c.budget_allowance_usd))
    rows = rows[np.argsort(batch.ts[rows], kind="stable")]
    hours = (batch.ts[rows] - batch.ts[rows[0]]) / 3600.0
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(hours, c.budget_spent_usd[rows], label="spent in the period", color="C0", linewidth=1.5)
    ax.plot(hours, c.budget_allowance_usd[rows], label="the pace's allowance", color="C1", linestyle="--")
    spent_total = c.budget_spent_usd[rows] + c.budget_remaining_usd[rows]
    ax.plot(hours, spent_total, label="the budget (spent + remaining)", color="0.5", linewidth=0.8)
    shaped = c.budget_shaped[rows]
    if shaped.any():
        ax.scatter(hours[shaped], c.budget_spent_usd[rows][shaped], s=6, color="C3", label="decisions the budget shaped")
    ax.set_xlabel("hours since the first budgeted decision")
    ax.set_ylabel("USD")
    ax.set_title("spend against budget (the tightest budget covering each decision)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "budget.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
