"""The redemption engine: every act on campaigns and vouchers, each one a ledger event.

validate() decides and records a validation event; redeem() re-checks every rule and limit
and appends its event inside one write transaction, so that under any number of processes a
single-use code is redeemed once and a budget is never overspent. rollback() gives back
what a redemption took. Idempotency keys make retries of redeem and rollback safe.

Validation events are group-committed: they are buffered and appended in the next write
transaction (or when the buffer fills, grows old, or the engine is flushed or closed), so a
validation costs no fsync. A crash can lose the last unflushed validation events, never a
redemption, and the ledger stays a prefix of what was committed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redemption_core import parsing as p
from redemption_core.campaigns import (
    Campaign,
    CampaignStatus,
    MainCampaign,
    VoucherKind,
    campaign_from_dict,
    check_transition,
    main_campaign_from_dict,
)
from redemption_core.codes import CodeGenerator, normalize_code
from redemption_core.config import ledger_path, promo_home
from redemption_core.engine_customers import CustomerOperations, rollback_event
from redemption_core.errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PromoError,
)
from redemption_core.events import Event, EventType, new_id
from redemption_core.hashing import ContextHasher
from redemption_core.money import check_amount
from redemption_core.orders import Order, RequestContext
from redemption_core.reasons import Code, Reason
from redemption_core.reviews import ReviewOperations
from redemption_core.rules import evaluate
from redemption_core.sqlite_store import SqliteLedgerStore, dumps
from redemption_core.state import VoucherState
from redemption_core.store import LedgerStore, LedgerTransaction

MAX_HOLD_SECONDS = 3600
MAX_CODES_PER_CALL = 10_000_000
CODES_PER_TRANSACTION = 20_000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RedeemRequest:
    code: str
    order: Order
    customer_id: str | None = None
    context: RequestContext = field(default_factory=RequestContext)
    idempotency_key: str | None = None
    session_id: str | None = None
    gift_amount: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _PricedAnswer:
    """What validate and redeem both answer: the code, its campaign, and the money."""

    code: str
    voucher_id: str | None
    campaign_id: str | None
    currency: str
    order_amount: int
    discount: int
    gift_amount: int
    reasons: tuple[Reason, ...]
    event_id: str

    @property
    def amount_to_pay(self) -> int:
        return self.order_amount - self.discount - self.gift_amount

    def _priced_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "voucher_id": self.voucher_id,
            "campaign_id": self.campaign_id,
            "currency": self.currency,
            "order_amount": self.order_amount,
            "discount": self.discount,
            "gift_amount": self.gift_amount,
            "amount_to_pay": self.amount_to_pay,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationResult(_PricedAnswer):
    valid: bool
    session_id: str | None = None
    session_expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        expires = p.iso(self.session_expires_at) if self.session_expires_at else None
        return {
            "valid": self.valid,
            **self._priced_dict(),
            "session_id": self.session_id,
            "session_expires_at": expires,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RedemptionResult(_PricedAnswer):
    ok: bool
    redemption_id: str | None
    replayed: bool = False  # True: an idempotent retry answered from the ledger, not re-run

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "redemption_id": self.redemption_id,
            **self._priced_dict(),
            "replayed": self.replayed,
        }


@dataclass(frozen=True, slots=True)
class RollbackResult:
    ok: bool
    redemption_id: str
    rollback_id: str | None
    discount: int
    gift_amount: int
    reasons: tuple[Reason, ...]
    event_id: str
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "redemption_id": self.redemption_id,
            "rollback_id": self.rollback_id,
            "discount": self.discount,
            "gift_amount": self.gift_amount,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "event_id": self.event_id,
            "replayed": self.replayed,
        }


def _reasons_from(payload: Mapping[str, Any]) -> tuple[Reason, ...]:
    return tuple(Reason(Code(r["code"]), r["message"]) for r in payload.get("reasons", ()))


def _reasons_payload(reasons: Iterable[Reason]) -> list[dict[str, str]]:
    return [{"code": str(r.code), "message": r.message} for r in reasons]


def _request_hash(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _HashedContext:
    device_hash: str | None
    ip_hash: str | None
    payment_hash: str | None
    store_id: str | None
    staff_id: str | None
    sales_channel: str | None

    def columns(self) -> dict[str, str | None]:
        return {
            "device_hash": self.device_hash,
            "ip_hash": self.ip_hash,
            "payment_hash": self.payment_hash,
            "store_id": self.store_id,
            "staff_id": self.staff_id,
            "sales_channel": self.sales_channel,
        }


class RedemptionEngine(CustomerOperations, ReviewOperations):
    """One engine per process or thread; any number of them may share one ledger."""

    def __init__(
        self,
        store: LedgerStore,
        hasher: ContextHasher,
        *,
        clock: Callable[[], datetime] = utc_now,
        validation_buffer: int = 256,
        validation_max_age_s: float = 1.0,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.store = store
        self._random_bytes = random_bytes
        self._hasher = hasher
        self._clock = clock
        self._pending: list[Event] = []
        self._pending_since = 0.0
        self._buffer_size = validation_buffer
        self._buffer_age = validation_max_age_s

    @classmethod
    def open(
        cls, home: Path | None = None, *, durable: bool = True, **kwargs: Any
    ) -> RedemptionEngine:
        """The engine on the ledger under PROMO_HOME (or `home`)."""
        home = home or promo_home()
        store = SqliteLedgerStore(ledger_path(home), durable=durable)
        return cls(store, ContextHasher.for_home(home), **kwargs)

    def __enter__(self) -> RedemptionEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.flush()
        self.store.close()

    def now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            raise InvalidInput("clock", "must return timezone-aware datetimes")
        return moment

    # -- transactions ------------------------------------------------------------------------
    def flush(self) -> None:
        """Write buffered validation events now."""
        if self._pending:
            with self._transaction():
                pass

    def transaction(self) -> AbstractContextManager[LedgerTransaction]:
        """A write transaction for collaborators (distribution) that append their own events."""
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[LedgerTransaction]:
        """A write transaction that first appends the buffered validation events.

        They leave the buffer only once the transaction has committed: a request refused
        with an error rolls the transaction back, and the events wait for the next one.
        """
        pending = list(self._pending)
        with self.store.write() as tx:
            tx.append_many(pending)
            yield tx
        del self._pending[: len(pending)]

    def _write(self, events: Sequence[Event]) -> None:
        with self._transaction() as tx:
            tx.append_many(events)

    def _hash_context(self, context: RequestContext) -> _HashedContext:
        if not isinstance(context, RequestContext):
            raise InvalidInput("context", "must be a RequestContext")
        hasher = self._hasher
        return _HashedContext(
            device_hash=hasher.hash(context.device_id),
            ip_hash=hasher.hash(context.ip),
            payment_hash=hasher.hash(context.payment_fingerprint),
            store_id=context.store_id,
            staff_id=context.staff_id,
            sales_channel=context.sales_channel,
        )

    # -- campaigns ---------------------------------------------------------------------------
    def create_main_campaign(self, main: MainCampaign) -> None:
        self._create(main, [])

    def create_campaign(self, campaign: Campaign) -> None:
        """Record a sub-campaign (and, for a standalone code, its one voucher)."""
        self._create(None, [(campaign, "campaign")])

    def create_from_definition(self, data: object) -> list[str]:
        """A YAML/JSON document: one campaign, or a main campaign with `campaigns: [...]`.

        All or nothing: every campaign of the document is checked before any is written,
        and all are written in one transaction.
        """
        document = p.mapping(data, "definition")
        if "campaigns" not in document:
            campaign = campaign_from_dict(document)
            self.create_campaign(campaign)
            return [campaign.id]
        main = main_campaign_from_dict(document)
        subs = document["campaigns"]
        if not isinstance(subs, list) or not subs:
            raise InvalidInput("main_campaign.campaigns", "must be a non-empty list")
        campaigns = []
        for i, sub in enumerate(subs):
            where = f"campaigns[{i}]"
            sub = dict(p.mapping(sub, where))
            if sub.setdefault("main_campaign", main.id) != main.id:
                raise InvalidInput(f"{where}.main_campaign", f"must be {main.id!r}")
            campaigns.append((campaign_from_dict(sub, where), where))
        self._create(main, campaigns)
        return [campaign.id for campaign, _ in campaigns]

    def _create(self, main: MainCampaign | None, campaigns: list[tuple[Campaign, str]]) -> None:
        now = self.now()
        events: list[Event] = []
        if main is not None:
            events.append(
                Event(EventType.MAIN_CAMPAIGN_CREATED, now, payload={"definition": main.to_dict()})
            )
        for campaign, where in campaigns:
            definition = campaign.to_dict()
            try:
                dumps(definition)
            except (TypeError, ValueError):
                raise InvalidInput(f"{where}.metadata", "must hold only JSON values") from None
            events.append(
                Event(
                    EventType.CAMPAIGN_CREATED,
                    now,
                    payload={"definition": definition},
                    campaign_id=campaign.id,
                )
            )
            if campaign.standalone_code is not None:
                events.append(
                    self._voucher_created(
                        campaign, campaign.standalone_code, now, source="definition"
                    )
                )
        with self._transaction() as tx:
            if main is not None and tx.main_campaign_exists(main.id):
                raise Conflict("main_campaign.id", f"{main.id!r} already exists")
            ids: set[str] = set()
            codes: set[str] = set()
            for campaign, where in campaigns:
                if campaign.id in ids or tx.campaign_state(campaign.id) is not None:
                    raise Conflict(f"{where}.id", f"{campaign.id!r} already exists")
                ids.add(campaign.id)
                parent = campaign.main_campaign_id
                if (
                    parent
                    and not (main and parent == main.id)
                    and not tx.main_campaign_exists(parent)
                ):
                    raise NotFound(f"{where}.main_campaign", parent)
                code = campaign.standalone_code
                if code is not None:
                    if code in codes or tx.existing_codes([code]):
                        raise Conflict(f"{where}.voucher.code", f"{code!r} is taken")
                    codes.add(code)
            tx.append_many(events)

    def set_campaign_status(self, campaign_id: str, status: CampaignStatus | str) -> None:
        try:
            new = CampaignStatus(status)
        except ValueError:
            raise InvalidInput("status", f"unknown status {status!r}") from None
        with self._transaction() as tx:
            state = tx.campaign_state(campaign_id)
            if state is None:
                raise NotFound("campaign_id", campaign_id)
            check_transition(state.status, new)
            tx.append(
                Event(
                    EventType.CAMPAIGN_STATUS_CHANGED,
                    self.now(),
                    payload={"status": str(new), "previous": str(state.status)},
                    campaign_id=campaign_id,
                )
            )

    # -- vouchers ----------------------------------------------------------------------------
    def _voucher_created(
        self,
        campaign: Campaign,
        code: str,
        now: datetime,
        *,
        source: str,
        gift_balance: int | None = None,
    ) -> Event:
        payload: dict[str, Any] = {
            "code": code,
            "kind": str(campaign.voucher_kind),
            "source": source,
        }
        if campaign.voucher_kind is VoucherKind.GIFT:
            payload["gift_balance"] = (
                gift_balance if gift_balance is not None else campaign.gift_balance
            )
        return Event(
            EventType.VOUCHER_CREATED,
            now,
            payload=payload,
            campaign_id=campaign.id,
            voucher_id=new_id("v"),
        )

    def _campaign_for_codes(self, tx: LedgerTransaction, campaign_id: str) -> Campaign:
        state = tx.campaign_state(campaign_id)
        if state is None:
            raise NotFound("campaign_id", campaign_id)
        if state.campaign.voucher_kind is VoucherKind.STANDALONE:
            raise Conflict("campaign_id", "a standalone campaign has exactly one code")
        if state.status is CampaignStatus.FINISHED:
            raise Conflict("campaign_id", "the campaign is finished")
        return state.campaign

    def code_generator(self, campaign: Campaign) -> CodeGenerator:
        return CodeGenerator(campaign.code_config, self._random_bytes)

    def generate_codes(self, campaign_id: str, count: int) -> list[str]:
        """Create `count` new vouchers with fresh codes, unique across the whole ledger.

        Written in transactions of CODES_PER_TRANSACTION codes: every committed code is
        complete, and a crash midway leaves the codes generated so far.
        """
        p.integer(count, "count", minimum=1, maximum=MAX_CODES_PER_CALL)
        with self.store.read() as tx:
            campaign = self._campaign_for_codes(tx, campaign_id)
        generator = self.code_generator(campaign)
        created: list[str] = []
        while len(created) < count:
            wanted = min(CODES_PER_TRANSACTION, count - len(created))
            with self._transaction() as tx:
                codes = self._fresh_codes(tx, generator, wanted)
                now = self.now()
                tx.append_many(
                    [
                        self._voucher_created(campaign, code, now, source="generated")
                        for code in codes
                    ]
                )
            created.extend(codes)
        return created

    @staticmethod
    def _fresh_codes(tx: LedgerTransaction, generator: CodeGenerator, wanted: int) -> list[str]:
        fresh: dict[str, None] = {}
        space = generator.config.code_space
        for attempt in range(40):
            shortfall = wanted - len(fresh)
            # Draw more than the shortfall as collisions grow, so that a crowded code space
            # still converges; a full one ends in the Conflict below instead of a hang.
            draw = min(shortfall * 2 ** min(attempt, 8) + 16, max(space * 4, shortfall))
            candidates = [c for c in generator.generate(draw) if c not in fresh]
            taken = tx.existing_codes(candidates)
            fresh.update((c, None) for c in candidates if c not in taken)
            if len(fresh) >= wanted:
                return list(fresh)[:wanted]
        raise Conflict(
            "code_config",
            f"could not find {wanted} unused codes; the code space of "
            f"{generator.config.code_space} is nearly exhausted",
        )

    def import_codes(self, campaign_id: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Import existing codes (e.g. from CSV): every row is checked before any is written.

        Columns: code (required), customer_id (publishes the voucher to that customer),
        gift_balance (gift cards only; defaults to the campaign's).
        """
        if not rows:
            raise InvalidInput("rows", "the file has no codes")
        with self.store.read() as tx:
            campaign = self._campaign_for_codes(tx, campaign_id)
        parsed: list[tuple[str, str | None, int | None]] = []
        seen: dict[str, int] = {}
        for number, row in enumerate(rows, start=1):
            where = f"row {number}"
            p.reject_unknown(row, {"code", "customer_id", "gift_balance"}, where)
            code = normalize_code(row.get("code"), f"{where}.code")
            if code in seen:
                raise InvalidInput(f"{where}.code", f"{code!r} repeats row {seen[code]}")
            seen[code] = number
            customer = row.get("customer_id") or None
            customer = p.optional_identifier(customer, f"{where}.customer_id")
            balance = row.get("gift_balance")
            if balance in (None, ""):
                balance = None
            elif campaign.voucher_kind is not VoucherKind.GIFT:
                raise InvalidInput(f"{where}.gift_balance", "only gift cards have a balance")
            else:
                if isinstance(balance, str) and balance.isdigit():
                    balance = int(balance)
                balance = check_amount(balance, f"{where}.gift_balance", allow_zero=False)
            parsed.append((code, customer, balance))
        with self._transaction() as tx:
            taken = tx.existing_codes([code for code, _, _ in parsed])
            if taken:
                first = min(taken, key=seen.__getitem__)
                raise Conflict(
                    f"row {seen[first]}.code",
                    f"{first!r} already exists ({len(taken)} codes of the file do)",
                )
            now = self.now()
            events: list[Event] = []
            for code, customer, balance in parsed:
                created = self._voucher_created(
                    campaign, code, now, source="import", gift_balance=balance
                )
                events.append(created)
                if customer is not None:
                    events.append(
                        Event(
                            EventType.VOUCHER_PUBLISHED,
                            now,
                            payload={"code": code, "source": "import"},
                            campaign_id=campaign.id,
                            voucher_id=created.voucher_id,
                            customer_id=customer,
                        )
                    )
            tx.append_many(events)
        return len(parsed)

    def _voucher_for_admin(self, tx: LedgerTransaction, code: str) -> VoucherState:
        voucher = tx.voucher_by_code(normalize_code(code))
        if voucher is None:
            raise NotFound("code", code)
        return voucher

    def publish(self, code: str, customer_id: str, *, channel: str | None = None) -> bool:
        """Assign a unique voucher or gift card to its customer. False: already theirs."""
        customer_id = p.identifier(customer_id, "customer_id")
        with self._transaction() as tx:
            voucher = self._voucher_for_admin(tx, code)
            if voucher.kind is VoucherKind.STANDALONE:
                raise Conflict(
                    "code", "a standalone code is shared; it is not published to one customer"
                )
            if voucher.holder_id == customer_id:
                return False
            if voucher.holder_id is not None:
                raise Conflict("code", "already published to another customer")
            tx.append(
                Event(
                    EventType.VOUCHER_PUBLISHED,
                    self.now(),
                    payload={"code": voucher.code},
                    campaign_id=voucher.campaign_id,
                    voucher_id=voucher.voucher_id,
                    customer_id=customer_id,
                    channel=channel,
                )
            )
        return True

    def accept(self, code: str, customer_id: str) -> bool:
        """The holder accepts the voucher in the app. False: it was accepted before."""
        return self.accept_many([(code, customer_id)])[0]

    def accept_many(self, acceptances: Sequence[tuple[str, str]]) -> list[bool]:
        """Acceptances in one transaction; all, or none if one names a voucher not theirs."""
        checked = [(code, p.identifier(customer, "customer_id")) for code, customer in acceptances]
        answers = []
        with self._transaction() as tx:
            now = self.now()
            for code, customer_id in checked:
                voucher = self._voucher_for_admin(tx, code)
                if voucher.holder_id != customer_id:
                    raise Conflict("customer_id", "only the voucher's holder can accept it")
                if voucher.accepted_at is not None:  # also by an earlier line of this batch
                    answers.append(False)
                    continue
                tx.append(
                    Event(
                        EventType.VOUCHER_ACCEPTED,
                        now,
                        payload={"code": voucher.code},
                        campaign_id=voucher.campaign_id,
                        voucher_id=voucher.voucher_id,
                        customer_id=customer_id,
                    )
                )
                answers.append(True)
        return answers

    def set_voucher_enabled(self, code: str, enabled: bool, *, note: str = "") -> None:
        with self._transaction() as tx:
            voucher = self._voucher_for_admin(tx, code)
            if voucher.disabled != enabled:
                return
            tx.append(
                Event(
                    EventType.VOUCHER_ENABLED if enabled else EventType.VOUCHER_DISABLED,
                    self.now(),
                    payload={"code": voucher.code, "note": p.text(note, "note")},
                    campaign_id=voucher.campaign_id,
                    voucher_id=voucher.voucher_id,
                )
            )

    def top_up(self, code: str, amount: int) -> int:
        """Add to a gift card's balance; returns the new balance."""
        amount = check_amount(amount, "amount", allow_zero=False)
        with self._transaction() as tx:
            voucher = self._voucher_for_admin(tx, code)
            if voucher.kind is not VoucherKind.GIFT:
                raise Conflict("code", "only a gift card can be topped up")
            balance = (voucher.gift_balance or 0) + amount
            tx.append(
                Event(
                    EventType.GIFT_CARD_TOPPED_UP,
                    self.now(),
                    payload={"code": voucher.code, "amount": amount, "balance": balance},
                    campaign_id=voucher.campaign_id,
                    voucher_id=voucher.voucher_id,
                    customer_id=voucher.holder_id,
                )
            )
        return balance

    def set_segment_membership(self, segment_id: str, customer_id: str, member: bool) -> None:
        segment_id = p.identifier(segment_id, "segment_id")
        customer_id = p.identifier(customer_id, "customer_id")
        self._write(
            [
                Event(
                    EventType.SEGMENT_MEMBER_ADDED if member else EventType.SEGMENT_MEMBER_REMOVED,
                    self.now(),
                    payload={"segment_id": segment_id},
                    customer_id=customer_id,
                )
            ]
        )

    # -- validation --------------------------------------------------------------------------
    def validate(
        self,
        code: str,
        order: Order,
        *,
        customer_id: str | None = None,
        context: RequestContext | None = None,
        hold_seconds: int | None = None,
    ) -> ValidationResult:
        """Would this code apply to this order? Records a validation event, nothing else.

        With hold_seconds, a valid result also reserves one use of the voucher for that long:
        redeem with the returned session_id consumes it; an expired hold frees it.
        """
        code = normalize_code(code)
        if not isinstance(order, Order):
            raise InvalidInput("order", "must be an Order")
        customer_id = p.optional_identifier(customer_id, "customer_id")
        context = context or RequestContext()
        hashed = self._hash_context(context)
        if hold_seconds is not None:
            p.integer(hold_seconds, "hold_seconds", minimum=1, maximum=MAX_HOLD_SECONDS)
            with self._transaction() as tx:
                result, events = self._validate_in(
                    tx, code, order, customer_id, hashed, context, hold_seconds
                )
                tx.append_many(events)
            return result
        with self.store.read() as tx:
            result, events = self._validate_in(tx, code, order, customer_id, hashed, context, None)
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend(events)
        if (
            len(self._pending) >= self._buffer_size
            or time.monotonic() - self._pending_since >= self._buffer_age
        ):
            self.flush()
        return result

    def _validate_in(
        self,
        tx: LedgerTransaction,
        code: str,
        order: Order,
        customer_id: str | None,
        hashed: _HashedContext,
        context: RequestContext,
        hold_seconds: int | None,
    ) -> tuple[ValidationResult, list[Event]]:
        now = self.now()
        voucher = tx.voucher_by_code(code)
        discount = gift = 0
        campaign_id = voucher_id = None
        if voucher is None:
            reasons: tuple[Reason, ...] = (
                Reason(Code.RESOURCE_NOT_FOUND, "no voucher has this code"),
            )
        else:
            state = tx.campaign_state(voucher.campaign_id)
            assert state is not None  # a voucher's campaign is created before it
            campaign_id, voucher_id = voucher.campaign_id, voucher.voucher_id
            evaluation = evaluate(
                state,
                voucher,
                order=order,
                customer_id=customer_id,
                context=context,
                now=now,
                facts=tx,
            )
            reasons, discount, gift = (
                evaluation.reasons,
                evaluation.discount,
                evaluation.gift_amount,
            )
        valid = not reasons
        event = Event(
            EventType.VOUCHER_VALIDATED,
            now,
            payload={
                "code": code,
                "valid": valid,
                "reasons": _reasons_payload(reasons),
                "discount": discount,
                "gift_amount": gift,
                "order_amount": order.amount,
                "currency": order.currency,
                "items": len(order.items),
            },
            campaign_id=campaign_id,
            voucher_id=voucher_id,
            customer_id=customer_id,
            order_id=order.id,
            **hashed.columns(),
        )
        events = [event]
        session_id = expires_at = None
        if hold_seconds is not None and valid:
            session_id = new_id("hold")
            expires_at = now + timedelta(seconds=hold_seconds)
            events.append(
                Event(
                    EventType.VALIDATION_HOLD_CREATED,
                    now,
                    payload={
                        "session_id": session_id,
                        "expires_at": p.iso(expires_at),
                        "code": code,
                    },
                    campaign_id=campaign_id,
                    voucher_id=voucher_id,
                    customer_id=customer_id,
                    order_id=order.id,
                    **hashed.columns(),
                )
            )
        result = ValidationResult(
            valid=valid,
            code=code,
            voucher_id=voucher_id,
            campaign_id=campaign_id,
            currency=order.currency,
            order_amount=order.amount,
            discount=discount,
            gift_amount=gift,
            reasons=reasons,
            event_id=event.event_id,
            session_id=session_id,
            session_expires_at=expires_at,
        )
        return result, events

    # -- redemption --------------------------------------------------------------------------
    def redeem(self, request: RedeemRequest) -> RedemptionResult:
        """Redeem in one transaction: re-check everything, append, update the projection."""
        prepared = self._prepare(request)
        with self._transaction() as tx:
            return self._redeem_in(tx, *prepared)

    def redeem_many(self, requests: Sequence[RedeemRequest]) -> list[RedemptionResult | PromoError]:
        """Redeem a batch in one transaction (one fsync), each checked as if alone, in order.

        A request that is malformed or reuses an idempotency key for another request gets its
        error in its place in the list; the others go ahead.
        """
        prepared: list[tuple[Any, ...] | PromoError] = []
        for request in requests:
            try:
                prepared.append(self._prepare(request))
            except PromoError as error:
                prepared.append(error)
        results: list[RedemptionResult | PromoError] = []
        with self._transaction() as tx:
            for item in prepared:
                if isinstance(item, PromoError):
                    results.append(item)
                    continue
                try:
                    results.append(self._redeem_in(tx, *item))
                except PromoError as error:  # raised before anything of this request is written
                    results.append(error)
        return results

    def _prepare(
        self, request: RedeemRequest
    ) -> tuple[RedeemRequest, str, _HashedContext, str | None]:
        if not isinstance(request, RedeemRequest):
            raise InvalidInput("request", "must be a RedeemRequest")
        code = normalize_code(request.code)
        if not isinstance(request.order, Order):
            raise InvalidInput("order", "must be an Order")
        p.optional_identifier(request.customer_id, "customer_id")
        p.optional_identifier(request.idempotency_key, "idempotency_key")
        p.optional_identifier(request.session_id, "session_id")
        hashed = self._hash_context(request.context)
        request_hash = None
        if request.idempotency_key is not None:
            request_hash = _request_hash(
                {
                    "operation": "redeem",
                    "code": code,
                    "customer_id": request.customer_id,
                    "order": request.order.to_dict(),
                    "context": hashed.columns(),
                    "session_id": request.session_id,
                    "gift_amount": request.gift_amount,
                }
            )
        return request, code, hashed, request_hash

    def _redeem_in(
        self,
        tx: LedgerTransaction,
        request: RedeemRequest,
        code: str,
        hashed: _HashedContext,
        request_hash: str | None,
    ) -> RedemptionResult:
        if request.idempotency_key is not None:
            earlier = tx.idempotent_event(request.idempotency_key)
            if earlier is not None:
                first_hash, event = earlier
                if first_hash != request_hash or event.event_type not in (
                    EventType.REDEMPTION_SUCCEEDED,
                    EventType.REDEMPTION_REJECTED,
                ):
                    raise IdempotencyKeyReused(request.idempotency_key)
                return _redemption_result(event, replayed=True)
        now = self.now()
        order = request.order
        voucher = tx.voucher_by_code(code)
        discount = gift = 0
        if voucher is None:
            reasons: tuple[Reason, ...] = (
                Reason(Code.RESOURCE_NOT_FOUND, "no voucher has this code"),
            )
            campaign_id = voucher_id = None
        else:
            campaign_id, voucher_id = voucher.campaign_id, voucher.voucher_id
            state = tx.campaign_state(campaign_id)
            assert state is not None
            evaluation = evaluate(
                state,
                voucher,
                order=order,
                customer_id=request.customer_id,
                context=request.context,
                now=now,
                facts=tx,
                session_id=request.session_id,
                gift_amount=request.gift_amount,
            )
            reasons = evaluation.reasons + _session_reasons(tx, request.session_id, voucher, now)
            discount, gift = evaluation.discount, evaluation.gift_amount
        ok = not reasons
        payload: dict[str, Any] = {
            "code": code,
            "order": order.to_dict(),
            "discount": discount if ok else 0,
            "gift_amount": gift if ok else 0,
            "currency": order.currency,
        }
        if reasons:
            payload["reasons"] = _reasons_payload(reasons)
        if request.session_id is not None:
            payload["session_id"] = request.session_id
        if request_hash is not None:
            payload["request_hash"] = request_hash
        event = Event(
            EventType.REDEMPTION_SUCCEEDED if ok else EventType.REDEMPTION_REJECTED,
            now,
            payload=payload,
            campaign_id=campaign_id,
            voucher_id=voucher_id,
            customer_id=request.customer_id,
            order_id=order.id,
            redemption_id=new_id("r") if ok else None,
            idempotency_key=request.idempotency_key,
            **hashed.columns(),
        )
        tx.append(event)
        return RedemptionResult(
            ok=ok,
            code=code,
            redemption_id=event.redemption_id,
            voucher_id=voucher_id,
            campaign_id=campaign_id,
            currency=order.currency,
            order_amount=order.amount,
            discount=payload["discount"],
            gift_amount=payload["gift_amount"],
            reasons=reasons,
            event_id=event.event_id,
        )

    # -- rollback ----------------------------------------------------------------------------
    def rollback(
        self,
        redemption_id: str,
        *,
        reason: str = "",
        idempotency_key: str | None = None,
        context: RequestContext | None = None,
    ) -> RollbackResult:
        """Give back what a redemption took: the use, the budget and the gift balance."""
        redemption_id = p.identifier(redemption_id, "redemption_id")
        reason = p.text(reason, "reason")
        p.optional_identifier(idempotency_key, "idempotency_key")
        hashed = self._hash_context(context or RequestContext())
        request_hash = None
        if idempotency_key is not None:
            request_hash = _request_hash(
                {"operation": "rollback", "redemption_id": redemption_id, "reason": reason}
            )
        with self._transaction() as tx:
            if idempotency_key is not None:
                earlier = tx.idempotent_event(idempotency_key)
                if earlier is not None:
                    first_hash, event = earlier
                    if first_hash != request_hash or event.event_type not in (
                        EventType.REDEMPTION_ROLLED_BACK,
                        EventType.ROLLBACK_REJECTED,
                    ):
                        raise IdempotencyKeyReused(idempotency_key)
                    return _rollback_result(event, replayed=True)
            now = self.now()
            redemption = tx.redemption(redemption_id)
            payload: dict[str, Any] = {"reason": reason}
            if request_hash is not None:
                payload["request_hash"] = request_hash
            ids: dict[str, Any] = {}
            if redemption is None:
                rejection = Reason(Code.RESOURCE_NOT_FOUND, "no redemption has this id")
            elif redemption.rolled_back:
                rejection = Reason(
                    Code.ALREADY_ROLLED_BACK, "this redemption was rolled back before"
                )
            else:
                rejection = None
            if redemption is not None:
                ids = {
                    "campaign_id": redemption.campaign_id,
                    "voucher_id": redemption.voucher_id,
                    "customer_id": redemption.customer_id,
                    "order_id": redemption.order_id,
                }
            columns = {"idempotency_key": idempotency_key, **hashed.columns()}
            if rejection is None:
                assert redemption is not None
                event = rollback_event(redemption, now, payload, **columns)
            else:
                payload["reasons"] = _reasons_payload([rejection])
                event = Event(
                    EventType.ROLLBACK_REJECTED,
                    now,
                    payload=payload,
                    redemption_id=redemption_id,
                    **ids,
                    **columns,
                )
            tx.append(event)
        return _rollback_result(event, replayed=False)


