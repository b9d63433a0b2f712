"""Benchmark of distribution: an autopilot tick over 1,000,000 customers, and deliveries/s.

    python bench/distribution.py [--customers 1000000]

Setup (not timed): a fresh ledger in a temporary PROMO_HOME with N customers (consents mixed,
birthdays spread over the year) and their order history (1 to 4 orders each, spread over the
last 200 days), written through the core's batch appends. Timed:

- first_tick_s: the first `run_autopilot()` tick after the autopilots are switched on, for a
  win-back autopilot (at least 2 orders, quiet for 60 days, 10% control group) and a birthday
  autopilot: it matches the whole backlog of quiet regulars at once.
- autopilot_tick_s_1m: the next day's tick, the steady state the scheduler runs nightly:
  every customer evaluated again, the new matches taken through control group, frequency cap,
  consent-driven channel choice, a fresh code per offer, delivery to the file sink with every
  attempt recorded.
- deliveries_per_s: deliveries recorded per second during that tick (time inside delivery:
  sending to the file sink and appending the attempt and outcome events).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redemption_core.distribution.delivery_config import default_channels  # noqa: E402
from redemption_core.distribution.distributor import Distributor, SyntheticContactBook  # noqa: E402
from redemption_core.domain.clock import SettableClock  # noqa: E402
from redemption_core.domain.events import Event, EventType  # noqa: E402
from redemption_core.domain.parsing import iso  # noqa: E402
from redemption_core.engine.redemption import RedemptionEngine  # noqa: E402

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
BATCH = 20_000


def populate(engine: RedemptionEngine, customers: int, rng: random.Random) -> int:
    """Customers and their orders, appended in batches through the core's projection."""
    events = 0
    for start in range(0, customers, BATCH):
        batch: list[Event] = []
        for i in range(start, min(start + BATCH, customers)):
            customer_id = f"c{i:07d}"
            signup = NOW - timedelta(days=400)
            birthday = (datetime(2000, 1, 1) + timedelta(days=rng.randrange(366))).strftime("%m-%d")
            consent = {
                "email": rng.random() < 0.7,
                "sms": rng.random() < 0.3,
                "push": rng.random() < 0.5,
            }
            batch.append(
                Event(
                    EventType.CUSTOMER_CREATED,
                    signup,
                    payload={
                        "signup_at": iso(signup),
                        "birthday": birthday,
                        "attributes": {},
                        "metadata": {},
                        "consent": consent,
                    },
                    customer_id=customer_id,
                )
            )
            for k in range(rng.randint(1, 4)):
                ordered = NOW - timedelta(days=rng.uniform(1, 200))
                amount = rng.randrange(800, 6000)
                batch.append(
                    Event(
                        EventType.ORDER_RECORDED,
                        ordered,
                        payload={
                            "amount": amount,
                            "currency": "EUR",
                            "items": [
                                {
                                    "product_id": "dish",
                                    "category": "mains",
                                    "quantity": 1,
                                    "unit_price": amount,
                                }
                            ],
                        },
                        customer_id=customer_id,
                        order_id=f"o{i:07d}-{k}",
                        sales_channel="app",
                    )
                )
        with engine.transaction() as tx:
            tx.append_many(batch)
        events += len(batch)
        print(
            json.dumps({"setup_customers": min(start + BATCH, customers), "events": events}),
            file=sys.stderr,
        )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary PROMO_HOME")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="promo-bench-dist-"))
    rng = random.Random(42)
    clock = SettableClock(NOW)
    try:
        engine = RedemptionEngine.open(home, clock=clock)
        started = time.perf_counter()
        setup_events = populate(engine, args.customers, rng)
        setup_s = time.perf_counter() - started
        for definition in (
            {"id": "winback", "currency": "EUR", "status": "active", "discount": {"type": "percent", "percent_off": 15},
             "distribution": {"mode": "autopilot", "channels": ["push", "email", "sms"], "control_share": 0.1,
                              "trigger": {"type": "gone_quiet", "min_orders": 2, "quiet_days": 60}}},
            {"id": "birthday", "currency": "EUR", "status": "active", "discount": {"type": "amount", "amount_off": 500},
             "distribution": {"mode": "autopilot", "channels": ["email", "sms", "push"],
                              "trigger": {"type": "personal_date", "days_before": 3}}},
        ):  # fmt: skip
            engine.create_from_definition(definition)
        channels = default_channels(home / "outbox", flush="batch")
        distributor = Distributor(engine, channels, SyntheticContactBook())
        distributor.set_frequency_cap(2, 7)

        delivering = {"s": 0.0}
        deliver = distributor._deliver

        def timed_deliver(*a, **k):
            t = time.perf_counter()
            deliver(*a, **k)
            delivering["s"] += time.perf_counter() - t

        distributor._deliver = timed_deliver  # type: ignore[method-assign]
        started = time.perf_counter()
        first = distributor.run_autopilot()
        first_s = time.perf_counter() - started
        first_delivered = sum(r.delivered for r in first)
        clock.now = NOW + timedelta(days=1)
        first_delivering_s = delivering["s"]
        delivering["s"] = 0.0
        started = time.perf_counter()
        reports = distributor.run_autopilot()
        tick_s = time.perf_counter() - started
        delivered = sum(r.delivered for r in reports)
        for channel in channels.values():
            channel.close()
        engine.close()
        summary = {
            "customers": args.customers,
            "autopilot_tick_s_1m" if args.customers == 1_000_000 else "autopilot_tick_s": round(
                tick_s, 2
            ),
            "customers_evaluated_per_s": round(args.customers / tick_s),
            "deliveries_per_s": round(delivered / delivering["s"]) if delivering["s"] else 0,
            "delivered": delivered,
            "first_tick_s": round(first_s, 2),
            "first_tick_delivered": first_delivered,
            "first_tick_deliveries_per_s": round(first_delivered / first_delivering_s),
            "reports": [r.to_dict() for r in reports],
            "setup_s": round(setup_s, 1),
            "setup_events_per_s": round(setup_events / setup_s),
            "target_tick_s": 30,
        }
        print(json.dumps(summary))
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
