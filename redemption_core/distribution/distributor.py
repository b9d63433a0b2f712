"""Distribution: how vouchers reach customers, every step a ledger event.

A promotion sends once to a segment; an autopilot watches for triggers (a regular gone quiet,
a personal date, a first order, a spend threshold) on every tick. For each customer the same
decision runs, in this order, inside a ledger transaction:

1. control group: a deterministic share of the matched audience is held out and gets nothing
   (recorded, so reports can measure incremental lift against it);
2. frequency cap: at most N offers per M days per customer, across all campaigns;
3. channel: the first of the campaign's channels the customer consents to and can be reached on;
4. publish: a fresh unique code, created and published to the customer.

Deliveries happen after that transaction commits (network I/O never holds the ledger's write
lock), with retries, and their attempts and outcome are recorded in the next one. A delivery
is at least once: a crash between sending and recording re-sends on resume, under the same
message id (the voucher id) so that a provider can drop the duplicate. A voucher whose delivery
failed stays published and can be re-sent (`retry_deliveries`).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from redemption_core.distribution.channels import Channel, DeliveryReport, Message, send_with_retry
from redemption_core.domain import parsing as p
from redemption_core.domain.campaigns import Campaign, CampaignStatus
from redemption_core.domain.codes import CodeGenerator
from redemption_core.domain.errors import Conflict, InvalidInput, NotFound
from redemption_core.domain.events import Event, EventType, new_id
from redemption_core.domain.offers import in_control_group, render
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.store import LedgerTransaction

BATCH = 500


class ContactBook(Protocol):
    """Where a customer is reached: looked up at send time, never stored in the ledger."""

    def address(self, customer_id: str, channel: str) -> str | None: ...


class MappingContactBook:
    """Contacts from the merchant's export: JSON lines {customer_id, email, phone, push}."""

    def __init__(self, contacts: Mapping[str, Mapping[str, str]]) -> None:
        self._contacts = contacts

    @classmethod
    def from_file(cls, path: Path) -> MappingContactBook:
        contacts: dict[str, dict[str, str]] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise InvalidInput("contacts", f"cannot read {path}: {error.strerror}") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise InvalidInput(f"contacts line {number}", "not a JSON object") from None
            row = p.mapping(row, f"contacts line {number}")
            customer = p.identifier(row.get("customer_id"), f"contacts line {number}.customer_id")
            contacts[customer] = {
                k: str(v) for k, v in row.items() if k in ("email", "sms", "push", "phone") and v
            }
            if "phone" in contacts[customer]:
                contacts[customer].setdefault("sms", contacts[customer].pop("phone"))
        return cls(contacts)

    def address(self, customer_id: str, channel: str) -> str | None:
        return self._contacts.get(customer_id, {}).get(channel)


class SyntheticContactBook:
    """Made-up addresses for the demo and benchmarks, whose channels write to files."""

    def address(self, customer_id: str, channel: str) -> str | None:
        if channel == "email":
            return f"{customer_id}@example.invalid"
        if channel == "sms":
            return "+15550000000"
        return f"push-token-{customer_id}"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0


@dataclass
class DistributionReport:
    campaign_id: str
    matched: int = 0
    published: int = 0
    held_out: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "matched": self.matched,
            "published": self.published,
            "held_out": self.held_out,
            "skipped": dict(self.skipped),
            "delivered": self.delivered,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class _Offer:
    voucher_id: str
    code: str
    customer_id: str
    channel: str
    trigger_id: str | None


