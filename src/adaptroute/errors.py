"""The one exception tree of adaptroute.

Every error the library raises on purpose is an :class:`AdaptRouteError`. Errors caused by bad input
also subclass :class:`ValueError` (or :class:`LookupError`), so generic handlers keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import Attempt

__all__ = [
    "AdaptRouteError",
    "AllModelsFailedError",
    "BudgetExceededError",
    "ConfigError",
    "DatasetError",
    "EstimatorError",
    "InvalidMessagesError",
    "InvalidQualityError",
    "LogIntegrityError",
    "NoEligibleModelError",
    "PolicyStateError",
    "SchemaVersionError",
    "StoreError",
    "StoreLockedError",
    "StoreUnavailableError",
    "UnknownDecisionError",
    "UnknownModelError",
    "UnknownPriceError",
]


class AdaptRouteError(Exception):
    """Base class of every error adaptroute raises on purpose."""


class ConfigError(AdaptRouteError, ValueError):
    """A model, weight or policy setting is invalid."""


class UnknownModelError(ConfigError):
    """A model name that the router or policy does not know."""


class UnknownPriceError(ConfigError):
    """A model whose price is neither in litellm's price table nor given in its ModelSpec."""


class InvalidMessagesError(AdaptRouteError, ValueError):
    """The chat messages handed to the router are empty or malformed."""


class InvalidQualityError(AdaptRouteError, ValueError):
    """A quality score outside [0, 1], NaN or infinite (from a scorer or feedback())."""


class UnknownDecisionError(AdaptRouteError, LookupError):
    """feedback() for a decision id that the log does not hold."""

    def __str__(self) -> str:  # LookupError would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class PolicyStateError(AdaptRouteError, ValueError):
    """A saved policy file that is corrupt, truncated, of another version, or not a policy file."""


class StoreError(AdaptRouteError, RuntimeError):
    """The log cannot be opened or written."""


class StoreUnavailableError(StoreError):
    """The PostgreSQL log cannot be reached (rows stay buffered, within the store's bound)."""


class StoreLockedError(StoreError):
    """Another process holds the DuckDB log file (DuckDB allows one writing process per file)."""


class LogIntegrityError(StoreError, ValueError):
    """A log (file, snapshot) whose tables, column types or values cannot be right; says where."""

    def __init__(self, source: str, table: str | None, column: str | None, row: int | None, problem: str,
                 *, decision_id: str | None = None) -> None:
        self.source, self.table, self.column, self.row, self.decision_id = source, table, column, row, decision_id
        where = [source]
        if table:
            where.append(f"table {table}")
        if column:
            where.append(f"column {column}")
        if row is not None:
            where.append(f"row {row}" + (f" (decision {decision_id})" if decision_id else ""))
        super().__init__(f"{', '.join(where)}: {problem}")


class SchemaVersionError(StoreError):
    """The log was written with another schema version."""


class DatasetError(AdaptRouteError, ValueError):
    """An importer input that cannot be read; the message names the file, row and column."""


class EstimatorError(AdaptRouteError, ValueError):
    """Off-policy evaluation refused its input (for example a propensity <= 0)."""


class NoEligibleModelError(AdaptRouteError, RuntimeError):
    """No configured model can take this request (for example every context window is too small)."""


class BudgetExceededError(AdaptRouteError, RuntimeError):
    """What is left of a budget cannot pay for any eligible model's expected cost (nothing was called)."""


class AllModelsFailedError(AdaptRouteError, RuntimeError):
    """Every attempted model failed. Carries the decision id and every attempt, all of them logged."""

    def __init__(self, message: str, *, decision_id: str, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(message)
        self.decision_id = decision_id
        self.attempts = attempts
