"""Ledgers of shapes the simulator never makes, imported as another system's history would be
(`promo import`'s rows, valid under the ledger's rules), for the pipeline tests.

`foreign_history(home)` writes one small ledger holding, in this order:

- a coupon history (autumn 2007): two campaigns whose customers each receive several coupons
  per campaign; redemptions carry no order (no order id, no amount); customers have
  demographic attributes; no control group;
- an e-mail experiment from 2008 (after Hillstrom's MineThatData challenge): two treatments,
  a men's and a women's e-mail, share one control group, held out of both; the e-mails carry
  codes nobody redeems; outcomes are opens, clicks, site visits and orders; the data stop at
  send + 13.9 days, short of the 14-day outcome window;
- a customer added by hand with only an id and an e-mail address (no consent given).

So the ledger starts in 2007, and its last month holds no validation or redemption at all. The
figures the marts should show are worked out here, from the rows written, not from the marts.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from builders import Clock, engine_at

from redemption_core import Event, EventType
from redemption_core.imports.ledger_schema import events_to_rows, import_events

IMPORTED_AT = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # when the history is imported
COUPONS_START = datetime(2007, 9, 3, 9, 0, tzinfo=UTC)
SEND = datetime(2008, 3, 3, 10, 0, tzinfo=UTC)  # the e-mail experiment's send
DATA_END = SEND + timedelta(days=13.9)
WINDOW_DAYS = 14  # the dbt var campaign_outcome_window_days

CUSTOMERS = [f"h{n:03d}" for n in range(1, 61)]
CONTROL = CUSTOMERS[:20]  # held out of both e-mails
TREATED = {"mens-email": CUSTOMERS[20:40], "womens-email": CUSTOMERS[40:60]}
# who did what in the 14 days after the send (orders: amount in cents)
OPENED = {"mens-email": CUSTOMERS[20:31], "womens-email": CUSTOMERS[40:52]}
CLICKED = {"mens-email": CUSTOMERS[20:25], "womens-email": []}
VISITED = {"control": CONTROL[:4], "mens-email": CUSTOMERS[20:28], "womens-email": CUSTOMERS[40:46]}
ORDERS = {
    "control": dict.fromkeys(CONTROL[:2], 5000),
    "mens-email": dict.fromkeys(CUSTOMERS[20:24], 6000),
    "womens-email": dict.fromkeys(CUSTOMERS[40:43], 4000),
}
# coupon history: each of these households gets COUPONS_EACH coupons of each campaign
HOUSEHOLDS = CUSTOMERS[:12]
COUPONS_EACH = {"coupon-a": 3, "coupon-b": 2}
REDEEMED = {"coupon-a": 10, "coupon-b": 5}  # the first n coupons of each campaign
DEMOGRAPHICS = {"age_desc": "35-44", "income_desc": "50-74K", "household_size_desc": "2"}
WALK_IN = "walk-in"


@dataclass
class ForeignHistory:
    home: Path
    coupons: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (voucher, holder)


def _event(kind: EventType, at: datetime, event_id: str, **fields: Any) -> Event:
    payload = fields.pop("payload", {})
    return Event(kind, at, payload=payload, event_id=event_id, **fields)


def _campaign(campaign_id: str, at: datetime, control_share: float = 0.0) -> Event:
    definition: dict[str, Any] = {
        "id": campaign_id,
        "name": campaign_id.replace("-", " ").capitalize(),
        "currency": "USD",
        "status": "active",
        "voucher": {"kind": "unique"},
        "discount": {"type": "unspecified"},
    }
    if control_share:
        definition["distribution"] = {
            "mode": "promotion",
            "segment": "everyone",
            "channels": ["email"],
            "control_share": control_share,
        }
    return _event(
        EventType.CAMPAIGN_CREATED,
        at,
        f"c-{campaign_id}",
        campaign_id=campaign_id,
        payload={"definition": definition},
    )


def coupon_history(history: ForeignHistory) -> list[Event]:
    events = []
    for campaign_id, each in COUPONS_EACH.items():
        events.append(_campaign(campaign_id, COUPONS_START))
        vouchers = history.coupons.setdefault(campaign_id, [])
        for household in HOUSEHOLDS:
            for n in range(each):
                voucher = f"v-{campaign_id}-{household}-{n}"
                code = f"{campaign_id}-{household}-{n}".upper()
                ids = {"campaign_id": campaign_id, "voucher_id": voucher}
                events += [
                    _event(
                        EventType.VOUCHER_CREATED,
                        COUPONS_START,
                        f"vc-{voucher}",
                        payload={"code": code, "kind": "unique", "source": "import"},
                        **ids,
                    ),
                    _event(
                        EventType.VOUCHER_PUBLISHED,
                        COUPONS_START + timedelta(hours=1),
                        f"vp-{voucher}",
                        customer_id=household,
                        payload={"code": code, "source": "import"},
                        **ids,
                    ),
                ]
                vouchers.append((voucher, household))
        for i, (voucher, household) in enumerate(vouchers[: REDEEMED[campaign_id]]):
            code = voucher.removeprefix("v-").upper()
            events.append(
                _event(
                    EventType.REDEMPTION_SUCCEEDED,
                    COUPONS_START + timedelta(days=10 + 3 * i),
                    f"rs-{voucher}",
                    campaign_id=campaign_id,
                    voucher_id=voucher,
                    customer_id=household,
                    redemption_id=f"r-{voucher}",
                    # the source system knew the coupon was used, not on what order
                    payload={
                        "code": code,
                        "order": {"id": None, "amount": 0, "currency": "USD", "items": []},
                        "discount": 0,
                        "gift_amount": 0,
                        "currency": "USD",
                        "amounts_known": False,
                    },
                )
            )
    return events


def email_experiment() -> list[Event]:
    events = [
        _campaign("mens-email", SEND - timedelta(days=1), control_share=0.5),
        # the source system split the audience itself: no distribution section, held-out rows
        _campaign("womens-email", SEND - timedelta(days=1)),
    ]
    for campaign_id in TREATED:
        for customer in CONTROL:
            events.append(
                _event(
                    EventType.CUSTOMER_HELD_OUT,
                    SEND,
                    f"ho-{campaign_id}-{customer}",
                    campaign_id=campaign_id,
                    customer_id=customer,
                    payload={"source": "promotion"},
                )
            )
        for customer in TREATED[campaign_id]:
            voucher = f"v-{campaign_id}-{customer}"
            ids = {"campaign_id": campaign_id, "voucher_id": voucher}
            code = f"{campaign_id}-{customer}".upper()
            events += [
                _event(
                    EventType.VOUCHER_CREATED,
                    SEND,
                    f"vc-{voucher}",
                    payload={"code": code, "kind": "unique", "source": "generated"},
                    **ids,
                ),
                _event(
                    EventType.VOUCHER_PUBLISHED,
                    SEND,
                    f"vp-{voucher}",
                    customer_id=customer,
                    channel="email",
                    payload={"code": code, "source": "promotion"},
                    **ids,
                ),
                _event(
                    EventType.VOUCHER_DELIVERED,
                    SEND + timedelta(minutes=1),
                    f"vd-{voucher}",
                    customer_id=customer,
                    channel="email",
                    payload={"provider": "esp", "attempts": 1, "latency_ms": 120.0},
                    **ids,
                ),
            ]
        for customer in OPENED[campaign_id]:
            events.append(
                _event(
                    EventType.MESSAGE_OPENED,
                    SEND + timedelta(hours=3),
                    f"op-{campaign_id}-{customer}",
                    customer_id=customer,
                    campaign_id=campaign_id,
                    voucher_id=f"v-{campaign_id}-{customer}",
                    channel="email",
                )
            )
        for customer in CLICKED[campaign_id]:
            events.append(
                _event(
                    EventType.MESSAGE_CLICKED,
                    SEND + timedelta(hours=4),
                    f"cl-{campaign_id}-{customer}",
                    customer_id=customer,
                    campaign_id=campaign_id,
                    channel="email",
                    payload={"url": "https://shop.example/new-season"},
                )
            )
    for arm, customers in VISITED.items():
        for customer in customers:
            events.append(
                _event(
                    EventType.SITE_VISITED,
                    SEND + timedelta(days=1),
                    f"vi-{customer}",
                    customer_id=customer,
                    # a held-out customer's visit comes from no campaign
                    campaign_id=None if arm == "control" else arm,
                    payload={"surface": "web"},
                )
            )
    for orders in ORDERS.values():
        for customer, amount in orders.items():
            events.append(
                _event(
                    EventType.ORDER_RECORDED,
                    SEND + timedelta(days=2),
                    f"or-{customer}",
                    customer_id=customer,
                    order_id=f"o-{customer}",
                    payload={"amount": amount, "currency": "USD", "items": []},
                )
            )
    # the last thing the history holds: an open, 13.9 days after the send
    last = OPENED["mens-email"][-1]
    events.append(
        _event(
            EventType.MESSAGE_OPENED,
            DATA_END,
            f"op-late-{last}",
            customer_id=last,
            campaign_id="mens-email",
            channel="email",
        )
    )
    return events


def customers() -> list[Event]:
    return [
        _event(
            EventType.CUSTOMER_CREATED,
            COUPONS_START - timedelta(days=3),
            f"cc-{customer}",
            customer_id=customer,
            payload={
                "signup_at": "2006-05-01T00:00:00Z",
                "attributes": DEMOGRAPHICS if customer in HOUSEHOLDS else {},
                "consent": {"email": customer not in CONTROL[:5]},
            },
        )
        for customer in CUSTOMERS
    ]


def foreign_history(home: Path) -> ForeignHistory:
    """Import the history into `home`'s ledger, then add the walk-in customer by hand."""
    history = ForeignHistory(home)
    clock = Clock(IMPORTED_AT)
    engine = engine_at(home, clock)
    rows = events_to_rows(customers() + coupon_history(history) + email_experiment())
    import_events(engine, rows)
    # `promo customers add walk-in --email ...`: no consent given, as the CLI allows
    clock.set(SEND + timedelta(days=5))
    engine.add_customer({"id": WALK_IN, "email": "walk.in@example.com"})
    engine.close()
    return history


