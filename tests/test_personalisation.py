"""Reward personalisation at the customer x voucher grain: point-in-time features, labels within
a voucher's validity, the campaign and time splits, propensity against its baselines, next best
offers."""

from __future__ import annotations

import json
import math
import pickle
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from personalisation_builders import T0, Ledger, booklet_ledger, planted_uplift_ledger
from polars.testing import assert_frame_equal

from models_ml.order_cache import cache_dir, cached_orders
from models_ml.personalisation import (
    PersonalisationInputError,
    evaluate_personalisation,
    next_best_offers,
    train_personalisation,
)
from models_ml.personalisation_events import (
    Vocabulary,
    build_tables,
    decode_orders,
    labelled_offers,
    vocabulary,
)
from models_ml.personalisation_features import feature_names, offer_features
from models_ml.personalisation_split import plan_split
from pipelines.ledger_extract import Lake, sync_lake
from redemption_core.simulate import SimulationConfig, simulate

BOOKLET_DAYS = (T0 - timedelta(days=400)).date(), (T0 + timedelta(days=30)).date()
PLANTED_LAST = (T0 + timedelta(days=59)).date()
SIM_FIRST, SIM_LAST = date(2026, 1, 5), date(2026, 3, 5)


@pytest.fixture(scope="module")
def booklets() -> pl.DataFrame:
    return booklet_ledger().frame()


@pytest.fixture(scope="module")
def booklet_model(booklets: pl.DataFrame) -> tuple[Any, dict[str, Any]]:
    return train_personalisation(booklets, *BOOKLET_DAYS, seed=2)


@pytest.fixture(scope="module")
def simulated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home: Path = tmp_path_factory.mktemp("personalisation")
    simulate(home, SimulationConfig(customers=800, days=60, seed=3), progress=None)
    sync_lake(home / "ledger.sqlite", Lake(home / "lake"))
    return home


@pytest.fixture(scope="module")
def simulated(simulated_home: Path) -> pl.DataFrame:
    return pl.scan_parquet(
        str(simulated_home / "lake" / "events" / "*" / "*.parquet"), hive_partitioning=True
    ).collect()


@pytest.fixture(scope="module")
def trained(simulated: pl.DataFrame) -> tuple[Any, dict[str, Any]]:
    return train_personalisation(simulated, SIM_FIRST, SIM_LAST, seed=11)


def features_at(events: pl.DataFrame, vocab: Vocabulary | None = None) -> pl.DataFrame:
    tables = build_tables(events)
    return offer_features(tables, labelled_offers(tables), vocab or vocabulary(tables))


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)
    return a == b


# -- features as of an instant -----------------------------------------------------------------


def history_with(event: str, at: datetime) -> pl.DataFrame:
    """Ann's history, an offer of a pizza voucher at T0, and one more `event` at `at`."""
    ledger = Ledger()
    ledger.add("customer_attributes_declared", T0 - timedelta(days=200),
               {"attributes": {"age": "numeric", "tier": "categorical"}})  # fmt: skip
    ledger.product("margherita", T0 - timedelta(days=200), category="pizza", brand="casa",
                   price=900, currency="EUR", collections=["italian"])  # fmt: skip
    ledger.campaign("old", at=T0 - timedelta(days=150),
                    discount={"type": "amount", "amount_off": 300,
                              "applies_to": {"categories": ["pizza"]}},
                    rules={"valid_days_after_publication": 30})  # fmt: skip
    ledger.campaign("spring", at=T0 - timedelta(days=100),
                    discount={"type": "percent", "percent_off": 20,
                              "applies_to": {"brands": ["casa"]}})  # fmt: skip
    ledger.customer("ann", T0 - timedelta(days=120), attributes={"age": 30, "tier": "gold"})
    ledger.order("ann", T0 - timedelta(days=40), category="pizza", product="margherita")
    ledger.voucher("old", "v_old", T0 - timedelta(days=20))
    ledger.publish("ann", "old", "v_old", T0 - timedelta(days=20))
    ledger.customer("bob", T0 - timedelta(days=120))
    ledger.publish("bob", "spring", "v_bob", T0 - timedelta(days=10))
    ledger.redeem("bob", "spring", "v_bob", T0 - timedelta(days=9))
    ledger.voucher("spring", "v_new", T0)
    ledger.publish("ann", "spring", "v_new", T0)
    if event == "redemption":
        ledger.redeem("ann", "old", "v_old", at)
    elif event == "order":
        ledger.order("ann", at, category="salad", product="caprese")
    elif event == "attributes":
        ledger.add("customer_updated", at, {"attributes": {"age": 31, "tier": "silver"}},
                   customer_id="ann")  # fmt: skip
    elif event == "product":
        ledger.product("caprese", at, category="salad", brand="casa", price=700, currency="EUR")
    elif event == "acceptance":
        ledger.add("voucher_accepted", at, {}, customer_id="ann", campaign_id="old",
                   voucher_id="v_old")  # fmt: skip
    ledger.order("ann", T0 + timedelta(days=60))  # the data runs past every horizon
    return ledger.frame()