class Distributor:
    def __init__(
        self,
        engine: RedemptionEngine,
        channels: Mapping[str, Channel],
        contacts: ContactBook,
        *,
        retry: RetryPolicy | None = None,
        sleep: Any = None,
        rng: random.Random | None = None,
        timer: Any = None,
    ) -> None:
        self.engine = engine
        self.channels = dict(channels)
        self.contacts = contacts
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._timer = timer  # measures send latency; the simulator passes simulated time

    # -- settings ------------------------------------------------------------------------------
    def set_frequency_cap(self, max_offers: int, days: int) -> None:
        """At most `max_offers` offers per `days` days per customer, across all campaigns."""
        max_offers = p.integer(max_offers, "max_offers", minimum=1, maximum=1000)
        days = p.integer(days, "days", minimum=1, maximum=3650)
        with self.engine.transaction() as tx:
            tx.append(
                Event(
                    EventType.FREQUENCY_CAP_SET,
                    self.engine.now(),
                    payload={"max_offers": max_offers, "days": days},
                )
            )

    # -- promotions ----------------------------------------------------------------------------
    def send_promotion(self, campaign_id: str) -> DistributionReport:
        """Publish and deliver a voucher to each customer of the segment, once.

        Interrupted half-way, it can be run again: customers already decided (published, held
        out or skipped) are passed over, and vouchers published but not yet delivered are
        delivered first.
        """
        campaign = self._campaign(campaign_id, "promotion")
        distribution = campaign.distribution
        assert distribution is not None and distribution.segment is not None
        now = self.engine.now()
        audience = self.engine.segment_members(distribution.segment, at=now)
        report = DistributionReport(campaign_id, matched=len(audience))
        self._record(
            [
                Event(
                    EventType.PROMOTION_STARTED,
                    now,
                    payload={"audience": len(audience)},
                    campaign_id=campaign_id,
                )
            ]
        )
        self._deliver(campaign, self._undelivered(campaign_id), report)
        generator = self.engine.code_generator(campaign)
        for start in range(0, len(audience), BATCH):
            batch = audience[start : start + BATCH]
            with self.engine.transaction() as tx:
                decided = tx.audience_decided(campaign_id, batch)
                offers = [
                    offer
                    for customer_id in batch
                    if customer_id not in decided
                    and (
                        offer := self._decide(
                            tx, campaign, customer_id, now, "promotion", None, generator, report
                        )
                    )
                ]
            self._deliver(campaign, offers, report)
        self._record(
            [
                Event(
                    EventType.PROMOTION_FINISHED,
                    self.engine.now(),
                    payload=report.to_dict(),
                    campaign_id=campaign_id,
                )
            ]
        )
        return report

    # -- autopilot -----------------------------------------------------------------------------
    def run_autopilot(self, campaign_ids: Sequence[str] | None = None) -> list[DistributionReport]:
        """One tick: match every active autopilot's trigger, then complete what is pending."""
        now = self.engine.now()
        with self.engine.store.read() as tx:
            ids = campaign_ids or tx.campaign_ids()
            campaigns = [
                state.campaign
                for state in map(tx.campaign_state, ids)
                if state is not None
                and state.status is CampaignStatus.ACTIVE
                and state.campaign.distribution is not None
                and state.campaign.distribution.mode == "autopilot"
            ]
        return [self._tick(campaign, now) for campaign in campaigns]

    def _tick(self, campaign: Campaign, now: datetime) -> DistributionReport:
        distribution = campaign.distribution
        assert distribution is not None and distribution.trigger is not None
        trigger = distribution.trigger
        report = DistributionReport(campaign.id)
        matches = self._matches(campaign, now)
        report.matched = len(matches)
        since = now - timedelta(days=trigger.cooldown_days)
        for start in range(0, len(matches), 5000):
            batch = matches[start : start + 5000]
            with self.engine.transaction() as tx:
                # Matching read a snapshot; another tick may have matched some of these since.
                # Re-checked under the write lock, a customer is matched once per cool-down.
                taken = tx.recently_triggered(campaign.id, batch, since)
                tx.append_many(
                    [
                        Event(
                            EventType.TRIGGER_MATCHED,
                            now,
                            payload={"trigger_id": new_id("trg"), "trigger": trigger.type},
                            campaign_id=campaign.id,
                            customer_id=customer_id,
                        )
                        for customer_id in batch
                        if customer_id not in taken
                    ]
                )
            report.matched -= len(taken)
        self._deliver(campaign, self._undelivered(campaign.id), report)
        generator = self.engine.code_generator(campaign)
        while True:
            with self.engine.transaction() as tx:
                pending = tx.pending_triggers(campaign.id, limit=BATCH)
                offers = [
                    offer
                    for trigger_id, customer_id in pending
                    if (
                        offer := self._decide(
                            tx,
                            campaign,
                            customer_id,
                            now,
                            "autopilot",
                            trigger_id,
                            generator,
                            report,
                        )
                    )
                ]
            if not pending:
                break
            self._deliver(campaign, offers, report)
        return report

    def _matches(self, campaign: Campaign, now: datetime) -> list[str]:
        """Customers whose trigger fires now and who had none for this campaign in cool-down."""
        distribution = campaign.distribution
        assert distribution is not None and distribution.trigger is not None
        trigger = distribution.trigger
        params: dict[str, Any] = {
            "campaign": campaign.id,
            "cooldown_start": p.iso(now - timedelta(days=trigger.cooldown_days)),
            "now": p.iso(now),
        }
        if trigger.type == "gone_quiet":
            condition = "c.orders >= :min_orders AND c.last_order_at <= :quiet_before"
            params.update(
                min_orders=trigger.min_orders,
                quiet_before=p.iso(now - timedelta(days=trigger.quiet_days)),
            )
        elif trigger.type == "personal_date":
            days = upcoming_month_days(now.date(), trigger.days_before)
            names = [f":d{i}" for i in range(len(days))]
            params.update({f"d{i}": day for i, day in enumerate(days)})
            condition = f"c.{trigger.date} IN ({', '.join(names)})"  # date is birthday/anniversary
        elif trigger.type == "first_order":
            condition = "c.orders >= 1 AND c.first_order_at > :since AND c.first_order_at <= :now"
            params["since"] = p.iso(now - timedelta(days=trigger.within_days))
        else:  # spend_threshold
            condition = "c.spend >= :amount"
            params["amount"] = trigger.amount
        sql = (
            "SELECT c.customer_id FROM customers c WHERE c.signup_at <= :now AND "
            + condition
            + " AND NOT EXISTS (SELECT 1 FROM triggers t WHERE t.campaign_id = :campaign"
            " AND t.customer_id = c.customer_id AND t.matched_at > :cooldown_start)"
            " ORDER BY c.customer_id"
        )
        with self.engine.store.read() as tx:
            matched = [row[0] for row in tx.query(sql, params)]
        if distribution.segment is not None:
            members = set(self.engine.segment_members(distribution.segment, at=now))
            matched = [customer for customer in matched if customer in members]
        return matched

    def autopilots(self) -> list[dict[str, Any]]:
        """Every autopilot campaign with its status and trigger."""
        with self.engine.store.read() as tx:
            states = [tx.campaign_state(cid) for cid in tx.campaign_ids()]
        return [
            {
                "campaign_id": state.campaign.id,
                "status": str(state.status),
                "trigger": state.campaign.distribution.trigger.__dict__,
                "channels": list(state.campaign.distribution.channels),
                "control_share": state.campaign.distribution.control_share,
            }
            for state in states
            if state is not None
            and state.campaign.distribution is not None
            and state.campaign.distribution.trigger is not None
        ]

    def pending_triggers(self) -> list[dict[str, Any]]:
        """Triggers matched but not completed, oldest first, with their age."""
        now = self.engine.now()
        with self.engine.store.read() as tx:
            rows = tx.query(
                "SELECT trigger_id, campaign_id, customer_id, kind, matched_at, voucher_id"
                " FROM triggers WHERE status = 'pending' ORDER BY matched_at, trigger_id",
                {},
            )
        return [
            {
                "trigger_id": row[0],
                "campaign_id": row[1],
                "customer_id": row[2],
                "trigger": row[3],
                "matched_at": row[4],
                "age_s": round((now - p.from_iso(row[4])).total_seconds(), 3),
                "voucher_id": row[5],
            }
            for row in rows
        ]

    # -- the decision, per customer ------------------------------------------------------------
    def _decide(
        self,
        tx: LedgerTransaction,
        campaign: Campaign,
        customer_id: str,
        now: datetime,
        source: str,
        trigger_id: str | None,
        generator: CodeGenerator,
        report: DistributionReport,
    ) -> _Offer | None:
        distribution = campaign.distribution
        assert distribution is not None
        ids = {"campaign_id": campaign.id, "customer_id": customer_id}
        tag = {"source": source} | ({"trigger_id": trigger_id} if trigger_id else {})
        if in_control_group(campaign.id, customer_id, distribution.control_share):
            tx.append(Event(EventType.CUSTOMER_HELD_OUT, now, payload=dict(tag), **ids))
            if trigger_id:
                tx.append(
                    Event(
                        EventType.TRIGGER_COMPLETED,
                        now,
                        payload={"trigger_id": trigger_id, "outcome": "held_out"},
                        **ids,
                    )
                )
            report.held_out += 1
            return None
        reason = self._skip_reason(tx, customer_id, distribution.channels, now)
        if isinstance(reason, str):
            tx.append(Event(EventType.OFFER_SKIPPED, now, payload={**tag, "reason": reason}, **ids))
            if trigger_id:
                tx.append(
                    Event(
                        EventType.TRIGGER_FAILED,
                        now,
                        payload={"trigger_id": trigger_id, "reason": reason},
                        **ids,
                    )
                )
            report.skipped[reason] += 1
            return None
        channel = reason[1]
        code = self._fresh_code(tx, generator)
        voucher_id = new_id("v")
        created: dict[str, Any] = {
            "code": code,
            "kind": str(campaign.voucher_kind),
            "source": source,
        }
        if campaign.gift_balance is not None:
            created["gift_balance"] = campaign.gift_balance
        tx.append(
            Event(
                EventType.VOUCHER_CREATED,
                now,
                payload=created,
                campaign_id=campaign.id,
                voucher_id=voucher_id,
            )
        )
        tx.append(
            Event(
                EventType.VOUCHER_PUBLISHED,
                now,
                payload={"code": code, **tag},
                voucher_id=voucher_id,
                channel=channel,
                **ids,
            )
        )
        report.published += 1
        return _Offer(voucher_id, code, customer_id, channel, trigger_id)

    def _skip_reason(
        self, tx: LedgerTransaction, customer_id: str, channels: Iterable[str], now: datetime
    ) -> str | tuple[None, str]:
        customer = tx.customer(customer_id)
        if customer is None:
            return "unknown_customer"
        cap = tx.frequency_cap()
        if cap is not None:
            max_offers, days = cap
            if tx.offers_since(customer_id, now - timedelta(days=days)) >= max_offers:
                return "frequency_cap"
        consented = [c for c in channels if customer.consent.get(c)]
        if not consented:
            return "no_consent"
        configured = [c for c in consented if c in self.channels]
        if not configured:
            return "channel_unavailable"
        for channel in configured:
            if self.contacts.address(customer_id, channel):
                return (None, channel)
        return "no_contact"

    @staticmethod
    def _fresh_code(tx: LedgerTransaction, generator: CodeGenerator) -> str:
        for _ in range(20):
            code = generator.generate(1)[0]
            if not tx.existing_codes([code]):
                return code
        raise Conflict(
            "code_config", "could not find an unused code; the code space is nearly full"
        )

    # -- deliveries ----------------------------------------------------------------------------
    def _undelivered(self, campaign_id: str) -> list[_Offer]:
        with self.engine.store.read() as tx:
            rows = tx.undelivered_offers(campaign_id)
        return [_Offer(*row) for row in rows]

    def _deliver(
        self, campaign: Campaign, offers: Sequence[_Offer], report: DistributionReport
    ) -> None:
        if not offers:
            return
        distribution = campaign.distribution
        assert distribution is not None
        outcomes: list[tuple[_Offer, DeliveryReport]] = []
        blocked: list[tuple[_Offer, str]] = []
        with self.engine.store.read() as tx:
            consent = {c: tx.customer(c) for c in {offer.customer_id for offer in offers}}
        for offer in offers:
            # Checked again at send time: a retry or a resume must not reach a customer over a
            # channel they have opted out of since, nor a channel no longer configured.
            customer = consent[offer.customer_id]
            if customer is None or not customer.consent.get(offer.channel):
                blocked.append((offer, "consent withdrawn"))
                continue
            if offer.channel not in self.channels:
                blocked.append((offer, "no adapter configured for this channel"))
                continue
            message = Message(
                customer_id=offer.customer_id,
                channel=offer.channel,  # type: ignore[arg-type]
                address=self.contacts.address(offer.customer_id, offer.channel) or "",
                campaign_id=campaign.id,
                voucher_code=offer.code,
                subject=render(distribution.subject, code=offer.code, campaign=campaign.name),
                body=render(distribution.body, code=offer.code, campaign=campaign.name),
                message_id=offer.voucher_id,
            )
            kwargs: dict[str, Any] = {
                "max_attempts": self.retry.max_attempts,
                "base_delay_s": self.retry.base_delay_s,
                "max_delay_s": self.retry.max_delay_s,
                "rng": self._rng,
                "now": self.engine.now,  # attempts on the same timeline as every other event
            }
            if self._sleep is not None:
                kwargs["sleep"] = self._sleep
            if self._timer is not None:
                kwargs["clock"] = self._timer
            outcomes.append(
                (offer, send_with_retry(self.channels[offer.channel], message, **kwargs))
            )
        for channel in {offer.channel for offer, _ in outcomes}:
            flush = getattr(self.channels[channel], "flush", None)
            if flush is not None:
                flush()
        now = self.engine.now()
        events: list[Event] = []
        for offer, why in blocked:
            final = {"provider": None, "attempts": 0, "latency_ms": 0.0, "error": why}
            events += _outcome_events(campaign.id, offer, now, final, delivered=False)
        for offer, outcome in outcomes:
            for attempt in outcome.attempts:
                events.append(
                    Event(
                        EventType.DELIVERY_ATTEMPTED,
                        attempt.started_at,
                        payload={
                            "provider": outcome.provider,
                            "attempt": attempt.number,
                            "latency_ms": round(attempt.latency_ms, 3),
                            "backoff_ms": round(attempt.backoff_ms, 3),
                            "outcome": attempt.outcome,
                            "error": attempt.error,
                        },
                        campaign_id=campaign.id,
                        voucher_id=offer.voucher_id,
                        customer_id=offer.customer_id,
                        channel=offer.channel,
                    )
                )
            final = {
                "provider": outcome.provider,
                "attempts": len(outcome.attempts),
                "latency_ms": round(outcome.total_latency_ms, 3),
                "error": None if outcome.delivered else outcome.error,
            }
            events += _outcome_events(campaign.id, offer, now, final, delivered=outcome.delivered)
        report.delivered += sum(e.event_type is EventType.VOUCHER_DELIVERED for e in events)
        report.failed += sum(e.event_type is EventType.DELIVERY_FAILED for e in events)
        self._record(events)

    def retry_deliveries(self, campaign_id: str | None = None) -> list[DistributionReport]:
        """Re-send every voucher whose last delivery failed (it stays published meanwhile)."""
        with self.engine.store.read() as tx:
            rows = tx.failed_deliveries(campaign_id)
            campaigns = {cid: tx.campaign_state(cid) for cid in {row[0] for row in rows}}
        reports = []
        for cid, state in sorted(campaigns.items()):
            assert state is not None
            report = DistributionReport(cid)
            offers = [_Offer(*row[1:]) for row in rows if row[0] == cid]
            self._deliver(state.campaign, offers, report)
            reports.append(report)
        return reports

    # -- helpers -------------------------------------------------------------------------------
    def _record(self, events: list[Event]) -> None:
        if events:
            with self.engine.transaction() as tx:
                tx.append_many(events)

    def _campaign(self, campaign_id: str, mode: str) -> Campaign:
        with self.engine.store.read() as tx:
            state = tx.campaign_state(p.identifier(campaign_id, "campaign_id"))
        if state is None:
            raise NotFound("campaign_id", campaign_id)
        if state.campaign.distribution is None or state.campaign.distribution.mode != mode:
            raise Conflict("campaign_id", f"{campaign_id!r} is not a {mode} campaign")
        if state.status is not CampaignStatus.ACTIVE:
            raise Conflict("campaign_id", f"{campaign_id!r} is {state.status}, not active")
        return state.campaign


