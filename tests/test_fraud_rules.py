"""The named rules on hand-built ledgers: thresholds scaled to the merchant's own baselines but
never below their floors, quiet hours from the store's own hours, households against account
farms; and the one page that documents every threshold, generated from the code."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
from fraud_builders import T0, Events

from models_ml.fraud_docs import rules_markdown
from models_ml.fraud_features import build_attempt_features
from models_ml.fraud_rules import (
    MIN_BASELINE_ACTOR_DAYS,
    RULES,
    apply_rules,
    quiet_hours,
    thresholds,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "fraud-rules.md"


def test_the_rules_page_is_the_one_generated_from_the_code() -> None:
    assert DOCS.read_text() == rules_markdown(), (
        "run: python -m models_ml.fraud_docs > docs/fraud-rules.md"
    )


def actor_days(channel: str, devices: int, failures: float) -> pl.DataFrame:
    """`devices` device-days in a channel, each at `failures` failures in an hour."""
    frame = pl.DataFrame(
        {
            "event_date": ["2026-03-04"] * devices,
            "device_hash": [f"{channel}-{i}" for i in range(devices)],
            "sales_channel": [channel] * devices,
        }
    )
    values = {r.value: 0.0 for r in RULES.values()}
    values["device_failures_1h"] = failures
    entity_columns = ("ip_hash", "payment_hash", "customer_id", "code", "staff_id", "store_id",
                      "campaign_id", "hour_utc")  # fmt: skip
    return frame.with_columns(
        *[pl.lit(v).alias(k) for k, v in values.items()],
        *[pl.lit(None, pl.String).alias(c) for c in entity_columns],
    )


def test_a_busy_channel_raises_its_threshold_and_a_quiet_one_keeps_the_floor() -> None:
    # a shared kiosk where many devices fail 6 times an hour, and an app where none fails
    frame = pl.concat(
        [
            actor_days("kiosk", MIN_BASELINE_ACTOR_DAYS, 6.0),
            actor_days("app", MIN_BASELINE_ACTOR_DAYS, 0.0),
        ]
    )

    table = thresholds(frame).filter(pl.col("rule") == "device_failed_attempts")
    by_segment = dict(table.select("segment_value", "threshold").iter_rows())

    assert by_segment["kiosk"] == 18.0  # 3 x its baseline of 6
    assert by_segment["app"] == RULES["device_failed_attempts"].at_least


def test_dozens_of_bots_in_one_channel_do_not_raise_its_threshold() -> None:
    # 5% of the web's device-days are guessing bots failing 150 times an hour
    bots = MIN_BASELINE_ACTOR_DAYS // 20
    frame = pl.concat(
        [actor_days("web", MIN_BASELINE_ACTOR_DAYS - bots, 0.0), actor_days("web", bots, 150.0)]
    ).with_columns(device_hash=pl.format("d{}", pl.int_range(pl.len())))

    table = thresholds(frame).filter(pl.col("rule") == "device_failed_attempts")

    assert set(table["threshold"]) == {RULES["device_failed_attempts"].at_least}


def test_a_merchant_with_few_actor_days_has_only_the_floors() -> None:
    frame = actor_days("kiosk", MIN_BASELINE_ACTOR_DAYS - 1, 6.0)

    table = thresholds(frame).filter(pl.col("rule") == "device_failed_attempts")

    assert table["threshold"].to_list() == [RULES["device_failed_attempts"].at_least]


def test_quiet_hours_are_the_hours_a_store_is_as_good_as_closed() -> None:
    events = Events()
    for i in range(400):  # lunch and dinner only, every day
        hour = 12 if i % 2 else 19
        events.redeem(T0.replace(hour=hour) + timedelta(days=i // 20, minutes=i % 20), code=f"C{i}",
                      store_id="lunch-and-dinner", customer_id=f"c{i}")  # fmt: skip
    attempts = build_attempt_features(events.frame())

    quiet = quiet_hours(attempts).filter(pl.col("place") == "store:lunch-and-dinner")

    assert 3.0 in quiet["hour_utc"].to_list() and 23.0 in quiet["hour_utc"].to_list()
    assert 12.0 not in quiet["hour_utc"].to_list() and 19.0 not in quiet["hour_utc"].to_list()


def welcome_takes(events: Events, device: str, card: str, minutes: list[float]) -> None:
    for i, at in enumerate(minutes):
        account = f"{device}-account-{i}"
        events.add("customer_created", at - 5, {}, customer_id=account)
        events.redeem(at, code="WELCOME10", customer_id=account, device_hash=device,
                      payment_hash=card, sales_channel="app", order_id=f"{device}-o{i}")  # fmt: skip


def fired(events: Events, rule: str) -> set[str]:
    ruled, _ = apply_rules(build_attempt_features(events.frame()))
    return set(ruled.filter(pl.col(f"rule__{rule}"))["device_hash"].drop_nulls())


def test_a_household_sharing_a_tablet_over_weeks_is_not_a_farm_of_new_accounts() -> None:
    events = Events()
    week = 7 * 24 * 60
    welcome_takes(events, "family-tablet", "family-card", [0, 2 * week, 4 * week, 6 * week])
    welcome_takes(events, "farm-phone", "farm-card", [0, 10, 25, 40])

    assert fired(events, "new_accounts_on_device") == {"farm-phone"}
    assert "family-tablet" not in fired(events, "new_accounts_on_payment")
