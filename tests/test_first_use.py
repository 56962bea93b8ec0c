"""First use of the library: what a newcomer meets before any data (escalation order, litellm loaded at
construction, nothing set globally) and the errors a typo gets (did you mean ...?)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adaptroute import ConfigError, ModelSpec, RewardWeights, Router, UnknownPriceError

ASK = [{"role": "user", "content": "Extract the total: 3 at $4"}]


def _first_call(models: list, chosen: str, **settings) -> object:
    """The first request of a fresh router whose draw is ``chosen`` (seeds tried in order), scored 0."""
    for seed in range(50):
        with Router(models, reward=RewardWeights(cost=10), seed=seed, scorer=lambda m, r: 0.0, **settings) as router:
            response = router.complete(ASK, task="extract", mock_response="no idea")
            if response.adaptroute.chosen == chosen:
                return response.adaptroute
    raise AssertionError(f"no seed drew {chosen}")


def test_escalation_on_a_fresh_router_goes_up_the_price_tier() -> None:
    record = _first_call(["gpt-4o-mini", "gpt-4o"], "gpt-4o-mini", escalate_below=0.5)
    assert record.escalated and [a.model for a in record.attempts] == ["gpt-4o-mini", "gpt-4o"]
    assert record.attempts[1].role == "escalation"
    top = _first_call(["gpt-4o-mini", "gpt-4o"], "gpt-4o", escalate_below=0.5)
    assert not top.escalated and len(top.attempts) == 1  # nothing above the priciest model


def test_escalation_follows_configured_expected_quality_before_price() -> None:
    models = [ModelSpec(name="gpt-4o", expected_quality=0.6), ModelSpec(name="gpt-4o-mini", expected_quality=0.6),
              ModelSpec(name="o3-mini", expected_quality=0.6)]
    # Equal guesses, equal predictions: the price tier decides, and gpt-4o is the priciest.
    record = _first_call(models, "gpt-4o-mini", escalate_below=0.5)
    assert [a.model for a in record.attempts] == ["gpt-4o-mini", "gpt-4o"]


def test_importing_adaptroute_sets_nothing_and_loads_no_litellm() -> None:
    code = ("import os, sys; import adaptroute; from adaptroute import Router, RewardWeights;"
            "assert 'litellm' not in sys.modules;"
            "env = dict(os.environ);"
            "r = Router(['gpt-4o-mini'], reward=RewardWeights(cost=1));"
            "assert 'litellm' in sys.modules;"  # loaded at construction, not by the first call
            "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items());"
            "r.close()")
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # the test's own choice: no download
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    env.pop("LITELLM_LOCAL_MODEL_COST_MAP")
    lazy = "import sys, adaptroute; from adaptroute import Router, RewardWeights, read_log; assert 'litellm' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", lazy], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_first_request_latency_holds_no_loading_time() -> None:
    with Router(["gpt-4o-mini", "gpt-4o"], reward=RewardWeights(cost=10)) as router:
        first = router.complete(ASK, task="extract", mock_response="12").adaptroute
        later = [router.complete(ASK, task="extract", mock_response="12").adaptroute.latency_s for _ in range(5)]
    assert first.latency_s < 0.25 + 5 * max(later), (first.latency_s, later)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Router(["gpt-4o-mni"]), r"unknown model 'gpt-4o-mni'.*Did you mean 'gpt-4o-mini'"),
        (lambda: Router(["claude-sonet-4-5"]), r"Did you mean 'claude-sonnet-4-5'"),
        (lambda: Router([ModelSpec(name="my-local", input_cost_per_token=1e-7)]),
         r"gives input_cost_per_token but not output_cost_per_token.*give output_cost_per_token too"),
        (lambda: Router(["gpt-4o"], timeout=5), r"Router\(\): unknown setting 'timeout' \(did you mean 'timeout_s'\?\); known settings: timeout_s"),
        (lambda: Router(["gpt-4o"], escalate_below=2), r"Router\(\): escalate_below: Input should be less than or equal to 1"),
        (lambda: RewardWeights(qualty=1), r"unknown weight 'qualty' \(did you mean 'quality'\?\); known weights: quality, cost, latency, failure"),
        (lambda: RewardWeights.parse("qualty=1"), r"^weights 'qualty=1': unknown weight 'qualty' \(did you mean 'quality'\?\)"),
        (lambda: RewardWeights(cost=-1), r"cost: must be a finite number >= 0"),
    ],
)
def test_config_mistakes_name_the_field_and_the_fix(make, expected) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        make()
    assert "Extra inputs are not permitted" not in str(caught.value) and "Value error" not in str(caught.value)


def test_unknown_price_is_still_its_own_error_class() -> None:
    with pytest.raises(UnknownPriceError):
        Router(["gpt-4o-mni"])