def _outcome_events(
    campaign_id: str, offer: _Offer, now: datetime, final: dict[str, Any], *, delivered: bool
) -> list[Event]:
    """A delivery's outcome, and the autopilot trigger it closes."""
    ids = {
        "campaign_id": campaign_id,
        "voucher_id": offer.voucher_id,
        "customer_id": offer.customer_id,
    }
    kind = EventType.VOUCHER_DELIVERED if delivered else EventType.DELIVERY_FAILED
    events = [Event(kind, now, payload=final, channel=offer.channel, **ids)]
    if offer.trigger_id:
        if delivered:
            closing = {"trigger_id": offer.trigger_id, "outcome": "completed"}
        else:
            closing = {"trigger_id": offer.trigger_id, "reason": "delivery_failed"}
        closed = EventType.TRIGGER_COMPLETED if delivered else EventType.TRIGGER_FAILED
        events.append(Event(closed, now, payload=closing, **ids))
    return events


def upcoming_month_days(today: date, days_before: int) -> list[str]:
    """'MM-DD' of today and the next `days_before` days; 02-29 counts on 02-28 in other years."""
    days = []
    for offset in range(days_before + 1):
        day = today + timedelta(days=offset)
        days.append(day.strftime("%m-%d"))
        if day.month == 2 and day.day == 28 and not _is_leap(day.year):
            days.append("02-29")
    return days


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