# One vocabulary for every variant: a model's is fixed when it is trained.
VOCAB = Vocabulary(("pizza", "salad"), {"age": "numeric", "tier": "categorical"},
                   {"tier": ("gold", "silver")})  # fmt: skip


def ann_at_t0(events: pl.DataFrame) -> dict[str, Any]:
    frame = features_at(events, VOCAB)
    return frame.filter(pl.col("voucher_id") == "v_new").row(0, named=True)


@pytest.mark.parametrize("event", ["redemption", "order", "attributes", "product", "acceptance"])
def test_every_feature_of_an_offer_ignores_an_event_just_after_its_publication(event: str) -> None:
    without = ann_at_t0(history_with("none", T0))
    after = ann_at_t0(history_with(event, T0 + timedelta(seconds=1)))
    at_the_instant = ann_at_t0(history_with(event, T0))

    for name in feature_names(VOCAB):
        assert same(after[name], without[name]), name
        assert same(at_the_instant[name], without[name]), name


@pytest.mark.parametrize(
    ("event", "changed"),
    [
        ("redemption", ["redemptions_90d", "redeem_rate", "days_since_last_redemption",
                        "vouchers_open", "redeemed_product_overlap", "redeemed_category_overlap",
                        "redeemed_brand_overlap", "redeemed_collection_overlap"]),
        ("order", ["orders_30d", "days_since_last_order", "share_cat_pizza",
                   "share_in_offer_categories", "spend_90d"]),
        ("attributes", ["attr_age", "attr_tier"]),
        ("product", ["contents_products", "contents_price_median"]),
        ("acceptance", ["accept_rate", "accepted_open"]),
    ],
)  # fmt: skip
def test_the_same_event_moved_before_the_publication_changes_the_features_it_feeds(
    event: str, changed: list[str]
) -> None:
    without = ann_at_t0(history_with("none", T0))

    before = ann_at_t0(history_with(event, T0 - timedelta(days=2)))

    assert [name for name in changed if same(before[name], without[name])] == []


def test_features_do_not_depend_on_when_the_ledger_started() -> None:
    # Two years of an unrelated customer before the same story: no count since the ledger's
    # start, no tenure, nothing that would tell a model how old the ledger is.
    young = history_with("none", T0)
    older = Ledger()
    older.campaign("ancient", at=T0 - timedelta(days=900))
    older.customer("zed", T0 - timedelta(days=900))
    older.order("zed", T0 - timedelta(days=880))
    older.product("old-dish", T0 - timedelta(days=880), category="soup", price=500, currency="EUR")
    events = pl.concat([older.frame(), young.with_columns(pl.col("seq") + 1000)])

    late = ann_at_t0(events)
    early = ann_at_t0(young)

    assert [n for n in feature_names(VOCAB) if not same(late[n], early[n])] == []


def test_attributes_declared_numeric_are_read_as_numbers_and_categorical_as_labels() -> None:
    ledger = Ledger()
    ledger.add("customer_attributes_declared", T0 - timedelta(days=10),
               {"attributes": {"age": "numeric", "size": "categorical"}})  # fmt: skip
    ledger.campaign("spring")
    profiles = {
        "ann": {"age": "35", "size": "5", "favourite": "tea"},
        "bob": {"age": 41, "size": 5},
        "cy": {"age": "forty", "size": "L"},
        "di": {"size": "5+"},
    }
    for name, attributes in profiles.items():
        ledger.customer(name, T0 - timedelta(days=5), attributes=attributes)
        ledger.publish(name, "spring", f"v_{name}", T0)
    tables = build_tables(ledger.frame())
    vocab = vocabulary(tables)

    rows = {r["customer_id"]: r for r in features_at(ledger.frame()).iter_rows(named=True)}

    assert vocab.attribute_types == {"age": "numeric", "size": "categorical"}
    assert vocab.attribute_values["size"] == ("5", "5+", "L")
    assert [rows[c]["attr_age"] for c in ("ann", "bob")] == [35.0, 41.0]
    assert rows["cy"]["attr_age"] is None and rows["di"]["attr_age"] is None  # not a number
    assert rows["ann"]["attr_size"] == rows["bob"]["attr_size"] == 0.0  # the label "5"
    assert (rows["di"]["attr_size"], rows["cy"]["attr_size"]) == (1.0, 2.0)
    assert "attr_favourite" not in feature_names(vocab)  # never declared: not read
    assert vocabulary(tables, {"size": "numeric"}).attribute_types == {"size": "numeric"}


