"""`promo simulate`: a believable restaurant run through the real core, day by day.

Customers have habits (how often they order, what they spend, which categories they like,
which channels they allow); some go quiet, new ones sign up. Every act goes through the engine
and the distributor, so campaign rules, limits, consent, frequency caps and idempotency apply:
the simulator writes no event the core would not have written.

The business (menu, stores, personas, campaigns) is in business.py, fraud injection in
fraud.py, simulated delivery providers in channels.py; this module runs the days. Vouchers
change behaviour: a customer holding an accepted offer
orders more often (the incremental effect), but many redemptions come from customers who would
have ordered anyway (attributed, not caused), so the two figures differ, as in life.

Fraud and abuse are injected at a configurable scale and labelled in a ground-truth file beside
the ledger ($PROMO_HOME/simulation/ground_truth.jsonl), never inside it.

Same configuration and seed, same ledger: ids, codes, hashes and times all come from the seed.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from redemption_core.distribution.channels import (
    FileSinkChannel,
)
from redemption_core.distribution.distributor import Distributor, RetryPolicy, SyntheticContactBook
from redemption_core.domain import parsing as p
from redemption_core.domain.clock import SettableClock
from redemption_core.domain.errors import InvalidInput, PromoError
from redemption_core.domain.events import id_source
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.orders import Order, OrderItem, RequestContext
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine, RedemptionResult
from redemption_core.ledger.home import ledger_path, ledger_url, open_store
from redemption_core.simulate.business import (
    ACCEPT_BY_CHANNEL,
    CATEGORIES,
    FAVOURITES,
    FAVOURITES_WITH_NEW_DISH,
    MENU,
    MENU_WITH_NEW_DISH,
    SLOTS,
    STORES,
    Persona,
    campaign_definitions,
)
from redemption_core.simulate.channels import SimTimer, SimulatedChannel
from redemption_core.simulate.config import SimulationConfig, SimulationReport
from redemption_core.simulate.fraud import FRAUD_PATTERNS, FraudInjector

__all__ = ["FRAUD_PATTERNS", "Simulation", "SimulationConfig", "SimulationReport", "simulate"]


class Simulation:
    def __init__(self, home: Path, config: SimulationConfig, *, progress: TextIO | None = None):
        self.home = home
        self.config = config
        self.rng = random.Random(config.seed)
        self.clock = SettableClock(config.start)
        self.progress = progress
        seed_bytes = hashlib.sha256(f"promoledger-sim-{config.seed}".encode()).digest()
        code_rng = random.Random(config.seed * 7919 + 1)
        self._id_rng = random.Random(config.seed * 104729 + 2)
        # A simulation is rebuilt from its seed, so commits skip the fsync (SQLite: WAL,
        # synchronous=NORMAL; PostgreSQL: synchronous_commit=off); every event still goes
        # through the same transactions and projection as in production.
        store = open_store(home, durable=False)
        self.hasher = ContextHasher(seed_bytes)
        self.engine = RedemptionEngine(
            store,
            self.hasher,
            clock=self.clock,
            random_bytes=code_rng.randbytes,
            validation_max_age_s=float("inf"),  # flushed by the simulation, not by wall time
        )
        self.timer = SimTimer()
        channel_rng = random.Random(config.seed * 31 + 3)
        outbox = home / "simulation" / "outbox"
        self.channels = {
            kind: SimulatedChannel(
                kind,
                FileSinkChannel(outbox / f"{kind}.jsonl", channel=kind, flush="batch"),
                channel_rng,
                self.timer,
            )  # type: ignore[arg-type]
            for kind in ("email", "sms", "push")
        }
        self.distributor = Distributor(
            self.engine,
            self.channels,
            SyntheticContactBook(),
            retry=RetryPolicy(max_attempts=3, base_delay_s=0.5, max_delay_s=4.0),
            sleep=self.timer.advance,
            rng=random.Random(config.seed * 13 + 4),
            timer=self.timer,
        )
        self.personas: list[Persona] = []
        self.by_id: dict[str, Persona] = {}
        # delivered code -> (chance its channel gets it opened, days it stays valid)
        self.offer_terms: dict[str, tuple[float, int]] = {}
        self.outcomes: dict[str, int] = {}
        self.truth_path = home / "simulation" / "ground_truth.jsonl"
        self._orders = 0
        self._flyers: list[str] = []
        self.fraud = FraudInjector(self)

    # -- ids and time --------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        millis = int(self.clock.now.timestamp() * 1000)
        return f"{prefix}_{millis:012x}{self._id_rng.getrandbits(64):016x}"

    def _at(self, day: int, hour: float) -> datetime:
        return self.config.start + timedelta(days=day, hours=hour)

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> SimulationReport:
        started = time.perf_counter()
        first_seq = self._last_seq()
        with id_source(self._new_id):
            self._setup()
            for day in range(self.config.days):
                # One commit per simulated day (grouped through the core: every write is
                # still checked and applied alone); the ledger is rebuilt from the seed.
                with self.engine.store.batch():
                    self._day(day)
                if self.progress is not None:
                    events = self._last_seq() - first_seq
                    rate = events / max(time.perf_counter() - started, 1e-9)
                    self.progress.write(
                        f"\rday {day + 1}/{self.config.days}  {events:,} events  {rate:,.0f} events/s"
                    )
                    self.progress.flush()
            self.engine.flush()
        if self.progress is not None:
            self.progress.write("\n")
        for channel in self.channels.values():
            channel.close()
        self.truth_path.parent.mkdir(parents=True, exist_ok=True)
        with self.truth_path.open("w") as handle:
            for case in self.fraud.cases:
                handle.write(json.dumps(case, sort_keys=True) + "\n")
        events = self._last_seq() - first_seq
        self.engine.close()
        return SimulationReport(
            self.config.days,
            len(self.personas),
            events,
            time.perf_counter() - started,
            len(self.fraud.cases),
            dict(sorted(self.outcomes.items())),
        )

    def _last_seq(self) -> int:
        with self.engine.store.read() as tx:
            return tx.query("SELECT coalesce(max(seq), 0) FROM events", {})[0][0]

    def _count(self, what: str, n: int = 1) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + n

    # -- setup ---------------------------------------------------------------------------------
    def _setup(self) -> None:
        rng = self.rng
        n = self.config.customers
        for i in range(n):
            joined_before = rng.random() < 0.7
            signup_day = -rng.randint(30, 400) if joined_before else rng.randrange(self.config.days)
            persona = Persona(
                customer_id=f"c{i:07d}",
                signup_day=signup_day,
                every_days=rng.choice([3, 5, 7, 10, 14, 21, 30, 45]) * rng.uniform(0.8, 1.2),
                basket=rng.uniform(1.2, 3.5),
                favourite=rng.choice(CATEGORIES),
                responsive=rng.betavariate(2, 3),
                quits_on=rng.randrange(self.config.days) if rng.random() < 0.15 else None,
                device=f"dev-{i}",
                payment=f"card-{i}",
                ip=f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
                store=rng.choice(STORES),
            )
            self.personas.append(persona)
            self.by_id[persona.customer_id] = persona
        self.clock.now = self._at(min(x.signup_day for x in self.personas) - 1, 0)
        early = [x for x in self.personas if x.signup_day < 0]
        for start in range(0, len(early), 5000):
            self.engine.add_customers([self._profile(x) for x in early[start : start + 5000]])
        self._history(early)
        self._campaigns()

    def _profile(self, persona: Persona) -> dict[str, Any]:
        rng = self.rng
        birthday = (datetime(2000, 1, 1) + timedelta(days=rng.randrange(366))).strftime("%m-%d")
        return {
            "id": persona.customer_id,
            "signup_at": p.iso(self._at(persona.signup_day, 10)),
            "birthday": birthday,
            "email": f"{persona.customer_id}@example.com",
            "consent": {
                "email": rng.random() < 0.75,
                "sms": rng.random() < 0.35,
                "push": rng.random() < 0.55,
            },
            "attributes": {"store": persona.store},
        }

    def _history(self, personas: list[Persona]) -> None:
        """Orders before the simulated period, so that regulars are regulars on day 0.

        Generated day by day from a heap of each customer's next order day, so memory holds
        one day of orders, not the whole history.
        """
        upcoming = [(x.signup_day + self._gap(x), i) for i, x in enumerate(personas)]
        heapq.heapify(upcoming)
        total = 0
        while upcoming and upcoming[0][0] < 0:
            week = upcoming[0][0] // 7
            with self.engine.store.batch():  # a week of history per commit
                while upcoming and upcoming[0][0] < 0 and upcoming[0][0] // 7 == week:
                    total += self._history_day(personas, upcoming)
        self._count("history_orders", total)

    def _history_day(self, personas: list[Persona], upcoming: list[tuple[int, int]]) -> int:
        """Record the orders of the earliest day on the heap; returns how many."""
        day = upcoming[0][0]
        batch: list[tuple[Order, str | None, RequestContext | None]] = []
        while upcoming and upcoming[0][0] == day:
            _, i = heapq.heappop(upcoming)
            batch.append(self._order_for(personas[i], day))
            personas[i].orders += 1
            heapq.heappush(upcoming, (day + self._gap(personas[i]), i))
        self.clock.now = self._at(day, 19)
        self.engine.record_orders(batch)
        return len(batch)

    def _gap(self, persona: Persona) -> int:
        return max(1, round(self.rng.expovariate(1 / persona.every_days)))

    def _campaigns(self) -> None:
        days = self.config.days
        self.engine.create_from_definition(
            {
                "id": "restaurant",
                "name": "Restaurant",
                "campaigns": campaign_definitions(self.config, days),
            }
        )
        self.engine.define_segment(
            {
                "id": "vip",
                "rules": [
                    {"field": "total_spend", "op": ">=", "value": 30_000},
                    {"field": "days_since_last_order", "op": "<=", "value": 30},
                ],
            }
        )
        self.engine.define_segment(
            {
                "id": "pasta-lovers",
                "rules": [{"field": "favourite_category", "op": "==", "value": "pasta"}],
            }
        )
        self.engine.define_segment(
            {"id": "everyone", "rules": [{"field": "days_since_signup", "op": ">=", "value": 0}]}
        )
        self.distributor.set_frequency_cap(3, 7)
        self._flyers = self.engine.generate_codes("flyer", max(50, self.config.customers // 20))
        self.fraud.schedule = self.fraud.plan()

    # -- one day -------------------------------------------------------------------------------
    def _day(self, day: int) -> None:
        rng = self.rng
        self.clock.now = self._at(day, 6)
        joining = [x for x in self.personas if x.signup_day == day]
        if joining:
            self.engine.add_customers([self._profile(x) for x in joining])
        self._distribute(day)
        self._accept(day)
        for hour, share in SLOTS:
            self.clock.now = self._at(day, hour + rng.random() * 0.9)
            self._slot(day, share)
        self._after_sales(day)
        self.fraud.run_day(day)
        self.engine.flush()

    def _distribute(self, day: int) -> None:
        with self.engine.store.read() as tx:
            statuses = {cid: tx.campaign_state(cid) for cid in tx.campaign_ids()}
        for campaign_id, state in sorted(statuses.items()):
            assert state is not None
            distribution = state.campaign.distribution
            if distribution is None or distribution.mode != "promotion":
                continue
            send_day = int(state.campaign.metadata.get("send_day", -1))
            if send_day == day:
                report = self.distributor.send_promotion(campaign_id)
                self._count("promotion_published", report.published)
        reports = self.distributor.run_autopilot()
        self._count("autopilot_published", sum(r.published for r in reports))
        self._count("delivered", sum(r.delivered for r in reports))
        # What was delivered today is now in the customers' apps.
        with self.engine.store.read() as tx:
            rows = tx.query(
                "SELECT v.code, o.customer_id, o.channel, o.campaign_id FROM offers o"
                " JOIN vouchers v USING (voucher_id) JOIN deliveries d USING (voucher_id)"
                " WHERE d.status = 'delivered' AND o.offered_at >= ?"
                " ORDER BY o.offered_at, o.voucher_id",
                (p.iso(self._at(day, 0)),),
            )
        for code, customer_id, channel, campaign_id in rows:
            persona = self.by_id.get(customer_id)
            if persona is not None and code not in persona.holding:
                persona.holding[code] = (day, False)
                valid = statuses[campaign_id].campaign.rules.valid_days_after_publication
                # how likely the customer opens it, and until when accepting it makes sense
                self.offer_terms[code] = (ACCEPT_BY_CHANNEL.get(channel, 0.35), valid or 5)

    def _accept(self, day: int) -> None:
        rng = self.rng
        acceptances = []
        for persona in self.personas:
            for code, (got, accepted) in list(persona.holding.items()):
                if day - got > 45:  # long expired: forgotten, so memory stays flat over time
                    del persona.holding[code]
                    self.offer_terms.pop(code, None)
                    continue
                opens, valid_days = self.offer_terms.get(code, (0.35, 5))
                # accepted within five days of delivery and never once it has expired
                if accepted or day - got >= min(5, valid_days):
                    continue
                if rng.random() < opens * (0.5 + persona.responsive):
                    acceptances.append((code, persona.customer_id))
                    persona.holding[code] = (got, True)
        self.clock.now = self._at(day, 9)
        for start in range(0, len(acceptances), 5000):
            self.engine.accept_many(acceptances[start : start + 5000])
        self._count("accepted", len(acceptances))

    def _slot(self, day: int, share: float) -> None:
        rng = self.rng
        orders: list[tuple[Order, str | None, RequestContext | None]] = []
        redemptions: list[tuple[RedeemRequest, str]] = []
        for persona in self.personas:
            if persona.signup_day > day or (
                persona.quits_on is not None and day >= persona.quits_on
            ):
                continue
            offer = persona.accepted_offer() if persona.holding else None  # most hold nothing
            # The incremental effect: an accepted offer makes a responsive customer come sooner.
            boost = 1 + 1.5 * persona.responsive if offer else 1.0
            if rng.random() >= share * boost / persona.every_days:
                continue
            order, customer, context = self._order_for(persona, day)
            orders.append((order, customer, context))
            code = None
            if offer and rng.random() < 0.85:
                code = offer
                del persona.holding[offer]
                self.offer_terms.pop(offer, None)
            elif persona.orders == 0 and rng.random() < 0.5:
                code = "WELCOME10"
            elif rng.random() < 0.02 and self._flyers:
                code = self._flyers.pop()
            elif (self._at(day, 0).weekday() == 4) and rng.random() < 0.05:
                code = "HAPPY5"
            elif persona.holding and rng.random() < 0.05:
                # Honest failures: an old, expired offer tried at the till.
                code = next(iter(persona.holding))
                del persona.holding[code]
                self.offer_terms.pop(code, None)
            persona.orders += 1
            if code is not None:
                redemptions.append(
                    (
                        RedeemRequest(
                            code,
                            order,
                            persona.customer_id,
                            context,
                            idempotency_key=f"chk-{order.id}",
                        ),
                        "redeem",
                    )
                )
                if rng.random() < 0.01:  # a till retries after a timeout: same key, same answer
                    redemptions.append((redemptions[-1][0], "retry"))
        # The till redeems first, then the order is placed: a first order is still "new".
        if redemptions:
            results = self.engine.redeem_many([request for request, _ in redemptions])
            for result in results:
                self._tally(result)
                # Now and then the till voids a redemption it just made (wrong code scanned).
                if (
                    isinstance(result, RedemptionResult)
                    and result.ok
                    and not result.replayed
                    and rng.random() < 0.02
                ):
                    self.engine.rollback(result.redemption_id or "", reason="voided at the till")
                    self._count("rolled back at the till")
        if orders:
            self.engine.record_orders(orders)
            self._count("orders", len(orders))

    def _tally(self, result: RedemptionResult | PromoError) -> None:
        if isinstance(result, PromoError):
            self._count(f"refused {type(result).__name__}")
        elif result.replayed:
            self._count("redeem replayed")
        elif result.ok:
            self._count("redeemed")
        else:
            for reason in result.reasons:
                self._count(f"rejected {reason.code}")

    def _order_for(self, persona: Persona, day: int) -> tuple[Order, str, RequestContext]:
        rng = self.rng
        self._orders += 1
        count = max(1, round(rng.gauss(persona.basket, 0.8)))
        launched = day >= self.config.days // 3
        menu = MENU_WITH_NEW_DISH if launched else MENU
        favourites = (FAVOURITES_WITH_NEW_DISH if launched else FAVOURITES)[persona.favourite]
        items: dict[str, OrderItem] = {}
        for _ in range(count):
            candidates = favourites if rng.random() < 0.5 else menu
            product, category, price = rng.choice(candidates or menu)
            quantity = items[product].quantity + 1 if product in items else 1
            items[product] = OrderItem(product, quantity, price, category)
        order = Order(
            sum(i.total for i in items.values()),
            "EUR",
            tuple(items.values()),
            id=f"o{self._orders:09d}",
        )
        sales_channel = rng.choice(["app", "app", "web", "pos"])
        context = RequestContext(
            device_id=persona.device,
            ip=persona.ip,
            payment_fingerprint=persona.payment,
            store_id=persona.store,
            sales_channel=sales_channel,
            # At the till one of the store's four staff keys the order in, on a rota rather than
            # a draw, so that the random stream (and every other outcome) stays as it was. The
            # staff ids are those staff abuse uses: an abuser is one of the store's own staff.
            staff_id=f"staff-{persona.store}-{self._orders % 4 + 1}"
            if sales_channel == "pos"
            else None,
        )
        return order, persona.customer_id, context

    def _after_sales(self, day: int) -> None:
        """A few orders are refunded or cancelled (a cancellation rolls back its redemption)."""
        rng = self.rng
        if self._orders < 10:
            return
        self.clock.now = self._at(day, 22)
        for _ in range(max(1, int(self._orders_today_estimate() * 0.01))):
            order_id = f"o{rng.randint(max(1, self._orders - 200), self._orders):09d}"
            try:
                if rng.random() < 0.5:
                    self.engine.cancel_order(order_id, reason="kitchen closed early")
                    self._count("orders cancelled")
                else:
                    self.engine.refund_order(order_id, 200, reason="cold food")
                    self._count("orders refunded")
            except PromoError:
                self._count("after-sales refused")

    def _orders_today_estimate(self) -> float:
        return sum(1 / x.every_days for x in self.personas)


def simulate(
    home: Path, config: SimulationConfig, *, progress: TextIO | None = sys.stderr
) -> SimulationReport:
    """Run a simulation into the ledger under `home` (it must not hold one already)."""
    if ledger_url() is not None:
        store = open_store(home)
        try:
            empty = next(store.events(limit=1), None) is None
        finally:
            store.close()
        if not empty:
            raise InvalidInput(
                "PROMO_LEDGER_URL", f"{store.location} holds events: simulate into an empty ledger"
            )
    elif ledger_path(home).exists():
        raise InvalidInput(
            "PROMO_HOME", f"{ledger_path(home)} exists: simulate into an empty PROMO_HOME"
        )
    return Simulation(home, config, progress=progress).run()
