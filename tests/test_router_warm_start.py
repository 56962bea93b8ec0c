"""Router.warm_start: what an eval set taught before the first request, kept across retrains."""

from __future__ import annotations

import numpy as np
import pytest

from adaptroute import DatasetError, RewardWeights, Router
from adaptroute.datasets.base import FullInfoDataset

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]
TASKS = ("extract", "code")


def eval_set(n: int = 60, seed: int = 0) -> FullInfoDataset:
    """Every model on the same prompts: gpt-4.1-nano answers everything right, the others half, plus a
    model the router does not have (ignored)."""
    rng = np.random.default_rng(seed)
    models = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "not-routed")
    quality = (rng.random((n, 4)) < [0.5, 0.5, 1.0, 1.0]).astype(float)
    tasks = np.array([TASKS[i % 2] for i in range(n)])
    return FullInfoDataset(
        source="eval set", prompt_ids=np.array([f"p{i}" for i in range(n)]), tasks=tasks,
        texts=tuple(f"{t}: prompt {i}" for i, t in enumerate(tasks)), models=models,
        quality=quality, cost_usd=np.tile([1.35e-5, 2.25e-4, 1e-5, 1e-6], (n, 1)),
    )


@pytest.fixture
def router(tmp_path) -> Router:  # type: ignore[no-untyped-def]
    r = Router(models=MODELS, reward=RewardWeights(quality=1, cost=100), store=str(tmp_path / "log.duckdb"), seed=0)
    yield r
    r.close()


def best_share(router: Router, model: str = "gpt-4.1-nano") -> float:
    shares = []
    for task in TASKS:
        prediction = router.policy.predict(router._featurizer.transform([{"role": "user", "content": f"{task}: new"}], task))
        shares.append(prediction.probabilities[prediction.models.index(model)])
    return float(min(shares))


def test_warm_start_teaches_the_eval_set_before_any_traffic(router: Router) -> None:
    assert best_share(router) < 0.5  # nothing known yet
    version = router.warm_start(eval_set())
    assert version == 1 and router.policy.version == 1
    assert best_share(router) > 0.9
    assert "not-routed" not in router.policy.models
    assert router.recommend([{"role": "user", "content": "extract: x"}], task="extract")[0].model == "gpt-4.1-nano"


def test_retrain_keeps_the_warm_start_and_adds_the_log(router: Router) -> None:
    router.warm_start(eval_set())
    warm = sum(router.policy.observation_counts().values())
    router.scorer = lambda messages, response: 1.0
    for i in range(20):
        router.complete([{"role": "user", "content": f"code: {i}"}], task="code", mock_response="ok")
    online = router.policy.observation_counts()
    assert sum(online.values()) == warm + 20
    router.retrain()  # the eval set, then the log: the state learned online, reproduced
    assert router.policy.version == 2
    assert router.policy.observation_counts() == pytest.approx(online)
    assert best_share(router) > 0.9


def test_data_without_any_routed_model_is_refused_and_changes_nothing(router: Router) -> None:
    data = eval_set().select_models(("not-routed",))
    with pytest.raises(DatasetError, match="none of the router's models"):
        router.warm_start(data)
    assert router.policy.version == 0 and sum(router.policy.observation_counts().values()) == 0


def test_warm_start_reads_a_long_format_file(router: Router, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = eval_set()
    lines = ["prompt_id,task,model,quality,cost_usd,prompt"]
    for i in range(len(data)):
        for j, model in enumerate(data.models):
            lines.append(f"{data.prompt_ids[i]},{data.tasks[i]},{model},{data.quality[i, j]},{data.cost_usd[i, j]},{data.texts[i]}")
    path = tmp_path / "eval.csv"
    path.write_text("\n".join(lines) + "\n")
    router.warm_start(str(path))
    assert best_share(router) > 0.9