def test_an_attribute_type_other_than_numeric_or_categorical_is_refused_naming_it() -> None:
    tables = build_tables(history_with("none", T0))

    with pytest.raises(PersonalisationInputError, match="age"):
        vocabulary(tables, {"age": "ordinal"})


# -- labels ------------------------------------------------------------------------------------


def test_an_offer_is_labelled_within_its_own_validity_or_the_campaign_end_not_a_fortnight() -> None:
    ledger = Ledger()
    ledger.campaign("monthly", rules={"valid_days_after_publication": 30})
    ledger.campaign("ends", rules={}, active_until="2026-03-12T00:00:00.000000Z")
    ledger.campaign("open", rules={}, active_until=None)
    ledger.campaign("stopped", rules={"valid_days_after_publication": 30})
    ledger.add("campaign_status_changed", T0 + timedelta(days=5),
               {"status": "finished", "previous": "active"}, campaign_id="stopped")  # fmt: skip
    cases = {
        ("monthly", 20): 1, ("monthly", 31): 0, ("ends", 9): 1, ("ends", 11): 0,
        ("open", 80): 1, ("stopped", 6): 0,
    }  # fmt: skip
    for i, ((campaign, day), _) in enumerate(cases.items()):
        ledger.customer(f"c{i}", T0 - timedelta(days=1))
        ledger.publish(f"c{i}", campaign, f"v{i}", T0)
        ledger.redeem(f"c{i}", campaign, f"v{i}", T0 + timedelta(days=day))
    ledger.customer("late", T0)
    ledger.publish("late", "monthly", "v_rolled", T0)
    ledger.redeem("late", "monthly", "v_rolled", T0 + timedelta(days=2), redemption_id="r1")
    ledger.add("redemption_rolled_back", T0 + timedelta(days=3), {}, redemption_id="r1")

    labelled = labelled_offers(build_tables(ledger.frame()))

    found = dict(labelled.select("voucher_id", "label").iter_rows())
    assert [found[f"v{i}"] for i in range(len(cases))] == list(cases.values())
    assert found["v_rolled"] == 0
    horizons = dict(labelled.select("voucher_id", "horizon_end").iter_rows())
    assert horizons["v0"] == T0 + timedelta(days=30)
    assert horizons["v2"] == datetime(2026, 3, 12, tzinfo=UTC)
    assert horizons["v4"] == T0 + timedelta(days=90)  # nothing ends it: the open horizon
    assert horizons["v5"] == T0 + timedelta(days=5)


# -- one-shot campaigns and voucher contents ----------------------------------------------------


def test_one_shot_campaigns_train_and_evaluate_holding_out_the_latest_campaigns_whole(
    booklets: pl.DataFrame, booklet_model: tuple[Any, dict[str, Any]]
) -> None:
    model, card = booklet_model
    tables = build_tables(booklets)
    offers = labelled_offers(tables).filter(pl.col("horizon_end") <= tables.end)

    plan = plan_split(offers)
    metrics, scored, _ = evaluate_personalisation(
        model, booklets, *BOOKLET_DAYS, holdout=card["extra"]["holdout"]
    )

    assert card["params"]["split"] == plan.kind == "campaign"
    assert card["extra"]["holdout"]["held_out_campaigns"] == ["booklet-7", "booklet-8"]
    train_campaigns = set(offers.filter(plan.train)["campaign_id"])
    test_campaigns = set(offers.filter(plan.test)["campaign_id"])
    assert train_campaigns and test_campaigns and not train_campaigns & test_campaigns
    assert set(scored["campaign_id"]) == test_campaigns
    assert metrics["roc_auc"] == card["metrics"]["roc_auc"]  # the fit without the held-out part
    assert metrics["roc_auc_ci95_low"] < metrics["roc_auc"] < metrics["roc_auc_ci95_high"]
    for baseline in ("random", "popularity", "own_history_rate", "own_history_count",
                     "contents_size"):  # fmt: skip
        assert metrics["roc_auc"] > metrics[f"roc_auc_{baseline}"], baseline
        assert metrics["pr_auc"] > metrics[f"pr_auc_{baseline}"], baseline


