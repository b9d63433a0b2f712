"""What next best offers decide on top of the scores: an offer's expected incremental value,
campaigns whose measured effect is below zero with confidence (never offered), and the baseline
that ranks instead of a model that did not beat it."""

from __future__ import annotations

import dataclasses
import math
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from personalisation_builders import T0, Ledger, planted_uplift_ledger

from models_ml.personalisation import next_best_offers, rank_offers, train_personalisation
from models_ml.personalisation_candidates import offer_candidates
from models_ml.personalisation_events import CATEGORICAL_VOCAB, build_tables, uplift_assignments
from models_ml.personalisation_value import (
    GROSS_MARGIN,
    OFFER_BASELINES,
    campaign_effects,
    choose_ranking,
    expected_discount,
)

PLANTED_LAST = (T0 + timedelta(days=59)).date()
AS_OF = T0 + timedelta(days=62)
DBT_PERFORMANCE = (
    Path(__file__).parents[1] / "dbt_project/models/marts/fct_campaign_performance.sql"
)


def test_the_model_values_an_order_with_the_marts_gross_margin() -> None:
    sql = DBT_PERFORMANCE.read_text()

    default = re.search(r"var\('campaign_gross_margin',\s*([0-9.]+)\)", sql)

    assert default is not None and float(default.group(1)) == GROSS_MARGIN


# -- money -------------------------------------------------------------------------------------


def test_the_expected_discount_follows_each_kind_of_discount_on_the_customers_typical_order() -> (
    None
):
    code = {name: float(i) for i, name in enumerate(CATEGORICAL_VOCAB["discount_type"])}
    frame = pl.DataFrame(
        {
            "campaign_id": ["a", "p", "cap", "fp", "free", "listed", "seen", "unknown"],
            "discount_type": [code["amount"], code["percent"], code["percent"],
                              code["fixed_price"], code["free_item"], code["percent"],
                              code["unspecified"], code["unspecified"]],
            "amount_off": [500.0, None, None, None, None, None, None, None],
            "percent_off": [None, 10.0, 50.0, None, None, 20.0, None, None],
            "max_discount": [None, None, 300.0, None, None, None, None, None],
            "fixed_price": [None, None, None, 1500.0, None, None, None, None],
            "avg_order_value": [3000.0, 3000.0, 3000.0, None, 3000.0, 3000.0, 3000.0, 3000.0],
            "whole_order": [1, 1, 1, 1, 0, 0, 1, 1],
            "contents_price_median": [None, None, None, None, 800.0, 900.0, None, None],
        }
    )  # fmt: skip

    discount = expected_discount(frame, order_value=2000.0, observed={"seen": 250.0})

    # fixed price: the order without a value of its own is the training data's mean (2000)
    assert discount.to_list() == [500.0, 300.0, 300.0, 500.0, 800.0, 180.0, 250.0, None]


def test_an_assignment_carries_the_revenue_after_it_and_the_discount_its_voucher_gave() -> None:
    ledger = Ledger()
    ledger.campaign("spring")  # 14 valid days, a control group
    for customer in ("treated", "held"):
        ledger.customer(customer, T0 - timedelta(days=30))
        ledger.order(customer, T0 - timedelta(days=1), amount=9000)  # before: not counted
    ledger.publish("treated", "spring", "v1", T0)
    ledger.add("customer_held_out", T0, {"source": "promotion"}, customer_id="held",
               campaign_id="spring")  # fmt: skip
    ledger.order("treated", T0 + timedelta(days=2), amount=3000)
    ledger.redeem("treated", "spring", "v1", T0 + timedelta(days=2), discount=400)
    ledger.order("treated", T0 + timedelta(days=2), amount=1000)  # same instant: both count
    ledger.order("treated", T0 + timedelta(days=20), amount=7000)  # after the horizon
    ledger.order("held", T0 + timedelta(days=5), amount=2500)

    arms = uplift_assignments(build_tables(ledger.frame()))

    by_arm = {row["customer_id"]: row for row in arms.iter_rows(named=True)}
    assert (by_arm["treated"]["revenue"], by_arm["treated"]["discount"]) == (4000, 400)
    assert (by_arm["held"]["revenue"], by_arm["held"]["discount"]) == (2500, 0)


def test_a_campaigns_effect_is_its_profit_per_treated_customer_against_the_held_out_ones() -> None:
    arms = pl.DataFrame(
        {
            "campaign_id": ["c"] * 6 + ["lonely"] * 2,
            "treated": [1, 1, 1, 0, 0, 0, 1, 0],
            "revenue": [1000, 0, 2000, 1000, 0, 0, 500, 0],
            "discount": [200, 0, 200, 0, 0, 0, 100, 0],
        }
    )

    effects = {e.campaign_id: e for e in campaign_effects(arms, margin=0.5)}

    treated = [300.0, 0.0, 800.0]  # 0.5 x revenue - discount
    control = [500.0, 0.0, 0.0]
    mean_t, mean_c = sum(treated) / 3, sum(control) / 3
    var = lambda xs, m: sum((x - m) ** 2 for x in xs) / (len(xs) - 1)  # noqa: E731
    half = 1.959963984540054 * math.sqrt(var(treated, mean_t) / 3 + var(control, mean_c) / 3)
    c = effects["c"]
    assert (c.treated, c.control) == (3, 3)
    assert c.effect == pytest.approx(mean_t - mean_c)
    assert (c.low, c.high) == (pytest.approx(c.effect - half), pytest.approx(c.effect + half))
    assert effects["lonely"].low is None and not effects["lonely"].below_zero_with_confidence


