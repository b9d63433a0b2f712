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

import random
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from redemption_core.domain import parsing as p
from redemption_core.domain.access import ACTING, KeyKind, Operation, Principal, check_store
from redemption_core.domain.clock import utc_now
from redemption_core.domain.codes import normalize_code
from redemption_core.domain.errors import (
    IdempotencyKeyReused,
    InvalidInput,
    PromoError,
)
from redemption_core.domain.events import Event, EventType, new_id
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.invariants import rollback_reason, session_reasons
from redemption_core.domain.limits import Limits, hold_limits_reasons
from redemption_core.domain.orders import Order, RequestContext
from redemption_core.domain.reasons import Code, Reason
from redemption_core.domain.rules import evaluate
from redemption_core.engine.access import AccessOperations
from redemption_core.engine.catalogue import CatalogueOperations
from redemption_core.engine.customers import CustomerOperations, rollback_event
from redemption_core.engine.engagement import EngagementOperations
from redemption_core.engine.guard import Guard, Subject
from redemption_core.engine.idempotency import IdempotentOperations
from redemption_core.engine.results import (
    HashedContext,
    RedeemRequest,
    RedemptionResult,
    RollbackResult,
    ValidationResult,
    hash_request,
    reasons_payload,
    redemption_result,
    rollback_result,
)
from redemption_core.engine.reviews import ReviewOperations
from redemption_core.engine.vouchers import (
    CODES_PER_TRANSACTION,
    MAX_CODES_PER_CALL,
    VoucherOperations,
)
from redemption_core.ledger.guard_table import GuardTable
from redemption_core.ledger.home import (
    context_hasher,
    guard_table_path,
    limits,
    open_store,
    promo_home,
)
from redemption_core.ledger.store import LedgerStore, LedgerTransaction, WriteConflict

MAX_HOLD_SECONDS = 3600
# A concurrent write the database gave up (a deadlock between two batches) is run again, up
# to this many times, after a short random pause.
CONFLICT_ATTEMPTS = 20
T = TypeVar("T")

__all__ = [
    "CODES_PER_TRANSACTION",
    "MAX_CODES_PER_CALL",
    "RedeemRequest",
    "RedemptionEngine",
    "RedemptionResult",
    "RollbackResult",
    "ValidationResult",
]


