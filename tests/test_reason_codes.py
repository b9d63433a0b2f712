"""Every reason code, fired through the real engine on a SQLite ledger.

Each test shows the code appearing for a request that breaks one rule, and the same request
passing once that one condition is lifted, so removing the rule makes the test fail.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from builders import (
    NOW,
    Clock,
    campaign,
    cart,
    codes,
    engine_at,
    events,
    gift_card,
    item,
    order,
    redeem,
    standalone,
    unique_def,
    unique_voucher,
    voucher,
)

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import EventType
from redemption_core.domain.orders import RequestContext
from redemption_core.domain.reasons import CATALOG, Code

REASON_CODES_DOC = Path(__file__).resolve().parents[1] / "docs" / "reason-codes.md"


def test_unknown_code_is_resource_not_found_for_validate_and_redeem(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)

    validation = engine.validate("NO-SUCH-CODE", order())
    redemption = redeem(engine, "NO-SUCH-CODE")

    assert codes(validation) == {Code.RESOURCE_NOT_FOUND}
    assert not redemption.ok
    assert codes(redemption) == {Code.RESOURCE_NOT_FOUND}
    assert engine.validate(code, order()).valid


def test_rollback_of_an_unknown_redemption_is_resource_not_found(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)
    redemption = redeem(engine, code)

    unknown = engine.rollback("r_doesnotexist")

    assert not unknown.ok
    assert codes(unknown) == {Code.RESOURCE_NOT_FOUND}
    assert engine.rollback(redemption.redemption_id or "").ok


def test_disabled_voucher_is_refused_until_enabled_again(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)
    engine.set_voucher_enabled(code, False, note="leaked on a coupon site")

    disabled = engine.validate(code, order())
    engine.set_voucher_enabled(code, True)
    enabled = engine.validate(code, order())

    assert codes(disabled) == {Code.VOUCHER_DISABLED}
    assert enabled.valid


def test_draft_campaign_is_inactive_until_activated(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, status="draft")

    draft = engine.validate(code, order())
    engine.set_campaign_status("spring", "active")
    active = engine.validate(code, order())

    assert codes(draft) == {Code.CAMPAIGN_INACTIVE}
    assert active.valid


@pytest.mark.parametrize("status", ["paused", "finished"])
def test_paused_or_finished_campaign_is_inactive(tmp_path: Path, status: str) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)
    before = engine.validate(code, order())

    engine.set_campaign_status("spring", status)
    after = engine.validate(code, order())

    assert before.valid
    assert codes(after) == {Code.CAMPAIGN_INACTIVE}


def test_voucher_is_not_active_before_active_from(tmp_path: Path) -> None:
    clock = Clock(NOW)
    engine = engine_at(tmp_path, clock)
    code = standalone(engine, active_from="2026-03-05T12:00:00Z")

    early = engine.validate(code, order())
    clock.set(datetime(2026, 3, 5, 12, 0, tzinfo=UTC))
    on_time = engine.validate(code, order())

    assert codes(early) == {Code.VOUCHER_NOT_ACTIVE}
    assert on_time.valid


def test_voucher_expires_at_active_until(tmp_path: Path) -> None:
    clock = Clock(NOW)
    engine = engine_at(tmp_path, clock)
    code = standalone(engine, active_until="2026-03-04T13:00:00Z")

    clock.advance(minutes=59, seconds=59)
    last_second = engine.validate(code, order())
    clock.advance(seconds=1)
    expired = engine.validate(code, order())

    assert last_second.valid
    assert codes(expired) == {Code.VOUCHER_EXPIRED}


def test_weekend_voucher_is_refused_on_a_wednesday(tmp_path: Path) -> None:
    clock = Clock(NOW)  # a Wednesday
    engine = engine_at(tmp_path, clock)
    code = standalone(engine, rules={"days_of_week": ["sat", "sun"]})

    wednesday = engine.validate(code, order())
    clock.set(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    saturday = engine.validate(code, order())

    assert codes(wednesday) == {Code.OUTSIDE_DAYS_OF_WEEK}
    assert saturday.valid


def test_days_of_week_are_read_in_the_campaign_time_zone(tmp_path: Path) -> None:
    friday_late_utc = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)  # already Saturday in Berlin
    engine = engine_at(tmp_path, friday_late_utc)
    berlin = standalone(engine, rules={"days_of_week": ["sat"], "timezone": "Europe/Berlin"})
    utc = standalone(
        engine,
        id="spring-utc",
        voucher={"kind": "standalone", "code": "SPRINGUTC"},
        rules={"days_of_week": ["sat"]},
    )

    in_berlin = engine.validate(berlin, order())
    in_utc = engine.validate(utc, order())

    assert in_berlin.valid
    assert codes(in_utc) == {Code.OUTSIDE_DAYS_OF_WEEK}


@pytest.mark.parametrize(
    ("hours", "timezone", "inside", "outside"),
    [
        pytest.param(
            ("09:00", "17:00"),
            "UTC",
            datetime(2026, 3, 4, 16, 59, tzinfo=UTC),
            datetime(2026, 3, 4, 17, 0, tzinfo=UTC),
            id="end-is-exclusive",
        ),
        pytest.param(
            ("09:00", "17:00"),
            "UTC",
            datetime(2026, 3, 4, 9, 0, tzinfo=UTC),
            datetime(2026, 3, 4, 8, 59, tzinfo=UTC),
            id="start-is-inclusive",
        ),
        pytest.param(
            ("22:00", "02:00"),
            "UTC",
            datetime(2026, 3, 5, 1, 59, tzinfo=UTC),
            datetime(2026, 3, 5, 2, 0, tzinfo=UTC),
            id="wraps-midnight-after",
        ),
        pytest.param(
            ("22:00", "02:00"),
            "UTC",
            datetime(2026, 3, 4, 23, 0, tzinfo=UTC),
            datetime(2026, 3, 4, 12, 0, tzinfo=UTC),
            id="wraps-midnight-midday-is-outside",
        ),
        pytest.param(
            ("09:00", "17:00"),
            "America/New_York",
            datetime(2026, 3, 4, 15, 0, tzinfo=UTC),  # 10:00 in New York
            datetime(2026, 3, 4, 12, 0, tzinfo=UTC),  # 07:00 in New York, 12:00 in UTC
            id="new-york",
        ),
        pytest.param(
            ("22:00", "02:00"),
            "Asia/Tokyo",
            datetime(2026, 3, 4, 14, 30, tzinfo=UTC),  # 23:30 in Tokyo
            datetime(2026, 3, 4, 23, 0, tzinfo=UTC),  # 08:00 in Tokyo, 23:00 in UTC
            id="tokyo-wrapping-midnight",
        ),
    ],
)
def test_voucher_is_refused_outside_its_hours(
    tmp_path: Path,
    hours: tuple[str, str],
    timezone: str,
    inside: datetime,
    outside: datetime,
) -> None:
    clock = Clock(inside)
    engine = engine_at(tmp_path, clock)
    rules = {"hours": {"from": hours[0], "to": hours[1]}, "timezone": timezone}
    code = standalone(engine, rules=rules)

    within = engine.validate(code, order())
    clock.set(outside)
    beyond = engine.validate(code, order())

    assert within.valid
    assert codes(beyond) == {Code.OUTSIDE_HOURS}


def test_voucher_valid_after_publication_is_refused_until_published(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    rules = {"valid_days_after_publication": 7, "holder_only": False}
    code = unique_voucher(engine, holder=None, rules=rules)

    unpublished = engine.validate(code, order())
    engine.publish(code, "cust-1")
    published = engine.validate(code, order())

    assert codes(unpublished) == {Code.VOUCHER_NOT_PUBLISHED}
    assert published.valid


def test_voucher_expires_the_given_days_after_its_publication(tmp_path: Path) -> None:
    clock = Clock(NOW)
    engine = engine_at(tmp_path, clock)
    code = unique_voucher(engine, rules={"valid_days_after_publication": 7})

    clock.advance(days=7, seconds=-1)
    last_second = engine.validate(code, order(), customer_id="cust-1")
    clock.advance(seconds=1)
    expired = engine.validate(code, order(), customer_id="cust-1")

    assert last_second.valid
    assert codes(expired) == {Code.PUBLICATION_VALIDITY_EXPIRED}


def test_order_below_the_minimum_is_refused(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, rules={"min_order_amount": 5000})

    below = engine.validate(code, order(4999))
    at_minimum = engine.validate(code, order(5000))

    assert codes(below) == {Code.ORDER_BELOW_MINIMUM}
    assert at_minimum.valid


def test_order_without_the_required_product_is_refused(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, rules={"required_products": ["sku-1"]})

    without = engine.validate(code, order(items=[item("sku-2", 5000)]))
    with_it = engine.validate(code, order(items=[item("sku-2", 5000), item("sku-1", 500)]))

    assert codes(without) == {Code.REQUIRED_PRODUCT_MISSING}
    assert with_it.valid


def test_order_without_the_required_category_is_refused(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, rules={"required_categories": ["shoes"]})

    hats = engine.validate(code, order(items=[item("hat-1", 5000, category="hats")]))
    shoes = engine.validate(code, order(items=[item("boot-1", 5000, category="shoes")]))

    assert codes(hats) == {Code.REQUIRED_CATEGORY_MISSING}
    assert shoes.valid


def test_minimum_quantity_counts_the_whole_order_for_an_order_discount(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, rules={"min_item_quantity": 3})

    two = engine.validate(code, order(items=[item("sku-1", 2000, quantity=2)]))
    three = engine.validate(code, order(items=[item("sku-1", 2000, quantity=2), item("sku-2")]))

    assert codes(two) == {Code.MINIMUM_QUANTITY_NOT_MET}
    assert three.valid


def test_minimum_quantity_counts_only_the_discounted_items(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    discount = {"type": "percent", "percent_off": 10, "applies_to": {"categories": ["shoes"]}}
    code = standalone(engine, discount=discount, rules={"min_item_quantity": 2})
    one_shoe = [item("boot-1", 5000, category="shoes"), item("sock-1", 500, quantity=5)]
    two_shoes = [item("boot-1", 5000, quantity=2, category="shoes")]

    few = engine.validate(code, order(items=one_shoe))
    enough = engine.validate(code, order(items=two_shoes))

    assert codes(few) == {Code.MINIMUM_QUANTITY_NOT_MET}
    assert enough.valid


def test_item_discount_without_matching_items_has_no_applicable_items(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    discount = {"type": "amount", "amount_off": 500, "applies_to": {"products": ["sku-1"]}}
    code = standalone(engine, discount=discount)

    other = engine.validate(code, order(items=[item("sku-2", 3000)]))
    matching = engine.validate(code, order(items=[item("sku-2", 3000), item("sku-1", 3000)]))

    assert codes(other) == {Code.NO_APPLICABLE_ITEMS}
    assert other.discount == 0
    assert matching.valid
    assert matching.discount == 500


def test_per_customer_limit_needs_the_customer_id(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, limits={"per_customer": 1})

    anonymous = engine.validate(code, order())
    known = engine.validate(code, order(), customer_id="cust-1")

    assert codes(anonymous) == {Code.MISSING_CUSTOMER}
    assert known.valid


def test_segment_voucher_follows_segment_membership(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, rules={"segments": ["vip", "staff"]})

    outsider = engine.validate(code, order(), customer_id="cust-1")
    engine.set_segment_membership("vip", "cust-1", True)
    member = engine.validate(code, order(), customer_id="cust-1")
    engine.set_segment_membership("vip", "cust-1", False)
    removed = engine.validate(code, order(), customer_id="cust-1")

    assert codes(outsider) == {Code.CUSTOMER_NOT_IN_SEGMENT}
    assert member.valid
    assert codes(removed) == {Code.CUSTOMER_NOT_IN_SEGMENT}


def test_unique_code_is_refused_to_anyone_but_its_holder(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = unique_voucher(engine, holder="cust-1")

    stranger = engine.validate(code, order(), customer_id="cust-2")
    holder = engine.validate(code, order(), customer_id="cust-1")

    assert codes(stranger) == {Code.CUSTOMER_NOT_HOLDER}
    assert holder.valid


def test_unpublished_unique_code_has_no_holder(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = unique_voucher(engine, holder=None)

    unpublished = engine.validate(code, order(), customer_id="cust-1")
    engine.publish(code, "cust-1")
    published = engine.validate(code, order(), customer_id="cust-1")

    assert codes(unpublished) == {Code.CUSTOMER_NOT_HOLDER}
    assert published.valid


def test_customer_with_a_previous_redemption_is_not_new(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, rules={"new_customers_only": True})
    other = standalone(engine, id="other", voucher={"kind": "standalone", "code": "OTHER5"})
    first_time = engine.validate(code, order(), customer_id="cust-1")

    assert redeem(engine, other, customer_id="cust-1").ok
    returning = engine.validate(code, order(), customer_id="cust-1")
    newcomer = engine.validate(code, order(), customer_id="cust-2")

    assert first_time.valid
    assert codes(returning) == {Code.CUSTOMER_NOT_NEW}
    assert newcomer.valid


def test_voucher_limit_refuses_the_use_after_the_last(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, limits={"per_voucher": 2})

    first = redeem(engine, code, customer_id="cust-1")
    second_check = engine.validate(code, order(), customer_id="cust-2")
    second = redeem(engine, code, customer_id="cust-2")
    third = redeem(engine, code, customer_id="cust-3")

    assert first.ok
    assert second_check.valid
    assert second.ok
    assert not third.ok
    assert codes(third) == {Code.QUANTITY_EXCEEDED}


def test_single_use_unique_code_is_redeemed_once(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = unique_voucher(engine)

    first = redeem(engine, code, customer_id="cust-1")
    again = redeem(engine, code, customer_id="cust-1")

    assert first.ok
    assert codes(again) == {Code.QUANTITY_EXCEEDED}
    assert voucher(engine, code).redemptions == 1


def test_per_customer_limit_is_keyed_on_the_customer_id(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, limits={"per_customer": 1})
    assert redeem(engine, code, order(id="o-1"), customer_id="cust-1").ok

    # Another order, another device: still the same customer.
    again = redeem(
        engine,
        code,
        order(id="o-2"),
        customer_id="cust-1",
        context=RequestContext(device_id="another-phone"),
    )
    someone_else = redeem(engine, code, order(id="o-3"), customer_id="cust-2")

    assert codes(again) == {Code.CUSTOMER_LIMIT_EXCEEDED}
    assert someone_else.ok


def test_campaign_limit_counts_redemptions_of_every_code(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(
        unique_def(rules={"holder_only": False}, limits={"campaign_total": 1})
    )
    first, second = engine.generate_codes("welcome", 2)
    before = engine.validate(second, order())

    assert redeem(engine, first).ok
    after = engine.validate(second, order())

    assert before.valid
    assert codes(after) == {Code.CAMPAIGN_LIMIT_EXCEEDED}


def test_budget_refuses_a_discount_that_would_overspend_it(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, limits={"budget": 1500})  # 10.00 off per order
    assert redeem(engine, code, order(5000)).ok

    too_much = engine.validate(code, order(5000))
    fits_exactly = engine.validate(code, order(500))

    assert codes(too_much) == {Code.CAMPAIGN_BUDGET_EXCEEDED}
    assert fits_exactly.valid
    assert fits_exactly.discount == 500


def test_gift_card_refuses_more_than_its_balance(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = gift_card(engine, balance=5000, holder="cust-1")

    too_much = redeem(engine, code, order(10_000), customer_id="cust-1", gift_amount=5001)
    all_of_it = redeem(engine, code, order(10_000), customer_id="cust-1", gift_amount=5000)
    empty = engine.validate(code, order(10_000), customer_id="cust-1")

    assert codes(too_much) == {Code.GIFT_AMOUNT_EXCEEDED}
    assert all_of_it.ok
    assert all_of_it.gift_amount == 5000
    assert all_of_it.amount_to_pay == 5000
    assert codes(empty) == {Code.GIFT_AMOUNT_EXCEEDED}


@pytest.mark.parametrize("channel", [None, "pos"])
def test_voucher_is_refused_outside_its_sales_channels(tmp_path: Path, channel: str | None) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, rules={"sales_channels": ["web", "app"]})

    refused = engine.validate(code, order(), context=RequestContext(sales_channel=channel))
    allowed = engine.validate(code, order(), context=RequestContext(sales_channel="web"))

    assert codes(refused) == {Code.SALES_CHANNEL_NOT_ALLOWED}
    assert allowed.valid


@pytest.mark.parametrize("store", [None, "store-2"])
def test_voucher_is_refused_in_other_stores(tmp_path: Path, store: str | None) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, rules={"stores": ["store-1"]})

    refused = engine.validate(code, order(), context=RequestContext(store_id=store))
    allowed = engine.validate(code, order(), context=RequestContext(store_id="store-1"))

    assert codes(refused) == {Code.STORE_NOT_ALLOWED}
    assert allowed.valid


def test_order_in_another_currency_is_refused(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)

    dollars = engine.validate(code, order(5000, currency="USD"))
    euros = engine.validate(code, order(5000, currency="EUR"))

    assert codes(dollars) == {Code.CURRENCY_MISMATCH}
    assert dollars.discount == 0
    assert euros.valid


def test_voucher_needing_acceptance_is_refused_until_the_holder_accepts(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = unique_voucher(engine, holder="cust-1", rules={"acceptance_required": True})

    unaccepted = engine.validate(code, order(), customer_id="cust-1")
    first_accept = engine.accept(code, "cust-1")
    accepted = engine.validate(code, order(), customer_id="cust-1")

    assert codes(unaccepted) == {Code.ACCEPTANCE_REQUIRED}
    assert first_accept is True
    assert accepted.valid


def test_redeem_with_an_unknown_session_is_session_not_found(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)
    other = standalone(engine, id="other", voucher={"kind": "standalone", "code": "OTHER5"})
    other_hold = engine.validate(other, cart(), customer_id="cust-9", hold_seconds=60).session_id
    own_hold = engine.validate(code, cart(), customer_id="cust-9", hold_seconds=60).session_id

    unknown = redeem(engine, code, session_id="hold_doesnotexist")
    foreign = redeem(engine, code, session_id=other_hold)
    own = redeem(engine, code, session_id=own_hold)

    assert codes(unknown) == {Code.SESSION_NOT_FOUND}
    assert codes(foreign) == {Code.SESSION_NOT_FOUND}
    assert own.ok


def test_redeem_with_an_expired_or_used_hold_is_session_expired(tmp_path: Path) -> None:
    clock = Clock(NOW)
    engine = engine_at(tmp_path, clock)
    code = standalone(engine)
    old = engine.validate(code, cart(), customer_id="cust-9", hold_seconds=60).session_id
    clock.advance(seconds=30)
    fresh = engine.validate(code, cart(), customer_id="cust-9", hold_seconds=60).session_id

    clock.advance(seconds=30)  # `old` expires now, `fresh` has 30 s left
    expired = redeem(engine, code, session_id=old)
    in_time = redeem(engine, code, session_id=fresh)
    reused = redeem(engine, code, session_id=fresh)

    assert codes(expired) == {Code.SESSION_EXPIRED}
    assert in_time.ok
    assert codes(reused) == {Code.SESSION_EXPIRED}


def test_expired_hold_frees_the_use_for_another_customer(tmp_path: Path) -> None:
    clock = Clock(NOW)
    engine = engine_at(tmp_path, clock)
    code = standalone(engine, limits={"per_voucher": 1})
    hold = engine.validate(code, cart(), customer_id="cust-1", hold_seconds=60)

    while_held = engine.validate(code, order(), customer_id="cust-2")
    clock.advance(seconds=60)
    after_expiry = redeem(engine, code, customer_id="cust-2")
    late_holder = redeem(engine, code, customer_id="cust-1", session_id=hold.session_id)

    assert hold.valid
    assert hold.session_expires_at == NOW + timedelta(seconds=60)
    assert codes(while_held) == {Code.QUANTITY_EXCEEDED}
    assert after_expiry.ok
    assert Code.SESSION_EXPIRED in codes(late_holder)


def test_hold_reserves_the_use_for_its_own_session(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, limits={"per_voucher": 1})
    hold = engine.validate(code, cart(), customer_id="cust-1", hold_seconds=60)

    holder = redeem(engine, code, customer_id="cust-1", session_id=hold.session_id)

    assert holder.ok


def test_second_rollback_of_a_redemption_is_already_rolled_back(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)
    redemption_id = redeem(engine, code).redemption_id or ""

    first = engine.rollback(redemption_id, reason="order cancelled")
    second = engine.rollback(redemption_id, reason="order cancelled")

    assert first.ok
    assert not second.ok
    assert codes(second) == {Code.ALREADY_ROLLED_BACK}


def test_validate_reports_every_broken_rule_at_once(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(
        engine,
        active_until="2026-03-04T00:00:00Z",
        rules={
            "days_of_week": ["sat"],
            "min_order_amount": 10_000,
            "required_products": ["sku-9"],
            "sales_channels": ["web"],
            "stores": ["store-1"],
        },
        limits={"per_customer": 1},
    )
    engine.set_voucher_enabled(code, False)

    validation = engine.validate(code, order(items=[item("sku-1", 5000)]))
    redemption = redeem(engine, code, order(items=[item("sku-1", 5000)]))

    expected = {
        Code.VOUCHER_DISABLED,
        Code.VOUCHER_EXPIRED,
        Code.OUTSIDE_DAYS_OF_WEEK,
        Code.ORDER_BELOW_MINIMUM,
        Code.REQUIRED_PRODUCT_MISSING,
        Code.SALES_CHANNEL_NOT_ALLOWED,
        Code.STORE_NOT_ALLOWED,
        Code.MISSING_CUSTOMER,
    }
    assert codes(validation) == expected
    assert codes(redemption) == expected


def test_validate_changes_no_state_and_records_only_a_validation_event(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine, limits={"per_voucher": 1, "budget": 1000, "campaign_total": 1})
    voucher_before = voucher(engine, code)
    campaign_before = campaign(engine, "spring")
    events_before = events(engine)

    result = engine.validate(code, order(), customer_id="cust-1")
    buffered = events(engine)
    engine.flush()
    new_events = events(engine)[len(events_before) :]

    assert result.valid
    assert result.discount == 1000
    assert voucher(engine, code) == voucher_before
    assert campaign(engine, "spring") == campaign_before
    assert buffered == events_before
    assert [e.event_type for e in new_events] == [EventType.VOUCHER_VALIDATED]
    assert new_events[0].event_id == result.event_id
    assert new_events[0].payload["valid"] is True
    assert redeem(engine, code, customer_id="cust-1").ok


def test_validation_event_survives_a_refused_redeem_request(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)
    validation = engine.validate(code, order())

    with pytest.raises(InvalidInput):
        redeem(engine, code, gift_amount=100)
    engine.flush()

    validated = events(engine, EventType.VOUCHER_VALIDATED)
    assert [e.event_id for e in validated] == [validation.event_id]


def test_rejected_redemption_is_recorded_with_its_reason_code(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)

    result = redeem(engine, code, order(5000, currency="USD"), customer_id="cust-1")

    [rejected] = events(engine, EventType.REDEMPTION_REJECTED)
    assert not result.ok
    assert result.redemption_id is None
    assert rejected.event_id == result.event_id
    assert rejected.redemption_id is None
    assert rejected.customer_id == "cust-1"
    assert [r["code"] for r in rejected.payload["reasons"]] == ["currency_mismatch"]
    assert rejected.payload["discount"] == 0
    assert voucher(engine, code).redemptions == 0
    assert campaign(engine, "spring").redemptions == 0


def test_rollback_gives_back_the_use_the_budget_and_the_customer_limit(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    limits = {"per_voucher": 1, "per_customer": 1, "campaign_total": 1, "budget": 1000}
    code = standalone(engine, limits=limits)
    redemption = redeem(engine, code, customer_id="cust-1")
    spent = engine.validate(code, order(), customer_id="cust-1")

    rollback = engine.rollback(redemption.redemption_id or "", reason="returned")

    assert codes(spent) == {
        Code.QUANTITY_EXCEEDED,
        Code.CUSTOMER_LIMIT_EXCEEDED,
        Code.CAMPAIGN_LIMIT_EXCEEDED,
        Code.CAMPAIGN_BUDGET_EXCEEDED,
    }
    assert rollback.ok
    assert rollback.discount == 1000
    assert voucher(engine, code).redemptions == 0
    state = campaign(engine, "spring")
    assert (state.redemptions, state.budget_used) == (0, 0)
    assert engine.validate(code, order(), customer_id="cust-1").valid


def test_rollback_gives_back_the_gift_balance(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = gift_card(engine, balance=5000, holder="cust-1")
    redemption = redeem(engine, code, order(3000), customer_id="cust-1")
    balance_after_use = voucher(engine, code).gift_balance

    rollback = engine.rollback(redemption.redemption_id or "")

    assert redemption.gift_amount == 3000
    assert balance_after_use == 2000
    assert rollback.gift_amount == 3000
    assert voucher(engine, code).gift_balance == 5000


def test_every_reason_code_has_a_catalog_entry() -> None:
    missing = set(Code) - set(CATALOG)

    assert missing == set()


def test_reason_codes_doc_lists_every_code() -> None:
    assert REASON_CODES_DOC.exists(), f"{REASON_CODES_DOC} is missing"

    listed = set(re.findall(r"`([a-z_]+)`", REASON_CODES_DOC.read_text(encoding="utf-8")))
    missing = sorted(code.value for code in Code if code.value not in listed)

    assert missing == []


def test_every_ledger_rule_code_and_setting_is_documented() -> None:
    from redemption_core.domain.reasons import LEDGER_CATALOG, SETTINGS, LedgerCode

    listed = set(re.findall(r"`([a-z_]+)`", REASON_CODES_DOC.read_text(encoding="utf-8")))

    assert sorted(code.value for code in LedgerCode if code.value not in listed) == []
    assert set(LEDGER_CATALOG) == set(LedgerCode)
    assert all(str(code) in listed for code in SETTINGS)
