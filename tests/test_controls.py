"""Operator controls: quality bars, budgets with pacing, per-request weights, allow-lists, tenants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaptroute import Budget, ConfigError, ModelSpec, QualityBar, RewardWeights, Router
from adaptroute.errors import BudgetExceededError, NoEligibleModelError, UnknownModelError
from adaptroute.policy.bar_dual import frontier_price, priced_choice
from adaptroute.policy.constraints import DEFAULT_COST_SHARE, BarControl, plausible_cheapest

MSG = [{"role": "user", "content": "classify this ticket please"}]

# Three models a factor 10 apart in price; mock answers, so nothing leaves the machine.
SPECS = [
    ModelSpec(name="cheap", litellm_model="openai/cheap", input_cost_per_token=1e-7, output_cost_per_token=2e-7),
    ModelSpec(name="mid", litellm_model="openai/mid", input_cost_per_token=1e-6, output_cost_per_token=2e-6),
    ModelSpec(name="pricey", litellm_model="openai/pricey", input_cost_per_token=1e-5, output_cost_per_token=2e-5),
]


class PassRates:
    """A scorer that passes each model's answers at a fixed rate (seeded)."""

    def __init__(self, rates: dict[str, float], seed: int = 0) -> None:
        self.rates = rates
        # not the router's stream: with the router's own seed, its draws would pick which model fails
        self.rng = np.random.default_rng([seed, 7919])

    def __call__(self, messages, response, model):  # noqa: ANN001
        return float(self.rng.random() < self.rates[model])


def run(router: Router, n: int, task: str = "triage", **kw) -> list:  # noqa: ANN003
    return [router.complete(MSG, task=task, mock_response="ok", **kw).adaptroute for _ in range(n)]


# -- bars -------------------------------------------------------------------------------------------
def test_quality_bar_forms_and_errors() -> None:
    assert QualityBar.of(0.9).for_task("any") == 0.9
    bar = QualityBar.of({"extract": 0.95, "draft": 0.8})
    assert (bar.for_task("extract"), bar.for_task("draft"), bar.for_task("other")) == (0.95, 0.8, None)
    parsed = QualityBar.parse("extract=0.95,draft=0.8,*=0.5")
    assert parsed.for_task("other") == 0.5 and parsed.for_task("extract") == 0.95
    assert QualityBar.parse("0.9*best").relative
    for bad in (1.5, -0.1, float("nan"), {"x": "high"}, True):
        with pytest.raises(ConfigError):
            QualityBar.of(bad)  # type: ignore[arg-type]
    for text in ("", "x=", "x=abc"):
        with pytest.raises(ConfigError):
            QualityBar.parse(text)
    with pytest.raises(ConfigError):
        Router(SPECS, quality_bar="lots")


def test_plausible_cheapest_probabilities() -> None:
    quality = np.array([0.5, 0.9, 0.97])
    expense = np.array([1.0, 10.0, 100.0])
    sure = np.array([0.01, 0.01, 0.01])
    p, none = plausible_cheapest(quality, sure, expense, bar=0.85)
    assert p.sum() == pytest.approx(1.0)
    assert p[1] > 0.99 and none < 1e-6  # the cheapest model that surely passes
    p, none = plausible_cheapest(quality, sure, expense, bar=0.99)
    assert p[2] > 0.99 and none > 0.95  # nobody passes: the best model, and it says so
    uncertain = np.array([0.3, 0.01, 0.01])
    p, _ = plausible_cheapest(quality, uncertain, expense, bar=0.85)
    assert 0.05 < p[0] < 0.5 and p[2] < 1e-6  # a cheap long shot is explored; the pricier passer is not needed


def test_router_meets_a_bar_below_the_cheapest_passing_models_cost() -> None:
    """cheap (0.55) misses the bar 0.85, mid (0.93) meets it: the least cost at mean quality 0.85 mixes
    them (about 79% mid), so late traffic is mostly mid, some cheap, hardly any pricey, and the mean
    quality sits at the bar (margin 0.03: about two standard errors of 400 pass/fail scores)."""
    rates = {"cheap": 0.55, "mid": 0.93, "pricey": 0.97}
    router = Router(SPECS, quality_bar={"triage": 0.85}, scorer=PassRates(rates), seed=1)
    records = run(router, 400)
    late = [r.model for r in records[-150:]]
    assert 0.6 < late.count("mid") / len(late) < 0.97 and late.count("cheap") > 0
    assert late.count("pricey") / len(late) < 0.1
    quality = np.mean([r.quality for r in records])
    assert quality >= 0.85 - 0.03
    late_cost = np.mean([r.cost_usd for r in records[-150:]])
    mid_cost = np.mean([r.cost_usd for r in records if r.model == "mid"])
    assert late_cost < mid_cost  # below the cheapest single model that meets the bar
    assert records[-1].controls["bar"] == 0.85 and records[-1].controls["bar_unreachable"] is False
    # a task without a bar is routed by the weights alone, and says so
    other = router.complete(MSG, task="untracked", mock_response="ok").adaptroute
    assert other.controls is None or other.controls["bar"] is None
    router.close()


