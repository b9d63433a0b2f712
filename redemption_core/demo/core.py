"""`make demo-core`: a small, complete run on the ledger under PROMO_HOME.

It creates a main campaign with three sub-campaigns (a personal win-back voucher, a shared
slow-night code, gift cards), generates and publishes codes, runs validations, redemptions
(accepted and rejected, with an idempotent retry), a rollback and a refused second rollback,
uses and tops up a gift card; then distribution (distribution.py): customers, orders, a
promotion and autopilots delivering to file outboxes; finally verifies the ledger and prints a
summary. Campaign ids carry
the run's timestamp, so running it again appends a new demo to the same ledger.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

from redemption_core.demo.distribution import run_distribution_demo
from redemption_core.domain.money import format_money
from redemption_core.domain.orders import Order, OrderItem, RequestContext
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine, RedemptionResult
from redemption_core.ledger.home import ledger_location
from redemption_core.ledger.reports import stats
from redemption_core.ledger.verify import verify_ledger

MENU = (
    ("burger", "mains", 1290),
    ("pizza", "mains", 1150),
    ("salad", "starters", 790),
    ("soup", "starters", 590),
    ("lemonade", "drinks", 390),
    ("tiramisu", "desserts", 650),
)


def demo_definition(run: str, now_iso: str, until_iso: str) -> dict:
    return {
        "id": f"retention-{run}",
        "name": "Retention (demo)",
        "campaigns": [
            {
                "id": f"winback-{run}",
                "name": "Win-back: 15% for regulars gone quiet",
                "currency": "EUR",
                "status": "active",
                "active_from": now_iso,
                "active_until": until_iso,
                "voucher": {"kind": "unique", "code_config": {"prefix": "WB-"}},
                "discount": {"type": "percent", "percent_off": 15, "max_discount": 1000},
                "rules": {
                    "min_order_amount": 1500,
                    "valid_days_after_publication": 14,
                    "acceptance_required": True,
                },
                "limits": {"per_customer": 1, "budget": 150_000},
            },
            {
                "id": f"slow-night-{run}",
                "name": "Slow-night filler: 5 EUR off mains",
                "currency": "EUR",
                "status": "active",
                "voucher": {"kind": "standalone", "code": f"SLOWNIGHT-{run}"},
                "discount": {
                    "type": "amount",
                    "amount_off": 500,
                    "applies_to": {"categories": ["mains"]},
                },
                "limits": {"per_customer": 1, "campaign_total": 40},
            },
            {
                "id": f"gift-{run}",
                "name": "Gift cards, 25 EUR",
                "currency": "EUR",
                "status": "active",
                "voucher": {"kind": "gift", "gift_balance": 2500},
            },
        ],
    }


def random_order(rng: random.Random, number: int) -> Order:
    lines = rng.sample(MENU, rng.randint(1, 4))
    items = tuple(
        OrderItem(product, rng.randint(1, 2), price, category) for product, category, price in lines
    )
    return Order(
        amount=sum(item.total for item in items), currency="EUR", items=items, id=f"o-{number}"
    )


def main() -> None:
    rng = random.Random(7)
    engine = RedemptionEngine.open()
    now = engine.now()
    run = now.strftime("%Y%m%d%H%M%S%f")[:17]  # to the millisecond: runs may follow quickly
    print(f"promoledger demo {run}: ledger at {ledger_location()}")

    ids = engine.create_from_definition(
        demo_definition(run, now.isoformat(), (now + timedelta(days=30)).isoformat())
    )
    winback, _, gift = ids
    codes = engine.generate_codes(winback, 1000)
    print(
        f"created campaigns {', '.join(ids)}; generated {len(codes)} win-back codes, e.g. {codes[0]}"
    )

    customers = [f"cust-{run}-{i:04d}" for i in range(300)]
    for code, customer in zip(codes, customers, strict=False):
        engine.publish(code, customer, channel=rng.choice(["email", "sms", "push"]))
    accepted = [(c, k) for c, k in zip(codes, customers, strict=False) if rng.random() < 0.7]
    for code, customer in accepted:
        engine.accept(code, customer)
    print(f"published {len(customers)} vouchers, {len(accepted)} accepted")

    outcomes: Counter[str] = Counter()
    validations = 0
    requests: list[RedeemRequest] = []
    for i, (code, customer) in enumerate(zip(codes, customers, strict=False)):
        context = RequestContext(
            device_id=f"device-{i}", ip=f"10.0.{i // 250}.{i % 250}", sales_channel="app"
        )
        order = random_order(rng, i)
        engine.validate(code, order, customer_id=customer, context=context)
        validations += 1
        if rng.random() < 0.6:
            request = RedeemRequest(
                code, order, customer, context, idempotency_key=f"redeem-{run}-{i}"
            )
            requests.append(request)
            outcomes.update([_outcome(engine.redeem(request))])
    # Guessing: unknown codes are rejected and recorded for fraud detection.
    for _ in range(25):
        guess = engine.validate(f"WB-{rng.getrandbits(40):010X}", random_order(rng, 9999))
        validations += 1
        outcomes.update(["guess " + _reason(guess.reasons)])

    # A retry with the same idempotency key answers from the ledger; nothing runs twice.
    retry = engine.redeem(requests[0])
    print(
        f"idempotent retry of {retry.redemption_id or 'a rejected redemption'}:"
        f" replayed={retry.replayed}"
    )

    for i in range(60):
        order = random_order(rng, 5000 + i)
        result = engine.redeem(
            RedeemRequest(f"SLOWNIGHT-{run}", order, customer_id=f"walk-in-{i % 45}")
        )
        outcomes.update(["slow-night " + _outcome(result)])

    card = engine.generate_codes(gift, 1)[0]
    engine.publish(card, customers[0])
    spend = engine.redeem(
        RedeemRequest(card, random_order(rng, 7000), customers[0], gift_amount=1800)
    )
    over = engine.redeem(
        RedeemRequest(card, random_order(rng, 7001), customers[0], gift_amount=1000)
    )
    balance = engine.top_up(card, 2000)
    print(
        f"gift card {card}: used {format_money(spend.gift_amount, 'EUR')}, then asked 10.00 EUR:"
        f" {_outcome(over)}; topped up to {format_money(balance, 'EUR')}"
    )

    done = next(r for r in _redemptions(engine, winback))
    again = engine.rollback(done, reason="order cancelled")
    twice = engine.rollback(done, reason="order cancelled")
    print(f"rollback {done}: ok={again.ok}; second rollback: {_reason(twice.reasons)}")
    engine.close()

    print(f"\n{validations} validations; redemption outcomes:")
    for name, count in sorted(outcomes.items()):
        print(f"  {name:<60} {count:>5}")

    print("\n-- distribution --")
    run_distribution_demo(run, rng)
    report = verify_ledger()
    print(
        f"\nledger verify: {'clean' if report.clean else 'DIFFERENCES'} over {report.events} events"
    )
    engine = RedemptionEngine.open()
    summary = stats(engine.store)
    engine.close()
    print(f"ledger: {summary['events']} events, {summary['redemptions']} redemptions,")
    print(
        f"  {summary['rolled_back']} rolled back, net discount {format_money(summary['discount_given_net'], 'EUR')}"
    )
    for row in summary["campaigns"]:
        if row["campaign_id"].endswith(run):
            print(
                f"  {row['campaign_id']:<34} vouchers {row['vouchers']:>5}  redeemed"
                f" {row['redemptions']:>4}  discount {format_money(row['discount_given'], row['currency'])}"
            )
    if not report.clean:
        raise SystemExit("ledger verify found differences")


def _reason(reasons: tuple) -> str:
    return ", ".join(sorted(str(r.code) for r in reasons)) or "ok"


def _outcome(result: RedemptionResult) -> str:
    return "redeemed" if result.ok else "rejected: " + _reason(result.reasons)


def _redemptions(engine: RedemptionEngine, campaign_id: str) -> list[str]:
    with engine.store.read() as tx:
        rows = tx.query(
            "SELECT redemption_id FROM redemptions WHERE campaign_id = ? AND rolled_back_at IS NULL"
            " ORDER BY redeemed_at LIMIT 5",
            (campaign_id,),
        )
    return [row[0] for row in rows]
