"""Campaign definitions: parsing, field-named errors, writing to the ledger, status changes."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any

import pytest
from builders import campaign, campaign_def, engine_at, events, gift_def, order, unique_def

from redemption_core.domain.campaigns import (
    CampaignStatus,
    DiscountType,
    VoucherKind,
    campaign_from_dict,
)
from redemption_core.domain.errors import Conflict, InvalidInput, NotFound
from redemption_core.domain.events import EventType


def sub_def(campaign_id: str, code: str, **overrides: Any) -> dict[str, Any]:
    return campaign_def(id=campaign_id, voucher={"kind": "standalone", "code": code}, **overrides)


def main_def(*subs: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"id": "summer", "name": "Summer 2026", "campaigns": list(subs), **overrides}


def test_main_campaign_is_recorded_with_its_sub_campaigns(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    document = main_def(
        sub_def("summer-web", "SUMMERWEB", rules={"sales_channels": ["web"]}),
        unique_def(id="summer-vip", rules={"segments": ["vip"]}),
    )

    created = engine.create_from_definition(document)

    assert created == ["summer-web", "summer-vip"]
    assert [e.event_type for e in events(engine)] == [
        EventType.MAIN_CAMPAIGN_CREATED,
        EventType.CAMPAIGN_CREATED,
        EventType.VOUCHER_CREATED,  # the standalone code of summer-web
        EventType.CAMPAIGN_CREATED,
    ]
    assert campaign(engine, "summer-web").campaign.main_campaign_id == "summer"
    assert campaign(engine, "summer-vip").campaign.main_campaign_id == "summer"
    assert campaign(engine, "summer-vip").campaign.voucher_kind is VoucherKind.UNIQUE


def test_single_campaign_definition_is_recorded_with_its_standalone_code(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    created = engine.create_from_definition(campaign_def())

    assert created == ["spring"]
    with engine.store.read() as tx:
        assert tx.voucher_by_code("SPRING10") is not None


def test_definition_read_back_from_the_ledger_is_the_one_written(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    definition = campaign_def(
        active_from="2026-03-01T00:00:00+01:00",
        rules={"hours": {"from": "09:00", "to": "17:30"}, "timezone": "Europe/Paris"},
        limits={"per_customer": 2, "budget": 100_000},
        discount={"type": "percent", "percent_off": "12.5", "max_discount": 2000},
        metadata={"owner": "growth"},
    )
    parsed = campaign_from_dict(definition)

    engine.create_campaign(parsed)
    stored = campaign(engine, "spring").campaign

    assert stored == parsed
    assert campaign_from_dict(parsed.to_dict()) == parsed
    assert stored.to_dict()["active_from"] == "2026-02-28T23:00:00.000000Z"


def test_voucher_kind_sets_the_default_holder_rule_and_use_limit() -> None:
    unique = campaign_from_dict(unique_def())
    shared = campaign_from_dict(campaign_def())
    gift = campaign_from_dict(gift_def(balance=2500))

    assert (unique.rules.holder_only, unique.limits.per_voucher) == (True, 1)
    assert (shared.rules.holder_only, shared.limits.per_voucher) == (False, None)
    assert (gift.rules.holder_only, gift.limits.per_voucher) == (True, None)
    assert gift.discount is None
    assert gift.gift_balance == 2500
    assert shared.discount is not None
    assert shared.discount.type is DiscountType.AMOUNT


def test_definition_without_a_status_is_a_draft() -> None:
    definition = campaign_def()
    del definition["status"]

    parsed = campaign_from_dict(definition)

    assert parsed.status is CampaignStatus.DRAFT


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"discount": {"type": "percent", "percent_off": 0}}, "campaign.discount.percent_off"),
        (
            {"discount": {"type": "percent", "percent_off": "1.005"}},
            "campaign.discount.percent_off",
        ),
        ({"discount": {"type": "amount"}}, "campaign.discount.amount_off"),
        (
            {"discount": {"type": "amount", "amount_off": 100, "percent_off": 5}},
            "campaign.discount.percent_off",
        ),
        (
            {"discount": {"type": "amount", "amount_off": 100, "max_discount": 50}},
            "campaign.discount.max_discount",
        ),
        ({"discount": {"type": "bogo"}}, "campaign.discount.type"),
        (
            {"discount": {"type": "amount", "amount_off": 100, "applies_to": {}}},
            "campaign.discount.applies_to",
        ),
        (
            {
                "discount": {
                    "type": "free_item",
                    "product": "sock-1",
                    "applies_to": {"products": []},
                }
            },
            "campaign.discount.applies_to",
        ),
        ({"discount": {"type": "amount", "amount_off": 1.5}}, "campaign.discount.amount_off"),
        ({"currency": "EURO"}, "campaign.currency"),
        ({"currency": "eur"}, "campaign.currency"),
        ({"colour": "red"}, "campaign.colour"),
        ({"id": "has space"}, "campaign.id"),
        ({"status": "live"}, "campaign.status"),
        ({"rules": {"colour": "red"}}, "campaign.rules.colour"),
        ({"rules": {"days_of_week": ["fri", "someday"]}}, "campaign.rules.days_of_week[1]"),
        ({"rules": {"days_of_week": "fri"}}, "campaign.rules.days_of_week"),
        ({"rules": {"hours": {"from": "09:00", "to": "09:00"}}}, "campaign.rules.hours"),
        ({"rules": {"hours": {"from": "9am", "to": "17:00"}}}, "campaign.rules.hours.from"),
        ({"rules": {"hours": {"from": "09:00", "to": "17:00+02:00"}}}, "campaign.rules.hours.to"),
        ({"rules": {"timezone": "Mars/Olympus_Mons"}}, "campaign.rules.timezone"),
        ({"rules": {"min_order_amount": 10.5}}, "campaign.rules.min_order_amount"),
        ({"rules": {"holder_only": "yes"}}, "campaign.rules.holder_only"),
        ({"rules": {"segments": "vip"}}, "campaign.rules.segments"),
        (
            {"rules": {"valid_days_after_publication": 0}},
            "campaign.rules.valid_days_after_publication",
        ),
        ({"limits": {"per_voucher": 0}}, "campaign.limits.per_voucher"),
        ({"limits": {"budget": -1}}, "campaign.limits.budget"),
        ({"limits": {"per_month": 3}}, "campaign.limits.per_month"),
        (
            {"active_from": "2026-03-05T00:00:00Z", "active_until": "2026-03-05T00:00:00Z"},
            "campaign.active_until",
        ),
        ({"active_from": "2026-03-05T00:00:00"}, "campaign.active_from"),
        ({"voucher": {"kind": "standalone"}}, "campaign.voucher.code"),
        ({"voucher": {"kind": "unique", "code": "FIXED"}}, "campaign.voucher.code"),
        ({"voucher": {"kind": "unique", "gift_balance": 100}}, "campaign.voucher.gift_balance"),
        ({"voucher": {"kind": "coupon"}}, "campaign.voucher.kind"),
        (
            {"voucher": {"kind": "unique", "code_config": {"min_entropy_bits": 1000}}},
            "campaign.voucher.code_config.min_entropy_bits",
        ),
        ({"metadata": ["not", "a", "mapping"]}, "campaign.metadata"),
    ],
)
def test_invalid_definition_names_the_field(overrides: dict[str, Any], field: str) -> None:
    definition = campaign_def(**overrides)

    with pytest.raises(InvalidInput) as refused:
        campaign_from_dict(definition)

    assert refused.value.field == field


@pytest.mark.parametrize(
    ("code_config", "field"),
    [
        ({"length": 8}, "campaigns[1].voucher.code_config"),
        ({"length": 0}, "campaigns[1].voucher.code_config.length"),
    ],
)
def test_invalid_code_config_names_the_full_field_path(
    code_config: dict[str, Any], field: str
) -> None:
    definition = unique_def(voucher={"kind": "unique", "code_config": code_config})

    with pytest.raises(InvalidInput) as refused:
        campaign_from_dict(definition, "campaigns[1]")

    assert refused.value.field == field


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        (gift_def(balance=0), "campaign.voucher.gift_balance"),
        ({**gift_def(), "discount": {"type": "amount", "amount_off": 100}}, "campaign.discount"),
    ],
)
def test_invalid_gift_card_definition_names_the_field(
    definition: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        campaign_from_dict(definition)

    assert refused.value.field == field


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (
            main_def(sub_def("a", "CODEA"), sub_def("b", "CODEB", currency="EURO")),
            "campaigns[1].currency",
        ),
        (
            main_def(sub_def("a", "CODEA", discount={"type": "percent", "percent_off": 101})),
            "campaigns[0].discount.percent_off",
        ),
        (main_def(sub_def("a", "CODEA", colour="red")), "campaigns[0].colour"),
        (main_def(sub_def("a", "CODEA"), colour="red"), "main_campaign.colour"),
        (main_def(sub_def("a", "CODEA", main_campaign="winter")), "campaigns[0].main_campaign"),
        (main_def(), "main_campaign.campaigns"),
        (main_def(sub_def("a", "CODEA"), id="bad id"), "main_campaign.id"),
        (
            campaign_def(discount={"type": "percent", "percent_off": 0}),
            "campaign.discount.percent_off",
        ),
    ],
)
def test_invalid_document_names_the_field_and_writes_nothing(
    tmp_path: Path, document: dict[str, Any], field: str
) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(InvalidInput) as refused:
        engine.create_from_definition(document)

    assert refused.value.field == field
    assert events(engine) == []


def test_campaign_with_an_existing_id_is_refused_and_nothing_written(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(campaign_def())
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.create_from_definition(campaign_def(voucher={"kind": "unique"}))

    assert refused.value.field == "campaign.id"
    assert events(engine) == before


def test_sub_campaign_with_an_existing_id_refuses_the_whole_document(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(sub_def("b", "CODEB"))
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.create_from_definition(main_def(sub_def("a", "CODEA"), unique_def(id="b")))

    assert refused.value.field == "campaigns[1].id"
    assert events(engine) == before


def test_main_campaign_with_an_existing_id_is_refused_and_nothing_written(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(main_def(sub_def("a", "CODEA")))
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.create_from_definition(main_def(sub_def("b", "CODEB")))

    assert refused.value.field == "main_campaign.id"
    assert events(engine) == before


def test_sub_campaigns_repeating_an_id_refuse_the_whole_document(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(Conflict) as refused:
        engine.create_from_definition(main_def(sub_def("a", "CODEA"), unique_def(id="a")))

    assert refused.value.field == "campaigns[1].id"
    assert events(engine) == []


def test_sub_campaign_with_a_taken_standalone_code_refuses_the_whole_document(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(sub_def("old", "TAKEN"))
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.create_from_definition(main_def(sub_def("a", "CODEA"), sub_def("b", "TAKEN")))

    assert refused.value.field == "campaigns[1].voucher.code"
    assert events(engine) == before


def test_sub_campaigns_sharing_a_standalone_code_refuse_the_whole_document(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(Conflict) as refused:
        engine.create_from_definition(main_def(sub_def("a", "SAME"), sub_def("b", "same")))

    assert refused.value.field == "campaigns[1].voucher.code"
    assert events(engine) == []


def test_hours_with_seconds_survive_the_ledger_round_trip(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(
        campaign_def(rules={"hours": {"from": "09:00:30", "to": "09:00"}})
    )

    result = engine.validate("SPRING10", order())

    assert result.valid
    assert campaign(engine, "spring").campaign.rules.hours == (time(9, 0, 30), time(9, 0))


def test_campaign_naming_an_unknown_main_campaign_is_refused(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(NotFound) as refused:
        engine.create_from_definition(campaign_def(main_campaign="winter"))

    assert refused.value.field == "campaign.main_campaign"
    assert events(engine) == []


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("draft", "active"),
        ("draft", "finished"),
        ("active", "paused"),
        ("active", "finished"),
        ("paused", "active"),
        ("paused", "finished"),
    ],
)
def test_allowed_status_change_is_recorded(tmp_path: Path, start: str, target: str) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(campaign_def(status=start))

    engine.set_campaign_status("spring", target)

    [change] = events(engine, EventType.CAMPAIGN_STATUS_CHANGED)
    assert change.payload == {"status": target, "previous": start}
    assert campaign(engine, "spring").status == target


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("finished", "active"),
        ("finished", "paused"),
        ("finished", "draft"),
        ("active", "draft"),
        ("paused", "draft"),
        ("draft", "paused"),
        ("active", "active"),
    ],
)
def test_forbidden_status_change_is_refused_and_nothing_written(
    tmp_path: Path, start: str, target: str
) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(campaign_def(status=start))
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.set_campaign_status("spring", target)

    assert refused.value.field == "status"
    assert events(engine) == before
    assert campaign(engine, "spring").status == start


def test_status_change_of_an_unknown_campaign_is_not_found(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(NotFound) as refused:
        engine.set_campaign_status("nope", "active")

    assert refused.value.field == "campaign_id"


def test_unknown_status_is_invalid_input(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(campaign_def())

    with pytest.raises(InvalidInput) as refused:
        engine.set_campaign_status("spring", "archived")

    assert refused.value.field == "status"