def test_frontier_price_and_priced_choice() -> None:
    """The price is the slope of the cheapest-mix frontier where it crosses the bar; at that price
    the two models at the edge's ends share the traffic and pricier, dominated ones get none."""
    quality = np.array([0.5, 0.9, 0.92, 0.7])
    expense = np.array([1.0, 10.0, 100.0, 50.0])  # the last is dominated (pricier and worse than the second)
    assert frontier_price(quality, expense, 0.8) == pytest.approx(9.0 / 0.4)
    assert frontier_price(quality, expense, 0.91) == pytest.approx(90.0 / 0.02)
    assert frontier_price(quality, expense, 0.4) == pytest.approx(0.5 * 9.0 / 0.4)  # the cheapest meets it
    assert frontier_price(quality, expense, 0.95) == np.inf  # no model does
    sure = np.full(4, 0.01)
    p = priced_choice(quality, sure, expense, frontier_price(quality, expense, 0.8))
    assert p[0] + p[1] > 0.99 and min(p[0], p[1]) > 0.2 and p[3] < 1e-6
    p = priced_choice(quality, sure, expense, 1.5 * frontier_price(quality, expense, 0.8))
    assert p[1] > 0.99  # a higher price buys the stronger model of the edge
    assert priced_choice(quality, sure, expense, np.inf)[2] > 0.9  # no price meets the bar: the best model


def test_task_posterior_learns_per_task_from_a_cross_task_prior() -> None:
    """A model's quality on a task starts at its mean elsewhere plus the task's offset, and then
    follows the task's own outcomes."""
    control = BarControl(QualityBar.of(0.8))
    for _ in range(50):
        control.count("easy", "a", 1.0)
        control.count("easy", "b", 0.0)
        control.count("hard", "a", 0.5)
    mean, sd = control.task_posterior("hard", ["a", "b", "new"])
    assert mean[0] == pytest.approx(0.5, abs=0.03) and sd[0] < 0.1  # a's own outcomes on "hard"
    assert mean[1] < 0.2  # b failed elsewhere and "hard" is harder than a's mean: b is expected to fail
    assert sd[2] > 0.2  # never seen: wide
    factor = control.settled_factor("easy", np.array([0.6, 0.95]), np.array([0.01, 0.01]), np.array([1.0, 10.0]), 1.0)
    p, decision = control.decide("easy", np.array([0.6, 0.95]), np.array([0.01, 0.01]), np.array([1.0, 10.0]), 1.0,
                                 factor=factor)
    assert float(p @ np.array([0.6, 0.95])) == pytest.approx(0.8, abs=0.02)  # the settled price meets the bar
    assert decision.price > 0 and decision.effective_bar == 0.8


def test_an_unreachable_bar_goes_to_the_best_model_and_says_so() -> None:
    rates = {"cheap": 0.3, "mid": 0.6, "pricey": 0.8}
    router = Router(SPECS, quality_bar=0.99, scorer=PassRates(rates, seed=2), seed=2)
    records = run(router, 300)
    late = records[-100:]
    assert [r.model for r in late].count("pricey") / len(late) > 0.8
    assert sum(r.controls["bar_unreachable"] for r in late) / len(late) > 0.9
    router.close()


def test_feedback_moves_the_bar_state() -> None:
    router = Router(SPECS, quality_bar=0.8, seed=0)
    record = run(router, 1)[0]
    assert router.controls["bar_price_factor"] == {}
    router.feedback(record.decision_id, 1.0)
    factor = router.controls["bar_price_factor"]["triage"]
    assert factor < 1.0  # quality above the bar: quality's price falls, cheaper models gain
    assert router.controls["bar_shift"]["triage"] == 0.0  # the price rule does not shift the bar itself
    router.feedback(record.decision_id, 0.0)  # a correction of an already learned score is not counted twice
    assert router.controls["bar_price_factor"]["triage"] == factor
    router.close()


