"""The picture of a long simulation: reward per window of requests against each pass's references,
with the scheduled changes marked (matplotlib, imported only when a plot is asked for)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .simulate import SimulationResult

__all__ = ["plot_simulation"]


def plot_simulation(result: SimulationResult, path: str | os.PathLike[str], windows_per_pass: int = 20) -> Path:
    """Draw mean reward per window (``windows_per_pass`` a pass) and, per pass, the best fixed model
    per task and the per-prompt oracle of that pass's world; a vertical line where a change starts."""
    target = Path(path)
    if not target.parent.is_dir():
        raise ConfigError(f"plot {target}: folder {target.parent} does not exist")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_pass = result.n // result.passes
    size = max(1, per_pass // windows_per_pass)
    starts = np.arange(0, result.n - size + 1, size)
    means = np.array([result.rewards[s : s + size].mean() for s in starts])
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(starts + size / 2, means, color="tab:blue", lw=1.6, label=f"{result.policy} (mean per {size} requests)")
    for p, ref in enumerate(result.per_pass):
        lo, hi = p * per_pass, (p + 1) * per_pass
        ax.hlines(ref.best_fixed_per_task_reward, lo, hi, colors="k", linestyles="--", lw=1,
                  label="best fixed model per task (hindsight, this pass)" if p == 0 else None)
        ax.hlines(ref.oracle_reward, lo, hi, colors="tab:green", linestyles=":", lw=1,
                  label="per-prompt oracle (this pass)" if p == 0 else None)
    for change in result.changes:
        x = (change.start_pass - 1) * per_pass
        ax.axvline(x, color="tab:red", lw=1)
        ax.annotate(change.spec(), (x, ax.get_ylim()[0]), rotation=90, fontsize=7, color="tab:red",
                    xytext=(3, 3), textcoords="offset points", va="bottom")
    ax.set_xlabel("request")
    ax.set_ylabel("reward")
    ax.set_title(f"simulate: {result.passes} pass(es), seed {result.seed}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        fig.savefig(target, dpi=110)
    except OSError as exc:
        raise ConfigError(f"plot {target}: cannot write it ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return target
