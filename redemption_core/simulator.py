"""`promo simulate`: a believable restaurant run through the real core, day by day.

Customers have habits (how often they order, what they spend, which categories they like,
which channels they allow); some go quiet, new ones sign up. Every act goes through the engine
and the distributor, so campaign rules, limits, consent, frequency caps and idempotency apply:
the simulator writes no event the core would not have written.

The campaigns are the ones that earn their keep: a win-back autopilot and a celebration
autopilot, monthly VIP thank-you promotions, a new-dish trial, a slow-night filler with a
short validity, a welcome code for new customers, flyer codes, a happy-hour code. Win-back and
VIP hold out a control group. Vouchers change behaviour: a customer holding an accepted offer
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from redemption_core import parsing as p
from redemption_core.config import SettableClock, ledger_path
from redemption_core.delivery import (
    Channel,
    FileSinkChannel,
    Message,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from redemption_core.distribution import Distributor, RetryPolicy, SyntheticContactBook
from redemption_core.engine import RedeemRequest, RedemptionEngine, RedemptionResult
from redemption_core.errors import InvalidInput, PromoError
from redemption_core.events import id_source
from redemption_core.hashing import ContextHasher
from redemption_core.orders import Order, OrderItem, RequestContext
from redemption_core.sqlite_store import SqliteLedgerStore

MENU = (
    ("margherita", "pizza", 950), ("diavola", "pizza", 1150), ("funghi", "pizza", 1050),
    ("carbonara", "pasta", 1250), ("lasagna", "pasta", 1350), ("pesto", "pasta", 1150),
    ("caesar", "salad", 890), ("caprese", "salad", 790), ("tiramisu", "dessert", 650),
    ("panna-cotta", "dessert", 590), ("lemonade", "drinks", 390), ("espresso", "drinks", 250),
)  # fmt: skip
NEW_DISH = ("truffle-pasta", "pasta", 1690)
CATEGORIES = sorted({category for _, category, _ in MENU})
MENU_WITH_NEW_DISH = (*MENU, NEW_DISH)
# Each favourite's dishes, chosen from for every other item of every order: built once.
FAVOURITES = {c: tuple(m for m in MENU if m[1] == c) for c in CATEGORIES}
FAVOURITES_WITH_NEW_DISH = {
    c: tuple(m for m in MENU_WITH_NEW_DISH if m[1] == c) for c in CATEGORIES
}
SLOTS = ((12, 0.35), (13, 0.15), (18, 0.15), (19, 0.25), (20, 0.10))  # hour, share of orders
ACCEPT_BY_CHANNEL = {"push": 0.55, "email": 0.35, "sms": 0.45}
STORES = ("store-mitte", "store-kreuzberg", "store-prenzlauer")


@dataclass(frozen=True)
class SimulationConfig:
    customers: int = 2_000
    days: int = 90
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    seed: int = 1
    fraud_scale: float = 1.0

    def __post_init__(self) -> None:
        p.integer(self.customers, "customers", minimum=10, maximum=10_000_000)
        p.integer(self.days, "days", minimum=1, maximum=3650)
        p.integer(self.seed, "seed", minimum=0, maximum=2**63)
        if isinstance(self.fraud_scale, bool) or not isinstance(self.fraud_scale, int | float):
            raise InvalidInput("fraud_scale", "must be a number")
        if not 0 <= self.fraud_scale <= 100:
            raise InvalidInput("fraud_scale", "must be from 0 to 100")
        if self.start.tzinfo is None:
            raise InvalidInput("start", "needs a UTC offset")


@dataclass
class Persona:
    customer_id: str
    signup_day: int
    every_days: float  # mean days between orders
    basket: float  # mean items per order
    favourite: str
    responsive: float  # how much an offer changes this customer (0..1)
    quits_on: int | None  # the day this customer stops ordering (goes quiet)
    device: str
    payment: str
    ip: str
    store: str
    holding: dict[str, tuple[int, bool]] = field(default_factory=dict)  # code -> (day, accepted)
    orders: int = 0

    def accepted_offer(self) -> str | None:
        """The first accepted code held, if any."""
        return next((code for code, (_, accepted) in self.holding.items() if accepted), None)


@dataclass
class SimulationReport:
    days: int
    customers: int
    events: int
    seconds: float
    fraud_cases: int
    outcomes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "customers": self.customers,
            "events": self.events,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.events / self.seconds) if self.seconds else 0,
            "fraud_cases": self.fraud_cases,
            "outcomes": self.outcomes,
        }


class SimulatedChannel(Channel):
    """A provider with a failure rate and a latency per channel, on simulated time.

    It writes what it delivers to a file sink, like the demo's outbox; failures are transient
    (the distributor retries them), the latency advances the simulated timer.
    """

    def __init__(self, channel: str, sink: FileSinkChannel, rng: random.Random, timer: SimTimer):
        self.name = f"sim-{channel}"
        self.channel = channel  # type: ignore[assignment]
        self._sink = sink
        self._rng = rng
        self._timer = timer
        self._failure = {"email": 0.03, "sms": 0.06, "push": 0.02}[channel]
        self._latency_ms = {"email": 180.0, "sms": 450.0, "push": 60.0}[channel]

    def send(self, message: Message) -> None:
        self._timer.advance(self._rng.expovariate(1 / self._latency_ms) / 1000.0)
        draw = self._rng.random()
        if draw < 0.01:
            raise PermanentDeliveryError("address bounced (simulated)")
        if draw < 0.01 + self._failure:
            raise TransientDeliveryError("provider unavailable (simulated)")
        self._sink.send(message)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        self._sink.close()


class SimTimer:
    """The clock send_with_retry measures latency with, advanced by simulated sends."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def advance(self, seconds: float) -> None:
        self.seconds += seconds

    def __call__(self) -> float:
        return self.seconds


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
        # A simulation is rebuilt from its seed, so commits skip the fsync (WAL, synchronous=NORMAL);
        # every event still goes through the same transactions and projection as in production.
        store = SqliteLedgerStore(ledger_path(home), durable=False)
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
        self._truth: list[dict[str, Any]] = []
        self._orders = 0
        self._flyers: list[str] = []
        self._fraud_schedule: dict[int, list[str]] = {}

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
            for case in self._truth:
                handle.write(json.dumps(case, sort_keys=True) + "\n")
        events = self._last_seq() - first_seq
        self.engine.close()
        return SimulationReport(
            self.config.days,
            len(self.personas),
            events,
            time.perf_counter() - started,
            len(self._truth),
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
                "campaigns": _campaign_definitions(self.config, days),
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
        self._fraud_schedule = self._plan_fraud()

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
        self._fraud(day)
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

    # -- fraud ---------------------------------------------------------------------------------
    def _fraud(self, day: int) -> None:
        for pattern in self._fraud_schedule.get(day, ()):
            FRAUD_PATTERNS[pattern](self, day, self.rng)

    def _plan_fraud(self) -> dict[int, list[str]]:
        """About six cases per 2,000 customers and run (times the scale); each pattern at least
        once when the scale is above zero, so every kind is there to be found."""
        if self.config.fraud_scale <= 0:
            return {}
        total = max(
            len(FRAUD_PATTERNS), round(self.config.fraud_scale * self.config.customers / 2000 * 6)
        )
        patterns = sorted(FRAUD_PATTERNS)
        self.rng.shuffle(patterns)
        schedule: dict[int, list[str]] = {}
        for i in range(total):
            schedule.setdefault(self.rng.randrange(self.config.days), []).append(
                patterns[i % len(patterns)]
            )
        return schedule

    def _truth_case(self, pattern: str, started: datetime, **details: Any) -> None:
        self._truth.append(
            {
                "case_id": f"case-{len(self._truth) + 1:05d}",
                "pattern": pattern,
                "started_at": p.iso(started),
                "ended_at": p.iso(self.clock.now),
                **details,
            }
        )

    def _hash(self, value: str) -> str | None:
        return self.hasher.hash(value)  # the same keyed hash the ledger stores

    def _guessing(self, day: int, rng: random.Random) -> None:
        started = self.clock.now = self._at(day, rng.uniform(0, 23))
        device, ip = f"bot-{rng.getrandbits(32):08x}", f"203.0.113.{rng.randint(1, 254)}"
        attempts = rng.randint(40, 200)
        events = []
        for _ in range(attempts):
            self.clock.now += timedelta(seconds=rng.uniform(0.2, 3))
            guess = "".join(rng.choice("23456789ABCDEFGHJKMNPQRSTUVWXYZ") for _ in range(13))
            result = self.engine.validate(
                guess,
                Order(2000, "EUR"),
                context=RequestContext(device_id=device, ip=ip, sales_channel="web"),
            )
            events.append(result.event_id)
        self._count("fraud code_guessing")
        self._truth_case(
            "code_guessing",
            started,
            device_hash=self._hash(device),
            ip_hash=self._hash(ip),
            attempts=attempts,
            event_ids=events,
        )

    def _multi_accounting(self, day: int, rng: random.Random) -> None:
        started = self.clock.now = self._at(day, rng.uniform(9, 22))
        device, payment = f"farm-{rng.getrandbits(32):08x}", f"card-farm-{rng.getrandbits(32):08x}"
        accounts = [f"x{rng.getrandbits(40):010x}" for _ in range(rng.randint(3, 8))]
        self.engine.add_customers(
            [
                {"id": a, "email": f"{a}@mailinator.example", "consent": {"email": True}}
                for a in accounts
            ]
        )
        redemptions = []
        for account in accounts:
            self.clock.now += timedelta(minutes=rng.uniform(1, 30))
            self._orders += 1
            order = Order(
                1800,
                "EUR",
                (OrderItem("margherita", 1, 950, "pizza"), OrderItem("lemonade", 1, 390, "drinks")),
                id=f"o{self._orders:09d}",
            )
            context = RequestContext(
                device_id=device,
                payment_fingerprint=payment,
                ip=f"198.51.100.{rng.randint(1, 254)}",
                sales_channel="app",
            )
            result = self.engine.redeem(RedeemRequest("WELCOME10", order, account, context))
            self.engine.record_order(order, customer_id=account, context=context)
            redemptions.append(result.redemption_id)
            self._tally(result)
        self._count("fraud multi_accounting")
        self._truth_case(
            "multi_accounting",
            started,
            customer_ids=accounts,
            device_hash=self._hash(device),
            payment_hash=self._hash(payment),
            redemption_ids=[r for r in redemptions if r],
        )

    def _leaked_code(self, day: int, rng: random.Random) -> None:
        with self.engine.store.read() as tx:
            rows = tx.query(
                "SELECT code, holder_id FROM vouchers WHERE campaign_id = 'new-dish'"
                " AND holder_id IS NOT NULL AND redemptions = 0 ORDER BY voucher_id LIMIT 50",
                {},
            )
        if not rows:
            return
        code, holder = rng.choice(rows)
        started = self.clock.now = self._at(day, rng.uniform(11, 21))
        present = [x for x in self.personas if x.signup_day <= day]
        strangers = rng.sample(present, k=min(len(present), rng.randint(2, 6)))
        redemptions = []
        for stranger in strangers:
            if stranger.customer_id == holder:
                continue
            self.clock.now += timedelta(minutes=rng.uniform(2, 90))
            order, _, context = self._order_for(stranger, day)
            self.engine.record_order(order, customer_id=stranger.customer_id, context=context)
            result = self.engine.redeem(RedeemRequest(code, order, stranger.customer_id, context))
            redemptions.append(result.event_id)
            self._tally(result)
        self._count("fraud leaked_code")
        self._truth_case(
            "leaked_code",
            started,
            codes=[code],
            holder_id=holder,
            customer_ids=[s.customer_id for s in strangers if s.customer_id != holder],
            event_ids=redemptions,
        )

    def _refund_abuse(self, day: int, rng: random.Random) -> None:
        abuser = rng.choice([x for x in self.personas if x.signup_day <= day])
        started = self.clock.now = self._at(day, rng.uniform(11, 20))
        orders = []
        for _ in range(rng.randint(2, 5)):
            self.clock.now += timedelta(hours=rng.uniform(0.5, 6))
            order, _, context = self._order_for(abuser, day)
            self.engine.record_order(order, customer_id=abuser.customer_id, context=context)
            result = self.engine.redeem(RedeemRequest("HAPPY5", order, abuser.customer_id, context))
            self._tally(result)
            self.clock.now += timedelta(minutes=rng.uniform(20, 90))
            self.engine.refund_order(order.id or "", order.amount, reason="never arrived")
            orders.append(order.id)
        self._count("fraud refund_abuse")
        self._truth_case(
            "refund_abuse", started, customer_ids=[abuser.customer_id], order_ids=orders
        )

    def _staff_abuse(self, day: int, rng: random.Random) -> None:
        store = rng.choice(STORES)
        staff = f"staff-{store}-{rng.randint(1, 4)}"
        started = self.clock.now = self._at(day, 23 + rng.uniform(0, 2.5))
        redemptions = []
        for _ in range(rng.randint(4, 12)):
            if not self._flyers:
                break
            self.clock.now += timedelta(minutes=rng.uniform(1, 8))
            self._orders += 1
            order = Order(
                1200, "EUR", (OrderItem("lasagna", 1, 1200, "pasta"),), id=f"o{self._orders:09d}"
            )
            result = self.engine.redeem(
                RedeemRequest(
                    self._flyers.pop(),
                    order,
                    None,
                    RequestContext(store_id=store, staff_id=staff, sales_channel="pos"),
                )
            )
            redemptions.append(result.redemption_id)
            self._tally(result)
        self._count("fraud staff_abuse")
        self._truth_case(
            "staff_abuse",
            started,
            store_id=store,
            staff_id=staff,
            redemption_ids=[r for r in redemptions if r],
        )

    def _velocity(self, day: int, rng: random.Random) -> None:
        started = self.clock.now = self._at(day, rng.uniform(17, 21))
        present = [x for x in self.personas if x.signup_day <= day]
        crowd = rng.sample(present, k=min(len(present), rng.randint(20, 60)))
        requests = []
        orders = []
        for persona in crowd:
            if persona.signup_day > day:
                continue
            order, _, context = self._order_for(persona, day)
            orders.append((order, persona.customer_id, context))
            requests.append(RedeemRequest("HAPPY5", order, persona.customer_id, context))
        self.clock.now += timedelta(minutes=rng.uniform(2, 10))
        self.engine.record_orders(orders)
        results = self.engine.redeem_many(requests)
        for result in results:
            self._tally(result)
        self._count("fraud velocity_burst")
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


FRAUD_PATTERNS: dict[str, Callable[[Simulation, int, random.Random], None]] = {
    "code_guessing": Simulation._guessing,
    "multi_accounting": Simulation._multi_accounting,
    "leaked_code": Simulation._leaked_code,
    "refund_abuse": Simulation._refund_abuse,
    "staff_abuse": Simulation._staff_abuse,
    "velocity_burst": Simulation._velocity,
}


def _campaign_definitions(config: SimulationConfig, days: int) -> list[dict[str, Any]]:
    start, end = config.start, config.start + timedelta(days=days + 30)
    window = {"active_from": p.iso(start - timedelta(days=1)), "active_until": p.iso(end)}
    definitions: list[dict[str, Any]] = [
        {
            "id": "winback", "name": "Win-back", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "unique", "code_config": {"prefix": "WB-"}},
            "discount": {"type": "amount", "amount_off": 500},
            "rules": {"min_order_amount": 1500, "acceptance_required": True, "valid_days_after_publication": 14},
            "distribution": {"mode": "autopilot", "channels": ["push", "email", "sms"], "control_share": 0.15,
                             "trigger": {"type": "gone_quiet", "min_orders": 3, "quiet_days": 21}},
        },
        {
            "id": "celebration", "name": "Birthday dessert", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "unique", "code_config": {"prefix": "BDAY-"}},
            "discount": {"type": "free_item", "product": "tiramisu"},
            "rules": {"valid_days_after_publication": 10},
            "distribution": {"mode": "autopilot", "channels": ["push", "email"],
                             "trigger": {"type": "personal_date", "days_before": 3}},
        },
        {
            "id": "new-dish", "name": "Truffle pasta launch", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "unique", "code_config": {"prefix": "NEW-"}},
            "discount": {"type": "percent", "percent_off": 30, "applies_to": {"products": ["truffle-pasta"]}},
            "rules": {"holder_only": False, "valid_days_after_publication": 21},  # "bring a friend"
            "metadata": {"send_day": days // 3},
            "distribution": {"mode": "promotion", "segment": "pasta-lovers", "channels": ["email", "push"]},
        },
        {
            "id": "welcome", "name": "Welcome 10%", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "standalone", "code": "WELCOME10"},
            "discount": {"type": "percent", "percent_off": 10, "max_discount": 1000},
            "rules": {"new_customers_only": True}, "limits": {"per_customer": 1},
        },
        {
            "id": "flyer", "name": "Flyer 3 EUR", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "unique", "code_config": {"prefix": "FLY-"}},
            "discount": {"type": "amount", "amount_off": 300},
            "rules": {"holder_only": False, "min_order_amount": 1000},
        },
        {
            "id": "happy-hour", "name": "Friday happy hour", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "standalone", "code": "HAPPY5"},
            "discount": {"type": "amount", "amount_off": 500},
            "rules": {"min_order_amount": 2000}, "limits": {"per_customer": 2, "budget": 500_000},
        },
    ]  # fmt: skip
    for month, send_day in enumerate(range(10, days, 30), start=1):
        definitions.append(
            {
                "id": f"vip-thanks-{month}", "name": f"VIP thank-you #{month}", "currency": "EUR", "status": "active", **window,
                "voucher": {"kind": "unique", "code_config": {"prefix": "VIP-"}},
                "discount": {"type": "percent", "percent_off": 15, "max_discount": 1500},
                "rules": {"acceptance_required": True, "valid_days_after_publication": 30},
                "metadata": {"send_day": send_day},
                "distribution": {"mode": "promotion", "segment": "vip", "channels": ["push", "email", "sms"], "control_share": 0.2},
            }
        )  # fmt: skip
    for week, send_day in enumerate(range(14, days, 14), start=1):
        definitions.append(
            {
                "id": f"slow-night-{week}", "name": f"Slow-night filler #{week}", "currency": "EUR", "status": "active", **window,
                "voucher": {"kind": "unique", "code_config": {"prefix": "SN-"}},
                "discount": {"type": "amount", "amount_off": 400},
                "rules": {"valid_days_after_publication": 3, "days_of_week": ["mon", "tue", "wed"], "min_order_amount": 1500},
                "metadata": {"send_day": send_day},
                "distribution": {"mode": "promotion", "segment": "everyone", "channels": ["push", "sms"]},
            }
        )  # fmt: skip
    return definitions


def simulate(
    home: Path, config: SimulationConfig, *, progress: TextIO | None = sys.stderr
) -> SimulationReport:
    """Run a simulation into the ledger under `home` (it must not hold one already)."""
    if ledger_path(home).exists():
        raise InvalidInput(
            "PROMO_HOME", f"{ledger_path(home)} exists: simulate into an empty PROMO_HOME"
        )
    return Simulation(home, config, progress=progress).run()
