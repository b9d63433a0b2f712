"""Fraud and abuse injected into a simulation at a configurable scale, each case labelled in a
ground-truth file beside the ledger ($PROMO_HOME/simulation/ground_truth.jsonl), never inside
it: code guessing, multi-accounting, a leaked code, refund abuse, staff abuse and a velocity
burst. Every act goes through the engine like any other.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import PromoError
from redemption_core.domain.orders import Order, OrderItem, RequestContext
from redemption_core.engine.redemption import RedeemRequest
from redemption_core.simulate.business import STORES

if TYPE_CHECKING:
    from redemption_core.simulate.simulation import Simulation


class FraudInjector:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.cases: list[dict[str, Any]] = []
        self.schedule: dict[int, list[str]] = {}

    def run_day(self, day: int) -> None:
        for pattern in self.schedule.get(day, ()):
            FRAUD_PATTERNS[pattern](self, day, self.sim.rng)

    def plan(self) -> dict[int, list[str]]:
        """About six cases per 2,000 customers and run (times the scale); each pattern at least
        once when the scale is above zero, so every kind is there to be found."""
        if self.sim.config.fraud_scale <= 0:
            return {}
        total = max(
            len(FRAUD_PATTERNS),
            round(self.sim.config.fraud_scale * self.sim.config.customers / 2000 * 6),
        )
        patterns = sorted(FRAUD_PATTERNS)
        self.sim.rng.shuffle(patterns)
        schedule: dict[int, list[str]] = {}
        for i in range(total):
            schedule.setdefault(self.sim.rng.randrange(self.sim.config.days), []).append(
                patterns[i % len(patterns)]
            )
        return schedule

    def _truth_case(self, pattern: str, started: datetime, **details: Any) -> None:
        self.cases.append(
            {
                "case_id": f"case-{len(self.cases) + 1:05d}",
                "pattern": pattern,
                "started_at": p.iso(started),
                "ended_at": p.iso(self.sim.clock.now),
                **details,
            }
        )

    def _hash(self, value: str) -> str | None:
        return self.sim.hasher.hash(value)  # the same keyed hash the ledger stores

    def _guessing(self, day: int, rng: random.Random) -> None:
        started = self.sim.clock.now = self.sim._at(day, rng.uniform(0, 23))
        device, ip = f"bot-{rng.getrandbits(32):08x}", f"203.0.113.{rng.randint(1, 254)}"
        attempts = rng.randint(40, 200)
        events = []
        for _ in range(attempts):
            self.sim.clock.now += timedelta(seconds=rng.uniform(0.2, 3))
            guess = "".join(rng.choice("23456789ABCDEFGHJKMNPQRSTUVWXYZ") for _ in range(13))
            result = self.sim.engine.validate(
                guess,
                Order(2000, "EUR"),
                context=RequestContext(device_id=device, ip=ip, sales_channel="web"),
            )
            events.append(result.event_id)
        self.sim._count("fraud code_guessing")
        self._truth_case(
            "code_guessing",
            started,
            device_hash=self._hash(device),
            ip_hash=self._hash(ip),
            attempts=attempts,
            event_ids=events,
        )

    def _multi_accounting(self, day: int, rng: random.Random) -> None:
        started = self.sim.clock.now = self.sim._at(day, rng.uniform(9, 22))
        device, payment = f"farm-{rng.getrandbits(32):08x}", f"card-farm-{rng.getrandbits(32):08x}"
        accounts = [f"x{rng.getrandbits(40):010x}" for _ in range(rng.randint(3, 8))]
        self.sim.engine.add_customers(
            [
                {"id": a, "email": f"{a}@mailinator.example", "consent": {"email": True}}
                for a in accounts
            ]
        )
        redemptions = []
        for account in accounts:
            self.sim.clock.now += timedelta(minutes=rng.uniform(1, 30))
            self.sim._orders += 1
            order = Order(
                1800,
                "EUR",
                (OrderItem("margherita", 1, 950, "pizza"), OrderItem("lemonade", 1, 390, "drinks")),
                id=f"o{self.sim._orders:09d}",
            )
            context = RequestContext(
                device_id=device,
                payment_fingerprint=payment,
                ip=f"198.51.100.{rng.randint(1, 254)}",
                sales_channel="app",
            )
            result = self.sim.engine.redeem(RedeemRequest("WELCOME10", order, account, context))
            self.sim.engine.record_order(order, customer_id=account, context=context)
            redemptions.append(result.redemption_id)
            self.sim._tally(result)
        self.sim._count("fraud multi_accounting")
        self._truth_case(
            "multi_accounting",
            started,
            customer_ids=accounts,
            device_hash=self._hash(device),
            payment_hash=self._hash(payment),
            redemption_ids=[r for r in redemptions if r],
        )

    def _leaked_code(self, day: int, rng: random.Random) -> None:
        with self.sim.engine.store.read() as tx:
            rows = tx.query(
                "SELECT code, holder_id FROM vouchers WHERE campaign_id = 'new-dish'"
                " AND holder_id IS NOT NULL AND redemptions = 0 ORDER BY voucher_id LIMIT 50",
                {},
            )
        if not rows:
            return
        code, holder = rng.choice(rows)
        started = self.sim.clock.now = self.sim._at(day, rng.uniform(11, 21))
        present = [x for x in self.sim.personas if x.signup_day <= day]
        strangers = rng.sample(present, k=min(len(present), rng.randint(2, 6)))
        redemptions = []
        for stranger in strangers:
            if stranger.customer_id == holder:
                continue
            self.sim.clock.now += timedelta(minutes=rng.uniform(2, 90))
            order, _, context = self.sim._order_for(stranger, day)
            self.sim.engine.record_order(order, customer_id=stranger.customer_id, context=context)
            result = self.sim.engine.redeem(
                RedeemRequest(code, order, stranger.customer_id, context)
            )
            redemptions.append(result.event_id)
            self.sim._tally(result)
        self.sim._count("fraud leaked_code")
        self._truth_case(
            "leaked_code",
            started,
            codes=[code],
            holder_id=holder,
            customer_ids=[s.customer_id for s in strangers if s.customer_id != holder],
            event_ids=redemptions,
        )

    def _refund_abuse(self, day: int, rng: random.Random) -> None:
        abuser = rng.choice([x for x in self.sim.personas if x.signup_day <= day])
        started = self.sim.clock.now = self.sim._at(day, rng.uniform(11, 20))
        orders = []
        for _ in range(rng.randint(2, 5)):
            self.sim.clock.now += timedelta(hours=rng.uniform(0.5, 6))
            order, _, context = self.sim._order_for(abuser, day)
            self.sim.engine.record_order(order, customer_id=abuser.customer_id, context=context)
            result = self.sim.engine.redeem(
                RedeemRequest("HAPPY5", order, abuser.customer_id, context)
            )
            self.sim._tally(result)
            self.sim.clock.now += timedelta(minutes=rng.uniform(20, 90))
            # Everything the customer paid (the order less its discount): the refund in full
            # that the cap allows, which also rolls the redemption back.
            paid = order.amount - (result.discount if result.ok else 0)
            self.sim.engine.refund_order(order.id or "", paid, reason="never arrived")
            orders.append(order.id)
        self.sim._count("fraud refund_abuse")
        self._truth_case(
            "refund_abuse", started, customer_ids=[abuser.customer_id], order_ids=orders
        )

    def _staff_abuse(self, day: int, rng: random.Random) -> None:
        store = rng.choice(STORES)
        staff = f"staff-{store}-{rng.randint(1, 4)}"
        started = self.sim.clock.now = self.sim._at(day, 23 + rng.uniform(0, 2.5))
        redemptions = []
        for _ in range(rng.randint(4, 12)):
            if not self.sim._flyers:
                break
            self.sim.clock.now += timedelta(minutes=rng.uniform(1, 8))
            self.sim._orders += 1
            order = Order(
                1200,
                "EUR",
                (OrderItem("lasagna", 1, 1200, "pasta"),),
                id=f"o{self.sim._orders:09d}",
            )
            context = RequestContext(store_id=store, staff_id=staff, sales_channel="pos")
            result = self.sim.engine.redeem(
                RedeemRequest(self.sim._flyers.pop(), order, None, context)
            )
            # The till rings the order up after the code, as in every slot: the order exists,
            # anonymous, so every page agrees on it.
            self.sim.engine.record_order(order, context=context)
            redemptions.append(result.redemption_id)
            self.sim._tally(result)
        self.sim._count("fraud staff_abuse")
        self._truth_case(
            "staff_abuse",
            started,
            store_id=store,
            staff_id=staff,
            redemption_ids=[r for r in redemptions if r],
        )

    def _velocity(self, day: int, rng: random.Random) -> None:
        started = self.sim.clock.now = self.sim._at(day, rng.uniform(17, 21))
        present = [x for x in self.sim.personas if x.signup_day <= day]
        crowd = rng.sample(present, k=min(len(present), rng.randint(20, 60)))
        requests = []
        orders = []
        for persona in crowd:
            if persona.signup_day > day:
                continue
            order, _, context = self.sim._order_for(persona, day)
            orders.append((order, persona.customer_id, context))
            requests.append(RedeemRequest("HAPPY5", order, persona.customer_id, context))
        self.sim.clock.now += timedelta(minutes=rng.uniform(2, 10))
        self.sim.engine.record_orders(orders)
        results = self.sim.engine.redeem_many(requests)
        for result in results:
            self.sim._tally(result)
        self.sim._count("fraud velocity_burst")
        self._truth_case(
            "velocity_burst",
            started,
            codes=["HAPPY5"],
            customer_ids=[r.customer_id for r in requests],
            redemption_ids=[
                r.redemption_id
                for r in results
                if not isinstance(r, PromoError) and r.redemption_id
            ],
        )


FRAUD_PATTERNS: dict[str, Callable[[FraudInjector, int, random.Random], None]] = {
    "code_guessing": FraudInjector._guessing,
    "multi_accounting": FraudInjector._multi_accounting,
    "leaked_code": FraudInjector._leaked_code,
    "refund_abuse": FraudInjector._refund_abuse,
    "staff_abuse": FraudInjector._staff_abuse,
    "velocity_burst": FraudInjector._velocity,
}