def test_a_vouchers_contents_change_its_score(
    booklets: pl.DataFrame, booklet_model: tuple[Any, dict[str, Any]]
) -> None:
    model, _ = booklet_model
    tables = build_tables(booklets)
    at = T0 + timedelta(days=1)
    rows = pl.DataFrame(
        {
            "customer_id": ["c0000", "c0000", "c0001", "c0001"],  # a pizza, a salad eater
            "at": [at] * 4,
            "campaign_id": ["booklet-8"] * 4,
            "voucher_id": [None] * 4,
            "channel": ["email"] * 4,
            "contents": ['{"categories":["pizza"]}', '{"categories":["salad"]}'] * 2,
        },
        schema_overrides={"at": pl.Datetime("us", "UTC"), "voucher_id": pl.String},
    )

    scores = model.predict_propensity(offer_features(tables, rows, model.vocab))

    assert scores[0] > 2 * scores[1]  # the pizza eater: the pizza voucher first
    assert scores[3] > 2 * scores[2]  # the salad eater: the salad one


def test_a_split_the_data_cannot_give_is_refused_saying_why(booklets: pl.DataFrame) -> None:
    first_send = booklets.filter(
        (pl.col("event_type") != "voucher_published") | (pl.col("campaign_id") == "booklet-1")
    )

    with pytest.raises(PersonalisationInputError, match="one time"):
        train_personalisation(first_send, *BOOKLET_DAYS, seed=1, split="time")
    with pytest.raises(PersonalisationInputError, match="two or more campaigns"):
        train_personalisation(first_send, *BOOKLET_DAYS, seed=1, split="campaign")


# -- the simulator: a continuous business -------------------------------------------------------


def test_on_the_simulator_the_propensity_beats_every_baseline_on_roc_and_pr_auc(
    trained: tuple[Any, dict[str, Any]],
) -> None:
    """Not NDCG@3: on the simulator it is within noise of the popularity baseline, above or
    below by ledger (docs/benchmarks.md says why); where it is not above, next best offers are
    ranked by the best baseline (test_personalisation_value.py)."""
    _, card = trained
    metrics = card["metrics"]

    assert card["params"]["split"] == "time"  # autopilots send every day
    for baseline in ("random", "popularity", "contents_popularity", "own_history_rate",
                     "own_history_count", "contents_size"):  # fmt: skip
        assert metrics["roc_auc"] > metrics[f"roc_auc_{baseline}"], baseline
        assert metrics["pr_auc"] > metrics[f"pr_auc_{baseline}"], baseline
    assert metrics["ndcg_at_3_ci95_low"] <= metrics["ndcg_at_3"] <= metrics["ndcg_at_3_ci95_high"]


def test_training_twice_on_the_same_data_and_seed_gives_the_same_model_bytes(
    simulated: pl.DataFrame, trained: tuple[Any, dict[str, Any]]
) -> None:
    again, card = train_personalisation(simulated, SIM_FIRST, SIM_LAST, seed=11)

    assert card["data_fingerprint"] == trained[1]["data_fingerprint"]
    assert again.propensity.model_to_string() == trained[0].propensity.model_to_string()
    assert pickle.loads(pickle.dumps(again)).features == trained[0].features


def test_next_best_offers_give_each_customer_one_ranked_list_of_offerable_campaigns(
    trained: tuple[Any, dict[str, Any]], simulated: pl.DataFrame
) -> None:
    model, _ = trained
    as_of = datetime(2026, 3, 6, tzinfo=UTC)

    table = next_best_offers(model, simulated, as_of, top_k=3)

    assert table.height > 100
    per_customer = table.group_by("customer_id").agg(
        ranks=pl.col("rank").sort(), scores=pl.col("score"), campaigns=pl.col("campaign_id")
    )
    for ranks, scores, campaigns in per_customer.select("ranks", "scores", "campaigns").rows():
        assert ranks == list(range(1, len(ranks) + 1)) and len(ranks) <= 3
        assert scores == sorted(scores, reverse=True)
        assert len(set(campaigns)) == len(campaigns)
    assert set(table["campaign_id"]) <= {"winback", "celebration", "new-dish", "vip-thanks-1",
                                          "vip-thanks-2", "slow-night-1", "slow-night-2",
                                          "slow-night-3", "slow-night-4"}  # fmt: skip
    assert (table["as_of"] == as_of).all()


