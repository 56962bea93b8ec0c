"""Full-information benchmark data: every model's outcome known for every prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DatasetError
from ..types import LoggedBatch, Observations

if TYPE_CHECKING:
    from ..features import Featurizer

__all__ = ["FullInfoDataset"]


@dataclass(frozen=True)
class FullInfoDataset:
    """Prompts x models. ``quality``, ``cost_usd`` (and ``latency_s`` when known) are (n, K) arrays.

    Importers keep only prompts that every model answered; ``skipped`` counts the ones they dropped.
    """

    source: str
    prompt_ids: np.ndarray
    tasks: np.ndarray
    texts: tuple[str, ...] | None
    models: tuple[str, ...]
    quality: np.ndarray
    cost_usd: np.ndarray
    latency_s: np.ndarray | None = None
    skipped: int = 0

    def __post_init__(self) -> None:
        n, k = len(self.prompt_ids), len(self.models)
        if len(set(self.models)) != k:
            raise DatasetError(f"{self.source}: duplicate model names")
        for name in ("quality", "cost_usd") + (("latency_s",) if self.latency_s is not None else ()):
            array = getattr(self, name)
            if array.shape != (n, k):
                raise DatasetError(f"{self.source}: {name} has shape {array.shape}, expected {(n, k)}")
            if not np.all(np.isfinite(array)):
                raise DatasetError(f"{self.source}: {name} holds missing or non-finite values")
        if self.texts is not None and len(self.texts) != n:
            raise DatasetError(f"{self.source}: {len(self.texts)} texts for {n} prompts")
        if len(self.tasks) != n:
            raise DatasetError(f"{self.source}: {len(self.tasks)} tasks for {n} prompts")

    def __len__(self) -> int:
        return int(len(self.prompt_ids))

    @property
    def has_latency(self) -> bool:
        return self.latency_s is not None

    def subset(self, rows: np.ndarray) -> FullInfoDataset:
        """The prompts at ``rows`` (indices or a boolean mask), in that order."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.intp)
        return FullInfoDataset(
            source=self.source,
            prompt_ids=self.prompt_ids[rows],
            tasks=self.tasks[rows],
            texts=None if self.texts is None else tuple(self.texts[i] for i in rows),
            models=self.models,
            quality=self.quality[rows],
            cost_usd=self.cost_usd[rows],
            latency_s=None if self.latency_s is None else self.latency_s[rows],
            skipped=self.skipped,
        )

    def select_models(self, models: tuple[str, ...]) -> FullInfoDataset:
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise DatasetError(f"{self.source}: unknown models {unknown}")
        cols = [self.models.index(m) for m in models]
        return FullInfoDataset(
            source=self.source,
            prompt_ids=self.prompt_ids,
            tasks=self.tasks,
            texts=self.texts,
            models=tuple(models),
            quality=self.quality[:, cols],
            cost_usd=self.cost_usd[:, cols],
            latency_s=None if self.latency_s is None else self.latency_s[:, cols],
            skipped=self.skipped,
        )

    def features(self, featurizer: Featurizer) -> np.ndarray:
        """Every prompt's feature vector (an empty text where the data has none)."""
        texts = self.texts if self.texts is not None else ("",) * len(self)
        return featurizer.transform_texts(texts, [str(t) for t in self.tasks])

    def as_batch(self, features: np.ndarray) -> LoggedBatch:
        """Every (prompt, model) outcome as observations over ``features``: a policy warm start."""
        n, k = self.quality.shape
        if features.shape[0] != n:
            raise DatasetError(f"{features.shape[0]} feature rows for {n} prompts")
        rows = np.repeat(np.arange(n), k)
        models = np.tile(np.arange(k), n)
        latency = self.latency_s if self.latency_s is not None else np.full((n, k), np.nan)
        observations = Observations(
            row=rows,
            model=models,
            quality=self.quality.ravel().astype(float),
            cost_usd=self.cost_usd.ravel().astype(float),
            latency_s=latency.ravel().astype(float),
            failed=np.zeros(n * k, dtype=bool),
        )
        nan = np.full(n, np.nan)
        none = np.full(n, -1, dtype=np.int64)
        no = np.zeros(n, dtype=bool)
        return LoggedBatch(
            decision_ids=self.prompt_ids,
            tasks=self.tasks,
            features=features,
            models=self.models,
            chosen=none,
            propensity=nan,
            probabilities=np.zeros((n, k)),
            executed=none,
            quality=nan,
            cost_usd=nan,
            latency_s=nan,
            failed=no,
            escalated=no,
            retried=no,
            fell_back=no,
            ts=nan,
            policy_versions=none,
            observations=observations,
        )
