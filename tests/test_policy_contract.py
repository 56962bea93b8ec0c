"""The policy contract, checked generically over every policy (river-style)."""

from __future__ import annotations

import numpy as np
import pytest

from adaptroute import ConfigError, RewardWeights, UnknownModelError
from adaptroute.policy import Policy, load_policy, make_policy, save_policy
from adaptroute.types import LoggedBatch, Observations, Outcome

POLICIES = sorted(Policy.registry)
MODELS = ("cheap", "mid", "premium", "flaky")
TRUE_QUALITY = {"cheap": 0.55, "mid": 0.75, "premium": 0.9, "flaky": 0.6}
PRICE = {"cheap": 0.0001, "mid": 0.001, "premium": 0.01, "flaky": 0.0005}


def contexts(n: int, d: int = 9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 0.3, size=(n, d))
    X[:, 0] = 1.0
    return X


def trained(name: str, steps: int = 300, seed: int = 0, **params: object) -> Policy:
    policy = make_policy(name, weights=RewardWeights(quality=1, cost=20), seed=seed, **params)
    for model in MODELS:
        policy.add_model(model)
    rng = np.random.default_rng(seed)
    X = contexts(steps, seed=seed)
    for x in X:
        model, _ = policy.choose(x)
        quality = float(rng.random() < TRUE_QUALITY[model])
        policy.update(x, model, Outcome(quality, PRICE[model], 0.5, failed=model == "flaky" and rng.random() < 0.3))
    return policy


@pytest.fixture(params=POLICIES)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_registry_has_the_three_policies() -> None:
    assert set(POLICIES) == {"thompson", "linucb", "egreedy"}


def test_probabilities_sum_to_one_and_respect_the_floor(name: str) -> None:
    policy = trained(name, steps=200)
    for x in contexts(50, seed=1):
        for eligible in (MODELS, MODELS[:2], ("premium",), ("flaky", "cheap", "mid")):
            p = policy.probabilities(x, eligible)
            assert p.shape == (len(eligible),)
            assert abs(p.sum() - 1.0) < 1e-9
            if len(eligible) > 1:
                assert p.min() >= policy.floor / len(eligible) - 1e-12
                assert p.max() < 1.0  # never a propensity of exactly 1 with a choice to make


def test_same_seed_same_decisions(name: str) -> None:
    first = trained(name, steps=150, seed=3)
    second = trained(name, steps=150, seed=3)
    X = contexts(20, seed=9)
    assert [first.choose(x)[0] for x in X] == [second.choose(x)[0] for x in X]


def test_save_load_round_trip(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = trained(name)
    policy.version = 7
    path = save_policy(policy, tmp_path / "policy.npz", metadata={"note": "hi"})
    loaded, metadata = load_policy(path)
    assert metadata == {"note": "hi"}
    assert type(loaded) is type(policy) and loaded.version == 7 and loaded.params() == policy.params()
    assert loaded.weights == policy.weights and loaded.models == policy.models
    for x in contexts(10, seed=4):
        a, b = policy.predict(x), loaded.predict(x)
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-10)
        np.testing.assert_allclose(a.means, b.means, atol=1e-10)


def test_clone_has_parameters_but_no_learning(name: str) -> None:
    policy = trained(name)
    clone = policy.clone()
    assert clone.params() == policy.params() and clone.weights == policy.weights
    assert clone.models == policy.models
    assert all(count == 0 for count in clone.observation_counts().values())
    fresh = make_policy(name, weights=policy.weights, **policy.params())
    for model in policy.models:
        fresh.add_model(model)
    x = contexts(1, seed=5)[0]
    np.testing.assert_allclose(clone.predict(x).means, fresh.predict(x).means)


def test_learning_moves_predictions_toward_outcomes(name: str) -> None:
    policy = make_policy(name)
    policy.add_model("a")
    policy.add_model("b")
    x = contexts(1)[0]
    for _ in range(40):
        policy.update(x, "a", Outcome(1.0, 0.0, 0.0))
        policy.update(x, "b", Outcome(0.0, 0.0, 0.0))
    pred = policy.predict(x)
    assert pred.means[0, 0] > 0.9 and pred.means[1, 0] < 0.1
    assert pred.probabilities[0] > pred.probabilities[1]


