"""What users track, from a router's own log: per task and overall.

- cost per completed task: spend / requests whose quality passed the acceptance threshold;
- latency to usable output: mean and p95 over requests that got an answer;
- retry rate (a same-model retry), fallback rate (another model after an error), escalation rate
  (another model after a low score; the design's "escalation" counts fallbacks too: see both);
- model shares (the model that produced the answer);
- savings against always using the priciest model, estimated from that model's mean observed cost
  per call on the same task (so it needs that model to appear in the log).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import LoggedBatch

__all__ = ["TaskReport", "format_report", "plot_report", "report"]


@dataclass(frozen=True, slots=True)
class TaskReport:
    task: str
    requests: int
    answered: int
    scored: int
    completed: int
    spend_usd: float
    cost_per_completed_task_usd: float | None
    mean_quality: float | None
    latency_mean_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    retry_rate: float
    fallback_rate: float
    escalation_rate: float
    escalation_or_fallback_rate: float
    failure_rate: float
    model_shares: dict[str, float]
    settled_on: dict[str, float]  # the policy's first choices over the last quarter of the task's requests
    premium_model: str | None
    premium_spend_estimate_usd: float | None
    savings_vs_premium: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def report(batch: LoggedBatch, pass_threshold: float = 0.5) -> dict[str, TaskReport]:
    """Per-task reports plus "all" (keys: task names, then "all")."""
    if not isinstance(pass_threshold, (int, float)) or not 0.0 <= float(pass_threshold) <= 1.0:  # NaN fails too
        raise ConfigError(f"pass_threshold must be a quality in [0, 1], got {pass_threshold!r}")
    answered = batch.executed >= 0
    k = len(batch.models)
    # mean observed cost per call of each model, per task and overall (for the premium counterfactual)
    premium = None
    if answered.any():
        overall = np.array([batch.cost_usd[answered & (batch.executed == m)].mean() if np.any(answered & (batch.executed == m)) else np.nan for m in range(k)])
        if np.isfinite(overall).any():
            premium = int(np.nanargmax(overall))
    out: dict[str, TaskReport] = {}
    tasks = sorted({str(t) for t in batch.tasks})
    for task in [*tasks, "all"]:
        rows = np.ones(len(batch), dtype=bool) if task == "all" else batch.tasks == task
        out[task] = _task_report(batch, rows, task, pass_threshold, premium, tasks)
    return out


def _premium_cost(batch: LoggedBatch, rows: np.ndarray, premium: int, tasks: list[str]) -> float | None:
    total = 0.0
    for task in tasks:
        in_task = rows & (batch.tasks == task)
        if not in_task.any():
            continue
        seen = (batch.tasks == task) & (batch.executed == premium)
        if not seen.any():
            seen = batch.executed == premium  # never ran on this task: its overall mean
        total += float(in_task.sum()) * float(batch.cost_usd[seen].mean())
    return total


def _task_report(batch: LoggedBatch, rows: np.ndarray, task: str, threshold: float, premium: int | None, tasks: list[str]) -> TaskReport:
    n = int(rows.sum())
    answered = rows & (batch.executed >= 0)
    quality = batch.quality[rows]
    scored = ~np.isnan(quality)
    completed = int(np.sum(quality[scored] >= threshold))
    spend = float(np.nansum(batch.cost_usd[rows]))
    latency = batch.latency_s[answered]
    latency = latency[np.isfinite(latency)]
    shares = np.bincount(batch.executed[answered], minlength=len(batch.models)) / max(int(answered.sum()), 1)
    premium_spend = _premium_cost(batch, rows, premium, tasks) if premium is not None else None
    rate = (lambda flags: float(flags[rows].mean()) if n else 0.0)
    order = np.flatnonzero(rows)[np.argsort(batch.ts[rows], kind="stable")]
    late = order[len(order) - max(1, len(order) // 4):] if len(order) else order
    late_shares = np.bincount(batch.chosen[late], minlength=len(batch.models)) / max(len(late), 1)
    return TaskReport(
        task=task,
        requests=n,
        answered=int(answered.sum()),
        scored=int(scored.sum()),
        completed=completed,
        spend_usd=spend,
        cost_per_completed_task_usd=spend / completed if completed else None,
        mean_quality=float(quality[scored].mean()) if scored.any() else None,
        latency_mean_s=float(latency.mean()) if latency.size else None,
        latency_p50_s=_pct(latency, 50),
        latency_p95_s=_pct(latency, 95),
        retry_rate=rate(batch.retried),
        fallback_rate=rate(batch.fell_back),
        escalation_rate=rate(batch.escalated),
        escalation_or_fallback_rate=rate(batch.escalated | batch.fell_back),
        failure_rate=rate(batch.failed),
        model_shares={m: float(s) for m, s in zip(batch.models, shares, strict=True) if s > 0},
        settled_on={m: float(s) for m, s in zip(batch.models, late_shares, strict=True) if s > 0},
        premium_model=batch.models[premium] if premium is not None else None,
        premium_spend_estimate_usd=premium_spend,
        savings_vs_premium=(1.0 - spend / premium_spend) if premium_spend else None,
    )


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return {"usd": f"${value:.5f}", "pct": f"{100 * value:.1f}%", "s": f"{value:.2f}s", "q": f"{value:.3f}"}[kind]


def format_report(reports: dict[str, TaskReport]) -> str:
    """A markdown table, then each task's model shares."""
    head = ("| task | requests | mean quality | cost / completed task | p50 latency | p95 latency | retry | "
            "fallback | escalation | failed | savings vs premium |")
    lines = [head, "|" + "---|" * 11]
    for r in reports.values():
        lines.append(
            f"| {r.task} | {r.requests} | {_fmt(r.mean_quality, 'q')} | {_fmt(r.cost_per_completed_task_usd, 'usd')} | "
            f"{_fmt(r.latency_p50_s, 's')} | {_fmt(r.latency_p95_s, 's')} | {_fmt(r.retry_rate, 'pct')} | "
            f"{_fmt(r.fallback_rate, 'pct')} | {_fmt(r.escalation_rate, 'pct')} | {_fmt(r.failure_rate, 'pct')} | "
            f"{_fmt(r.savings_vs_premium, 'pct')} |"
        )
    lines.append("\nWhere the router settled (its first choices over the last quarter of each task's requests):")
    for r in reports.values():
        if r.task == "all":
            continue
        shares = ", ".join(f"{m} {100 * s:.0f}%" for m, s in sorted(r.settled_on.items(), key=lambda kv: -kv[1]) if s >= 0.01)
        lines.append(f"- {r.task}: {shares or 'no decisions'}")
    lines.append("\nWho answered, over the whole log (escalations and fallbacks included):")
    for r in reports.values():
        shares = ", ".join(f"{m} {100 * s:.0f}%" for m, s in sorted(r.model_shares.items(), key=lambda kv: -kv[1]) if s >= 0.01)
        lines.append(f"- {r.task}: {shares or 'no answers'}")
    premium = next(iter(reports.values())).premium_model if reports else None
    if premium:
        lines.append(f"\nPremium model for savings: {premium} (highest mean observed cost per call).")
    return "\n".join(lines)


