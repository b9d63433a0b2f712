"""Reward personalisation: point-in-time features, propensity, uplift and next best offers."""

from __future__ import annotations

import json
import pickle
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from models_ml.order_cache import cache_dir, cached_orders
from models_ml.personalisation import (
    PersonalisationInputError,
    evaluate_personalisation,
    ndcg_at_k,
    next_best_offers,
    qini_coefficient,
    train_personalisation,
)
from models_ml.personalisation_features import (
    build_tables,
    customer_features,
    customer_snapshot,
    decode_orders,
    labelled_offers,
)
from pipelines.ledger_extract import LAKE_SCHEMA, Lake, sync_lake
from redemption_core.simulate import SimulationConfig, simulate

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
PLANTED_LAST = (T0 + timedelta(days=59)).date()  # the planted ledger's assignments and outcomes


# -- builders ----------------------------------------------------------------------------------


class Ledger:
    """Lake-schema event rows, built one call per event; `frame()` is what the lake would hold."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self, event_type: str, at: datetime, payload: dict[str, Any] | None = None, **ids: str
    ) -> None:
        row: dict[str, Any] = {name: None for name in LAKE_SCHEMA.names}
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        row.update(
            seq=len(self.rows) + 1,
            event_id=f"evt_{len(self.rows) + 1:028x}",
            event_type=event_type,
            occurred_at=stamp,
            recorded_at=stamp,
            payload=json.dumps(payload or {}),
            event_date=stamp[:10],
            **ids,
        )
        self.rows.append(row)

    def campaign(
        self, campaign_id: str, at: datetime = T0 - timedelta(days=90), **overrides: Any
    ) -> None:
        definition = {
            "id": campaign_id,
            "status": "active",
            "active_from": "2025-01-01T00:00:00.000000Z",
            "active_until": "2027-01-01T00:00:00.000000Z",
            "voucher": {"kind": "unique"},
            "discount": {"type": "amount", "amount_off": 500},
            "rules": {"valid_days_after_publication": 14},
            "distribution": {
                "mode": "promotion",
                "channels": ["push", "email"],
                "control_share": 0.5,
            },
            **overrides,
        }
        self.add("campaign_created", at, {"definition": definition}, campaign_id=campaign_id)

    def customer(
        self, customer_id: str, at: datetime, email: bool = True, push: bool = False
    ) -> None:
        consent = {"email": email, "sms": False, "push": push}
        self.add(
            "customer_created",
            at,
            {"signup_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "consent": consent},
            customer_id=customer_id,
        )

    def order(
        self,
        customer_id: str,
        at: datetime,
        amount: int = 2000,
        category: str = "pizza",
        order_id: str | None = None,
    ) -> None:
        order_id = order_id or f"o{len(self.rows):06d}"
        items = [
            {"product_id": category, "category": category, "quantity": 2, "unit_price": amount // 2}
        ]
        self.add(
            "order_recorded",
            at,
            {"amount": amount, "currency": "EUR", "items": items},
            customer_id=customer_id,
            order_id=order_id,
            sales_channel="app",
        )

    def publish(
        self,
        customer_id: str,
        campaign_id: str,
        voucher_id: str,
        at: datetime,
        channel: str = "email",
    ) -> None:
        self.add("voucher_published", at, {"code": voucher_id.upper()}, customer_id=customer_id,
                 campaign_id=campaign_id, voucher_id=voucher_id, channel=channel)  # fmt: skip

    def redeem(
        self,
        customer_id: str,
        campaign_id: str,
        voucher_id: str,
        at: datetime,
        redemption_id: str = "",
    ) -> None:
        self.add("redemption_succeeded", at, {"code": voucher_id.upper(), "discount": 500},
                 customer_id=customer_id, campaign_id=campaign_id, voucher_id=voucher_id,
                 redemption_id=redemption_id or f"r_{voucher_id}")  # fmt: skip

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            self.rows,
            schema=dict(zip(LAKE_SCHEMA.names, [pl.Int64] + [pl.String] * 19, strict=True)),
        )


def planted_uplift_ledger(customers: int = 1_200, seed: int = 5) -> Ledger:
    """Half the customers (salad eaters) order far more often when offered; the others order
    at the same rate either way. Each is assigned once, treated or held out by a coin."""
    rng = random.Random(seed)
    ledger = Ledger()
    ledger.campaign("spring")
    for i in range(customers):
        customer = f"c{i:05d}"
        persuadable = i % 2 == 0
        ledger.customer(customer, T0 - timedelta(days=80), push=rng.random() < 0.5)
        for k in range(3):
            ledger.order(customer, T0 - timedelta(days=70 - 20 * k, hours=rng.random()),
                         category="salad" if persuadable else "pizza")  # fmt: skip
        at = T0 + timedelta(days=i % 30, hours=6)
        treated = rng.random() < 0.5
        if treated:
            ledger.publish(customer, "spring", f"v_{i:05d}", at)
        else:
            ledger.add(
                "customer_held_out",
                at,
                {"source": "promotion"},
                customer_id=customer,
                campaign_id="spring",
            )
        converts = rng.random() < (0.8 if treated and persuadable else 0.3)
        if converts:
            when = at + timedelta(days=rng.uniform(0.5, 10))
            ledger.order(customer, when, category="salad" if persuadable else "pizza")
            if treated and rng.random() < 0.7:
                ledger.redeem(customer, "spring", f"v_{i:05d}", when)
    ledger.order("c00000", T0 + timedelta(days=60))  # the data runs past every horizon
    return ledger


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    # 60 days rather than 45: with a 14-day label horizon, a 45-day run leaves a single promotion
    # batch in the later (held-out) part, so no customer has two offers there to rank.
    home: Path = tmp_path_factory.mktemp("personalisation")
    simulate(home, SimulationConfig(customers=800, days=60, seed=3), progress=None)
    sync_lake(home / "ledger.sqlite", Lake(home / "lake"))
    return pl.scan_parquet(
        str(home / "lake" / "events" / "*" / "*.parquet"), hive_partitioning=True
    ).collect()


SIM_FIRST, SIM_LAST = date(2026, 1, 5), date(2026, 3, 5)


@pytest.fixture(scope="module")
def trained(simulated: pl.DataFrame) -> tuple[Any, dict[str, Any]]:
    return train_personalisation(simulated, SIM_FIRST, SIM_LAST, seed=11)


# -- features ----------------------------------------------------------------------------------


def test_customer_features_count_only_what_happened_before_the_moment() -> None:
    ledger = Ledger()
    ledger.campaign("spring")
    ledger.customer("ann", T0 - timedelta(days=100), email=True, push=False)
    ledger.order("ann", T0 - timedelta(days=40), amount=3000, category="pasta", order_id="o1")
    ledger.order(
        "ann", T0 - timedelta(days=10, hours=-1), amount=1000, category="salad", order_id="o2"
    )
    ledger.add(
        "order_refunded", T0 - timedelta(days=5), {"amount": 400}, customer_id="ann", order_id="o1"
    )
    ledger.publish("ann", "spring", "v_1", T0 - timedelta(days=20), channel="email")
    ledger.add(
        "voucher_accepted",
        T0 - timedelta(days=19),
        {},
        customer_id="ann",
        campaign_id="spring",
        voucher_id="v_1",
    )
    ledger.redeem("ann", "spring", "v_1", T0 - timedelta(days=10, hours=-1))
    ledger.add("consent_changed", T0 - timedelta(days=3), {"channel": "push", "granted": True},
               customer_id="ann", channel="push")  # fmt: skip
    ledger.order("ann", T0, amount=9000, category="pizza")  # at the moment itself: not yet known
    ledger.order("ann", T0 + timedelta(days=1), amount=9000, category="pizza")  # the future
    tables = build_tables(ledger.frame())

    row = customer_features(tables, pl.DataFrame({"customer_id": ["ann"], "at": [T0]})).row(
        0, named=True
    )

    assert row["orders_total"] == 2
    assert row["spend_net"] == 3000 + 1000 - 400
    assert row["avg_order_value"] == 2000
    assert row["orders_30d"] == 1 and row["orders_90d"] == 2
    assert row["days_since_last_order"] == pytest.approx(10 - 1 / 24)
    assert row["tenure_days"] == pytest.approx(100)
    assert row["share_cat_pasta"] == 0.5 and row["share_cat_salad"] == 0.5
    assert row["offers_total"] == 1 and row["offers_email"] == 1 and row["offers_push"] == 0
    assert row["accepted_total"] == 1
    assert row["offer_redemptions"] == 1 and row["redemptions_email"] == 1
    assert row["refunds_total"] == 1
    assert row["consent_email"] == 1 and row["consent_push"] == 1


def test_features_before_the_first_order_know_nothing_of_it() -> None:
    ledger = Ledger()
    ledger.customer("bo", T0 - timedelta(days=10))
    ledger.order("bo", T0 + timedelta(hours=1))
    tables = build_tables(ledger.frame())

    row = customer_features(tables, pl.DataFrame({"customer_id": ["bo"], "at": [T0]})).row(
        0, named=True
    )

    assert row["orders_total"] == 0
    assert row["days_since_last_order"] is None
    assert row["days_since_first_order"] is None
    assert row["avg_order_value"] is None


def test_an_offer_is_labelled_by_a_redemption_within_its_horizon_that_was_not_rolled_back() -> None:
    ledger = Ledger()
    ledger.campaign("spring", rules={"valid_days_after_publication": 5})
    for name in ("in_time", "too_late", "rolled_back", "never"):
        ledger.customer(name, T0 - timedelta(days=30))
        ledger.publish(name, "spring", f"v_{name}", T0)
    ledger.redeem("in_time", "spring", "v_in_time", T0 + timedelta(days=4))
    ledger.redeem("too_late", "spring", "v_too_late", T0 + timedelta(days=6))
    ledger.redeem(
        "rolled_back", "spring", "v_rolled_back", T0 + timedelta(days=1), redemption_id="r_x"
    )
    ledger.add("redemption_rolled_back", T0 + timedelta(days=2), {"reason": "voided"},
               campaign_id="spring", voucher_id="v_rolled_back", redemption_id="r_x")  # fmt: skip

    offers = labelled_offers(build_tables(ledger.frame()), label_days=14)

    labels = dict(offers.select("customer_id", "label").iter_rows())
    assert labels == {"in_time": 1, "too_late": 0, "rolled_back": 0, "never": 0}
    assert offers["horizon_end"].unique().to_list() == [T0 + timedelta(days=5)]


# -- metrics -----------------------------------------------------------------------------------


def test_ndcg_rewards_putting_the_redeemed_offer_first_and_scores_ties_as_random() -> None:
    groups = np.array(["a", "a", "a"])
    labels = np.array([0, 1, 0])

    best = ndcg_at_k(groups, labels, np.array([0.1, 0.9, 0.2]), k=3)
    worst = ndcg_at_k(groups, labels, np.array([0.9, 0.1, 0.2]), k=3)
    tied = ndcg_at_k(groups, labels, np.zeros(3), k=3)

    assert best == 1.0
    assert worst == pytest.approx(0.5)
    assert tied == pytest.approx((1 + 1 / np.log2(3) + 0.5) / 3)


def test_qini_is_positive_for_a_ranking_by_the_true_uplift_and_zero_for_a_constant() -> None:
    rng = np.random.default_rng(0)
    true_uplift = rng.uniform(0, 0.5, 4_000)
    treated = rng.integers(0, 2, 4_000)
    outcome = (rng.uniform(size=4_000) < 0.2 + treated * true_uplift).astype(int)

    assert qini_coefficient(true_uplift, treated, outcome) > 0.01
    assert qini_coefficient(-true_uplift, treated, outcome) < -0.01
    assert qini_coefficient(np.zeros(4_000), treated, outcome) == pytest.approx(0.0)


# -- on a simulation ---------------------------------------------------------------------------


def test_propensity_beats_the_random_baseline_on_roc_auc_and_pr_auc(
    trained: tuple[Any, dict[str, Any]],
) -> None:
    _, card = trained
    metrics = card["metrics"]

    assert metrics["roc_auc"] > metrics["roc_auc_random"] + 0.1
    assert metrics["pr_auc"] > metrics["pr_auc_random"]
    # NDCG@3 is reported but not asserted here: on this small simulation few customers hold
    # two offers in the held-out days, and the model is level with random (0.83 vs 0.84);
    # on 4,000 customers x 90 days it is 0.92 against 0.78.
    assert 0 < metrics["ndcg_at_3"] <= 1
    assert metrics["roc_auc"] > metrics["roc_auc_popularity"]
    assert card["primary_metric"] in metrics
    assert card["training_window"] == {"from": "2026-01-05", "to": "2026-03-05"}
    assert len(card["data_fingerprint"]) == 64


def test_training_twice_on_the_same_data_and_seed_gives_the_same_model_bytes(
    simulated: pl.DataFrame, trained: tuple[Any, dict[str, Any]]
) -> None:
    model, card = trained

    again, card_again = train_personalisation(simulated, SIM_FIRST, SIM_LAST, seed=11)

    assert pickle.dumps(again, protocol=5) == pickle.dumps(model, protocol=5)
    assert card_again == card


def test_evaluation_on_the_window_reports_the_same_metric_names_as_training(
    simulated: pl.DataFrame, trained: tuple[Any, dict[str, Any]]
) -> None:
    model, _ = trained

    metrics = evaluate_personalisation(model, simulated, date(2026, 2, 16), SIM_LAST)

    assert {
        "roc_auc",
        "roc_auc_random",
        "roc_auc_popularity",
        "roc_auc_own_history",
        "ndcg_at_3",
    } <= set(metrics)
    assert metrics["roc_auc_random"] == 0.5


def test_next_best_offers_give_each_customer_one_ranked_list_of_offerable_campaigns(
    simulated: pl.DataFrame, trained: tuple[Any, dict[str, Any]]
) -> None:
    model, _ = trained
    as_of = datetime(2026, 3, 6, tzinfo=UTC)
    published = simulated.filter(
        (pl.col("event_type") == "voucher_published") & (pl.col("occurred_at") < "2026-03-06")
    ).select("customer_id", "campaign_id")
    promotions = {"new-dish"} | {
        c for c in published["campaign_id"].unique() if c.startswith(("vip-", "slow-"))
    }

    table = next_best_offers(model, simulated, as_of, top_k=3)

    ranks = table.group_by("customer_id").agg(
        pl.col("rank").sort(), pl.col("campaign_id").n_unique().alias("n")
    )
    assert all(r.to_list() == list(range(1, len(r) + 1)) for r in ranks["rank"])
    assert (ranks["n"] == ranks["rank"].list.len()).all()
    assert table["rank"].max() == 3
    assert set(table["campaign_id"]) <= {
        "winback",
        "celebration",
        *promotions,
    }  # never welcome, flyer, happy-hour
    assert table.join(published.filter(pl.col("campaign_id").is_in(list(promotions))),
                      on=["customer_id", "campaign_id"], how="semi").height == 0  # fmt: skip
    ordered = table.sort(["customer_id", "rank"])
    assert (
        ordered.group_by("customer_id", maintain_order=True)
        .agg(pl.col("score").diff().max())["score"]
        .fill_null(0)
        <= 0
    ).all()
    assert table["uplift"].null_count() == 0


# -- uplift on a planted effect ----------------------------------------------------------------


def test_uplift_model_finds_the_customers_a_planted_offer_changes() -> None:
    events = planted_uplift_ledger().frame()

    _, card = train_personalisation(events, T0.date(), PLANTED_LAST, seed=3)

    metrics = card["metrics"]
    assert metrics["qini_coefficient"] > metrics["qini_random"] + 0.02
    assert metrics["qini_coefficient"] > metrics["qini_coefficient_popularity"]


def test_next_best_offers_leave_out_paused_ended_and_unconsented_campaigns() -> None:
    ledger = planted_uplift_ledger(customers=200)
    ledger.campaign("paused-one")
    ledger.add(
        "campaign_status_changed",
        T0,
        {"status": "paused", "previous": "active"},
        campaign_id="paused-one",
    )
    ledger.campaign("ended-one", active_until="2026-03-01T00:00:00.000000Z")
    ledger.campaign("sms-only", distribution={"mode": "promotion", "channels": ["sms"]})
    ledger.campaign("autopilot-one", distribution={"mode": "autopilot", "channels": ["push", "email"],
                                                   "trigger": {"type": "gone_quiet", "quiet_days": 21}})  # fmt: skip
    events = ledger.frame()
    model, _ = train_personalisation(events, T0.date(), PLANTED_LAST, seed=3)

    table = next_best_offers(model, events, T0 + timedelta(days=50), top_k=5)

    assert set(table["campaign_id"]) == {"autopilot-one"}  # everyone already had "spring"
    assert table["customer_id"].n_unique() == 200
    pushes = dict(table.select("customer_id", "channel").iter_rows())
    assert set(pushes.values()) <= {"push", "email"}


# -- bad inputs --------------------------------------------------------------------------------


def test_an_empty_frame_is_refused_with_a_message_saying_so() -> None:
    empty = Ledger().frame()

    with pytest.raises(PersonalisationInputError, match="empty"):
        train_personalisation(empty, T0.date(), T0.date(), seed=1)


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


def test_next_best_offers_need_a_time_zone_on_as_of(
    trained: tuple[Any, dict[str, Any]], simulated: pl.DataFrame
) -> None:
    model, _ = trained

    with pytest.raises(PersonalisationInputError, match="time zone"):
        next_best_offers(model, simulated, datetime(2026, 3, 6))


# -- scoring: one moment, every customer --------------------------------------------------------


def test_the_scoring_snapshot_gives_every_customer_the_features_of_the_as_of_joins(
    simulated: pl.DataFrame,
) -> None:
    # Scoring computes the features with one group-by per customer; training with as-of joins.
    as_of = datetime(2026, 3, 6, tzinfo=UTC)
    tables = build_tables(simulated.filter(pl.col("occurred_at") < "2026-03-06"))

    snapshot = customer_snapshot(simulated.lazy(), as_of, tables.categories)

    expected = customer_features(tables, snapshot.profile.select("customer_id", "at"))
    assert snapshot.profile.height > 100
    assert_frame_equal(snapshot.profile, expected)


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
