"""Fraud features on hand-built events: windows end at the attempt and never look ahead."""

from __future__ import annotations

import polars as pl
import pytest
from fraud_builders import Events

from models_ml.data import DataError
from models_ml.fraud_features import FEATURES, build_attempt_features


def column(events: Events, name: str) -> list[float]:
    return build_attempt_features(events.frame())[name].to_list()


def test_device_failures_count_only_earlier_attempts_within_the_hour() -> None:
    events = Events()
    for minute in (0, 10, 65):
        events.validate(minute, code=f"G{minute}", device_hash="dev-a")
    events.validate(5, code="OTHER", device_hash="dev-b")

    features = build_attempt_features(events.frame()).sort("seq")

    assert features["device_failures_1h"].to_list() == [1, 2, 2, 1]
    assert features["device_codes_1h"].to_list() == [1, 2, 2, 1]
    assert features["device_fail_ratio_1h"].to_list() == [1.0, 1.0, 1.0, 1.0]


def test_attempts_at_the_same_instant_are_ordered_by_seq_so_a_burst_builds_up() -> None:
    events = Events()
    for i in range(4):
        events.redeem(0, code="HAPPY5", customer_id=f"c{i}")

    assert column(events, "code_attempts_10m") == [1, 2, 3, 4]
    assert column(events, "code_customers_24h") == [1, 2, 3, 4]


def test_a_code_redeemed_by_someone_other_than_its_holder_is_a_holder_mismatch() -> None:
    events = Events()
    events.add("voucher_published", -60, {"code": "NEW-1"}, voucher_id="v1", customer_id="holder")
    events.redeem(0, code="NEW-1", voucher_id="v1", customer_id="holder")
    events.redeem(5, code="NEW-1", voucher_id="v1", customer_id="friend")
    events.redeem(9, code="NEW-1", voucher_id="v1", customer_id="stranger")

    assert column(events, "holder_mismatch") == [0, 1, 1]
    assert column(events, "code_nonholders_7d") == [0, 1, 2]


def test_accounts_per_device_and_payment_count_distinct_customers_over_seven_days() -> None:
    events = Events()
    for day, customer in ((0, "a"), (1, "b"), (2, "a"), (3, "c"), (11, "d")):
        events.redeem(day * 1440, customer_id=customer, device_hash="farm", payment_hash="card")

    assert column(events, "device_customers_7d") == [1, 2, 2, 3, 1]
    assert column(events, "payment_customers_7d") == [1, 2, 2, 3, 1]


def test_refunds_and_rollbacks_before_an_attempt_count_for_its_customer() -> None:
    events = Events()
    events.redeem(0, customer_id="abuser", order_id="o1", amount=3000)
    events.add("order_refunded", 30, {"amount": 3000}, customer_id="abuser", order_id="o1")
    events.add("order_refunded", 40, {"amount": 100}, customer_id="abuser", order_id="o-plain")
    events.add("redemption_rolled_back", 50, {}, customer_id="abuser", redemption_id="r1")
    events.redeem(60, customer_id="abuser", order_id="o2")

    features = build_attempt_features(events.frame())

    later = features.row(1, named=True)
    assert (later["customer_refunds_7d"], later["customer_voucher_refunds_7d"]) == (2, 1)
    assert (later["customer_full_refunds_7d"], later["customer_rollbacks_7d"]) == (1, 1)
    assert later["customer_refund_ratio_7d"] == 0.5
    assert features.row(0, named=True)["customer_refunds_7d"] == 0


def test_a_refund_of_everything_paid_for_a_discounted_order_is_a_full_refund() -> None:
    # 1,000 off an order of 2,000: the customer paid 1,000, all the ledger lets them have back.
    events = Events()
    events.add(
        "redemption_succeeded",
        0,
        {"code": "BIG", "order": {"id": "o1", "amount": 2000}, "discount": 1000},
        customer_id="abuser",
        order_id="o1",
    )
    events.add("order_refunded", 30, {"amount": 1000}, customer_id="abuser", order_id="o1")
    events.redeem(60, customer_id="abuser", order_id="o2")

    features = build_attempt_features(events.frame())

    assert features["refunded_full"].to_list() == [True, False]
    assert features.row(1, named=True)["customer_full_refunds_7d"] == 1


def test_customer_less_staff_redemptions_at_night_count_as_off_hours_manual() -> None:
    events = Events()
    night = 11 * 60 + 5  # 23:05 UTC
    for i in range(3):
        events.redeem(night + i, code=f"FLY-{i}", staff_id="s1", store_id="st", sales_channel="pos")
    events.redeem(night + 5, code="FLY-9", staff_id="s1", store_id="st", customer_id="c1")
    events.redeem(25 * 60, code="FLY-8", staff_id="s2", store_id="st")  # 13:00 next day

    features = build_attempt_features(events.frame()).sort("seq")

    assert features["staff_off_hours_manual_24h"].to_list() == [1, 2, 3, 3, 0]
    assert features["store_off_hours_manual_24h"].to_list() == [1, 2, 3, 3, 3]


def test_account_age_is_hours_since_the_customer_was_created() -> None:
    events = Events()
    events.add("customer_created", -90, {}, customer_id="fresh")
    events.redeem(0, customer_id="fresh")
    events.redeem(1, customer_id="regular")  # created before the frame: an old account
    events.redeem(2)  # no customer at all

    assert column(events, "account_age_h") == [1.5, 24.0 * 365, -1.0]


def test_every_feature_is_numeric_and_never_null() -> None:
    events = Events()
    events.validate(0, device_hash="d")
    events.redeem(1)

    features = build_attempt_features(events.frame())

    assert features.select(FEATURES).null_count().sum_horizontal().item() == 0
    assert all(features.schema[name] == pl.Float64 for name in FEATURES)


def test_a_frame_without_a_needed_column_is_refused_naming_it() -> None:
    frame = Events().frame().drop("device_hash", "payload")

    with pytest.raises(DataError, match="missing columns: device_hash, payload"):
        build_attempt_features(frame)


def test_a_frame_without_attempts_is_refused() -> None:
    events = Events()
    events.add("customer_created", 0, {}, customer_id="c1")

    with pytest.raises(DataError, match="no redemption attempts"):
        build_attempt_features(events.frame())