def _session_reasons(
    tx: LedgerTransaction, session_id: str | None, voucher: VoucherState, now: datetime
) -> tuple[Reason, ...]:
    if session_id is None:
        return ()
    hold = tx.hold(session_id)
    if hold is None or hold.voucher_id != voucher.voucher_id:
        return (Reason(Code.SESSION_NOT_FOUND, "no hold with this session id for this voucher"),)
    if hold.consumed:
        return (Reason(Code.SESSION_EXPIRED, "the hold was already used"),)
    if hold.expires_at <= now:
        return (Reason(Code.SESSION_EXPIRED, f"the hold expired at {p.iso(hold.expires_at)}"),)
    return ()


def _redemption_result(event: Event, *, replayed: bool) -> RedemptionResult:
    payload = event.payload
    return RedemptionResult(
        ok=event.event_type is EventType.REDEMPTION_SUCCEEDED,
        code=payload["code"],
        redemption_id=event.redemption_id,
        voucher_id=event.voucher_id,
        campaign_id=event.campaign_id,
        currency=payload["currency"],
        order_amount=payload["order"]["amount"],
        discount=payload["discount"],
        gift_amount=payload["gift_amount"],
        reasons=_reasons_from(payload),
        event_id=event.event_id,
        replayed=replayed,
    )


def _rollback_result(event: Event, *, replayed: bool) -> RollbackResult:
    payload = event.payload
    return RollbackResult(
        ok=event.event_type is EventType.REDEMPTION_ROLLED_BACK,
        redemption_id=event.redemption_id or "",
        rollback_id=payload.get("rollback_id"),
        discount=payload.get("discount", 0),
        gift_amount=payload.get("gift_amount", 0),
        reasons=_reasons_from(payload),
        event_id=event.event_id,
        replayed=replayed,
    )