def plot_report(batch: LoggedBatch, directory: str | Path, window: int = 50) -> list[Path]:
    """One PNG, one panel per task: the share of each model among the policy's first choices over the
    last ``window`` requests of that task (a trailing mean, so the curve at request i uses only the past)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = sorted({str(t) for t in batch.tasks})
    if not tasks:
        return []
    order = np.argsort(batch.ts, kind="stable")
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(batch.models)}
    fig, axes = plt.subplots(len(tasks), 1, figsize=(9, 2.4 * len(tasks) + 0.6), sharex=False, squeeze=False)
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        rows = order[batch.tasks[order] == task]
        steps = np.arange(1, rows.size + 1)
        for m, name in enumerate(batch.models):
            hits = (batch.chosen[rows] == m).astype(float)
            if hits.sum() == 0:
                continue
            total = np.cumsum(hits)
            lagged = np.concatenate([np.zeros(min(window, rows.size)), total[:-window]]) if rows.size > window else np.zeros(rows.size)
            share = (total - lagged) / np.minimum(steps, window)
            ax.plot(steps, share, label=name, color=colours[name], linewidth=1.4)
        ax.set_title(f"{task}: share of first choices, trailing {window} requests", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share")
        ax.legend(fontsize=6, loc="center right", ncol=1)
    axes[-1, 0].set_xlabel("request number within the task")
    fig.tight_layout()
    path = out_dir / "model_shares.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "task"
