"""The performance shortcuts give the results of the code they replaced (benchmarks/README.md)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from adaptroute.features import HashingFeaturizer
from adaptroute.policy import ModelPrior, make_policy
from adaptroute.policy.decide import _draw
from adaptroute.store.reader import _list_to_matrix
from adaptroute.types import Outcome


def test_draw_is_generator_choice() -> None:
    picks = np.random.default_rng(0)
    for _ in range(500):
        k = int(picks.integers(1, 40))
        p = 0.01 / k + 0.99 * picks.dirichlet(np.ones(k) * picks.uniform(0.1, 2.0))
        seed = int(picks.integers(1 << 30))
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert [int(a.choice(k, p=p)) for _ in range(3)] == [_draw(b, p) for _ in range(3)]
        assert a.random() == b.random()  # the same number of draws taken from the stream


def test_draw_still_refuses_nan() -> None:
    with pytest.raises(ValueError):
        _draw(np.random.default_rng(0), np.array([np.nan, 0.5]))


@pytest.mark.parametrize("name", ["thompson", "linucb", "egreedy"])
def test_eligible_in_another_order_keeps_each_model_its_own_prediction(name: str) -> None:
    policy = make_policy(name, seed=0)
    policy.add_model("strong", ModelPrior(quality=0.9))
    policy.add_model("weak", ModelPrior(quality=0.1))
    policy.add_model("mid", ModelPrior(quality=0.5))
    rng = np.random.default_rng(1)
    for i in range(40):
        policy.update(rng.normal(size=8), ("strong", "weak", "mid")[i % 3], Outcome(0.5, 0.001, 0.1))
    x = rng.normal(size=8)
    forward = policy.predict(x, ["strong", "weak", "mid"])
    backward = policy.predict(x, ["mid", "weak", "strong"])
    assert backward.models == ("mid", "weak", "strong")
    # (equal up to rounding: the cross-model shrinkage sums the models in the order given)
    np.testing.assert_allclose(backward.means, forward.means[::-1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(backward.reward, forward.reward[::-1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("k", [4, 12, 40])
def test_thompson_sample_draws_with_the_logged_probabilities(k: int) -> None:
    """simulate() draws with sample() (one posterior draw per model), the router with the probabilities
    it logs (their Gauss-Hermite integral): the same distribution, for any number of models (the
    posterior's width depends on it)."""
    policy = make_policy("thompson", seed=0)
    rng = np.random.default_rng(k)
    truth = rng.uniform(0.3, 0.9, k)
    for i in range(6 * k):
        model = i % k
        x = np.array([1.0, *rng.normal(0, 0.3, 3)])
        policy.update(x, f"m{model}", Outcome(float(rng.random() < truth[model]), 0.001, 0.0))
    x = np.array([1.0, 0.1, -0.2, 0.0])
    p = policy.probabilities(x)
    draws = np.bincount([policy.sample(x, np.random.default_rng(s)) for s in range(20_000)], minlength=k) / 20_000
    # sampling noise (4 sd) plus the quadrature's own error (about 1% of a probability)
    np.testing.assert_array_less(np.abs(draws - p), 4 * np.sqrt(p * (1 - p) / 20_000) + 0.01 * p + 1e-3)
    assert policy.width(k) == pytest.approx(0.5 * np.sqrt(np.log(10) / np.log(max(k, 3))))


def test_thompson_width_narrows_with_more_models_unless_fixed() -> None:
    policy = make_policy("thompson", scale=0.5)
    assert policy.width(2) == policy.width(3) > policy.width(10) == 0.5 > policy.width(60)
    fixed = make_policy("thompson", scale=0.5, scale_at=None)
    assert fixed.width(3) == fixed.width(60) == 0.5


def test_batch_featurization_equals_one_text_at_a_time() -> None:
    texts = ["", "a", "ab cd", "Héllo wörld, 日本語 {json: [1, 2]}", "word " * 3000, "one", "x_y z9 " * 50]
    tasks = ["t0", "t1", "t0", "t2", "t1", "t0", "t2"]
    for params in ({}, {"ngram_range": (2, 2)}, {"ngram_range": (1, 1)}, {"n_features": 8, "max_chars": 64}):
        batch = HashingFeaturizer(**params, tasks=["t0", "t1", "t2"])
        single = HashingFeaturizer(**params, tasks=["t0", "t1", "t2"])
        rows = np.stack([single.transform([{"role": "user", "content": t}], task) for t, task in zip(texts, tasks)])
        np.testing.assert_array_equal(batch.transform_texts(texts, tasks), rows)
        encoded = [batch._window(t).lower().encode("utf-8", "replace") for t in texts]
        small_blocks = batch._ngrams_many(encoded, block_bytes=64)
        one_by_one = np.stack([batch._ngrams(e) for e in encoded])
        np.testing.assert_array_equal(small_blocks, one_by_one)


def test_list_column_to_matrix_pads_across_chunks() -> None:
    column = pa.chunked_array(
        [pa.array([[1.0, 2.0], [3.0, 4.0, 5.0]], pa.list_(pa.float32())),
         pa.array([None, [6.0], [7.0, 8.0]], pa.list_(pa.float32())),
         pa.array([[9.0, 10.0, 11.0]], pa.list_(pa.float32()))]
    )
    expected = np.array([[1, 2, 0], [3, 4, 5], [0, 0, 0], [6, 0, 0], [7, 8, 0], [9, 10, 11]], dtype=float)
    np.testing.assert_array_equal(_list_to_matrix(column), expected)
    assert _list_to_matrix(pa.chunked_array([], pa.list_(pa.float32()))).shape == (0, 0)
