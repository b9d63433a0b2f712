"""Autopilot triggers through the real engine: who each trigger matches, de-duplication and
cool-down, control groups, and triggers left pending by a failure or a crash.

Time is a Clock the tests move; orders are recorded at the instants a story needs by moving it.
Every scenario ends with a ledger that `verify` rebuilds to the same projection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import (
    Clock,
    RecordingChannel,
    add_customers,
    autopilot_def,
    distributor,
    engine_at,
    events,
    ledger_rows,
    place_order,
    rule,
    segment_def,
)

from redemption_core.distribution.channels import PermanentDeliveryError
from redemption_core.distribution.distributor import Distributor
from redemption_core.domain.events import EventType
from redemption_core.domain.offers import in_control_group
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.verify import verify_ledger

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # customers sign up here, before any story


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def world(tmp_path: Path, clock: Clock | None = None) -> tuple[RedemptionEngine, Clock]:
    clock = clock or Clock(START)
    return engine_at(tmp_path, clock), clock


def matched(engine: RedemptionEngine, campaign_id: str = "auto") -> list[str]:
    """Customers whose trigger matched, in ledger order."""
    return [
        e.customer_id or ""
        for e in events(engine, EventType.TRIGGER_MATCHED)
        if e.campaign_id == campaign_id
    ]


def tick(engine: RedemptionEngine, **options: Any) -> list[str]:
    """One autopilot tick with recording channels; the customers it matched, sorted."""
    before = len(matched(engine))
    distributor(engine, **options).run_autopilot()
    return sorted(matched(engine)[before:])


def published_to(engine: RedemptionEngine) -> list[str]:
    return sorted(e.customer_id or "" for e in events(engine, EventType.VOUCHER_PUBLISHED))


def trigger_rows(engine: RedemptionEngine) -> list[tuple[Any, ...]]:
    return ledger_rows(
        engine,
        "SELECT customer_id, kind, status, reason FROM triggers ORDER BY customer_id, matched_at",
    )


def assert_clean(engine: RedemptionEngine) -> None:
    report = verify_ledger(engine.store.path)
    assert report.clean, [str(d) for d in report.differences]


def spender_world(tmp_path: Path, cooldown_days: int = 30) -> tuple[RedemptionEngine, Clock]:
    """ann and bob spent 20.00 each, cy nothing; an autopilot rewards a spend of 10.00."""
    engine, clock = world(tmp_path)
    add_customers(engine, "ann", "bob", "cy")
    place_order(engine, "ann", 2000)
    place_order(engine, "bob", 2000)
    trigger = {"type": "spend_threshold", "amount": 1000, "cooldown_days": cooldown_days}
    engine.create_from_definition(autopilot_def("auto", trigger))
    return engine, clock


# -- de-duplication and cool-down ----------------------------------------------------------------
def test_a_second_tick_at_the_same_instant_matches_nobody(tmp_path: Path) -> None:
    engine, _ = spender_world(tmp_path)
    sender = distributor(engine)
    [first] = sender.run_autopilot()

    [second] = sender.run_autopilot()

    assert (first.matched, first.published) == (2, 2)
    assert (second.matched, second.published, second.delivered) == (0, 0, 0)
    assert sorted(matched(engine)) == ["ann", "bob"] and published_to(engine) == ["ann", "bob"]
    assert_clean(engine)


def test_a_new_distributor_on_the_same_ledger_does_not_match_the_same_trigger_again(
    tmp_path: Path,
) -> None:
    engine, clock = spender_world(tmp_path)
    distributor(engine).run_autopilot()
    clock.advance(hours=1)

    again = tick(engine)

    assert again == [] and published_to(engine) == ["ann", "bob"]
    assert_clean(engine)


def test_the_same_customers_match_again_only_once_the_cooldown_has_passed(tmp_path: Path) -> None:
    engine, clock = spender_world(tmp_path, cooldown_days=30)
    tick(engine)

    clock.advance(days=29, hours=23)
    just_before = tick(engine)
    clock.advance(hours=1)
    after = tick(engine)

    assert just_before == []
    assert after == ["ann", "bob"]
    assert published_to(engine) == ["ann", "ann", "bob", "bob"]
    assert_clean(engine)


def test_two_overlapping_ticks_match_each_customer_once(tmp_path: Path) -> None:
    """A tick that overruns its schedule meets the next one: two processes, one ledger."""
    engine, _ = spender_world(tmp_path)
    other = engine_at(tmp_path, Clock(START))  # a second process on the same ledger file
    slow = distributor(engine)
    real_matches = Distributor._matches

    def matches_then_the_other_tick_runs(campaign: Any, now: datetime) -> list[str]:
        found = real_matches(slow, campaign, now)
        distributor(other).run_autopilot()  # runs completely while this one is between steps
        return found

    slow._matches = matches_then_the_other_tick_runs  # type: ignore[method-assign]

    slow.run_autopilot()

    assert sorted(matched(engine)) == ["ann", "bob"]
    assert published_to(engine) == ["ann", "bob"]
    assert_clean(engine)


# -- what each trigger matches -------------------------------------------------------------------
def test_gone_quiet_matches_regulars_whose_last_order_is_older_than_quiet_days(
    tmp_path: Path,
) -> None:
    engine, clock = world(tmp_path)
    add_customers(engine, "regular", "boundary", "recent", "once", "never")
    histories = {
        "regular": [at(2026, 3, 1), at(2026, 3, 22)],  # quiet for 40 days
        "boundary": [at(2026, 3, 1), at(2026, 4, 1)],  # quiet for exactly 30 days
        "recent": [at(2026, 3, 1), at(2026, 4, 21)],  # ordered 10 days ago
        "once": [at(2026, 3, 22)],  # quiet long enough, but not a regular
    }
    for customer, moments in histories.items():
        for moment in moments:
            clock.set(moment)
            place_order(engine, customer)
    clock.set(at(2026, 5, 1))
    trigger = {"type": "gone_quiet", "min_orders": 2, "quiet_days": 30}
    engine.create_from_definition(autopilot_def("auto", trigger))

    found = tick(engine)

    assert found == ["boundary", "regular"]
    assert [row[1:3] for row in trigger_rows(engine)] == [("gone_quiet", "completed")] * 2
    assert_clean(engine)


def test_gone_quiet_counts_only_orders_that_still_stand(tmp_path: Path) -> None:
    engine, clock = world(tmp_path)
    add_customers(engine, "ann")
    for day in (1, 2):
        clock.set(at(2026, 3, day))
        place_order(engine, "ann", order_id=f"o-{day}")
    engine.cancel_order("o-2", reason="never paid")
    clock.set(at(2026, 5, 1))
    trigger = {"type": "gone_quiet", "min_orders": 2, "quiet_days": 30}
    engine.create_from_definition(autopilot_def("auto", trigger))

    found = tick(engine)

    assert found == []
    assert_clean(engine)


PERSONAL_DATES = [
    # today, days_before, birthday, matches
    (at(2026, 3, 4), 3, "03-04", True),
    (at(2026, 3, 4), 3, "03-07", True),
    (at(2026, 3, 4), 3, "03-08", False),
    (at(2026, 3, 4), 3, "03-03", False),
    (at(2026, 3, 4), 0, "03-05", False),
    (at(2026, 12, 30), 5, "12-29", False),
    (at(2026, 12, 30), 5, "12-30", True),
    (at(2026, 12, 30), 5, "12-31", True),
    (at(2026, 12, 30), 5, "01-01", True),
    (at(2026, 12, 30), 5, "01-04", True),
    (at(2026, 12, 30), 5, "01-05", False),
    (at(2026, 2, 28), 0, "02-29", True),  # 2026 has no 02-29: celebrated on the 28th
    (at(2026, 2, 27), 1, "02-29", True),
    (at(2026, 2, 27), 0, "02-29", False),
    (at(2026, 3, 1), 0, "02-29", False),
    (at(2027, 2, 25), 7, "02-29", True),
    (at(2028, 2, 28), 0, "02-29", False),  # a leap year: it waits for the real day
    (at(2028, 2, 29), 0, "02-29", True),
    (at(2028, 2, 28), 0, "02-28", True),
]


@pytest.mark.parametrize(
    ("today", "days_before", "birthday", "matches"),
    PERSONAL_DATES,
    ids=[f"{t:%Y-%m-%d}+{d}d:{b}" for t, d, b, _ in PERSONAL_DATES],
)
def test_personal_date_matches_a_birthday_from_today_to_days_before_ahead(
    tmp_path: Path, today: datetime, days_before: int, birthday: str, matches: bool
) -> None:
    engine, clock = world(tmp_path)
    add_customers(engine, "ann", birthday=birthday)
    clock.set(today)
    trigger = {"type": "personal_date", "date": "birthday", "days_before": days_before}
    engine.create_from_definition(autopilot_def("auto", trigger))

    found = tick(engine)

    assert found == (["ann"] if matches else [])
    assert_clean(engine)


def test_personal_date_can_watch_the_anniversary_instead_of_the_birthday(tmp_path: Path) -> None:
    engine, clock = world(tmp_path)
    add_customers(engine, "wed", birthday="07-01", anniversary="03-06")
    add_customers(engine, "born", birthday="03-06", anniversary="07-01")
    clock.set(at(2026, 3, 4))
    trigger = {"type": "personal_date", "date": "anniversary", "days_before": 2}
    engine.create_from_definition(autopilot_def("auto", trigger))

    found = tick(engine)

    assert found == ["wed"]
    assert_clean(engine)


def test_a_birthday_window_that_crosses_new_year_fires_once_per_customer(tmp_path: Path) -> None:
    engine, clock = world(tmp_path)
    add_customers(engine, "ann", birthday="01-02")
    trigger = {"type": "personal_date", "days_before": 5}
    engine.create_from_definition(autopilot_def("auto", trigger))

    found = []
    for day in range(28, 32):
        clock.set(at(2026, 12, day))
        found += tick(engine)
    for day in range(1, 4):
        clock.set(at(2027, 1, day))
        found += tick(engine)

    assert found == ["ann"]
    assert published_to(engine) == ["ann"]
    assert_clean(engine)


def test_first_order_matches_customers_whose_first_order_is_within_days(tmp_path: Path) -> None:
    engine, clock = world(tmp_path)
    add_customers(engine, "new", "today", "old", "none")
    clock.set(at(2026, 3, 1))
    place_order(engine, "new")
    clock.set(at(2026, 2, 10))
    place_order(engine, "old")
    clock.set(at(2026, 3, 3))
    place_order(engine, "old")  # a recent order, but not the first
    clock.set(at(2026, 3, 4))
    place_order(engine, "today")
    engine.create_from_definition(autopilot_def("auto", {"type": "first_order", "within_days": 7}))

    found = tick(engine)

    assert found == ["new", "today"]
    assert_clean(engine)


def test_spend_threshold_matches_net_spend_at_or_above_the_amount(tmp_path: Path) -> None:
    engine, _ = world(tmp_path)
    add_customers(engine, "exact", "above", "below", "refunded", "two-orders")
    place_order(engine, "exact", 10_000)
    place_order(engine, "above", 12_000)
    place_order(engine, "below", 9_999)
    refunded = place_order(engine, "refunded", 12_000)
    engine.refund_order(refunded, 3_000)
    place_order(engine, "two-orders", 6_000)
    place_order(engine, "two-orders", 4_000)
    engine.create_from_definition(
        autopilot_def("auto", {"type": "spend_threshold", "amount": 10_000})
    )

    found = tick(engine)

    assert found == ["above", "exact", "two-orders"]
    assert_clean(engine)


def test_a_customer_who_signs_up_later_is_not_matched_before_signing_up(tmp_path: Path) -> None:
    engine, clock = world(tmp_path)
    add_customers(engine, "ann", birthday="03-04", signup_at="2026-06-01T00:00:00+00:00")
    clock.set(at(2026, 3, 4))
    engine.create_from_definition(autopilot_def("auto", {"type": "personal_date"}))

    found = tick(engine)

    assert found == []
    assert_clean(engine)


def test_an_autopilot_with_a_segment_matches_only_the_segments_members(tmp_path: Path) -> None:
    engine, _ = world(tmp_path)
    add_customers(engine, "vip", attributes={"tier": "gold"})
    add_customers(engine, "plain", attributes={"tier": "basic"})
    place_order(engine, "vip", 2000)
    place_order(engine, "plain", 2000)
    engine.define_segment(segment_def("gold", rule("attributes.tier", "==", "gold")))
    engine.create_from_definition(autopilot_def("auto", segment="gold"))

    found = tick(engine)

    assert found == ["vip"] and published_to(engine) == ["vip"]
    assert_clean(engine)


def test_a_paused_autopilot_does_not_tick(tmp_path: Path) -> None:
    engine, _ = world(tmp_path)
    add_customers(engine, "ann")
    place_order(engine, "ann", 2000)
    engine.create_from_definition(autopilot_def("auto", status="paused"))

    reports = distributor(engine).run_autopilot()

    assert reports == [] and matched(engine) == []
    assert_clean(engine)


# -- outcomes of a matched trigger ---------------------------------------------------------------
def test_a_held_out_customers_trigger_is_completed_as_held_out_with_nothing_sent(
    tmp_path: Path,
) -> None:
    customers = [f"cust-{i:02d}" for i in range(30)]
    engine, _ = world(tmp_path)
    add_customers(engine, *customers)
    for customer in customers:
        place_order(engine, customer, 2000)
    engine.create_from_definition(autopilot_def("auto", control_share=0.5))
    channel = RecordingChannel("email")
    held = {c for c in customers if in_control_group("auto", c, 0.5)}

    [report] = distributor(engine, {"email": channel}).run_autopilot()

    assert 0 < len(held) < len(customers) and report.held_out == len(held)
    statuses = {row[0]: row[2] for row in trigger_rows(engine)}
    assert {c for c, status in statuses.items() if status == "held_out"} == held
    assert {c for c, status in statuses.items() if status == "completed"} == set(customers) - held
    completions = {
        e.customer_id: e.payload["outcome"] for e in events(engine, EventType.TRIGGER_COMPLETED)
    }
    assert {c for c, outcome in completions.items() if outcome == "held_out"} == held
    held_events = events(engine, EventType.CUSTOMER_HELD_OUT)
    assert {e.customer_id for e in held_events} == held
    assert all(e.payload["source"] == "autopilot" and e.payload["trigger_id"] for e in held_events)
    assert held.isdisjoint(published_to(engine))
    assert held.isdisjoint(m.customer_id for m in channel.sent)
    assert distributor(engine).pending_triggers() == []
    assert_clean(engine)


def test_a_trigger_for_a_customer_without_consent_fails_with_no_consent(tmp_path: Path) -> None:
    engine, _ = world(tmp_path)
    add_customers(engine, "ann", consent=())
    place_order(engine, "ann", 2000)
    engine.create_from_definition(autopilot_def("auto"))

    [report] = distributor(engine).run_autopilot()

    assert report.skipped == {"no_consent": 1}
    assert trigger_rows(engine) == [("ann", "spend_threshold", "failed", "no_consent")]
    assert published_to(engine) == []
    assert_clean(engine)


def test_a_permanent_delivery_failure_fails_the_trigger_and_leaves_nothing_pending(
    tmp_path: Path,
) -> None:
    engine, _ = spender_world(tmp_path)
    refused = RecordingChannel("email", failure=PermanentDeliveryError("mailbox does not exist"))
    sender = distributor(engine, {"email": refused})

    [report] = sender.run_autopilot()

    assert (report.published, report.delivered, report.failed) == (2, 0, 2)
    assert trigger_rows(engine) == [
        ("ann", "spend_threshold", "failed", "delivery_failed"),
        ("bob", "spend_threshold", "failed", "delivery_failed"),
    ]
    attempts = events(engine, EventType.DELIVERY_ATTEMPTED)
    assert [a.payload["outcome"] for a in attempts] == ["permanent_failure"] * 2
    assert sender.pending_triggers() == []
    assert_clean(engine)


def crashed_tick(tmp_path: Path) -> tuple[RedemptionEngine, Clock, Distributor, RecordingChannel]:
    """A tick killed at its first send: triggers matched and vouchers published, none sent."""
    engine, clock = spender_world(tmp_path)
    channel = RecordingChannel("email", crash_on=[1])
    sender = distributor(engine, {"email": channel})
    with pytest.raises(RuntimeError):
        sender.run_autopilot()
    return engine, clock, sender, channel


def test_triggers_left_by_a_crash_are_listed_as_pending_with_their_age(tmp_path: Path) -> None:
    engine, clock, sender, _ = crashed_tick(tmp_path)
    clock.advance(minutes=90)

    pending = sender.pending_triggers()

    assert sorted((p["customer_id"], p["campaign_id"], p["trigger"]) for p in pending) == [
        ("ann", "auto", "spend_threshold"),
        ("bob", "auto", "spend_threshold"),
    ]
    assert [p["age_s"] for p in pending] == [5400.0, 5400.0]
    assert all(p["matched_at"] and p["trigger_id"].startswith("trg_") for p in pending)
    assert_clean(engine)


def test_the_tick_after_a_crash_completes_the_pending_triggers_without_publishing_again(
    tmp_path: Path,
) -> None:
    engine, clock, sender, channel = crashed_tick(tmp_path)
    clock.advance(minutes=90)

    [report] = sender.run_autopilot()

    assert (report.matched, report.published, report.delivered) == (0, 0, 2)
    assert sender.pending_triggers() == []
    assert [row[2] for row in trigger_rows(engine)] == ["completed", "completed"]
    offers = events(engine, EventType.VOUCHER_PUBLISHED)
    assert sorted(e.customer_id or "" for e in offers) == ["ann", "bob"]
    assert sorted(m.message_id for m in channel.sent) == sorted(e.voucher_id or "" for e in offers)
    completed = {
        e.payload["trigger_id"]: e.voucher_id for e in events(engine, EventType.TRIGGER_COMPLETED)
    }
    assert sorted(completed.values()) == sorted(e.voucher_id or "" for e in offers)
    assert {e.payload["trigger_id"]: e.voucher_id for e in offers} == completed
    assert_clean(engine)