def test_fit_reproduces_online_learning(name: str) -> None:
    """Learning is order-independent sufficient statistics: refitting from a log of the same
    observations gives the online state (retrain reproduces)."""
    online = trained(name, steps=250, seed=2)
    rng = np.random.default_rng(2)
    X = contexts(250, seed=2)
    models, targets = [], []
    replay = online.clone()
    for x in X:
        model, _ = replay.choose(x)
        quality = float(rng.random() < TRUE_QUALITY[model])
        outcome = Outcome(quality, PRICE[model], 0.5, failed=model == "flaky" and rng.random() < 0.3)
        replay.update(x, model, outcome)
        models.append(online.models.index(model))
        targets.append(outcome)
    batch = _batch(X, online.models, models, targets)
    refit = online.clone()
    refit.fit(batch)
    for x in contexts(10, seed=8):
        np.testing.assert_allclose(refit.predict(x).means, online.predict(x).means, atol=1e-8)
        np.testing.assert_allclose(refit.predict(x).probabilities, online.predict(x).probabilities, atol=1e-7)


def _batch(X: np.ndarray, models: tuple[str, ...], chosen: list[int], outcomes: list[Outcome]) -> LoggedBatch:
    n = X.shape[0]
    obs = Observations(
        row=np.arange(n),
        model=np.array(chosen),
        quality=np.array([o.quality for o in outcomes]),
        cost_usd=np.array([o.cost_usd for o in outcomes]),
        latency_s=np.array([o.latency_s for o in outcomes]),
        failed=np.array([o.failed for o in outcomes]),
    )
    nan = np.full(n, np.nan)
    no = np.zeros(n, dtype=bool)
    return LoggedBatch(np.arange(n).astype(str), np.full(n, "t"), X, models, np.array(chosen), nan,
                       np.zeros((n, len(models))), np.array(chosen), nan, nan, nan, no, no, no, no, nan,
                       np.zeros(n, dtype=np.int64), obs)


def test_new_weights_apply_without_retraining(name: str) -> None:
    policy = trained(name)
    x = contexts(1, seed=6)[0]
    before = policy.predict(x)
    policy.weights = RewardWeights(quality=1, cost=5000)
    after = policy.predict(x)
    np.testing.assert_allclose(before.means, after.means)  # the components do not change
    cheap, premium = policy.models.index("cheap"), policy.models.index("premium")
    assert after.reward[cheap] - after.reward[premium] > before.reward[cheap] - before.reward[premium]
    assert after.probabilities[premium] <= before.probabilities[premium] + 1e-12


def test_features_may_grow(name: str) -> None:
    policy = trained(name)
    longer = np.concatenate([contexts(1, seed=7)[0], [1.0, 0.0]])
    policy.update(longer, "mid", Outcome(1.0, 0.001, 0.5))
    assert abs(policy.probabilities(contexts(1, seed=7)[0]).sum() - 1) < 1e-9
    assert abs(policy.probabilities(longer).sum() - 1) < 1e-9


def test_batch_predictions_match_single(name: str) -> None:
    policy = trained(name)
    X = contexts(40, seed=11)
    batch = policy.predict_batch(X)
    for i in range(0, 40, 7):
        single = policy.predict(X[i])
        np.testing.assert_allclose(batch.probabilities[i], single.probabilities, atol=1e-9)
        np.testing.assert_allclose(batch.reward[i], single.reward, atol=1e-12)


def test_unknown_model_and_bad_parameters(name: str) -> None:
    policy = trained(name, steps=20)
    with pytest.raises(UnknownModelError):
        policy.revise(contexts(1)[0], "nope", Outcome(1, 0, 0), Outcome(0, 0, 0))
    with pytest.raises(ConfigError):
        make_policy(name, floor=0.0)
    with pytest.raises(ConfigError):
        make_policy(name, discount=0.1)
    with pytest.raises(ConfigError):
        make_policy("no-such-policy")


def test_a_model_that_cannot_win_gets_only_the_floor() -> None:
    """Quality is bounded by 1: once a model's cost alone puts its best case below another model's
    expected reward, no amount of posterior uncertainty keeps it in the race."""
    policy = make_policy("thompson", weights=RewardWeights(quality=1, cost=1000))
    x = contexts(1)[0]
    for _ in range(3):
        policy.update(x, "gold", Outcome(0.2, 0.01, 0.0))  # at least 10 reward points below zero
    for _ in range(30):
        policy.update(x, "tin", Outcome(0.6, 0.00001, 0.0))
    p = policy.predict(x)
    assert p.probabilities[p.models.index("gold")] == pytest.approx(policy.floor / 2)