# -- never an offer that loses money with confidence ------------------------------------------


def generous_ledger(customers: int = 400, seed: int = 9) -> Ledger:
    """Two autopilots. `generous` (a control group) gives 15.00 off an order the customer would
    have placed anyway: most treated customers redeem it, none orders more, so it loses money
    with confidence. `modest` (no control group) gives 2.00 off and is redeemed less often."""
    rng = random.Random(seed)
    ledger = Ledger()
    autopilot = {"mode": "autopilot", "channels": ["email"],
                 "trigger": {"type": "gone_quiet", "quiet_days": 21}}  # fmt: skip
    ledger.campaign("generous", discount={"type": "amount", "amount_off": 1500},
                    distribution={**autopilot, "control_share": 0.5})  # fmt: skip
    ledger.campaign("modest", discount={"type": "amount", "amount_off": 200},
                    distribution=autopilot)  # fmt: skip
    for i in range(customers):
        customer = f"c{i:04d}"
        ledger.customer(customer, T0 - timedelta(days=80))
        for k in range(3):
            ledger.order(customer, T0 - timedelta(days=70 - 20 * k, hours=rng.random()))
        at = T0 + timedelta(days=i % 30, hours=6)
        if rng.random() < 0.5:
            ledger.publish(customer, "generous", f"g{i:04d}", at)
            treated = True
        else:
            ledger.add("customer_held_out", at, {"source": "autopilot"}, customer_id=customer,
                       campaign_id="generous")  # fmt: skip
            treated = False
        ledger.publish(customer, "modest", f"m{i:04d}", at + timedelta(hours=1))
        if rng.random() < 0.5:
            when = at + timedelta(days=rng.uniform(0.5, 10))
            ledger.order(customer, when)
            if treated and rng.random() < 0.9:
                ledger.redeem(customer, "generous", f"g{i:04d}", when, discount=1500)
            elif rng.random() < 0.3:
                ledger.redeem(customer, "modest", f"m{i:04d}", when, discount=200)
    ledger.order("c0000", T0 + timedelta(days=61))  # the data runs past every horizon
    return ledger


@pytest.fixture(scope="module")
def generous() -> tuple[pl.DataFrame, Any, dict[str, Any]]:
    events = generous_ledger().frame()
    model, card = train_personalisation(events, T0.date(), PLANTED_LAST, seed=4)
    return events, model, card


def test_a_campaign_that_loses_money_with_confidence_is_never_recommended(
    generous: tuple[pl.DataFrame, Any, dict[str, Any]],
) -> None:
    events, model, card = generous

    table = next_best_offers(model, events, AS_OF, top_k=2)

    effects = {e["campaign_id"]: e for e in card["extra"]["campaign_effects"]}
    assert effects["generous"]["high"] < 0  # measured against its control group
    assert set(table["campaign_id"]) == {"modest"}
    assert table["customer_id"].n_unique() == 400


def test_a_campaign_the_marts_found_losing_money_is_left_out_as_well(
    generous: tuple[pl.DataFrame, Any, dict[str, Any]],
) -> None:
    events, model, _ = generous

    table = next_best_offers(model, events, AS_OF, top_k=2, exclude=["modest"])

    assert table.height == 0


# -- ranked by expected incremental value, or by the baseline that beat the model -------------


@pytest.fixture(scope="module")
def planted() -> tuple[pl.DataFrame, Any, dict[str, Any]]:
    ledger = planted_uplift_ledger(customers=600)
    autopilot = {"mode": "autopilot", "channels": ["email", "push"],
                 "trigger": {"type": "gone_quiet", "quiet_days": 21}}  # fmt: skip
    ledger.campaign("cheap", discount={"type": "amount", "amount_off": 100}, distribution=autopilot)
    ledger.campaign("dear", discount={"type": "amount", "amount_off": 1900}, distribution=autopilot)
    events = ledger.frame()
    model, card = train_personalisation(events, T0.date(), PLANTED_LAST, seed=3)
    return events, model, card


def test_with_an_uplift_model_offers_are_ranked_by_uplift_times_margin_less_the_discount(
    planted: tuple[pl.DataFrame, Any, dict[str, Any]],
) -> None:
    events, model, _ = planted
    trusted = dataclasses.replace(model, ranking="model")

    table = next_best_offers(trusted, events, AS_OF, top_k=2)

    assert model.uplift is not None and set(table["ranked_by"]) == {"incremental_value"}
    # every order in this ledger is 20.00, so the value is exact: uplift x 0.65 x 2000 - p x d
    discount = table["campaign_id"].replace_strict({"cheap": 100.0, "dear": 1900.0})
    expected = table["uplift"] * GROSS_MARGIN * 2000 - table["propensity"] * discount
    assert (table["incremental_value"] - expected).abs().max() < 1e-6
    assert (table["score"] == table["incremental_value"]).all()
    for values in table.group_by("customer_id").agg(pl.col("score").sort_by("rank"))["score"]:
        assert list(values) == sorted(values, reverse=True)
    assert set(table.filter(pl.col("rank") == 1)["campaign_id"]) == {"cheap"}


