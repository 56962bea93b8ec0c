"""What users track, from a router's own log: per task and overall.

- cost per completed task: spend / requests whose quality passed the acceptance threshold;
- latency to usable output: mean and p95 over requests that got an answer;
- retry rate (a same-model retry), fallback rate (another model after an error), escalation rate
  (another model after a low score; the design's "escalation" counts fallbacks too: see both);
- model shares (the model that produced the answer);
- savings against always using the premium model: the counterfactual is that model's price (per input
  and per output token, as its own logged calls imply) times each request's own tokens (its prompt, and
  the answer it got), against what the router actually spent on those requests, escalations and
  fallbacks included. The premium model is the one that would have cost most on this traffic (so it
  must appear in the log). Requests with no tokens (every call failed) are left out of both sides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import LoggedBatch

__all__ = ["TaskReport", "format_report", "plot_report", "report", "savings_note"]


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
    premium_spend_estimate_usd: float | None  # the premium model's price x these requests' own tokens
    savings_vs_premium: float | None  # 1 - what the router spent on those requests / that counterfactual
    premium_price_per_million_tokens: tuple[float, float] | None = None  # (input, output), implied by its calls
    savings_requests: int = 0  # requests in the comparison (those with known tokens)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def report(batch: LoggedBatch, pass_threshold: float = 0.5) -> dict[str, TaskReport]:
    """Per-task reports plus "all" (keys: task names, then "all")."""
    if not isinstance(pass_threshold, (int, float)) or not 0.0 <= float(pass_threshold) <= 1.0:  # NaN fails too
        raise ConfigError(f"pass_threshold must be a quality in [0, 1], got {pass_threshold!r}")
    premium = _premium(batch)
    out: dict[str, TaskReport] = {}
    tasks = sorted({str(t) for t in batch.tasks})
    for task in [*tasks, "all"]:
        rows = np.ones(len(batch), dtype=bool) if task == "all" else batch.tasks == task
        out[task] = _task_report(batch, rows, task, pass_threshold, premium)
    return out


@dataclass(frozen=True, slots=True)
class _Premium:
    model: str
    price: tuple[float, float]  # USD per input token, per output token
    cost: np.ndarray  # per request: price x its own tokens (NaN where its tokens are unknown)


def _premium(batch: LoggedBatch) -> _Premium | None:
    """The model that would have cost most had it answered every request, and what each would have cost."""
    tokens, prices = batch.tokens, batch.model_prices or {}
    if tokens is None or not prices or not len(batch):
        return None
    known = np.isfinite(tokens).all(axis=1)
    if not known.any():
        return None
    totals = {m: float((tokens[known] @ np.asarray(p)).sum()) for m, p in prices.items()}
    model = max(totals, key=lambda m: totals[m])
    return _Premium(model, prices[model], tokens @ np.asarray(prices[model]))


def _task_report(batch: LoggedBatch, rows: np.ndarray, task: str, threshold: float, premium: _Premium | None) -> TaskReport:
    n = int(rows.sum())
    answered = rows & (batch.executed >= 0)
    quality = batch.quality[rows]
    scored = ~np.isnan(quality)
    completed = int(np.sum(quality[scored] >= threshold))
    spend = float(np.nansum(batch.cost_usd[rows]))
    latency = batch.latency_s[answered]
    latency = latency[np.isfinite(latency)]
    shares = np.bincount(batch.executed[answered], minlength=len(batch.models)) / max(int(answered.sum()), 1)
    premium_spend = savings = None
    compared = 0
    if premium is not None:
        same = rows & np.isfinite(premium.cost)  # both sides on the same requests
        compared = int(same.sum())
        if compared:
            premium_spend = float(premium.cost[same].sum())
            spent = float(np.nansum(batch.cost_usd[same]))
            savings = 1.0 - spent / premium_spend if premium_spend > 0 else None
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
        premium_model=premium.model if premium is not None else None,
        premium_spend_estimate_usd=premium_spend,
        savings_vs_premium=savings,
        premium_price_per_million_tokens=(premium.price[0] * 1e6, premium.price[1] * 1e6) if premium else None,
        savings_requests=compared,
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
    note = savings_note(reports)
    if note:
        lines.append(f"\n{note}")
    return "\n".join(lines)


def savings_note(reports: dict[str, TaskReport]) -> str | None:
    """How "savings vs premium" was computed, in words (for the report and its JSON)."""
    overall = reports.get("all")
    if overall is None or overall.premium_model is None or overall.premium_price_per_million_tokens is None:
        return None
    price_in, price_out = overall.premium_price_per_million_tokens
    return (f"Savings vs premium: against always {overall.premium_model} (the model that would have cost most on "
            f"this traffic), priced at ${price_in:.4g} per million input and ${price_out:.4g} per million output "
            f"tokens (what its own logged calls imply) times each request's own tokens (its prompt and the answer "
            f"it got), over the {overall.savings_requests} requests with known tokens; the router's side counts "
            "every call it made for them, escalations and fallbacks included.")


def plot_report(batch: LoggedBatch, path: str | Path, window: int = 50, marks: Sequence[tuple[float, str]] = ()) -> list[Path]:
    """One PNG (``path``; a folder or a path without a suffix gets model_shares.png inside), one panel
    per task: the share of each model among the policy's first choices over the last ``window``
    requests of that task (a trailing mean, so the curve at request i uses only the past). ``marks``:
    (time, label) pairs drawn as vertical lines where they fall among each task's requests (a change)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(path)
    if target.is_dir() or not target.suffix:
        target = target / "model_shares.png"
    target.parent.mkdir(parents=True, exist_ok=True)
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
        for when, label in marks:
            x = int(np.searchsorted(batch.ts[rows], when, side="left"))
            ax.axvline(x, color="black", linestyle="--", linewidth=1.0)
            ax.annotate(label, (x, 1.0), xytext=(3, -10), textcoords="offset points", fontsize=7)
        ax.set_title(f"{task}: share of first choices, trailing {window} requests", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share")
        ax.legend(fontsize=6, loc="center right", ncol=1)
    axes[-1, 0].set_xlabel("request number within the task")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return [target]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "task"
