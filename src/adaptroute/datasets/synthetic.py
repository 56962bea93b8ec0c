"""Generated full-information workloads: many models, several tasks, per-prompt difficulty.

Used by the demo (from the profile shipped in data/) and by experiments that need settings the real
benchmark lacks (dozens of models, short histories, latency). Everything here is simulated and says so.

Per prompt, a latent difficulty d ~ N(0, 1) is shared by all models (hard prompts are hard for every
model); model m passes a task-t prompt with probability sigmoid(logit(q[m, t]) - s_t * d), so q[m, t]
is close to its pass rate. Tokens are log-normal per task, costs are tokens times the model's prices,
latency is log-normal around a per-model median plus a per-output-token time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .base import FullInfoDataset

__all__ = ["ModelProfile", "TaskProfile", "WorkloadProfile", "generate", "random_profile"]


@dataclass(frozen=True, slots=True)
class ModelProfile:
    name: str
    input_cost_per_token: float
    output_cost_per_token: float
    quality: dict[str, float]  # task -> pass rate
    latency_s: float = 1.0  # median time to first token, simulated
    seconds_per_output_token: float = 0.01

    def __post_init__(self) -> None:
        if not all(0.0 <= q <= 1.0 for q in self.quality.values()):
            raise ConfigError(f"{self.name}: pass rates must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class TaskProfile:
    name: str
    share: float  # share of the traffic
    tokens_in: float  # median prompt tokens
    tokens_out: float  # median answer tokens
    difficulty_spread: float = 1.0  # how much per-prompt difficulty moves the pass rate
    words: tuple[str, ...] = ()  # vocabulary of the generated prompt text


@dataclass(frozen=True)
class WorkloadProfile:
    tasks: tuple[TaskProfile, ...]
    models: tuple[ModelProfile, ...]
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> WorkloadProfile:  # type: ignore[type-arg]
        try:
            tasks = tuple(TaskProfile(name=t["name"], share=float(t["share"]), tokens_in=float(t["tokens_in"]),
                                      tokens_out=float(t["tokens_out"]),
                                      difficulty_spread=float(t.get("difficulty_spread", 1.0)),
                                      words=tuple(t.get("words", ()))) for t in data["tasks"])
            models = tuple(ModelProfile(name=m["name"], input_cost_per_token=float(m["input_cost_per_token"]),
                                        output_cost_per_token=float(m["output_cost_per_token"]),
                                        quality={k: float(v) for k, v in m["quality"].items()},
                                        latency_s=float(m.get("latency_s", 1.0)),
                                        seconds_per_output_token=float(m.get("seconds_per_output_token", 0.01)))
                           for m in data["models"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid workload profile: {exc}") from None
        names = {t.name for t in tasks}
        for m in models:
            if set(m.quality) != names:
                raise ConfigError(f"model {m.name} has pass rates for {sorted(m.quality)}, tasks are {sorted(names)}")
        return cls(tasks, models, dict(data.get("sources", {})))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def generate(profile: WorkloadProfile, n_prompts: int, seed: int = 0, *, name: str = "synthetic") -> FullInfoDataset:
    """n_prompts prompts with every model's (simulated) quality, cost and latency."""
    if n_prompts < 1:
        raise ConfigError("n_prompts must be >= 1")
    rng = np.random.default_rng(seed)
    tasks = profile.tasks
    shares = np.array([t.share for t in tasks], dtype=float)
    task_of = rng.choice(len(tasks), size=n_prompts, p=shares / shares.sum())
    k = len(profile.models)
    difficulty = rng.normal(size=n_prompts)
    base = np.array([[m.quality[t.name] for t in tasks] for m in profile.models])  # (K, tasks)
    spread = np.array([t.difficulty_spread for t in tasks])[task_of]
    logits = _logit(base[:, task_of].T) - (spread * difficulty)[:, None]
    quality = (rng.random((n_prompts, k)) < 1.0 / (1.0 + np.exp(-logits))).astype(float)
    tokens_in = np.array([t.tokens_in for t in tasks])[task_of] * rng.lognormal(0.0, 0.4, n_prompts)
    tokens_out = np.array([t.tokens_out for t in tasks])[task_of][:, None] * rng.lognormal(0.0, 0.3, (n_prompts, k))
    price_in = np.array([m.input_cost_per_token for m in profile.models])
    price_out = np.array([m.output_cost_per_token for m in profile.models])
    cost = tokens_in[:, None] * price_in + tokens_out * price_out
    median = np.array([m.latency_s for m in profile.models])
    per_token = np.array([m.seconds_per_output_token for m in profile.models])
    latency = median * rng.lognormal(0.0, 0.35, (n_prompts, k)) + per_token * tokens_out
    texts = tuple(_text(rng, tasks[t], difficulty[i]) for i, t in enumerate(task_of))
    return FullInfoDataset(
        source=name,
        prompt_ids=np.array([f"{name}-{i}" for i in range(n_prompts)], dtype=object),
        tasks=np.array([tasks[t].name for t in task_of], dtype=object),
        texts=texts,
        models=tuple(m.name for m in profile.models),
        quality=quality,
        cost_usd=cost,
        latency_s=latency,
    )


