"""Engagement events: a message opened or clicked, a visit to the site or app, attributed to a
campaign (and the voucher its message carried) or to none; recorded by the engine and accepted
by the import under the same rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import add_customers, engine_at, events, unique_voucher

from redemption_core import EventType, InvalidInput
from redemption_core.domain.errors import Conflict, NotFound
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.imports.ledger_schema import ImportRefused, events_to_rows, import_events


@pytest.fixture
def engine(tmp_path: Path) -> RedemptionEngine:
    engine = engine_at(tmp_path)
    add_customers(engine, "cust-1", "cust-2")
    return engine


def voucher_id(engine: RedemptionEngine, code: str) -> str:
    with engine.store.read() as tx:
        state = tx.voucher_by_code(code)
    assert state is not None
    return state.voucher_id


def test_an_opened_message_names_the_voucher_and_its_campaign(engine: RedemptionEngine) -> None:
    code = unique_voucher(engine, holder="cust-1")

    engine.record_engagement(
        "opened", "cust-1", voucher_id=voucher_id(engine, code), channel="email"
    )

    [opened] = events(engine, EventType.MESSAGE_OPENED)
    assert (opened.customer_id, opened.campaign_id, opened.channel) == (
        "cust-1",
        "welcome",
        "email",
    )
    assert opened.voucher_id == voucher_id(engine, code)


def test_a_click_names_its_url_and_a_visit_its_surface_attributed_to_no_campaign(
    engine: RedemptionEngine,
) -> None:
    unique_voucher(engine, holder="cust-1")

    engine.record_engagement(
        "clicked", "cust-1", campaign_id="welcome", channel="sms", url="https://shop.example/x"
    )
    engine.record_engagement("visited", "cust-2", surface="app")

    [clicked] = events(engine, EventType.MESSAGE_CLICKED)
    [visited] = events(engine, EventType.SITE_VISITED)
    assert clicked.payload == {"url": "https://shop.example/x"}
    assert (visited.campaign_id, visited.channel, visited.payload) == (
        None,
        None,
        {"surface": "app"},
    )


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (dict(kind="bounced", customer_id="cust-1", channel="email"), InvalidInput, "kind"),
        (dict(kind="opened", customer_id="nobody", channel="email"), NotFound, "customer_id"),
        (dict(kind="opened", customer_id="cust-1"), InvalidInput, "channel"),
        (dict(kind="visited", customer_id="cust-1", surface="fax"), InvalidInput, "surface"),
        (
            dict(kind="visited", customer_id="cust-1", surface="web", channel="email"),
            InvalidInput,
            "channel",
        ),
        (
            dict(kind="opened", customer_id="cust-1", campaign_id="nope", channel="email"),
            NotFound,
            "campaign_id",
        ),
        (
            dict(kind="opened", customer_id="cust-2", channel="email", voucher="cust-1's"),
            Conflict,
            "voucher_id",
        ),
        (
            dict(
                kind="opened",
                customer_id="cust-1",
                channel="email",
                voucher="cust-1's",
                campaign_id="spring",
            ),
            Conflict,
            "voucher_id",
        ),
    ],
)
def test_an_engagement_the_rules_refuse_is_not_recorded_and_names_the_field(
    engine: RedemptionEngine, call: dict, error: type[Exception], field: str
) -> None:
    code = unique_voucher(engine, holder="cust-1")
    if call.pop("voucher", None):
        call["voucher_id"] = voucher_id(engine, code)
    before = len(events(engine))

    with pytest.raises(error) as refused:
        engine.record_engagement(**call)

    assert refused.value.field == field
    assert len(events(engine)) == before


def test_the_import_takes_engagement_rows_and_refuses_one_without_a_customer(
    engine: RedemptionEngine, tmp_path: Path
) -> None:
    engine.record_engagement("visited", "cust-1", surface="web")
    [visit] = events(engine, EventType.SITE_VISITED)
    other = engine_at(tmp_path / "other")
    add_customers(other, "cust-1")
    [row] = events_to_rows([visit])

    report = import_events(other, [row])
    with pytest.raises(ImportRefused) as refused:
        import_events(other, [dict(row, event_id="evt_no_customer", customer_id=None)])

    assert report.by_type == {"site_visited": 1}
    assert (
        str(refused.value.errors[0]) == "row 1, customer_id: malformed: required for site_visited"
    )
