"""The distribution half of `make demo`: customers, orders, a promotion and two autopilots.

Ninety days of a small restaurant's history are recorded (customers with their consents and
birthdays, orders with and without vouchers, regulars who go quiet), then a VIP thank-you
promotion is sent, the autopilots tick (win-back, birthday), customers accept and redeem some
vouchers, and the funnel of each campaign is printed: published, delivered, accepted, redeemed,
with the hold-outs and the skipped offers by reason. Deliveries go to JSON-lines files under
$PROMO_HOME/outbox.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

from redemption_core.distribution.delivery_config import default_channels
from redemption_core.distribution.distributor import Distributor, SyntheticContactBook
from redemption_core.domain.clock import SettableClock
from redemption_core.domain.orders import Order, OrderItem, RequestContext
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine
from redemption_core.ledger.home import promo_home

DISHES = (("margherita", "pizza", 950), ("diavola", "pizza", 1150), ("carbonara", "pasta", 1250),
          ("lasagna", "pasta", 1350), ("tiramisu", "dessert", 650), ("lemonade", "drinks", 390))  # fmt: skip
HISTORY_DAYS = 90


def run_distribution_demo(run: str, rng: random.Random) -> None:
    today = datetime.now().astimezone()
    clock = SettableClock(today - timedelta(days=HISTORY_DAYS))
    engine = RedemptionEngine.open(clock=clock)
    customers = [f"guest-{run}-{i:03d}" for i in range(400)]
    engine.add_customers([_profile(customer, rng) for customer in customers])
    # Habits: a regular orders every few days; some regulars stop after day 40 (they go quiet).
    habit = {c: rng.choice([3, 5, 9, 20, 45]) for c in customers}
    quits = {c for c in customers if rng.random() < 0.3}
    orders = 0
    for day in range(HISTORY_DAYS):
        clock.now = today - timedelta(days=HISTORY_DAYS - day)
        batch = []
        for customer in customers:
            if customer in quits and day > 40:
                continue
            if rng.random() < 1 / habit[customer]:
                orders += 1
                batch.append(
                    (
                        _order(rng, f"o-{run}-{orders}"),
                        customer,
                        RequestContext(sales_channel="app"),
                    )
                )
        if batch:
            engine.record_orders(batch)
    print(f"recorded {len(customers)} customers and {orders} orders over {HISTORY_DAYS} days")

    # Sends go out half a day ago; acceptances and redemptions follow within those hours, so
    # that every event of the demo lies in the past.
    sent_at = today - timedelta(hours=12)
    clock.now = sent_at
    vip, winback, birthday = f"vip-thanks-{run}", f"winback-auto-{run}", f"birthday-{run}"
    engine.define_segment(
        {"id": f"vip-{run}", "rules": [{"field": "total_spend", "op": ">=", "value": 15000}]}
    )
    for definition in _campaigns(run, vip, winback, birthday):
        engine.create_from_definition(definition)
    outbox = promo_home() / "outbox"
    channels = default_channels(outbox)
    distributor = Distributor(engine, channels, SyntheticContactBook())
    distributor.set_frequency_cap(2, 7)
    reports = [distributor.send_promotion(vip), *distributor.run_autopilot([winback, birthday])]
    for channel in channels.values():
        channel.close()

    # Customers accept some vouchers in the app and redeem some of those on an order.
    funnel: dict[str, Counter[str]] = {r.campaign_id: Counter() for r in reports}
    with engine.store.read() as tx:
        offered = tx.query(
            "SELECT o.campaign_id, v.code, o.customer_id FROM offers o"
            " JOIN vouchers v USING (voucher_id) JOIN deliveries d USING (voucher_id)"
            " WHERE d.status = 'delivered' AND o.campaign_id IN (?, ?, ?)"
            " ORDER BY o.offered_at, o.voucher_id",
            (vip, winback, birthday),
        )
    for campaign_id, code, customer in offered:
        if rng.random() < 0.6:
            engine.accept(code, customer)
            funnel[campaign_id]["accepted"] += 1
            if rng.random() < 0.7:
                clock.now = sent_at + timedelta(minutes=rng.randint(1, 600))
                orders += 1
                order = _order(rng, f"o-{run}-{orders}")
                result = engine.redeem(
                    RedeemRequest(code, order, customer, RequestContext(sales_channel="app"))
                )
                engine.record_order(
                    order, customer_id=customer, context=RequestContext(sales_channel="app")
                )
                funnel[campaign_id]["redeemed" if result.ok else "rejected"] += 1
    engine.close()

    print("\ncampaign funnels (published → delivered → accepted → redeemed):")
    for report in reports:
        counts = funnel[report.campaign_id]
        skipped = (
            ", ".join(f"{reason} {n}" for reason, n in sorted(report.skipped.items())) or "none"
        )
        print(
            f"  {report.campaign_id:<40} matched {report.matched:>4}  held out {report.held_out:>3}"
            f"  published {report.published:>4}  delivered {report.delivered:>4}"
            f"  accepted {counts['accepted']:>4}  redeemed {counts['redeemed']:>4}"
            f"  skipped: {skipped}"
        )
    print(f"deliveries written to {outbox}/{{email,sms,push}}.jsonl")


def _profile(customer: str, rng: random.Random) -> dict:
    birthday = (datetime(2000, 1, 1) + timedelta(days=rng.randrange(366))).strftime("%m-%d")
    return {
        "id": customer,
        "signup_at": (datetime.now().astimezone() - timedelta(days=HISTORY_DAYS + 30)).isoformat(),
        "birthday": birthday,
        "email": f"{customer}@example.com",
        "consent": {
            "email": rng.random() < 0.7,
            "sms": rng.random() < 0.3,
            "push": rng.random() < 0.5,
        },
        "attributes": {"city": rng.choice(["Berlin", "Hamburg", "Munich"])},
    }


def _order(rng: random.Random, order_id: str) -> Order:
    lines = rng.sample(DISHES, rng.randint(1, 3))
    items = tuple(
        OrderItem(dish, rng.randint(1, 2), price, category) for dish, category, price in lines
    )
    return Order(sum(item.total for item in items), "EUR", items, id=order_id)


def _campaigns(run: str, vip: str, winback: str, birthday: str) -> list[dict]:
    return [
        {
            "id": vip,
            "name": "VIP thank-you",
            "currency": "EUR",
            "status": "active",
            "voucher": {"kind": "unique", "code_config": {"prefix": "VIP-"}},
            "discount": {"type": "percent", "percent_off": 20, "max_discount": 1500},
            "rules": {"acceptance_required": True, "valid_days_after_publication": 30},
            "distribution": {
                "mode": "promotion",
                "segment": f"vip-{run}",
                "channels": ["push", "email", "sms"],
                "control_share": 0.2,
            },
        },
        {
            "id": winback,
            "name": "Win-back",
            "currency": "EUR",
            "status": "active",
            "voucher": {"kind": "unique", "code_config": {"prefix": "WB-"}},
            "discount": {"type": "amount", "amount_off": 500},
            "rules": {"acceptance_required": True, "min_order_amount": 1500},
            "distribution": {
                "mode": "autopilot",
                "channels": ["email", "push", "sms"],
                "control_share": 0.1,
                "trigger": {"type": "gone_quiet", "min_orders": 3, "quiet_days": 21},
            },
        },
        {
            "id": birthday,
            "name": "Birthday treat",
            "currency": "EUR",
            "status": "active",
            "voucher": {"kind": "unique", "code_config": {"prefix": "BDAY-"}},
            "discount": {"type": "free_item", "product": "tiramisu"},
            "distribution": {
                "mode": "autopilot",
                "channels": ["push", "email"],
                "trigger": {"type": "personal_date", "days_before": 7},
            },
        },
    ]
