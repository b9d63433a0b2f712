"""What the fraud tests add to a simulated ledger, through the engine like any other act, at
moments inside the simulated period: households (legitimate sharing of a device and a card) and
two kinds of abuse that no rule names, one a spike and one a drift. Each abuse case is returned
in the ground-truth format of the simulator (`case_id`, `pattern`, `started_at`, `ended_at`,
`event_ids`), the households as their hashed devices and cards.

- rollback_loop (a spike): one evening, a staff member redeems a flyer code at the till, voids
  it, and redeems it again for the next customer, over and over.
- refund_creep (a drift): over three weeks, a growing share of one staff member's till orders
  with a voucher are refunded in part afterwards (money out of the till).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from redemption_core import (
    Order,
    OrderItem,
    RedeemRequest,
    RedemptionEngine,
    RequestContext,
    SettableClock,
    iso,
)
from redemption_core.ledger.home import context_hasher

DISH = OrderItem("lasagna", 1, 1350, "pasta")
DRINK = OrderItem("lemonade", 1, 390, "drinks")


@dataclass
class Injected:
    cases: list[dict] = field(default_factory=list)
    household_devices: list[str] = field(default_factory=list)  # hashed, as in the ledger
    household_payments: list[str] = field(default_factory=list)


class Injector:
    def __init__(self, home: Path, start: datetime, seed: int) -> None:
        self.clock = SettableClock(start)
        self.start = start
        self.engine = RedemptionEngine.open(home, durable=False, clock=self.clock)
        self.hasher = context_hasher(home)
        self.rng = random.Random(seed)
        self.orders = 0
        self.result = Injected()

    def close(self) -> Injected:
        self.engine.close()
        return self.result

    def at(self, day: int, hour: float) -> datetime:
        self.clock.now = self.start + timedelta(days=day, hours=hour)
        return self.clock.now

    def order(self, *items: OrderItem) -> Order:
        self.orders += 1
        return Order(sum(i.total for i in items), "EUR", items, id=f"inj-{self.orders:07d}")

    def flyers(self, count: int) -> list[str]:
        return list(self.engine.generate_codes("flyer", count))

    def _case(self, pattern: str, started: datetime, event_ids: list[str], **details) -> None:
        self.result.cases.append(
            {
                "case_id": f"inj-{len(self.result.cases) + 1:03d}",
                "pattern": pattern,
                "started_at": iso(started),
                "ended_at": iso(self.clock.now),
                "event_ids": event_ids,
                **details,
            }
        )

    # -- legitimate ----------------------------------------------------------------------------
    def households(self, count: int, days: int) -> None:
        """Families of 2 to 5 accounts on one tablet and one card, signing up weeks apart, each
        ordering every few days at lunch or dinner, now and then with a voucher."""
        happy = "HAPPY5"
        for h in range(count):
            device, card = f"family-tablet-{h}", f"family-card-{h}"
            self.result.household_devices.append(self.hasher.hash(device) or "")
            self.result.household_payments.append(self.hasher.hash(card) or "")
            members = self.rng.randint(2, 5)
            joined = self.rng.randrange(0, 6)
            for m in range(members):
                account = f"fam{h:03d}-{m}"
                joined += 0 if m == 0 else self.rng.randint(9, 20)
                if joined >= days - 1:
                    continue
                self.at(joined, self.rng.choice([11.5, 17.5]))
                self.engine.add_customers([{"id": account, "consent": {"email": True}}])
                day, first = joined, True
                while day < days:
                    moment = self.at(day, self.rng.choice([12.2, 12.8, 18.5, 19.3, 20.1]))
                    order = (
                        self.order(DISH, DRINK, DRINK)
                        if self.rng.random() < 0.5
                        else self.order(DISH, DISH)
                    )
                    context = RequestContext(
                        device_id=device,
                        payment_fingerprint=card,
                        ip=f"192.0.2.{h % 250 + 1}",
                        sales_channel="app",
                    )
                    code = "WELCOME10" if first else happy if self.rng.random() < 0.3 else None
                    if code:
                        self.engine.redeem(RedeemRequest(code, order, account, context))
                    self.clock.now = moment + timedelta(minutes=1)
                    self.engine.record_order(order, customer_id=account, context=context)
                    first = False
                    day += self.rng.randint(4, 12)

    # -- abuse no rule names -------------------------------------------------------------------
    def rollback_loop(self, day: int, store: str, staff: str, customers: list[str]) -> None:
        started = self.at(day, 18.2)
        code = self.flyers(1)[0]
        context = RequestContext(store_id=store, staff_id=staff, sales_channel="pos")
        attempts = []
        for _ in range(self.rng.randint(12, 18)):
            self.clock.now += timedelta(minutes=self.rng.uniform(2, 6))
            order = self.order(DISH)
            result = self.engine.redeem(
                RedeemRequest(code, order, self.rng.choice(customers), context)
            )
            attempts.append(result.event_id)
            self.clock.now += timedelta(seconds=self.rng.uniform(20, 90))
            if result.ok:
                self.engine.rollback(
                    result.redemption_id or "", reason="wrong item", context=context
                )
        self._case("rollback_loop", started, attempts, staff_id=staff, store_id=store)

    def refund_creep(
        self, first_day: int, last_day: int, store: str, staff: str, customers: list[str]
    ) -> None:
        """From `first_day`, 3 to 5 till orders a day with a flyer code; the share refunded in
        part grows from 10% to 70% by `last_day`."""
        started = self.at(first_day, 12)
        context = RequestContext(store_id=store, staff_id=staff, sales_channel="pos")
        codes = self.flyers((last_day - first_day + 1) * 5)
        refunded = []
        for day in range(first_day, last_day + 1):
            share = 0.1 + 0.6 * (day - first_day) / max(1, last_day - first_day)
            for _ in range(self.rng.randint(3, 5)):
                self.at(day, self.rng.uniform(12, 14))
                order = self.order(DISH, DRINK)
                customer = self.rng.choice(customers)
                result = self.engine.redeem(RedeemRequest(codes.pop(), order, customer, context))
                self.engine.record_order(order, customer_id=customer, context=context)
                if result.ok and self.rng.random() < share:
                    self.clock.now += timedelta(minutes=self.rng.uniform(30, 120))
                    self.engine.refund_order(order.id or "", 600, reason="complaint")
                    refunded.append(result.event_id)
        self._case("refund_creep", started, refunded, staff_id=staff, store_id=store)


def inject(home: Path, start: datetime, days: int, seed: int, customers: list[str]) -> Injected:
    """Households, one rollback loop and one refund creep into the simulated ledger at `home`."""
    injector = Injector(home, start, seed)
    injector.households(count=25, days=days)
    injector.rollback_loop(days - 9, "store-mitte", "staff-store-mitte-2", customers)
    injector.refund_creep(
        days - 22, days - 1, "store-kreuzberg", "staff-store-kreuzberg-1", customers
    )
    return injector.close()
