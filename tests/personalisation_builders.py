"""Lake-schema event rows for the personalisation tests, built one call per event, and small
ledgers with a known structure: who redeems what is planted, so a model can be checked to find
it."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from pipelines.ledger_extract import LAKE_SCHEMA

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


class Ledger:
    """Event rows; `frame()` is what the lake would hold."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self, event_type: str, at: datetime, payload: dict[str, Any] | None = None, **ids: str
    ) -> None:
        row: dict[str, Any] = {name: None for name in LAKE_SCHEMA.names}
        stamp = at.astimezone(UTC).strftime(STAMP)
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
        self,
        customer_id: str,
        at: datetime,
        email: bool = True,
        push: bool = False,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        consent = {"email": email, "sms": False, "push": push}
        payload = {"signup_at": at.strftime(STAMP), "consent": consent}
        if attributes is not None:
            payload["attributes"] = attributes
        self.add("customer_created", at, payload, customer_id=customer_id)

    def product(self, product_id: str, at: datetime, **fields: Any) -> None:
        self.add("product_upserted", at, {"product": {"id": product_id, **fields}})

    def order(
        self,
        customer_id: str,
        at: datetime,
        amount: int = 2000,
        category: str = "pizza",
        order_id: str | None = None,
        product: str | None = None,
    ) -> None:
        order_id = order_id or f"o{len(self.rows):06d}"
        items = [
            {
                "product_id": product or category,
                "category": category,
                "quantity": 2,
                "unit_price": amount // 2,
            }
        ]
        self.add(
            "order_recorded",
            at,
            {"amount": amount, "currency": "EUR", "items": items},
            customer_id=customer_id,
            order_id=order_id,
            sales_channel="app",
        )

    def voucher(
        self, campaign_id: str, voucher_id: str, at: datetime, applies_to: dict | None = None
    ) -> None:
        payload: dict[str, Any] = {"code": voucher_id.upper(), "kind": "unique"}
        if applies_to is not None:
            payload["applies_to"] = applies_to
        self.add("voucher_created", at, payload, campaign_id=campaign_id, voucher_id=voucher_id)

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
        discount: int = 500,
    ) -> None:
        self.add("redemption_succeeded", at, {"code": voucher_id.upper(), "discount": discount},
                 customer_id=customer_id, campaign_id=campaign_id, voucher_id=voucher_id,
                 redemption_id=redemption_id or f"r_{voucher_id}")  # fmt: skip

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            self.rows,
            schema=dict(zip(LAKE_SCHEMA.names, [pl.Int64] + [pl.String] * 19, strict=True)),
        )


def booklet_ledger(customers: int = 240, sends: int = 8, seed: int = 7) -> Ledger:
    """One-shot campaigns, each a booklet sent to everyone at one time: a pizza voucher and a
    salad voucher (each its own `applies_to`). Pizza eaters redeem the pizza voucher far more
    often than the salad one, salad eaters the other way round; a declared attribute marks
    the keen ones, who redeem more of everything."""
    rng = random.Random(seed)
    ledger = Ledger()
    start = T0 - timedelta(days=30 * sends + 60)
    ledger.add("customer_attributes_declared", start,
               {"attributes": {"age": "numeric", "tier": "categorical"}})  # fmt: skip
    for name, category, brand in (("margherita", "pizza", "casa"), ("caprese", "salad", "orto")):
        ledger.product(name, start, category=category, brand=brand, price=900, currency="EUR")
    eats = {}
    for i in range(customers):
        customer = f"c{i:04d}"
        eats[customer] = "pizza" if i % 2 == 0 else "salad"
        keen = i % 3 == 0
        ledger.customer(customer, start, attributes={"age": 20 + i % 50,
                                                     "tier": "gold" if keen else "basic"})  # fmt: skip
        for k in range(4):
            ledger.order(customer, start + timedelta(days=5 + 10 * k, hours=rng.random()),
                         category=eats[customer],
                         product="margherita" if eats[customer] == "pizza" else "caprese")  # fmt: skip
    for send in range(sends):
        campaign = f"booklet-{send + 1}"
        at = start + timedelta(days=60 + 30 * send)
        ledger.campaign(campaign, at=at, discount={"type": "percent", "percent_off": 20},
                        rules={"valid_days_after_publication": 20})  # fmt: skip
        for i in range(customers):
            customer = f"c{i:04d}"
            keen = i % 3 == 0
            for category in ("pizza", "salad"):
                voucher = f"v-{send}-{i}-{category}"
                ledger.voucher(campaign, voucher, at, {"categories": [category]})
                ledger.publish(customer, campaign, voucher, at)
                chance = (0.45 if category == eats[customer] else 0.04) * (1.6 if keen else 0.8)
                if rng.random() < chance:
                    ledger.redeem(
                        customer, campaign, voucher, at + timedelta(days=rng.uniform(1, 15))
                    )
    # the data runs past every horizon
    ledger.order("c0000", start + timedelta(days=60 + 30 * sends + 30))
    return ledger


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
