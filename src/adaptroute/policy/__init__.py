"""Contextual-bandit policies (NumPy only): Thompson sampling (default), LinUCB, epsilon-greedy."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import BatchPrediction, ModelPrior, Policy, Prediction
from .egreedy import EpsilonGreedy
from .linucb import LinUCB
from .persist import load_policy, save_policy
from .thompson import ThompsonSampling

__all__ = [
    "DEFAULT_POLICY",
    "BatchPrediction",
    "EpsilonGreedy",
    "LinUCB",
    "ModelPrior",
    "Policy",
    "Prediction",
    "ThompsonSampling",
    "load_policy",
    "make_policy",
    "save_policy",
]

DEFAULT_POLICY = "thompson"


def make_policy(name: str = DEFAULT_POLICY, **params: Any) -> Policy:
    """A fresh policy by name: "thompson", "linucb" or "egreedy"."""
    cls = Policy.registry.get(name)
    if cls is None:
        raise ConfigError(f"unknown policy {name!r}; choose one of {sorted(Policy.registry)}")
    return cls(**params)