def test_next_best_offers_leave_out_paused_ended_and_unconsented_campaigns() -> None:
    ledger = planted_uplift_ledger(customers=200)
    ledger.campaign("paused-one")
    ledger.add("campaign_status_changed", T0, {"status": "paused", "previous": "active"},
               campaign_id="paused-one")  # fmt: skip
    ledger.campaign("ended-one", active_until="2026-03-01T00:00:00.000000Z")
    ledger.campaign("sms-only", distribution={"mode": "promotion", "channels": ["sms"]})
    ledger.campaign("autopilot-one", distribution={"mode": "autopilot", "channels": ["push", "email"],
                                                   "trigger": {"type": "gone_quiet", "quiet_days": 21}})  # fmt: skip
    events = ledger.frame()
    model, _ = train_personalisation(events, T0.date(), PLANTED_LAST, seed=3)

    table = next_best_offers(model, events, T0 + timedelta(days=50), top_k=5)

    assert set(table["campaign_id"]) == {"autopilot-one"}  # everyone already had "spring"
    assert table["customer_id"].n_unique() == 200
    assert set(table["channel"]) <= {"push", "email"}


def test_uplift_is_learned_where_campaigns_have_a_control_group() -> None:
    events = planted_uplift_ledger().frame()

    model, card = train_personalisation(events, T0.date(), PLANTED_LAST, seed=3)

    metrics = card["metrics"]
    assert model.uplift is not None
    assert metrics["qini"] > metrics["qini_random_ci95_high"]
    assert metrics["qini"] > metrics["qini_popularity"]


# -- bad inputs --------------------------------------------------------------------------------


def test_an_empty_frame_is_refused_with_a_message_saying_so() -> None:
    with pytest.raises(PersonalisationInputError, match="empty"):
        train_personalisation(Ledger().frame(), T0.date(), T0.date(), seed=1)


def test_a_frame_without_the_payload_column_is_refused_naming_it() -> None:
    events = planted_uplift_ledger(customers=50).frame().drop("payload")

    with pytest.raises(PersonalisationInputError, match="payload"):
        train_personalisation(events, T0.date(), PLANTED_LAST, seed=1)


def test_a_window_where_nobody_redeemed_is_refused_as_a_single_class() -> None:
    ledger = planted_uplift_ledger(customers=100)
    ledger.rows = [r for r in ledger.rows if r["event_type"] != "redemption_succeeded"]

    with pytest.raises(PersonalisationInputError, match="single class"):
        train_personalisation(ledger.frame(), T0.date(), PLANTED_LAST, seed=1)


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    events = planted_uplift_ledger(customers=50).frame()

    with pytest.raises(PersonalisationInputError, match="empty window"):
        train_personalisation(events, T0.date(), (T0 - timedelta(days=1)).date(), seed=1)


def test_a_window_without_offers_is_refused_naming_the_missing_offers() -> None:
    events = planted_uplift_ledger(customers=50).frame()

    with pytest.raises(PersonalisationInputError, match="no offers"):
        train_personalisation(
            events, (T0 - timedelta(days=60)).date(), (T0 - timedelta(days=1)).date(), seed=1
        )


def test_an_unknown_split_is_refused_naming_the_choices() -> None:
    events = planted_uplift_ledger(customers=50).frame()

    with pytest.raises(PersonalisationInputError, match="auto, campaign, time"):
        train_personalisation(events, T0.date(), PLANTED_LAST, seed=1, split="random")


def test_next_best_offers_need_a_time_zone_on_as_of(
    trained: tuple[Any, dict[str, Any]], simulated: pl.DataFrame
) -> None:
    model, _ = trained

    with pytest.raises(PersonalisationInputError, match="time zone"):
        next_best_offers(model, simulated, datetime(2026, 3, 6))