class RedemptionEngine(
    VoucherOperations,
    CustomerOperations,
    ReviewOperations,
    AccessOperations,
    IdempotentOperations,
    EngagementOperations,
    CatalogueOperations,
):
    """One engine per process or thread; any number of them may share one ledger.

    `limits` bound holds (per customer, device and IP; only with a cart) in every engine. The
    `guard` (rate limits and the guessing back-off) is there when the engine is opened on a
    home (`open`: the CLI, the API, the console); an engine built by hand (the simulator,
    tests) has none unless it is given one.
    """

    def __init__(
        self,
        store: LedgerStore,
        hasher: ContextHasher,
        *,
        clock: Callable[[], datetime] = utc_now,
        validation_buffer: int = 256,
        validation_max_age_s: float = 1.0,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        limits: Limits | None = None,
        guard: Guard | None = None,
        validation_sink: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or (guard.limits if guard is not None else Limits())
        self.guard = guard
        # Where validation events go instead of this engine's own buffer: an API worker reads
        # on one engine and hands them to the engine that writes (api/writer.py).
        self.validation_sink = validation_sink
        self._key_cache = {}
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
        """The engine on the ledger of PROMO_HOME (or `home`): PROMO_LEDGER_URL's PostgreSQL
        database when it is set, else the home's SQLite file."""
        home = home or promo_home()
        # The key and the limits file first: a bad one is refused before the ledger exists.
        hasher = context_hasher(home)
        home_limits = None if "guard" in kwargs else kwargs.pop("limits", None) or limits(home)
        store = open_store(home, durable=durable)
        if home_limits is not None:
            kwargs["guard"] = Guard(home_limits, GuardTable(guard_table_path(home)))
        return cls(store, hasher, **kwargs)

    def __enter__(self) -> RedemptionEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.flush()
        self.store.close()
        if self.guard is not None:
            self.guard.close()

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
    def _transaction(self, *, concurrent: bool = False) -> Iterator[LedgerTransaction]:
        """A write transaction that first appends the buffered validation events.

        They leave the buffer only once the transaction has committed: a request refused
        with an error rolls the transaction back, and the events wait for the next one.
        `concurrent`: see LedgerStore.write; only redemptions and holds, whose reads lock
        what they decide on, ask for it.
        """
        pending = list(self._pending)
        with self.store.write(concurrent=concurrent) as tx:
            tx.append_many(pending)
            tx.actor = ACTING.get()  # type: ignore[attr-defined]
            try:
                yield tx
            finally:
                tx.actor = None  # type: ignore[attr-defined]
        del self._pending[: len(pending)]

    @staticmethod
    def _retrying(attempt: Callable[[], T]) -> T:
        """Run a concurrent write, and again when the database gave it up (WriteConflict:
        nothing of it was written)."""
        for tries in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return attempt()
            except WriteConflict:
                if tries == CONFLICT_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.002 * tries))
        raise AssertionError("unreachable")

    def _write(self, events: Sequence[Event]) -> None:
        with self._transaction() as tx:
            tx.append_many(events)

    def _hash_context(self, context: RequestContext) -> HashedContext:
        if not isinstance(context, RequestContext):
            raise InvalidInput("context", "must be a RequestContext")
        hasher = self._hasher
        return HashedContext(
            device_hash=hasher.hash(context.device_id),
            ip_hash=hasher.hash(context.ip),
            payment_hash=hasher.hash(context.payment_fingerprint),
            store_id=context.store_id,
            staff_id=context.staff_id,
            sales_channel=context.sales_channel,
        )

    # -- the guard ---------------------------------------------------------------------------
    def admit(
        self,
        principal: Principal | None,
        ip: str | None,
        operation: Operation | None = None,
    ) -> None:
        """Charge a request to its key's and its client IP's rate limits (Throttled when
        spent). A door calls it once per request; without a guard it admits everything.
        `principal` None: a request without a valid key (charged to its IP's allowance for
        those)."""
        if self.guard is None:
            return
        client = principal is not None and principal.kind is KeyKind.CLIENT
        self.guard.admit(
            self.now().timestamp(),
            key_id=None if principal is None or client else principal.key_id,
            ip=ip,
            # A client-side key is public: what it may do at all is limited per IP.
            client_validation=client and operation in (Operation.VALIDATE, Operation.PUBLISH_SELF),
            unauthenticated=principal is None,
        )

    @staticmethod
    def _subjects(hashed: HashedContext, customer_id: str | None) -> list[Subject]:
        """Who a miss is counted against: the device, the IP and the customer named."""
        subjects = []
        if hashed.device_hash is not None:
            subjects.append(("device", hashed.device_hash))
        if hashed.ip_hash is not None:
            subjects.append(("ip", hashed.ip_hash))
        if customer_id is not None:
            subjects.append(("customer", customer_id))
        return subjects

    def _misses_once(
        self,
        counted: _Counted | None,
        subjects: list[Subject],
        now: datetime,
        hashed: HashedContext,
        actor: str | None,
    ) -> list[Event]:
        """`_misses`, counted once per request however often its write is run again."""
        if counted is None:
            return self._misses(subjects, now, hashed, actor)
        if counted.events is None:
            counted.events = self._misses(subjects, now, hashed, actor)
        return counted.events

    def _check_backoff(self, subjects: list[Subject]) -> None:
        if self.guard is not None:
            self.guard.check_backoff(self.now().timestamp(), subjects)

    def _misses(
        self, subjects: list[Subject], now: datetime, hashed: HashedContext, actor: str | None
    ) -> list[Event]:
        """Count a resource_not_found; an event for each back-off it starts."""
        if self.guard is None:
            return []
        events = []
        for (kind, value), backoff in self.guard.record_misses(now.timestamp(), subjects):
            payload: dict[str, Any] = {
                "subject": kind,
                "level": backoff.level,
                "misses": backoff.misses,
                "backoff_s": backoff.seconds,
                "until": p.iso(datetime.fromtimestamp(backoff.until, now.tzinfo)),
            }
            if actor is not None:
                payload["actor"] = actor
            events.append(
                Event(
                    EventType.GUESSING_BACKOFF_STARTED,
                    now,
                    payload=payload,
                    customer_id=value if kind == "customer" else None,
                    device_hash=value if kind == "device" else None,
                    ip_hash=value if kind == "ip" else None,
                    store_id=hashed.store_id,
                    sales_channel=hashed.sales_channel,
                )
            )
        return events

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
        self._check_backoff(self._subjects(hashed, customer_id))
        if hold_seconds is not None:
            p.integer(hold_seconds, "hold_seconds", minimum=1, maximum=MAX_HOLD_SECONDS)
            # A hold reserves a use for someone who is checking out: it needs the cart, and
            # someone to count it against (at most so many open holds each).
            if not order.items:
                raise InvalidInput("order.items", "a hold needs the cart: at least one item")
            if customer_id is None and context.device_id is None:
                raise InvalidInput(
                    "customer_id", "a hold needs the customer's id or context.device_id"
                )

            counted = _Counted()

            def hold() -> ValidationResult:
                with self._transaction(concurrent=True) as tx:
                    result, events = self._validate_in(
                        tx, code, order, customer_id, hashed, context, hold_seconds, counted
                    )
                    tx.append_many(events)
                return result

            return self._retrying(hold)
        with self.store.read() as tx:
            result, events = self._validate_in(tx, code, order, customer_id, hashed, context, None)
        if self.validation_sink is not None:
            self.validation_sink(events)
            return result
        self.defer(events)
        self.flush_if_due()
        return result

    def defer(self, events: Sequence[Event]) -> None:
        """Append these events with the next write transaction (group commit)."""
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend(events)

    @property
    def deferred(self) -> int:
        """How many events wait for the next write transaction."""
        return len(self._pending)

    def flush_if_due(self) -> None:
        """Flush the deferred events when enough wait, or the oldest has waited long enough."""
        if self._pending and (
            len(self._pending) >= self._buffer_size
            or time.monotonic() - self._pending_since >= self._buffer_age
        ):
            self.flush()

    def _validate_in(
        self,
        tx: LedgerTransaction,
        code: str,
        order: Order,
        customer_id: str | None,
        hashed: HashedContext,
        context: RequestContext,
        hold_seconds: int | None,
        counted: _Counted | None = None,
    ) -> tuple[ValidationResult, list[Event]]:
        now = self.now()
        actor = ACTING.get()
        voucher = tx.voucher_by_code(code)
        discount = gift = 0
        campaign_id = voucher_id = None
        misses: list[Event] = []
        if voucher is None:
            reasons: tuple[Reason, ...] = (
                Reason(Code.RESOURCE_NOT_FOUND, "no voucher has this code"),
            )
            misses = self._misses_once(
                counted, self._subjects(hashed, customer_id), now, hashed, actor
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
            reasons = evaluation.reasons
            if hold_seconds is not None and not reasons:
                held = tx.open_holds(customer_id, hashed.device_hash, hashed.ip_hash, now)
                reached = hold_limits_reasons(
                    self.limits,
                    by_customer=held.by_customer,
                    by_device=held.by_device,
                    by_ip=held.by_ip,
                )
                reasons = tuple(
                    Reason(Code.HOLD_LIMIT_EXCEEDED, f"{where} {problem}")
                    for where, problem in reached
                )
            if not reasons:  # an invalid code gives nothing: no discount, the full amount to pay
                discount, gift = evaluation.discount, evaluation.gift_amount
        valid = not reasons
        validated: dict[str, Any] = {
            "code": code,
            "valid": valid,
            "reasons": reasons_payload(reasons),
            "discount": discount,
            "gift_amount": gift,
            "order_amount": order.amount,
            "currency": order.currency,
            "items": len(order.items),
        }
        if actor is not None:
            validated["actor"] = actor
        event = Event(
            EventType.VOUCHER_VALIDATED,
            now,
            payload=validated,
            campaign_id=campaign_id,
            voucher_id=voucher_id,
            customer_id=customer_id,
            order_id=order.id,
            **hashed.columns(),
        )
        events = [event, *misses]
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

        def attempt() -> RedemptionResult:
            with self._transaction(concurrent=True) as tx:
                return self._redeem_in(tx, *prepared)

        return self._retrying(attempt)

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

        ready = [item for item in prepared if not isinstance(item, PromoError)]

        def attempt() -> list[RedemptionResult | PromoError]:
            results: list[RedemptionResult | PromoError] = []
            with self._transaction(concurrent=True) as tx:
                tx.prepare_redemptions(
                    [code for _, code, *_ in ready],
                    [r.customer_id for r, *_ in ready if r.customer_id is not None],
                    [r.idempotency_key for r, *_ in ready if r.idempotency_key is not None],
                )
                for item in prepared:
                    if isinstance(item, PromoError):
                        results.append(item)
                        continue
                    try:
                        results.append(self._redeem_in(tx, *item))
                    except PromoError as error:  # raised before this request wrote anything
                        results.append(error)
            return results

        return self._retrying(attempt)

    def _prepare(
        self, request: RedeemRequest
    ) -> tuple[RedeemRequest, str, HashedContext, str | None, _Counted]:
        if not isinstance(request, RedeemRequest):
            raise InvalidInput("request", "must be a RedeemRequest")
        code = normalize_code(request.code)
        if not isinstance(request.order, Order):
            raise InvalidInput("order", "must be an Order")
        p.optional_identifier(request.customer_id, "customer_id")
        p.optional_identifier(request.idempotency_key, "idempotency_key")
        p.optional_identifier(request.session_id, "session_id")
        p.optional_identifier(request.actor, "actor")
        hashed = self._hash_context(request.context)
        self._check_backoff(self._subjects(hashed, request.customer_id))
        request_hash = None
        if request.idempotency_key is not None:
            request_hash = hash_request(
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
        return request, code, hashed, request_hash, _Counted()

    def _redeem_in(
        self,
        tx: LedgerTransaction,
        request: RedeemRequest,
        code: str,
        hashed: HashedContext,
        request_hash: str | None,
        counted: _Counted,
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
                since = tx.redemption(event.redemption_id) if event.redemption_id else None
                return redemption_result(
                    event, replayed=True, rolled_back=since is not None and since.rolled_back
                )
        now = self.now()
        order = request.order
        voucher = tx.voucher_by_code(code)
        discount = gift = 0
        misses: list[Event] = []
        if voucher is None:
            reasons: tuple[Reason, ...] = (
                Reason(Code.RESOURCE_NOT_FOUND, "no voucher has this code"),
            )
            campaign_id = voucher_id = None
            misses = self._misses_once(
                counted, self._subjects(hashed, request.customer_id), now, hashed, request.actor
            )
        else:
            campaign_id, voucher_id = voucher.campaign_id, voucher.voucher_id

            def check() -> tuple[tuple[Reason, ...], int, int]:
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
                found = evaluation.reasons
                if request.session_id is not None:
                    hold = tx.hold(request.session_id)
                    found += session_reasons(hold, voucher.voucher_id, now)
                return found, evaluation.discount, evaluation.gift_amount

            reasons, discount, gift = check()
            # Checked against counters read unlocked (writers side by side): lock them now,
            # and check again if they moved meanwhile.
            if not reasons and tx.lock_campaign_counters(campaign_id):
                reasons, discount, gift = check()
        ok = not reasons
        payload: dict[str, Any] = {
            "code": code,
            "order": order.to_dict(),
            "discount": discount if ok else 0,
            "gift_amount": gift if ok else 0,
            "currency": order.currency,
        }
        if reasons:
            payload["reasons"] = reasons_payload(reasons)
        if request.session_id is not None:
            payload["session_id"] = request.session_id
        if request_hash is not None:
            payload["request_hash"] = request_hash
        if request.actor is not None:
            payload["actor"] = request.actor
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
        if misses:
            tx.append_many(misses)
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
        principal: Principal | None = None,
    ) -> RollbackResult:
        """Give back what a redemption took: the use, the budget and the gift balance.

        With a principal limited to stores, only a redemption made in one of them."""
        redemption_id = p.identifier(redemption_id, "redemption_id")
        reason = p.text(reason, "reason")
        p.optional_identifier(idempotency_key, "idempotency_key")
        hashed = self._hash_context(context or RequestContext())
        request_hash = None
        if idempotency_key is not None:
            request_hash = hash_request(
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
                    return rollback_result(event, replayed=True)
            now = self.now()
            redemption = tx.redemption(redemption_id)
            if redemption is not None and principal is not None:
                check_store(principal, redemption.store_id, "redemption_id")
            payload: dict[str, Any] = {"reason": reason}
            if request_hash is not None:
                payload["request_hash"] = request_hash
            ids: dict[str, Any] = {}
            rejection = rollback_reason(redemption)
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
                payload["reasons"] = reasons_payload([rejection])
                event = Event(
                    EventType.ROLLBACK_REJECTED,
                    now,
                    payload=payload,
                    redemption_id=redemption_id,
                    **ids,
                    **columns,
                )
            tx.append(event)
        return rollback_result(event, replayed=False)


@dataclass(slots=True)
class _Counted:
    """The guard's misses of one request. A concurrent write the database gave up is run again
    (WriteConflict), but the guard's table is not rolled back with it: count them once."""

    events: list[Event] | None = None
