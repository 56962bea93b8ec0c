"""The exploring share of Thompson sampling: drawn from each model's own evidence, with exact
probabilities on every path (one context, many, and the direct draw of simulation)."""

from __future__ import annotations

import numpy as np
import pytest

from adaptroute import RewardWeights
from adaptroute.policy import make_policy

W = RewardWeights(quality=1.0, cost=0.0, latency=0.0, failure=0.0)
MODELS = [f"m{i}" for i in range(6)]


def _policy(explore: float):  # type: ignore[no-untyped-def]
    """Six models on one context: the field (m0-m4) passes 30% to 60% over 100 outcomes each; m5 came
    out 3 of 6, unluckily low for a model that is in truth the best. explore_after=100 puts the
    exploring share near its ceiling."""
    policy = make_policy("thompson", weights=W, seed=3, explore=explore, explore_after=100.0, detect_changes=False)
    x = np.array([1.0, 0.0])
    for m, rate in zip(MODELS[:5], (0.3, 0.35, 0.4, 0.5, 0.6), strict=True):
        for i in range(100):
            policy.update(x, m, np.array([float(i < 100 * rate), 0.0, 0.0, 0.0]))
    for y in (1.0, 0.0, 1.0, 0.0, 1.0, 0.0):
        policy.update(x, "m5", np.array([y, 0.0, 0.0, 0.0]))
    return policy, x


def test_the_exploring_share_judges_a_model_on_its_own_outcomes() -> None:
    settled, x = _policy(explore=0.0)
    exploring, _ = _policy(explore=0.6)
    assert exploring.explore_share() > 0.5
    p_settled = settled.predict(x, MODELS).probabilities[-1]
    p_exploring = exploring.predict(x, MODELS).probabilities[-1]
    # Shared with the field, m5's 3 of 6 is pulled toward the field's middle and made surer: the
    # narrowed posterior all but drops it. The exploring share sees its own wide posterior.
    assert p_settled < 0.05
    assert p_exploring > 3 * p_settled


def test_one_context_many_contexts_and_the_direct_draw_agree() -> None:
    policy, x = _policy(explore=0.6)
    one = policy.predict(x, MODELS).probabilities
    many = policy.predict_batch(np.vstack([x, x]), models=MODELS).probabilities
    np.testing.assert_allclose(many, np.vstack([one, one]), atol=1e-9)
    rng = np.random.default_rng(11)
    n = 20_000
    counts = np.bincount([policy.sample(x, rng) for _ in range(n)], minlength=len(MODELS)) / n
    # sample() integrates nothing: it draws; the frequencies match the exact probabilities to within
    # 4 binomial sds (fixed seed).
    assert np.all(np.abs(counts - one) <= 4 * np.sqrt(one * (1 - one) / n) + 1e-3)


def test_the_share_grows_with_outcomes_and_shrinks_among_many_models() -> None:
    few = make_policy("thompson", weights=W, explore=0.6, explore_after=100.0)
    many = make_policy("thompson", weights=W, explore=0.6, explore_after=100.0)
    for i in range(10):
        few.add_model(f"m{i}")
    for i in range(40):
        many.add_model(f"m{i}")
    assert few.explore_share() == many.explore_share() == 0.0  # nothing learned yet
    x = np.array([1.0])
    for _ in range(200):
        few.update(x, "m0", np.zeros(4))
        many.update(x, "m0", np.zeros(4))
    assert few.explore_share() == pytest.approx(0.6 * 4 / 5)  # r = 2: explore * r^2 / (1 + r^2)
    assert many.explore_share() == pytest.approx(few.explore_share() / 4)


def test_a_detected_change_brings_the_full_share_back_and_it_fades() -> None:
    """A favourite that drops from always to never passing: once the detector fires, the share is back
    at ``explore`` and fades over the detector's memory; with reexplore=False it stays on its schedule."""
    x = np.array([1.0])
    shares = {}
    for reexplore in (True, False):
        policy = make_policy("thompson", weights=W, seed=0, reexplore=reexplore)
        for m in ("a", "b", "c"):
            policy.add_model(m)
        for _ in range(100):
            policy.update(x, "a", np.array([1.0, 0.0, 0.0, 0.0]))
        assert policy.explore_share() == 0.0  # 100 outcomes of 8,000: below the 0.1% worth a second integral
        ticks = 0
        while not policy.change_points and ticks < 100:
            policy.update(x, "a", np.zeros(4))
            ticks += 1
        assert policy.change_points and policy.change_points[0][0] == "a"
        since = policy.change_points[0][1]
        at_change = policy.explore_share()
        for _ in range(256):
            policy.update(x, "b", np.array([0.5, 0.0, 0.0, 0.0]))
        r = policy._arms.clock / 8000.0
        shares[reexplore] = (at_change, policy.explore_share(), policy._arms.clock - since, 0.6 * r * r / (1 + r * r))
    (at_change, later, age, _), (off_at_change, off_later, _, scheduled) = shares[True], shares[False]
    assert at_change == pytest.approx(0.6 * np.exp(-(age - 256) / 256))  # fired a few ticks after it began
    assert later == pytest.approx(0.6 * np.exp(-age / 256))
    assert off_at_change == 0.0 and off_later == pytest.approx(scheduled)  # the schedule alone: 0.1%



def test_an_arrival_reopens_the_share(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An arrival reopens the share (as a detected change does); a policy that has learned nothing yet
    has nothing to reopen. A retrain and a saved file keep it."""
    from adaptroute.policy.persist import load_policy, save_policy

    x = np.array([1.0])
    policy = make_policy("thompson", weights=W, seed=0)
    for m in ("a", "b", "c"):
        policy.add_model(m)
    assert policy.reopened_at is None
    for _ in range(50):
        policy.update(x, "a", np.array([1.0, 0.0, 0.0, 0.0]))
    assert policy.explore_share() == 0.0
    policy.add_model("d")  # registering alone does not (models also appear with their first outcomes)
    assert policy.reopened_at is None
    policy.reopen()  # what router.add_model() says of an arrival
    assert policy.reopened_at == 50.0 and policy.explore_share() == pytest.approx(0.6)
    assert policy.clone().reopened_at == 50.0  # a retrain keeps it
    loaded, _ = load_policy(save_policy(policy, tmp_path / "p.npz"))
    assert loaded.reopened_at == 50.0 and loaded.explore_share() == pytest.approx(0.6)
