"""The quality gates hold for every campaign setting the core allows.

One ledger, written through the engine and the distributor (so every row obeys the core's
rules), holds a campaign for each combination of the settings the gates' rules depend on:

- voucher kind: unique codes, gift cards, one standalone code;
- acceptance required or not (the default: not);
- single use (per_voucher 1; per customer for the standalone code) or several uses (3);
- reach: published by hand (no channel), a promotion, a promotion with a control group
  (a standalone code is published to nobody: anyone may use it).

In each, the holders act alike: deliveries fail but one, two holders accept their voucher in
the app anyway, five try to redeem (refused where acceptance is required and missing), a
multi-use voucher is redeemed again, one redemption is rolled back. The ledger ends 13.9 days
after the promotions, so their outcome windows are still open. The whole dbt build (models and
tests) and both Great Expectations suites must pass; the ledger must really hold the cases
that broke the old rules (more redeemed than accepted, more accepted than delivered).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from builders import (
    Clock,
    RecordingChannel,
    add_customers,
    distributor,
    engine_at,
    everyone,
    ledger_rows,
    order,
    place_order,
    redeem,
)
from warehouse_helpers import build_warehouse

from pipelines.quality import check_marts, check_raw_events
from redemption_core.distribution.channels import Message, PermanentDeliveryError
from redemption_core.engine.redemption import RedemptionEngine

SENT = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
CUSTOMERS = [f"c{n:02d}" for n in range(1, 9)]
DELIVERED_TO = "c01"  # an e-mail provider's outage: every other message bounces
ACCEPTS = ("c02", "c03")  # whose messages bounced: they accept the voucher in the app anyway
REDEEMS = ("c01", "c02", "c03", "c04", "c05")
KINDS = ("unique", "gift", "standalone")
REACHES = ("by_hand", "promotion", "control_group")


@dataclass(frozen=True)
class Setting:
    kind: str
    acceptance_required: bool
    multi_use: bool
    reach: str

    @property
    def campaign_id(self) -> str:
        return "-".join(
            [
                self.kind,
                "accept" if self.acceptance_required else "open",
                "multi" if self.multi_use else "single",
                self.reach.replace("_", "-"),
            ]
        )

    def definition(self) -> dict[str, Any]:
        definition: dict[str, Any] = {
            "id": self.campaign_id,
            "name": self.campaign_id,
            "currency": "EUR",
            "status": "active",
            "rules": {"acceptance_required": self.acceptance_required},
        }
        if self.kind == "gift":
            definition["voucher"] = {"kind": "gift", "gift_balance": 5000}
        else:
            definition["discount"] = {"type": "amount", "amount_off": 500}
            definition["voucher"] = (
                {"kind": "standalone", "code": self.campaign_id.upper()}
                if self.kind == "standalone"
                else {"kind": "unique"}
            )
        if self.kind == "standalone":
            definition["limits"] = {"per_customer": 1} if not self.multi_use else {}
        else:
            definition["limits"] = {"per_voucher": 3 if self.multi_use else 1}
        if self.reach != "by_hand":
            definition["distribution"] = {
                "mode": "promotion",
                "segment": "everyone",
                "channels": ["email"],
                "control_share": 0.5 if self.reach == "control_group" else 0,
            }
        return definition


SETTINGS = [
    Setting(kind, acceptance, multi, reach)
    for kind, acceptance, multi, reach in itertools.product(
        KINDS, (False, True), (False, True), REACHES
    )
    if kind != "standalone" or reach == "by_hand"
]


class BouncingChannel(RecordingChannel):
    """E-mail whose messages fail for good, but to DELIVERED_TO."""

    def send(self, message: Message) -> None:
        if message.customer_id != DELIVERED_TO:
            raise PermanentDeliveryError("mailbox does not exist")
        super().send(message)


def holders(engine: RedemptionEngine, campaign_id: str) -> dict[str, str]:
    """customer → code of the campaign's vouchers."""
    rows = ledger_rows(
        engine,
        "SELECT holder_id, code FROM vouchers WHERE campaign_id = :campaign AND holder_id "
        "IS NOT NULL",
        campaign=campaign_id,
    )
    return dict(rows)