# -- per-request overrides --------------------------------------------------------------------------
def test_per_request_reward_models_tenant_metadata() -> None:
    router = Router(SPECS, scorer=lambda m, r: 1.0)
    record = router.complete(MSG, task="triage", mock_response="ok", reward=RewardWeights(quality=1, cost=20),
                             models=["mid", "pricey"], tenant="acme", metadata={"case": "refund", "tier": 2}).adaptroute
    assert record.model in ("mid", "pricey")
    assert record.controls["weights"]["cost"] == 20
    assert record.controls["tenant"] == "acme" and record.controls["metadata"] == {"case": "refund", "tier": 2}
    assert record.controls["allowed"] == ["mid", "pricey"]
    assert {s.model for s in record.scores} <= {"mid", "pricey"}
    # the router's own weights are unchanged
    assert router.reward.cost != 20
    recs = router.recommend(MSG, task="triage", models=["cheap"])
    assert [s.model for s in recs] == ["cheap"]
    router.close()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"models": ["nope"]}, UnknownModelError),
        ({"models": []}, ConfigError),
        ({"models": "cheap"}, ConfigError),
        ({"reward": {"cost": 1}}, ConfigError),
        ({"tenant": ""}, ConfigError),
        ({"tenant": "x" * 201}, ConfigError),
        ({"metadata": ["a"]}, ConfigError),
        ({"metadata": {"api_key": "sk-123456789"}}, ConfigError),
        ({"metadata": {f"k{i}": i for i in range(17)}}, ConfigError),
        ({"metadata": {"nested": {"a": 1}}}, ConfigError),
        ({"metadata": {"long": "x" * 300}}, ConfigError),
        ({"metadata": {"nan": float("nan")}}, ConfigError),
    ],
)
def test_bad_overrides_are_refused_before_anything_is_logged(kwargs: dict, error: type) -> None:
    router = Router(SPECS)
    with pytest.raises(error):
        router.complete(MSG, task="triage", mock_response="ok", **kwargs)
    assert router.store.query("SELECT count(*) FROM decisions")[0][0] == 0
    router.close()


def test_allow_list_meets_the_context_window() -> None:
    small = ModelSpec(name="small", litellm_model="openai/small", input_cost_per_token=1e-7,
                      output_cost_per_token=1e-7, max_input_tokens=10)
    large = SPECS[2].model_copy(update={"max_input_tokens": 100_000})
    router = Router([small, large])
    long = [{"role": "user", "content": "word " * 200}]
    with pytest.raises(NoEligibleModelError):
        router.complete(long, mock_response="ok", models=["small"])
    router.close()


# -- the default reward ---------------------------------------------------------------------------
def test_default_weights_price_the_priciest_model() -> None:
    router = Router(SPECS, scorer=lambda m, r: 0.9)
    typical = SPECS[2].input_cost_per_token * 1000 + SPECS[2].output_cost_per_token * 250
    assert router.reward.cost == pytest.approx(DEFAULT_COST_SHARE / typical)
    records = run(router, 150)
    shares = [r.model for r in records[-60:]]
    assert shares.count("pricey") / len(shares) < 0.2  # equal quality: not the priciest
    # explicit weights are kept as given
    assert Router(SPECS, reward=RewardWeights()).reward.cost == 0
    router.close()


