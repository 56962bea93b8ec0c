"""Router.update_model(): prices change at run time, decisions price the model anew at once, the
logged probabilities stay the exact ones drawn from, calls in flight keep their old price, and a
retrain keeps the new price."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from adaptroute import ConfigError, ModelSpec, RewardWeights, Router, UnknownModelError
from adaptroute.store import read_log

OLD = {"input_cost_per_token": 2e-6, "output_cost_per_token": 8e-6}
NEW = {"input_cost_per_token": 2e-7, "output_cost_per_token": 8e-7}  # a 90% price cut
MESSAGES = [{"role": "user", "content": "tag this ticket: refund please"}]


def _router(tmp_path, **extra) -> Router:  # type: ignore[no-untyped-def]
    models = [ModelSpec(name="cheap", litellm_model="gpt-4o-mini", input_cost_per_token=1e-7, output_cost_per_token=4e-7),
              ModelSpec(name="strong", litellm_model="gpt-4o", **OLD, **extra)]
    scorer = lambda messages, response, model: 0.95 if model == "strong" else 0.6  # noqa: E731
    return Router(models, reward=RewardWeights(quality=1.0, cost=3000.0), store=str(tmp_path / "log.duckdb"),
                  scorer=scorer, seed=0)


def _cost(router: Router, model: str) -> float:
    return next(s.cost_usd for s in router.recommend(MESSAGES, task="tag") if s.model == model)


def test_a_price_cut_reprices_the_model_at_once_and_exactly(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    with _router(tmp_path) as router:
        for _ in range(40):
            router.complete(MESSAGES, task="tag", mock_response="ok")
        before = _cost(router, "strong")
        with caplog.at_level(logging.INFO, logger="adaptroute.router"):
            router.update_model(ModelSpec(name="strong", litellm_model="gpt-4o", **NEW))
        assert any("model strong updated" in r.getMessage() for r in caplog.records)
        # learned cost scaled by new/old (both prices fell 10x: exactly 0.1)
        assert _cost(router, "strong") == pytest.approx(0.1 * before, rel=1e-9)
        assert router.models == ("cheap", "strong")  # same order, same set
        # the next decision is drawn from exactly the probabilities the repriced policy gives
        expected = {s.model: s.probability for s in router.recommend(MESSAGES, task="tag")}
        response = router.complete(MESSAGES, task="tag", mock_response="ok")
        batch = read_log(router.store)
        logged = dict(zip(batch.models, batch.probabilities[-1], strict=True))
        assert logged == pytest.approx(expected, abs=1e-12)
        assert batch.propensity[-1] == logged[response.adaptroute.chosen]
        # and a call to it is billed at the new price (litellm's mock: 10 prompt and 20 answer tokens)
        if response.adaptroute.model == "strong":
            assert response.adaptroute.cost_usd == pytest.approx(10 * 2e-7 + 20 * 8e-7)
        # a retrain refits the log's earlier calls at the new price: the learned cost stays where it is
        repriced = _cost(router, "strong")
        router.retrain()
        assert _cost(router, "strong") == pytest.approx(repriced, rel=0.05)


def test_the_cut_moves_traffic_to_the_repriced_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _router(tmp_path) as router:
        for _ in range(150):
            router.complete(MESSAGES, task="tag", mock_response="ok")
        early = [r.model for r in router.recommend(MESSAGES, task="tag")]
        assert early[0] == "cheap"  # at its old price the strong model is not worth it
        router.update_model(ModelSpec(name="strong", litellm_model="gpt-4o", **NEW))
        chosen = [router.complete(MESSAGES, task="tag", mock_response="ok").adaptroute.chosen for _ in range(60)]
        assert chosen[10:].count("strong") >= 45, chosen


def test_a_call_in_flight_keeps_the_price_it_was_decided_with(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario(router: Router) -> float:
        call = asyncio.create_task(router.acomplete(MESSAGES, task="tag", mock_response="ok", models=["strong"]))
        await asyncio.sleep(0.05)  # decided and under way (mock_delay 0.3 s)
        router.update_model(ModelSpec(name="strong", litellm_model="gpt-4o", **NEW))
        return (await call).adaptroute.cost_usd

    with _router(tmp_path, mock_delay=0.3) as router:
        assert asyncio.run(scenario(router)) == pytest.approx(10 * 2e-6 + 20 * 8e-6)


def test_update_model_refuses_unknown_models_and_other_types(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _router(tmp_path) as router:
        with pytest.raises(UnknownModelError, match="add_model"):
            router.update_model(ModelSpec(name="other", litellm_model="gpt-4o", **NEW))
        with pytest.raises(ConfigError, match="ModelSpec"):
            router.update_model("strong")  # type: ignore[arg-type]
        assert np.isfinite(_cost(router, "strong"))