def test_a_model_pickled_by_earlier_code_is_refused_asking_for_a_new_one(
    simulated: pl.DataFrame,
) -> None:
    class Old:
        features = ("tenure_days",)

    with pytest.raises(PersonalisationInputError, match="train a new one"):
        next_best_offers(Old(), simulated, datetime(2026, 3, 6, tzinfo=UTC))  # type: ignore[arg-type]


# -- the order cache ----------------------------------------------------------------------------


def test_decoded_orders_are_kept_per_lake_day_and_redone_when_a_day_changes(
    tmp_path: Path,
) -> None:
    ledger = planted_uplift_ledger(customers=40)
    events = ledger.frame()
    for (day,), rows in events.partition_by("event_date", as_dict=True).items():
        folder = tmp_path / "lake" / "events" / f"event_date={day}"
        folder.mkdir(parents=True)
        rows.write_parquet(folder / "events.parquet")
    last = date.fromisoformat(events["event_date"].max())
    key = ["customer_id", "at"]

    cached = cached_orders(tmp_path, last).collect().sort(key)

    assert_frame_equal(cached, decode_orders(events.lazy()).collect().sort(key))
    day = events["event_date"].min()
    ledger.order("c00001", datetime.fromisoformat(f"{day}T12:00:00+00:00"), amount=1234)
    changed = ledger.frame().filter(pl.col("event_date") == day)
    changed.write_parquet(tmp_path / "lake" / "events" / f"event_date={day}" / "events.parquet")
    again = cached_orders(tmp_path, last).collect()
    assert again.height == cached.height + 1
    assert 1234 in again["amount"].to_list()
    assert len(list(cache_dir(tmp_path).glob("*.parquet"))) == events["event_date"].n_unique()


def test_next_best_offers_from_the_order_cache_equal_those_from_the_events(
    trained: tuple[Any, dict[str, Any]], simulated_home: Path, simulated: pl.DataFrame
) -> None:
    model, _ = trained
    as_of = datetime(2026, 3, 6, tzinfo=UTC)
    orders = cached_orders(simulated_home, date(2026, 3, 6))

    cached = next_best_offers(model, simulated.lazy(), as_of, orders=orders)

    assert_frame_equal(cached, next_best_offers(model, simulated, as_of))


def test_the_model_card_lists_attributes_found_but_not_declared(
    booklet_model: tuple[Any, dict[str, Any]],
) -> None:
    _, card = booklet_model

    assert card["params"]["attribute_types"] == {"age": "numeric", "tier": "categorical"}
    assert card["params"]["attributes_not_declared"] == []
    assert json.dumps(card)  # the card is plain JSON
    assert np.isfinite(card["metrics"]["roc_auc"])


# -- promo models: the plots beside the card -----------------------------------------------------


def promo(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "redemption_core.cli", *args],
        capture_output=True,
        text=True,
        env={"PROMO_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_promo_models_evaluate_writes_the_plots_and_figures_beside_the_card(
    simulated_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(simulated_home / "lake", home / "lake")
    trained = promo(home, "--json", "models", "train", "personalisation", "--split", "time")
    card = json.loads(trained.stdout)

    evaluated = promo(home, "--json", "models", "evaluate", card["version"])

    assert trained.returncode == evaluated.returncode == 0, trained.stderr + evaluated.stderr
    folder = home / "models" / "personalisation" / card["version"] / "evaluation"
    for name in ("roc.png", "precision_recall.png", "calibration.png", "feature_importance.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    written = json.loads((folder / "evaluation.json").read_text())
    # the held-out part, scored by the fit without it: the card's figures again
    assert written["metrics"]["roc_auc"] == card["metrics"]["roc_auc"]
    assert written["metrics"]["roc_auc_ci95_low"] < written["metrics"]["roc_auc"]
    assert json.loads(evaluated.stdout)["plots"] == [str(folder / n) for n in written["plots"]]


def test_scoring_from_one_feature_matrix_gives_the_propensity_and_uplift_of_each_model() -> None:
    events = planted_uplift_ledger(customers=300).frame()
    model, _ = train_personalisation(events, T0.date(), PLANTED_LAST, seed=3)
    frame = features_at(events, model.vocab)

    propensity, uplift = model.predict(frame)

    np.testing.assert_allclose(propensity, model.predict_propensity(frame))
    np.testing.assert_allclose(uplift, model.predict_uplift(frame))  # type: ignore[arg-type]