# -- budgets ----------------------------------------------------------------------------------------
def test_budget_validation() -> None:
    for kwargs in ({"usd": 0, "per": "day"}, {"usd": 1, "per": "week"}, {"usd": 1}, {"usd": 1, "per": "day", "per_requests": 3},
                   {"usd": 1, "per_requests": 0}, {"usd": float("inf"), "per": "day"}, {"usd": 1, "per": "day", "tenant": ""}):
        with pytest.raises(ConfigError):
            Budget(**kwargs)
    with pytest.raises(ConfigError):
        Router(SPECS, budget="40 a day")


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_paced_over_the_day_not_starved() -> None:
    """A burst that would spend the day's budget in its first hour on the best model is spread: the
    budget shapes the burst's decisions toward cheaper models, and the evening still gets answers."""
    rates = {"cheap": 0.6, "mid": 0.8, "pricey": 0.95}
    day = 86_400.0
    probe = Router(SPECS, reward=RewardWeights(), scorer=PassRates(rates))
    pricey_cost = probe.complete(MSG, task="triage", mock_response="ok", models=["pricey"]).adaptroute.cost_usd
    probe.close()
    burst = 300
    usd = burst * pricey_cost  # the whole day's budget, if the burst all went to the best model
    clock = FakeClock(day * 100)  # midnight UTC
    router = Router(SPECS, reward=RewardWeights(), budget=Budget(usd=usd, per="day"), scorer=PassRates(rates),
                    clock=clock)
    records = []
    for _ in range(burst):  # one hour
        records.append(router.complete(MSG, task="triage", mock_response="ok").adaptroute)
        clock.now += 3600 / burst
    spent_in_burst = sum(r.cost_usd for r in records)
    assert spent_in_burst < 0.5 * usd  # paced: not the whole day's budget by 1 am
    assert any(r.controls["budget_shaped"] for r in records)
    state = router.controls["budgets"][0]
    assert state["remaining_usd"] > 0.5 * usd
    # later in the day there is budget left to answer, and spend stays under the cap by the end
    for hour in (6, 12, 18, 23):
        clock.now = day * 100 + hour * 3600
        for _ in range(20):
            assert router.complete(MSG, task="triage", mock_response="ok").adaptroute.model is not None
    assert router.controls["budgets"][0]["spent_usd"] <= usd
    router.close()


def test_the_hard_cap_refuses_what_the_budget_cannot_pay() -> None:
    clock = FakeClock(0.0)
    router = Router(SPECS, reward=RewardWeights(), budget=Budget(usd=1e-9, per="hour"), clock=clock)
    with pytest.raises(BudgetExceededError):
        router.complete(MSG, task="triage", mock_response="ok")
    assert router.store.query("SELECT count(*) FROM decisions")[0][0] == 0
    clock.now = 7200.0  # a new hour: a new budget, still too small for any model
    with pytest.raises(BudgetExceededError):
        router.complete(MSG, task="triage", mock_response="ok")
    router.close()


def test_budgets_per_tenant_and_task() -> None:
    clock = FakeClock(0.0)
    tight = Budget(usd=1e-9, per="day", tenant="acme")
    router = Router(SPECS, reward=RewardWeights(), budget=[tight, Budget(usd=10.0, per="day", task="triage")], clock=clock)
    with pytest.raises(BudgetExceededError):
        router.complete(MSG, task="triage", mock_response="ok", tenant="acme")
    record = router.complete(MSG, task="triage", mock_response="ok", tenant="globex").adaptroute
    assert [b["budget"] for b in record.controls["budgets"]] == ["$10 per day task=triage"]
    free = router.complete(MSG, task="other", mock_response="ok", tenant="globex").adaptroute
    assert free.controls["budgets"] == []
    router.close()


# -- simulate and the CLI ---------------------------------------------------------------------------
def _long_file(data, path):  # noqa: ANN001, ANN202 - a FullInfoDataset as a long-format JSONL file
    with path.open("w") as fh:
        for i in range(len(data)):
            for k, model in enumerate(data.models):
                fh.write(json.dumps({"prompt_id": str(data.prompt_ids[i]), "task": str(data.tasks[i]), "model": model,
                                     "quality": float(data.quality[i, k]), "cost_usd": float(data.cost_usd[i, k])}) + "\n")
    return path


