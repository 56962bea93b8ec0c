"""The Router's models at run time: which it offers, at what prices, and the priors they start from.

Every change is copy-on-write: a new dictionary of models (and of their call defaults) is built and
swapped in with one assignment, so a request in flight keeps the models it was planned with (its
fallbacks, escalations and prices stay those of its decision) and the next decision sees the new set.
Each change is logged on the ``adaptroute.router`` logger.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING

from ..config import ModelSpec, RouterSettings
from ..errors import ConfigError, UnknownModelError
from ..policy.constraints import default_weights
from ..secrecy import SecretRegistry
from .calls import CallDefaults, call_defaults
from .models import PricedModel, resolve_models

if TYPE_CHECKING:
    from .learning import Learner

__all__ = ["Roster"]

log = logging.getLogger("adaptroute.router")


class Roster:
    """Mixed into Router: add_model(), remove_model(), update_model() and the price priors."""

    settings: RouterSettings
    _learner: Learner
    _secrets: SecretRegistry
    _default_reward: bool
    _roster_lock: threading.Lock
    _models: dict[str, PricedModel]
    _names: tuple[str, ...]
    _call_defaults: dict[str, CallDefaults]
    _fits_all: float

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._models)

    def _install(self, models: dict[str, PricedModel]) -> None:
        """Offer exactly ``models`` from the next decision on. Copy-on-write: requests in flight keep
        the dictionaries they read (their fallbacks stay within the models they were planned with)."""
        windows = [m.max_input_tokens for m in models.values()]
        defaults = {n: call_defaults(m, self.settings.timeout_s) for n, m in models.items()}
        # Prompts up to this many tokens fit every model: no per-call filtering by context window.
        self._fits_all = math.inf if None in windows else min(windows)  # type: ignore[type-var]
        self._call_defaults = defaults
        self._models = models
        self._names = tuple(models)

    def add_model(self, model: str | ModelSpec) -> None:
        """Offer one more model from the next request on. It starts from its prior (configured expected
        quality, the price table) and is explored like any untried model; what the policy learned of
        the others is kept, and a model removed earlier comes back with what was learned of it."""
        priced = resolve_models([model])
        name = next(iter(priced))
        with self._roster_lock:
            if name in self._models:
                raise ConfigError(f"add_model(): {name!r} is already one of the router's models {list(self._models)}")
            self._secrets.add(*priced[name].spec.secrets)
            self._install({**self._models, **priced})
        self._refresh_priors()
        self._learner.policy.reopen()  # also for a model that comes back: what it competes with moved meanwhile
        log.info("adaptroute: model %s added; the router now offers %s", name, list(self._models))

    def remove_model(self, name: str) -> None:
        """Stop offering ``name`` from the next request on: it is no longer eligible (so no decision
        logs a probability for it), while what was learned of it stays in the policy and the log."""
        with self._roster_lock:
            if name not in self._models:
                raise UnknownModelError(f"remove_model(): unknown model {name!r}; the router's models: {list(self._models)}")
            if len(self._models) == 1:
                raise ConfigError(f"remove_model(): {name!r} is the router's only model; add another first")
            self._install({k: v for k, v in self._models.items() if k != name})
        log.info("adaptroute: model %s removed; the router now offers %s", name, list(self._models))

    def update_model(self, model: ModelSpec) -> None:
        """Replace the spec of one of the router's models (matched by name) from the next request on:
        new prices, parameters or priors. A price change also rescales what the policy learned of the
        model's cost by the new price over the old for this deployment's typical request (exact when
        input and output prices change by the same factor; otherwise the change detector corrects the
        rest from the calls that follow), so decisions price it right at once; what was learned of its
        quality and latency is kept. Requests in flight finish at the prices they were decided with."""
        if not isinstance(model, ModelSpec):
            raise ConfigError(f"update_model() takes a ModelSpec (the model's new spec), got {type(model).__name__}")
        priced = resolve_models([model])[model.name]
        typical_in, typical_out = self._learner.typical_tokens()
        with self._roster_lock:
            old = self._models.get(model.name)
            if old is None:
                raise UnknownModelError(f"update_model(): unknown model {model.name!r}; the router's models: "
                                        f"{list(self._models)} (add_model() offers a new one)")
            self._secrets.add(*priced.spec.secrets)
            before, after = old.cost(int(typical_in), int(typical_out)), priced.cost(int(typical_in), int(typical_out))
            self._install({k: (priced if k == model.name else v) for k, v in self._models.items()})
            if before > 0 and after > 0 and before != after:
                self._learner.rescale_cost(model.name, after / before)
        self._refresh_priors()
        log.info("adaptroute: model %s updated: $%.3g/$%.3g per million input/output tokens (was $%.3g/$%.3g), "
                 "a typical request $%.6f (was $%.6f)", model.name, 1e6 * priced.input_cost_per_token,
                 1e6 * priced.output_cost_per_token, 1e6 * old.input_cost_per_token, 1e6 * old.output_cost_per_token,
                 after, before)

    def _refresh_priors(self) -> None:
        """Cost priors from the price table for a typical request of this deployment so far (before
        any call: 1,000 prompt and 250 answer tokens)."""
        typical_in, typical_out = self._learner.typical_tokens()
        for name, model in self._models.items():
            self._learner.policy.add_model(name, model.prior(typical_in, typical_out))
        if self._default_reward:
            priciest = max(m.cost(int(typical_in), int(typical_out)) for m in self._models.values())
            self._learner.set_weights(default_weights(priciest))