@dataclass(frozen=True)
class Lift:
    n_t: int
    n_c: int
    difference: float
    low: float
    high: float


def share_lift(treated: list[bool], control: list[bool]) -> Lift:
    """Difference of two shares with its 95% interval (normal approximation, unpooled)."""
    p_t, p_c = sum(treated) / len(treated), sum(control) / len(control)
    se = (p_t * (1 - p_t) / len(treated) + p_c * (1 - p_c) / len(control)) ** 0.5
    d = p_t - p_c
    return Lift(len(treated), len(control), d, d - 1.96 * se, d + 1.96 * se)


def mean_lift(treated: list[float], control: list[float]) -> Lift:
    """Difference of two means with its 95% interval (Welch's standard error)."""
    se = (
        statistics.variance(treated) / len(treated) + statistics.variance(control) / len(control)
    ) ** 0.5
    d = statistics.mean(treated) - statistics.mean(control)
    return Lift(len(treated), len(control), d, d - 1.96 * se, d + 1.96 * se)


def expected_lifts(campaign_id: str) -> dict[str, Lift]:
    """Conversion, visit rate and revenue per customer of a treatment against the shared control."""
    treated, control = TREATED[campaign_id], CONTROL
    ordered = {**ORDERS["control"], **ORDERS[campaign_id]}
    visited = set(VISITED["control"]) | set(VISITED[campaign_id])
    return {
        "conversion": share_lift([c in ordered for c in treated], [c in ordered for c in control]),
        "visit_rate": share_lift([c in visited for c in treated], [c in visited for c in control]),
        "revenue_per_customer": mean_lift(
            [ordered.get(c, 0) for c in treated], [ordered.get(c, 0) for c in control]
        ),
    }