def test_simulate_per_task_json_with_a_bar(tmp_path, capsys) -> None:  # noqa: ANN001
    from adaptroute.cli import main
    from adaptroute.datasets.synthetic import generate, random_profile

    path = _long_file(generate(random_profile(4, 2, seed=3), 600, seed=3), tmp_path / "data.jsonl")
    assert main(["simulate", str(path), "--bar", "task0=0.6,task1=0.99", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["per_task"]) == {"task0", "task1"}
    for entry in out["per_task"].values():
        assert {"mean_quality", "mean_cost_usd", "bar", "cheapest_passing_fixed"} <= set(entry)
    assert out["per_task"]["task1"]["cheapest_passing_fixed"] is None  # nothing reaches 0.99
    fixed = out["per_task"]["task0"]["cheapest_passing_fixed"]
    assert set(fixed) == {"name", "quality", "cost_usd"} and fixed["quality"] >= 0.6
    assert main(["simulate", str(path), "--bar", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_task"]["task1"]["bar"] == 0.5
    assert main(["simulate", str(path), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "bar" not in plain["per_task"]["task0"] and plain["weights"]["cost"] > 0  # the default weights
    assert main(["simulate", str(path), "--bar", "x=", "--json"]) == 2


# -- the log ----------------------------------------------------------------------------------------
def test_controls_are_logged_with_each_decision(tmp_path) -> None:  # noqa: ANN001
    from adaptroute import read_log

    path = tmp_path / "routes.duckdb"
    clock = FakeClock(0.0)
    with Router(SPECS, quality_bar={"triage": 0.8}, budget=Budget(usd=5.0, per="day", tenant="acme"), store=str(path),
                scorer=PassRates({"cheap": 0.5, "mid": 0.9, "pricey": 0.95}), clock=clock) as router:
        run(router, 3, tenant="acme", metadata={"case": "refund"})
        run(router, 2, task="free")
    batch = read_log(path)
    c = batch.controls
    assert c is not None
    bars = c.bar[batch.tasks == "triage"]
    assert (bars == 0.8).all() and np.isnan(c.bar[batch.tasks == "free"]).all()
    assert list(c.tenant) == ["acme"] * 3 + [None] * 2
    assert list(c.lane) == ["online"] * 5
    assert np.isfinite(c.budget_remaining_usd[:3]).all() and np.isnan(c.budget_remaining_usd[3:]).all()
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    meta = con.execute("SELECT metadata FROM decisions WHERE tenant = 'acme' LIMIT 1").fetchone()[0]
    con.close()
    assert json.loads(meta) == {"case": "refund"}


def test_report_shows_bars_budgets_and_savings(tmp_path, capsys) -> None:  # noqa: ANN001
    from adaptroute.cli import main

    path = tmp_path / "routes.duckdb"
    clock = FakeClock(86_400.0 * 10)
    with Router(SPECS, quality_bar={"triage": 0.8}, budget=Budget(usd=0.01, per="day", task="draft"), store=str(path),
                scorer=PassRates({"cheap": 0.5, "mid": 0.9, "pricey": 0.95}), clock=clock) as router:
        for _ in range(40):
            run(router, 1)
            run(router, 1, task="draft")
            clock.now += 600
    assert main(["report", str(path), "--json", "--plot", str(tmp_path / "plots")]) == 0
    out = json.loads(capsys.readouterr().out)
    triage, draft = out["controls"]["triage"], out["controls"]["draft"]
    assert triage["bar"] == 0.8 and triage["bar_requests"] == 40 and triage["bar_met"] in (True, False)
    assert 0 <= triage["bar_met_rate"] <= 1
    assert draft["bar"] is None and draft["budget_requests"] == 40 and triage["budget_requests"] == 0
    assert any(p.endswith("budget.png") for p in out["plots"])
    assert main(["report", str(path)]) == 0
    text = capsys.readouterr().out
    assert "Operator controls" in text and "| triage | 0.800 |" in text


def test_tune_sweeps_bars(tmp_path, capsys) -> None:  # noqa: ANN001
    from adaptroute.cli import main
    from adaptroute.datasets.synthetic import generate, random_profile

    path = _long_file(generate(random_profile(3, 2, seed=5), 300, seed=5), tmp_path / "data.jsonl")
    assert main(["tune", str(path), "--bar", "0.3", "task0=0.9,task1=0.5", "--json", "--target", "quality>=0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["bar"] for p in out["points"]] == ["0.3", "task0=0.9,task1=0.5"]
    assert main(["tune", str(path), "--bar"]) == 0
    assert "tune --bar (simulated): 5 bars" in capsys.readouterr().out
    assert main(["tune", str(path), "--bar", "x="]) == 2


def test_acomplete_and_streams_take_the_same_controls() -> None:
    import asyncio

    router = Router(SPECS, quality_bar={"triage": 0.8}, scorer=lambda m, r: 1.0)

    async def go():  # noqa: ANN202
        return await router.acomplete(MSG, task="triage", mock_response="ok", models=["cheap", "mid"], tenant="acme",
                                      metadata={"k": 1})

    record = asyncio.run(go()).adaptroute
    assert record.model in ("cheap", "mid") and record.controls["tenant"] == "acme" and record.controls["bar"] == 0.8
    stream = router.complete(MSG, task="triage", mock_response="ok", stream=True, reward=RewardWeights(cost=5))
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "ok"
    assert stream.adaptroute.controls["weights"]["cost"] == 5
    assert router.controls["bar_price_factor"]["triage"] < 1.0  # both outcomes reached the bar's state
    router.close()