def test_rescale_cost_follows_a_price_change() -> None:
    policy = trained("thompson")
    x = contexts(1)[0]
    i = policy.models.index("premium")
    before = policy.predict(x).means[i, 1]
    policy.rescale_cost("premium", 0.5)
    assert policy.predict(x).means[i, 1] == pytest.approx(before * 0.5, rel=0.05)


def test_discounting_forgets_a_degraded_model() -> None:
    """Non-stationarity: with discount < 1 a model that got worse loses its lead quickly (change
    detection off here, to see forgetting alone)."""
    kept = make_policy("thompson", seed=1, detect_changes=False)
    forgetful = make_policy("thompson", seed=1, discount=0.97, detect_changes=False)
    x = np.ones(3)
    for policy in (kept, forgetful):
        for _ in range(300):
            policy.update(x, "a", Outcome(0.9, 0.0, 0.0))
            policy.update(x, "b", Outcome(0.7, 0.0, 0.0))
        for _ in range(60):
            policy.update(x, "a", Outcome(0.3, 0.0, 0.0))  # provider a degrades
    assert forgetful.predict(x).means[0, 0] < 0.5 < kept.predict(x).means[0, 0]


def test_change_detection_relearns_a_degraded_model_and_a_refit_keeps_it() -> None:
    """Without any forgetting, a model whose outcomes stop matching its estimate is caught by the
    change detector and re-learned from its outcomes since the change; an unchanged one is left alone.
    A retrain (clone + fit on the same observations in the same order) drops the same old outcomes."""
    policy = make_policy("thompson", seed=1)
    policy.add_model("a")
    policy.add_model("b")
    rng = np.random.default_rng(0)
    X = np.ones((1000, 3))
    chosen, outcomes = [], []
    for i, x in enumerate(X):
        model = i % 2
        rate = (0.9 if i < 800 else 0.4) if model == 0 else 0.7  # provider a degrades after 800 updates
        outcome = Outcome(float(rng.random() < rate), 0.001, 0.5)
        policy.update(x, policy.models[model], outcome)
        chosen.append(model)
        outcomes.append(outcome)
        if i == 799:
            assert policy.change_points == []  # 800 stationary pass/fail outcomes: no false alarm
    assert [m for m, _ in policy.change_points] == ["a"]
    means = policy.predict(X[0]).means[:, 0]
    assert means[0] < 0.6 < means[1]
    refit = policy.clone()
    refit.fit(_batch(X, policy.models, chosen, outcomes))
    np.testing.assert_allclose(refit.predict(X[0]).means, policy.predict(X[0]).means, atol=1e-8)


@pytest.mark.parametrize("true_precision", [0.5, 5.0, 50.0])
def test_evidence_recovers_the_prior_precision_that_generated_the_data(true_precision: float) -> None:
    """Coefficients drawn with prior precision lam (noise sd 0.1): the evidence maximum lands within a
    factor of 3 of lam, for precisions two decades apart."""
    from adaptroute.policy.evidence import select_prior_precision

    rng = np.random.default_rng(11)
    sigma, d = 0.1, 12
    groups = []
    for _ in range(6):  # six models sharing the precision
        X = contexts(400, d=d, seed=int(rng.integers(1 << 30)))
        theta = rng.normal(0.0, sigma / np.sqrt(true_precision), d)
        theta[0] += 0.5  # the prior mean sits on the bias coordinate
        groups.append((X, X @ theta + rng.normal(0.0, sigma, X.shape[0]), 0.5))
    chosen = select_prior_precision(groups)
    assert true_precision / 3 <= chosen <= true_precision * 3, chosen


def test_fit_selects_the_prior_precision_only_when_asked(name: str) -> None:
    online = trained(name, steps=200, seed=4)
    X = contexts(200, seed=4)
    rng = np.random.default_rng(4)
    chosen = [int(i) for i in rng.integers(0, len(MODELS), 200)]
    outcomes = [Outcome(float(rng.random() < TRUE_QUALITY[MODELS[k]]), PRICE[MODELS[k]], 0.5) for k in chosen]
    batch = _batch(X, online.models, chosen, outcomes)
    retrained = online.clone()
    retrained.fit(batch)
    assert retrained.prior_precision == online.prior_precision  # a retrain reproduces: nothing re-chosen
    warm = online.clone()
    warm.fit(batch, select_prior=True)
    assert warm.prior_precision != online.prior_precision  # qualities that barely depend on x: shrink hard
    assert warm.prior_precision > online.prior_precision
    clone = warm.clone()
    assert clone.prior_precision == warm.prior_precision  # and it is a parameter like the others
