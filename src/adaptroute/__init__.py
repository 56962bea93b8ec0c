"""adaptroute: adaptive LLM routing with contextual bandits, a DuckDB outcome log and offline replay.

Public names load on first use, so ``import adaptroute`` stays light (litellm is imported by the first
routed call, never here).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # online routing
    "Router": "adaptroute.router",
    "RoutedStream": "adaptroute.router",
    "AsyncRoutedStream": "adaptroute.router",
    "ModelSpec": "adaptroute.config",
    "RewardWeights": "adaptroute.config",
    "RouterSettings": "adaptroute.config",
    # operator controls
    "Budget": "adaptroute.policy.pacing",
    "QualityBar": "adaptroute.policy.constraints",
    # records
    "Attempt": "adaptroute.types",
    "Decision": "adaptroute.types",
    "LoggedBatch": "adaptroute.types",
    "ModelScore": "adaptroute.types",
    "Outcome": "adaptroute.types",
    "RoutingRecord": "adaptroute.types",
    # policies and features
    "Policy": "adaptroute.policy",
    "ThompsonSampling": "adaptroute.policy",
    "LinUCB": "adaptroute.policy",
    "EpsilonGreedy": "adaptroute.policy",
    "ModelPrior": "adaptroute.policy",
    "make_policy": "adaptroute.policy",
    "load_policy": "adaptroute.policy",
    "save_policy": "adaptroute.policy",
    "Featurizer": "adaptroute.features",
    "HashingFeaturizer": "adaptroute.features",
    # scorers
    "RegexScorer": "adaptroute.scorers",
    "JSONSchemaScorer": "adaptroute.scorers",
    "LLMJudge": "adaptroute.scorers",
    # the log
    "LogBackend": "adaptroute.store",
    "LogStore": "adaptroute.store",
    "PostgresLogStore": "adaptroute.store",
    "open_store": "adaptroute.store",
    "read_log": "adaptroute.store",
    # errors
    "AdaptRouteError": "adaptroute.errors",
    "AllModelsFailedError": "adaptroute.errors",
    "BudgetExceededError": "adaptroute.errors",
    "ConfigError": "adaptroute.errors",
    "DatasetError": "adaptroute.errors",
    "EstimatorError": "adaptroute.errors",
    "InvalidMessagesError": "adaptroute.errors",
    "InvalidQualityError": "adaptroute.errors",
    "NoEligibleModelError": "adaptroute.errors",
    "PolicyStateError": "adaptroute.errors",
    "SchemaVersionError": "adaptroute.errors",
    "StoreError": "adaptroute.errors",
    "LogIntegrityError": "adaptroute.errors",
    "StoreLockedError": "adaptroute.errors",
    "StoreUnavailableError": "adaptroute.errors",
    "UnknownDecisionError": "adaptroute.errors",
    "UnknownModelError": "adaptroute.errors",
    "UnknownPriceError": "adaptroute.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'adaptroute' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .config import ModelSpec, RewardWeights, RouterSettings
    from .errors import (
        AdaptRouteError,
        AllModelsFailedError,
        BudgetExceededError,
        ConfigError,
        DatasetError,
        EstimatorError,
        InvalidMessagesError,
        InvalidQualityError,
        NoEligibleModelError,
        PolicyStateError,
        SchemaVersionError,
        LogIntegrityError,
        StoreError,
        StoreLockedError,
        StoreUnavailableError,
        UnknownDecisionError,
        UnknownModelError,
        UnknownPriceError,
    )
    from .features import Featurizer, HashingFeaturizer
    from .policy.constraints import QualityBar
    from .policy.pacing import Budget
    from .policy import EpsilonGreedy, LinUCB, ModelPrior, Policy, ThompsonSampling, load_policy, make_policy, save_policy
    from .router import AsyncRoutedStream, RoutedStream, Router
    from .scorers import JSONSchemaScorer, LLMJudge, RegexScorer
    from .store import LogBackend, LogStore, PostgresLogStore, open_store, read_log
    from .types import Attempt, Decision, LoggedBatch, ModelScore, Outcome, RoutingRecord