_FILLER = ("please", "the", "following", "report", "customer", "order", "data", "summary", "item", "details")
_HARD = ("ambiguous", "nested", "multilingual", "edge", "conflicting")


def _text(rng: np.random.Generator, task: TaskProfile, difficulty: float) -> str:
    """A prompt-like string. Hard prompts use a few tell-tale words more often, so contextual
    features have something real (but noisy) to learn from."""
    words = list(task.words or (task.name,)) + list(_FILLER)
    n = int(rng.integers(12, 40))
    chosen = [words[i] for i in rng.integers(0, len(words), n)]
    hard_words = int(rng.poisson(max(0.0, 1.0 + difficulty)))
    chosen += [_HARD[i] for i in rng.integers(0, len(_HARD), hard_words)]
    rng.shuffle(chosen)
    return f"{task.name}: " + " ".join(chosen)


def random_profile(
    n_models: int, n_tasks: int, seed: int = 0, *, price_quality_corr: float = 0.5, task_spread: float = 0.08
) -> WorkloadProfile:
    """A random market of models: prices log-uniform over three decades, pass rates that rise with
    price by ``price_quality_corr`` (0: unrelated, 1: strictly), and task-specific deviations."""
    if n_models < 1 or n_tasks < 1:
        raise ConfigError("need at least one model and one task")
    rng = np.random.default_rng(seed)
    tier = rng.uniform(0.0, 1.0, n_models)  # 0 cheapest ... 1 priciest
    price_in = 10 ** (-7.3 + 2.0 * tier)  # ~$0.05 to ~$5 per million input tokens
    ability = price_quality_corr * (tier - 0.5) + np.sqrt(1 - price_quality_corr**2) * rng.normal(0, 0.29, n_models)
    tasks = tuple(
        TaskProfile(name=f"task{t}", share=float(rng.uniform(0.5, 1.5)), tokens_in=float(rng.uniform(200, 2000)),
                    tokens_out=float(rng.uniform(50, 600)), difficulty_spread=float(rng.uniform(0.5, 1.5)),
                    words=tuple(f"w{t}_{j}" for j in range(8)))
        for t in range(n_tasks)
    )
    task_level = rng.uniform(0.45, 0.85, n_tasks)
    models = []
    for m in range(n_models):
        quality = {task.name: float(np.clip(task_level[t] + 0.35 * ability[m] + rng.normal(0, task_spread), 0.02, 0.98))
                   for t, task in enumerate(tasks)}
        models.append(ModelProfile(name=f"model{m:02d}", input_cost_per_token=float(price_in[m]),
                                   output_cost_per_token=float(4 * price_in[m]), quality=quality,
                                   latency_s=float(0.3 + 2.0 * tier[m] * rng.uniform(0.5, 1.5))))
    return WorkloadProfile(tasks, tuple(models), {"all figures": "randomly generated (adaptroute.datasets.synthetic)"})