def act(engine: RedemptionEngine, clock: Clock, setting: Setting) -> None:
    """Publish, accept, redeem and roll back as the module docstring says."""
    campaign_id = setting.campaign_id
    clock.set(SENT)  # every campaign is sent at the same instant
    engine.create_from_definition(setting.definition())
    if setting.kind == "standalone":
        pass  # one shared code, published to nobody (the core refuses to)
    elif setting.reach == "by_hand":
        codes = engine.generate_codes(campaign_id, len(CUSTOMERS))
        for code, customer in zip(codes, CUSTOMERS, strict=True):
            engine.publish(code, customer)
    else:
        distributor(engine, {"email": BouncingChannel()}).send_promotion(campaign_id)
    held = holders(engine, campaign_id)
    clock.advance(hours=1)
    for customer in ACCEPTS:
        if customer in held:
            engine.accept(held[customer], customer)
    clock.advance(hours=1)
    redemptions = []
    for customer in REDEEMS:
        # anyone may use the standalone code; a unique one, its holder
        code = campaign_id.upper() if setting.kind == "standalone" else held.get(customer)
        if code is None:
            continue  # held out of the control group, or skipped
        gift = {"gift_amount": 1000} if setting.kind == "gift" else {}
        result = redeem(
            engine,
            code,
            order(2000, id=f"o-{campaign_id}-{customer}"),
            customer_id=customer,
            **gift,
        )
        if result.ok:
            redemptions.append(result.redemption_id)
        if setting.multi_use and customer == "c03":
            again = redeem(
                engine, code, order(3000, id=f"o2-{campaign_id}-{customer}"),
                customer_id=customer, **gift,
            )  # fmt: skip
            if again.ok:
                redemptions.append(again.redemption_id)
    if redemptions:
        engine.rollback(redemptions[-1], reason="returned")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("settings")
    clock = Clock(SENT - timedelta(days=1))
    engine = engine_at(home, clock)
    add_customers(engine, *CUSTOMERS)
    everyone(engine)
    clock.set(SENT)
    for setting in SETTINGS:
        act(engine, clock, setting)
    # every customer orders a little later; the ledger's last event is 13.9 days after the sends
    clock.set(SENT + timedelta(days=3))
    for customer in CUSTOMERS:
        place_order(engine, customer, 4000)
    clock.set(SENT + timedelta(days=13.9))
    place_order(engine, "c08", 1500)
    engine.close()
    return build_warehouse(home)


def marts(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        return db.execute(sql).fetchall()


def test_the_ledger_holds_every_combination_and_the_cases_the_old_gate_refused(
    warehouse: Path,
) -> None:
    [(campaigns,)] = marts(warehouse, "select count(*) from marts.dim_campaigns")
    more_redeemed_than_accepted = marts(
        warehouse,
        "select campaign_id from marts.fct_campaign_funnel where redeemed > accepted",
    )
    more_accepted_than_delivered = marts(
        warehouse,
        "select campaign_id from marts.fct_campaign_funnel "
        "where channel = 'email' and accepted > delivered",
    )

    assert campaigns == len(SETTINGS) == 28
    assert more_redeemed_than_accepted
    assert more_accepted_than_delivered


def test_the_raw_gate_passes_for_every_setting(warehouse: Path) -> None:
    report = check_raw_events(warehouse)

    assert report.passed, report.message()


def test_the_key_marts_gate_passes_for_every_setting(warehouse: Path) -> None:
    report = check_marts(warehouse)

    assert report.passed, report.message()


def test_a_campaign_whose_outcome_windows_are_still_open_says_when_they_close(
    warehouse: Path,
) -> None:
    """The ledger was written through the engine up to 13.9 days after the sends: it knows
    nothing of the last hours of the 14-day windows, so nobody is measured yet, and the row
    says how many wait and until when."""
    rows = marts(
        warehouse,
        "select campaign_id, incremental_treated_customers, incremental_control_customers, "
        "incremental_open_window_customers, outcome_window_closes_at, incremental_conversion "
        "from marts.fct_campaign_performance where has_control_group order by campaign_id",
    )

    assert len(rows) == 8
    for campaign_id, treated, control, waiting, closes_at, lift in rows:
        assert (treated, control, lift) == (0, 0, None), campaign_id
        assert waiting == len(CUSTOMERS), campaign_id
        assert closes_at == (SENT + timedelta(days=14)).replace(tzinfo=None), campaign_id