def test_where_the_model_lost_to_the_popularity_baseline_the_offers_are_ranked_by_popularity(
    planted: tuple[pl.DataFrame, Any, dict[str, Any]],
) -> None:
    events, model, _ = planted
    lost = choose_ranking({"ndcg_at_3": 0.922, "ndcg_at_3_popularity": 0.934,
                           "ndcg_at_3_random": 0.80, "ndcg_at_3_contents_size": 0.85})  # fmt: skip
    popular = dataclasses.replace(model, ranking=lost.ranked_by,
                                  popularity={"cheap": 0.1, "dear": 0.6})  # fmt: skip

    table = next_best_offers(popular, events, AS_OF, top_k=2)

    assert lost.ranked_by == "popularity" and lost.beaten_by == ["popularity"]
    assert set(table["ranked_by"]) == {"popularity"}
    assert set(table.filter(pl.col("rank") == 1)["campaign_id"]) == {"dear"}
    assert set(table.filter(pl.col("rank") == 1)["score"]) == {0.6}


def test_the_model_ranks_only_where_it_beat_every_baseline_else_the_best_offer_baseline() -> None:
    above = {"ndcg_at_3": 0.9, "ndcg_at_3_popularity": 0.8, "ndcg_at_3_random": 0.7}
    below_random_only = {**above, "ndcg_at_3_random": 0.95}
    tied = {**above, "ndcg_at_3_contents_size": 0.9}
    no_ndcg = {"roc_auc": 0.6, "roc_auc_popularity": 0.7, "roc_auc_contents_popularity": 0.75}

    assert choose_ranking(above).ranked_by == "model"
    assert choose_ranking(below_random_only).ranked_by == "popularity"
    assert choose_ranking(tied).ranked_by == "contents_size"  # a tie is not a win
    assert choose_ranking(no_ndcg).ranked_by == "contents_popularity"
    assert choose_ranking(no_ndcg).metric == "roc_auc"
    assert choose_ranking({}).ranked_by == "model"


def test_training_records_which_ranking_its_held_out_figures_chose(
    planted: tuple[pl.DataFrame, Any, dict[str, Any]],
) -> None:
    _, model, card = planted

    decided = choose_ranking(card["metrics"])

    assert card["extra"]["ranking"] == decided.as_dict()
    assert model.ranking == decided.ranked_by


def test_each_baseline_the_ranking_may_fall_back_to_scores_candidate_offers(
    planted: tuple[pl.DataFrame, Any, dict[str, Any]],
) -> None:
    events, model, _ = planted
    tables = build_tables(events.filter(pl.col("occurred_at") < AS_OF.strftime("%Y-%m-%d")))
    candidates = offer_candidates(tables, datetime(2026, 5, 1, tzinfo=UTC))

    for baseline in OFFER_BASELINES:
        ranked = rank_offers(dataclasses.replace(model, ranking=baseline), tables, candidates, 2)
        assert set(ranked["ranked_by"]) == {baseline}
        assert ranked["score"].is_not_null().all()


def test_the_nightly_step_leaves_out_the_campaigns_the_marts_found_losing_money(
    tmp_path: Path,
) -> None:
    import duckdb

    from pipelines.defs.ml import losing_campaigns

    warehouse = tmp_path / "build.duckdb"
    with duckdb.connect(str(warehouse)) as db:
        db.execute("CREATE SCHEMA marts")
        db.execute(
            "CREATE TABLE marts.fct_campaign_performance AS SELECT * FROM (VALUES"
            " ('loses', -900, -100), ('unclear', -900, 400), ('pays', 100, 900),"
            " ('no-control', NULL, NULL)) AS t(campaign_id, incremental_profit_ci_low,"
            " incremental_profit_ci_high)"
        )

    assert losing_campaigns(warehouse) == ["loses"]


def test_promo_models_train_says_when_a_baseline_will_rank_the_offers_instead() -> None:
    from models_ml.cli import _card_text
    from models_ml.registry import ModelCard

    metrics = {"ndcg_at_3": 0.92, "ndcg_at_3_popularity": 0.93, "roc_auc": 0.7}
    card = ModelCard("personalisation", "personalisation-v3", "2026-12-07", {"from": "2026-01-01",
                     "to": "2026-03-01"}, [], {}, 1, metrics, "roc_auc", "f" * 64,
                     {"ranking": choose_ranking(metrics).as_dict()})  # fmt: skip

    text = _card_text(card, "trained personalisation-v3")

    assert "next best offers ranked by the popularity baseline" in text
    assert "ndcg_at_3 is not above popularity's" in text
