"""Readable tables for the CLI (markdown, so they paste into issues and reports)."""

from __future__ import annotations

from .simulate import SimulationResult

__all__ = ["format_simulation"]


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_simulation(result: SimulationResult) -> str:
    w = result.weights
    lines = [
        f"simulate: {result.n} decisions ({result.passes} pass(es), seed {result.seed}), policy {result.policy}, "
        f"weights quality={w.quality:g} cost={w.cost:g}/USD latency={w.latency:g}/s; "
        f"{result.skipped} prompt(s) skipped for missing model rows",
        "",
        "| router | mean quality | mean cost (USD) | mean latency (s) | mean reward |",
        "|---|---|---|---|---|",
        f"| **{result.policy}** | {_num(result.mean_quality)} | {_num(result.mean_cost_usd, 6)} | "
        f"{_num(result.mean_latency_s, 3)} | {_num(result.mean_reward)} |",
    ]
    for name, ref in result.baselines.items():
        lines.append(f"| {name} | {_num(ref.mean_quality)} | {_num(ref.mean_cost_usd, 6)} | "
                     f"{_num(ref.mean_latency_s, 3)} | {_num(ref.mean_reward)} |")
    lines += ["", f"regret vs oracle: {result.regret_vs_oracle:.1f}; vs best fixed model per task: "
              f"{result.regret_vs_best_fixed_per_task:.1f} (reward summed over decisions)", "", "model shares:"]
    for model, share in sorted(result.model_shares.items(), key=lambda kv: -kv[1]):
        lines.append(f"- {model}: {100 * share:.1f}%")
    if result.controls:
        lines += ["", "operator controls: " + ", ".join(f"{k} {v}" for k, v in result.controls.items()), ""]
        lines += _per_task(result)
    if result.passes > 1 or result.changes:
        lines += ["", _per_pass(result)]
    return "\n".join(lines)


def _per_pass(result: SimulationResult) -> str:
    """One row per pass, next to that pass's references (the world as it was during the pass)."""
    changes = {}
    for change in result.changes:
        changes.setdefault(change.start_pass, []).append(change.spec().split(":", 1)[1])
    lines = ["per pass (references for the world during that pass):", "",
             "| pass | mean quality | mean cost (USD) | mean reward | best fixed per task | oracle | gap to best fixed | changes from this pass |",
             "|---|---|---|---|---|---|---|---|"]
    for i, p in enumerate(result.per_pass, start=1):
        lines.append(f"| {i} | {p.mean_quality:.4f} | {p.mean_cost_usd:.6f} | {p.mean_reward:.4f} | "
                     f"{p.best_fixed_per_task_reward:.4f} | {p.oracle_reward:.4f} | "
                     f"{p.mean_reward - p.best_fixed_per_task_reward:+.4f} | {', '.join(changes.get(i, [])) or '-'} |")
    return "\n".join(lines)


def _per_task(result: SimulationResult) -> list[str]:
    lines = ["| task | requests | mean quality | mean cost (USD) | bar | met | cheapest single model meeting it (hindsight) |",
             "|---|---|---|---|---|---|---|"]
    for task, entry in result.per_task.items():
        bar = entry.get("bar")
        fixed = entry.get("cheapest_passing_fixed")
        ref = "-" if bar is None else ("none does" if fixed is None else
                                       f"{fixed['name']} (quality {fixed['quality']:.4f}, ${fixed['cost_usd']:.6f})")
        met = "-" if bar is None else ("yes" if entry.get("bar_met") else "no")
        lines.append(f"| {task} | {entry['requests']} | {entry['mean_quality']:.4f} | {entry['mean_cost_usd']:.6f} | "
                     f"{_num(bar)} | {met} | {ref} |")
    return lines
