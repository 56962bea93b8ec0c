"""The text form of an off-policy estimate (replay's table)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .ope_bar import format_per_task

if TYPE_CHECKING:
    from .ope import Estimate, OPEResult

__all__ = ["format_text"]


def _number(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def _cell(e: Estimate) -> str:
    return "n/a" if e.n == 0 else f"{_number(e.value)} [{_number(e.low)}, {_number(e.high)}]"


def format_text(result: OPEResult) -> str:
    """A short markdown table (like the other replay reports): candidate against logged policy."""
    w = result.weights
    method = result.estimator.upper() + (f" (tau={result.switch_tau:g})" if result.switch_tau is not None else "")
    lines = [
        f"replay: {method} estimate for policy {result.policy!r}, weights quality={w['quality']:g} "
        f"cost={w['cost']:g}/USD latency={w['latency']:g}/s failure={w['failure']:g} ({result.weights_source}); "
        f"{result.n_used:,} decisions "
        f"used, {result.n_excluded:,} excluded; effective sample size {result.ess:,.1f}; {result.confidence:.0%} "
        f"intervals from {result.n_boot} bootstrap resamples",
        "",
        f"| | candidate ({result.estimator.upper()}) | logged policy |",
        "|---|---|---|",
        f"| **reward** | {_cell(result.reward)} | {_cell(result.logged_reward)} |",
    ]
    for name, estimate in result.components.items():
        lines.append(f"| {name} | {_cell(estimate)} | {_cell(result.logged_components[name])} |")
    lines += ["", f"reward gain over the logged policy: {_cell(result.gain)}"]
    if result.by_estimator:
        cells = ", ".join(f"{name.upper()} {_cell(e)}" for name, e in result.by_estimator.items())
        lines += ["", f"reward by every estimator: {cells}"]
        verdict = f"trust {result.trusted.upper()}" if result.trusted else "trust none of them yet"
        lines += [f"which to trust: {verdict}: {result.trust_reason}"]
    lines += format_per_task(result.per_task)
    if result.warnings:
        lines += ["", "warnings:"] + [f"- {m}" for m in result.warnings]
    return "\n".join(lines)
