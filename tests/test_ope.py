"""Off-policy evaluation against simulated logs whose true policy value is known exactly.

The truth is the target's value on the logged contexts, V = mean_i sum_a pi(a|x_i) mu(x_i, a), with
mu the known mean reward: IPS and DR are unbiased for it given the contexts (SNIPS up to O(1/n)), so the
only noise left is in the logged actions and rewards. Every random draw uses a fixed seed; margins are
stated next to each assertion.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest

from adaptroute.config import RewardWeights
from adaptroute.errors import EstimatorError
from adaptroute.policy import EpsilonGreedy
from adaptroute.replay.estimators import (
    _POISSON_TABLE,
    DM,
    DR,
    IPS,
    SNIPS,
    EstimatorWarning,
    SwitchDR,
    bootstrap_ratios,
    diagnose,
    effective_sample_size,
    importance_weights,
    is_deterministic,
    make_estimator,
    percentile_interval,
)
from adaptroute.replay.ope import OPEResult, evaluate, format_text
from adaptroute.types import LoggedBatch, Observations

K = 4
FLOOR = 0.2  # logging mixes in uniform exploration, so every propensity is >= FLOOR / K = 0.05
_BETA = np.array([[0.8, -0.5, 0.3], [-0.4, 0.9, 0.0], [0.2, 0.2, -0.7], [-0.6, -0.3, 0.6]])
_BIAS = np.array([0.3, 0.0, -0.2, 0.1])
_GAMMA = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [-1.0, -1.0, 0.0]])


def simulate(seed: int, n: int) -> dict[str, np.ndarray | float]:
    """Contexts, a softmax logging policy with floor, Bernoulli rewards, an epsilon-greedy target that
    disagrees with the logger often (it ranks models by another score), and the exact target value."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    mu = 1.0 / (1.0 + np.exp(-(x @ _BETA.T + _BIAS)))
    z = np.exp(3.0 * mu)
    logging = (1.0 - FLOOR) * z / z.sum(axis=1, keepdims=True) + FLOOR / K
    a = (logging.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    r = (rng.random(n) < mu[np.arange(n), a]).astype(float)
    pi = np.full((n, K), 0.1 / K)
    pi[np.arange(n), (x @ _GAMMA.T).argmax(axis=1)] += 0.9
    return {
        "x": x,
        "mu": mu,
        "logging": logging,
        "a": a,
        "p": logging[np.arange(n), a],
        "r": r,
        "pi": pi,
        "truth": float((pi * mu).sum(axis=1).mean()),
    }


def args(s: dict, q_hat: np.ndarray | None = None) -> tuple:
    return (s["pi"], s["a"], s["p"], s["r"], s["mu"] if q_hat is None else q_hat)


# -- estimators against the truth ----------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_snips_and_dr_land_near_the_truth(seed: int) -> None:
    """Margin: 3 standard errors, each estimated from the per-row terms (conservative: it also counts
    the spread of the contexts, which the conditional truth does not vary with). For SNIPS the
    linearised error sum w (r - V) / sum w gives the standard error."""
    s = simulate(seed, 20_000)
    n = s["r"].shape[0]
    w = importance_weights(s["pi"], s["a"], s["p"])
    snips = SNIPS()(*args(s))
    se_snips = float(np.std(w * (s["r"] - snips)) / (w.mean() * math.sqrt(n)))
    assert abs(snips - s["truth"]) <= 3 * se_snips
    q_hat = np.clip(s["mu"] + 0.1, 0, 1)  # a biased reward model: DR must still be right
    terms = DR().terms(*args(s, q_hat))
    se_dr = float(np.std(terms.num) / math.sqrt(n))
    assert abs(terms.value() - s["truth"]) <= 3 * se_dr
    assert se_dr < 0.01 and se_snips < 0.01  # so the margin itself is tight


def test_dr_with_a_correct_reward_model_has_lower_variance_than_ips() -> None:
    """Across 200 seeded logs of 500 rows: DR with q_hat = mu keeps only the Bernoulli noise that IPS
    multiplies by w, IPS also carries w * mu. Exact per-row variances given the contexts are
    sum_a pi^2/p mu (1 - mu) for DR and sum_a pi^2/p mu - (sum_a pi mu)^2 for IPS: a ratio of ~0.64 in
    this design. Margins: each empirical variance within 25% of its exact value (the relative sd of a
    200-sample variance is ~10%), and the DR/IPS ratio below 0.85."""
    ips, dr, exact_ips, exact_dr = [], [], [], []
    for seed in range(200):
        s = simulate(100 + seed, 500)
        ips.append(IPS()(*args(s)) - s["truth"])
        dr.append(DR()(*args(s)) - s["truth"])
        pi, p, mu = s["pi"], s["logging"], s["mu"]
        exact_ips.append(((pi**2 / p * mu).sum(axis=1) - (pi * mu).sum(axis=1) ** 2).mean() / 500)
        exact_dr.append((pi**2 / p * mu * (1 - mu)).sum(axis=1).mean() / 500)
    assert np.mean(np.square(ips)) == pytest.approx(np.mean(exact_ips), rel=0.25)
    assert np.mean(np.square(dr)) == pytest.approx(np.mean(exact_dr), rel=0.25)
    assert np.var(dr) < 0.85 * np.var(ips)


def test_switch_dr_interpolates_exactly_between_dm_and_dr() -> None:
    s = simulate(7, 2_000)
    q_hat = np.clip(s["mu"] - 0.15, 0, 1)
    assert SwitchDR(tau=0.0)(*args(s, q_hat)) == DM()(*args(s, q_hat))
    assert SwitchDR(tau=math.inf)(*args(s, q_hat)) == DR()(*args(s, q_hat))
    middle = SwitchDR(tau=3.0)(*args(s, q_hat))
    assert middle not in (DM()(*args(s, q_hat)), DR()(*args(s, q_hat)))
    assert make_estimator("switch-dr").tau == 20.0 and make_estimator("switch_dr", switch_tau=5).tau == 5.0
    with pytest.raises(EstimatorError):
        make_estimator("magic")


@pytest.mark.parametrize("bad", [0.0, -0.1, math.nan])
def test_non_positive_or_missing_propensity_is_refused(bad: float) -> None:
    s = simulate(8, 10)
    p = s["p"].copy()
    p[[2, 5]] = bad
    for estimator in (IPS(), SNIPS(), DM(), DR(), SwitchDR()):
        with pytest.raises(EstimatorError, match="2 of 10 logged propensities"):
            estimator(s["pi"], s["a"], p, s["r"], s["mu"])


def test_effective_sample_size_matches_the_formula_on_a_hand_made_example() -> None:
    pi = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    a = np.array([0, 1, 1])
    p = np.array([0.5, 0.25, 0.8])
    w = importance_weights(pi, a, p)
    np.testing.assert_allclose(w, [2.0, 2.0, 1.0])
    assert effective_sample_size(w) == pytest.approx(25.0 / 9.0)
    assert diagnose(pi, a, p).ess == pytest.approx(25.0 / 9.0)


def test_deterministic_logging_is_detected_and_explained() -> None:
    probabilities = np.eye(3)[[0, 2, 1, 0]]
    assert is_deterministic(np.ones(4))
    assert is_deterministic(np.array([0.9, 0.8, 0.7, 0.6]), probabilities)
    assert not is_deterministic(np.array([1.0, 0.5]), np.array([[1.0, 0.0], [0.5, 0.5]]))
    pi = np.full((4, 3), 1 / 3)
    report = diagnose(pi, np.array([0, 2, 1, 0]), np.ones(4), probabilities)
    assert report.deterministic and any("meaningless" in m for m in report.warnings)


def test_small_effective_sample_size_is_reported() -> None:
    n = 1_000
    pi = np.tile([0.99, 0.01], (n, 1))
    a = np.r_[np.zeros(5, dtype=int), np.ones(n - 5, dtype=int)]
    p = np.r_[np.full(5, 0.01), np.full(n - 5, 0.99)]
    report = diagnose(pi, a, p)
    assert report.ess < 30 and any("effective sample size" in m for m in report.warnings)


# -- bootstrap -----------------------------------------------------------------------------------
def test_poisson_weights_have_mean_one_and_variance_one() -> None:
    assert _POISSON_TABLE.mean() == pytest.approx(1.0, abs=1e-12)
    assert _POISSON_TABLE.var() == pytest.approx(1.0, abs=1e-3)


def test_bootstrap_spread_matches_the_standard_error_of_a_mean() -> None:
    """The sd of 400 replicates of a mean of 20,000 N(0, 1) values should be 1/sqrt(n) within 15%
    (the sd of a 400-sample sd is ~3.5%), across chunk boundaries (rows exceed one chunk)."""
    x = np.random.default_rng(11).normal(size=20_000)
    reps = bootstrap_ratios(x, np.ones_like(x), n_boot=400, seed=3)
    assert reps.shape == (400, 1)
    assert np.std(reps) == pytest.approx(1 / math.sqrt(x.size), rel=0.15)
    again = bootstrap_ratios(x, np.ones_like(x), n_boot=400, seed=3)
    np.testing.assert_array_equal(reps, again)  # seeded: reproducible


@pytest.mark.parametrize("name", ["snips", "dr"])
def test_bootstrap_intervals_cover_the_truth_in_most_repetitions(name: str) -> None:
    """20 seeded logs, 95% percentile intervals: at least 17 of 20 must cover the truth (19 expected;
    a correct interval falls to 16 or fewer with probability ~1.6%, and the seeds are fixed)."""
    covered = 0
    for seed in range(20):
        s = simulate(500 + seed, 2_000)
        terms = make_estimator(name).terms(*args(s, np.clip(s["mu"] + 0.1, 0, 1)))
        low, high = percentile_interval(bootstrap_ratios(terms.num, terms.den, n_boot=200, seed=seed))
        covered += bool(low[0] <= s["truth"] <= high[0])
    assert covered >= 17


# -- evaluate() end to end -----------------------------------------------------------------------
MODELS = ("cheap", "mid", "premium")
_PRICE = np.array([0.0005, 0.002, 0.01])


def _behaviour(features: np.ndarray, eligible: np.ndarray | None = None) -> np.ndarray:
    """A fixed logging behaviour over the three models, from the features alone, floored at 0.1."""
    z = np.exp(features[:, 1:4] * 1.5)
    if eligible is not None:
        z = np.where(eligible, z, 0.0)
    return 0.7 * z / z.sum(axis=1, keepdims=True) + 0.1 * (z > 0)


def synthetic_batch(seed: int, n: int, behaviour=_behaviour, unknown: int = 0) -> LoggedBatch:
    """A log of n decisions (the first ``unknown`` without an outcome) whose quality depends on features."""
    rng = np.random.default_rng(seed)
    features = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    coef = np.array([[0.0, 0.5, 1.0, 2.0], [1.0, -1.0, 0.0, 0.5], [0.0, 0.3, -1.0, 0.2]])
    mu = 1.0 / (1.0 + np.exp(-(features @ coef.T)))
    probs = behaviour(features)
    chosen = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    rows = np.arange(n)
    quality = (rng.random(n) < mu[rows, chosen]).astype(float)
    cost = _PRICE[chosen] * rng.uniform(0.5, 1.5, n)
    latency = rng.gamma(2.0, 0.3 * (1 + chosen))
    latency[rng.random(n) < 0.1] = np.nan
    quality[:unknown] = np.nan
    known = ~np.isnan(quality)
    observations = Observations(
        rows[known], chosen[known], quality[known], cost[known], latency[known], np.zeros(int(known.sum()), dtype=bool)
    )
    no = np.zeros(n, dtype=bool)
    return LoggedBatch(
        decision_ids=np.array([f"d{i}" for i in rows], dtype=object),
        tasks=np.array(["extract"] * n, dtype=object),
        features=features,
        models=MODELS,
        chosen=chosen,
        propensity=probs[rows, chosen],
        probabilities=probs,
        executed=chosen.copy(),
        quality=quality,
        cost_usd=cost,
        latency_s=latency,
        failed=no,
        escalated=no,
        retried=no,
        fell_back=no,
        ts=rows.astype(float),
        policy_versions=np.zeros(n, dtype=np.int64),
        observations=observations,
    )


class FixedBehaviour(EpsilonGreedy):
    """The logging behaviour as a policy (no ``name``: stays out of the policy registry): its reward
    model is learned as usual, its probabilities are the fixed behaviour."""

    def predict_batch(self, X, eligible=None, models=None, chunk=2048):  # type: ignore[no-untyped-def]
        prediction = super().predict_batch(X, eligible, models, chunk)
        return replace(prediction, probabilities=_behaviour(np.asarray(X), eligible))


WEIGHTS = RewardWeights(quality=1.0, cost=20.0, failure=0.0)


def test_evaluate_runs_is_deterministic_and_serialises() -> None:
    batch = synthetic_batch(0, 3_000, unknown=100)
    with pytest.warns(EstimatorWarning, match="no known outcome"):
        first = evaluate(batch, EpsilonGreedy(), WEIGHTS, "dr", n_boot=100, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimatorWarning)
        second = evaluate(batch, EpsilonGreedy(), WEIGHTS, "dr", n_boot=100, seed=4)
        other = evaluate(batch, EpsilonGreedy(), WEIGHTS, "switch-dr", n_boot=100, seed=5)
    assert isinstance(first, OPEResult)
    assert first.to_dict() == second.to_dict()
    assert other.switch_tau == 20.0 and other.reward != first.reward
    assert (first.n_used, first.n_excluded) == (2_900, 100)
    assert first.reward.low <= first.reward.value <= first.reward.high
    assert first.gain.value == pytest.approx(first.reward.value - first.logged_reward.value)
    assert first.gain.low <= first.gain.value <= first.gain.high
    assert 2_300 < first.components["latency_s"].n < 2_900  # finite latency only (~10% missing)
    assert first.components["quality"].n == 2_900
    assert not first.deterministic_logging and first.ess > 100
    text = json.dumps(first.to_dict(), allow_nan=False)
    assert '"estimator": "dr"' in text
    table = format_text(first)
    assert "reward" in table and "logged policy" in table and "no known outcome" in table


def test_evaluating_the_logging_behaviour_recovers_the_logged_value() -> None:
    """With pi equal to the logged probabilities every weight is 1: IPS and SNIPS return the logged
    mean reward exactly, and DR (unbiased) stays within 3 standard errors of it (its CI is the bound)."""
    batch = synthetic_batch(1, 4_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EstimatorWarning)  # nothing to warn about here
        for name in ("ips", "snips"):
            result = evaluate(batch, FixedBehaviour(), WEIGHTS, name, n_boot=50)
            assert result.reward.value == pytest.approx(result.logged_reward.value, abs=1e-12)
            assert result.ess == pytest.approx(result.n_used)
            assert result.gain.low == pytest.approx(0.0, abs=1e-9) and result.gain.high == pytest.approx(0.0, abs=1e-9)
        dr = evaluate(batch, FixedBehaviour(), WEIGHTS, "dr", n_boot=200)
    half_width = (dr.logged_reward.high - dr.logged_reward.low) / 2  # ~2 standard errors
    assert abs(dr.reward.value - dr.logged_reward.value) <= 1.5 * half_width
    for name in ("quality", "cost_usd"):
        logged = dr.logged_components[name]
        assert abs(dr.components[name].value - logged.value) <= 1.5 * (logged.high - logged.low) / 2


def test_evaluate_flags_deterministic_logging() -> None:
    def greedy(features: np.ndarray, eligible: np.ndarray | None = None) -> np.ndarray:
        return np.eye(3)[features[:, 1:4].argmax(axis=1)]

    batch = synthetic_batch(2, 500, behaviour=greedy)
    with pytest.warns(EstimatorWarning, match="deterministic"):
        result = evaluate(batch, EpsilonGreedy(), WEIGHTS, "snips", n_boot=20)
    assert result.deterministic_logging
    assert any("meaningless" in m for m in result.warnings)


class Contrarian(EpsilonGreedy):
    """Always picks the model the logging behaviour likes least: importance weights pile up on few rows."""

    def predict_batch(self, X, eligible=None, models=None, chunk=2048):  # type: ignore[no-untyped-def]
        prediction = super().predict_batch(X, eligible, models, chunk)
        return replace(prediction, probabilities=np.eye(3)[_behaviour(np.asarray(X)).argmin(axis=1)])


def test_evaluate_warns_on_small_effective_sample_size() -> None:
    batch = synthetic_batch(4, 100)  # the contrarian agrees with ~12% of logged choices: ESS ~ 17
    with pytest.warns(EstimatorWarning, match="effective sample size"):
        result = evaluate(batch, Contrarian(), WEIGHTS, "ips", n_boot=20)
    assert result.ess < 30 and any("effective sample size" in m for m in result.warnings)


def test_evaluate_refuses_bad_propensities_and_empty_logs() -> None:
    batch = synthetic_batch(3, 200)
    propensity = batch.propensity.copy()
    propensity[:3] = 0.0
    with pytest.raises(EstimatorError, match="3 of 200"):
        evaluate(replace(batch, propensity=propensity), EpsilonGreedy(), WEIGHTS)
    nothing = replace(batch, quality=np.full(200, np.nan))
    with pytest.raises(EstimatorError, match="nothing to evaluate"):
        evaluate(nothing, EpsilonGreedy(), WEIGHTS)
