"""`promo import`: events from other systems, in the ledger schema of docs/ledger.md.

Every row is checked before anything is written: columns, types, ids, timestamps (not before
1990, not more than a day in the future), payload fields per event type, sizes, duplicates,
and references (a voucher's campaign, a redemption's voucher, an order's customer must exist
in the ledger or earlier in the file). A file with any bad row is refused whole, with a report
of row numbers, fields and reasons, and the ledger is left untouched. Rows whose event id the
ledger already holds with the same content are skipped, so importing a file twice adds nothing
the second time; the same id with other content is an error.

Accepted rows are appended through the store in one transaction, in order of occurrence, with
their original ids and timestamps (recorded_at is the import time unless the row gives one).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from redemption_core.domain import parsing as p
from redemption_core.domain.campaigns import campaign_from_dict, main_campaign_from_dict
from redemption_core.domain.codes import normalize_code
from redemption_core.domain.customers import consent_from
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import COLUMNS, NOT_IMPORTED, Event, EventType
from redemption_core.domain.money import MAX_AMOUNT
from redemption_core.domain.segments import segment_from_dict
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row

MAX_PAYLOAD_BYTES = 64 * 1024
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
MAX_REPORTED = 1000
ID_COLUMNS = ("campaign_id", "voucher_id", "customer_id", "order_id", "redemption_id", "idempotency_key",
              "device_hash", "ip_hash", "payment_hash", "store_id", "staff_id", "sales_channel")  # fmt: skip

# Payload fields each event type must carry, with their JSON types ("money": an int amount).
PAYLOAD_FIELDS: dict[EventType, dict[str, str]] = {
    EventType.MAIN_CAMPAIGN_CREATED: {"definition": "object"},
    EventType.CAMPAIGN_CREATED: {"definition": "object"},
    EventType.CAMPAIGN_STATUS_CHANGED: {"status": "text"},
    EventType.VOUCHER_CREATED: {"code": "code", "kind": "text"},
    EventType.VOUCHER_PUBLISHED: {"code": "code"},
    EventType.VOUCHER_ACCEPTED: {"code": "code"},
    EventType.VOUCHER_DISABLED: {"code": "code"},
    EventType.VOUCHER_ENABLED: {"code": "code"},
    EventType.GIFT_CARD_TOPPED_UP: {"code": "code", "amount": "money"},
    EventType.SEGMENT_MEMBER_ADDED: {"segment_id": "id"},
    EventType.SEGMENT_MEMBER_REMOVED: {"segment_id": "id"},
    EventType.VOUCHER_VALIDATED: {"code": "text", "valid": "bool"},
    EventType.VALIDATION_HOLD_CREATED: {"session_id": "id", "expires_at": "time"},
    EventType.REDEMPTION_SUCCEEDED: {"code": "code", "discount": "money", "gift_amount": "money", "currency": "text"},
    EventType.REDEMPTION_REJECTED: {"code": "text", "reasons": "list"},
    EventType.REDEMPTION_ROLLED_BACK: {"discount": "money", "gift_amount": "money"},
    EventType.ROLLBACK_REJECTED: {"reasons": "list"},
    EventType.CUSTOMER_CREATED: {},
    EventType.CUSTOMER_UPDATED: {},
    EventType.CONSENT_CHANGED: {"channel": "text", "granted": "bool"},
    EventType.ORDER_RECORDED: {"amount": "money", "currency": "text", "items": "list"},
    EventType.ORDER_REFUNDED: {"amount": "money"},
    EventType.ORDER_CANCELLED: {},
    EventType.SEGMENT_DEFINED: {"definition": "object"},
    EventType.FREQUENCY_CAP_SET: {"max_offers": "int", "days": "int"},
    EventType.PROMOTION_STARTED: {},
    EventType.PROMOTION_FINISHED: {},
    EventType.TRIGGER_MATCHED: {"trigger_id": "id", "trigger": "text"},
    EventType.TRIGGER_COMPLETED: {"trigger_id": "id"},
    EventType.TRIGGER_FAILED: {"trigger_id": "id", "reason": "text"},
    EventType.CUSTOMER_HELD_OUT: {"source": "text"},
    EventType.OFFER_SKIPPED: {"source": "text", "reason": "text"},
    EventType.DELIVERY_ATTEMPTED: {"attempt": "int", "outcome": "text"},
    EventType.VOUCHER_DELIVERED: {"attempts": "int"},
    EventType.DELIVERY_FAILED: {"attempts": "int"},
    EventType.FRAUD_REVIEW_RECORDED: {"flag_id": "text", "entity_type": "text", "entity_id": "text",
                                      "decision": "text", "reviewer": "text"},
    EventType.SITE_VISITED: {"surface": "text"},
}  # fmt: skip

# Ids each event type needs, and what each must refer to (created before, here or in the ledger).
REQUIRED_IDS: dict[EventType, tuple[str, ...]] = {
    EventType.CAMPAIGN_CREATED: ("campaign_id",),
    EventType.CAMPAIGN_STATUS_CHANGED: ("campaign_id",),
    EventType.VOUCHER_CREATED: ("campaign_id", "voucher_id"),
    EventType.VOUCHER_PUBLISHED: ("campaign_id", "voucher_id", "customer_id"),
    EventType.VOUCHER_ACCEPTED: ("voucher_id", "customer_id"),
    EventType.VOUCHER_DISABLED: ("voucher_id",),
    EventType.VOUCHER_ENABLED: ("voucher_id",),
    EventType.GIFT_CARD_TOPPED_UP: ("voucher_id",),
    EventType.SEGMENT_MEMBER_ADDED: ("customer_id",),
    EventType.SEGMENT_MEMBER_REMOVED: ("customer_id",),
    EventType.VALIDATION_HOLD_CREATED: ("voucher_id",),
    EventType.REDEMPTION_SUCCEEDED: ("campaign_id", "voucher_id", "redemption_id"),
    EventType.REDEMPTION_ROLLED_BACK: ("campaign_id", "voucher_id", "redemption_id"),
    EventType.ROLLBACK_REJECTED: ("redemption_id",),
    EventType.CUSTOMER_CREATED: ("customer_id",),
    EventType.CUSTOMER_UPDATED: ("customer_id",),
    EventType.CONSENT_CHANGED: ("customer_id",),
    EventType.ORDER_RECORDED: ("order_id",),
    EventType.ORDER_REFUNDED: ("order_id",),
    EventType.ORDER_CANCELLED: ("order_id",),
    EventType.TRIGGER_MATCHED: ("campaign_id", "customer_id"),
    EventType.TRIGGER_COMPLETED: ("campaign_id", "customer_id"),
    EventType.TRIGGER_FAILED: ("campaign_id", "customer_id"),
    EventType.CUSTOMER_HELD_OUT: ("campaign_id", "customer_id"),
    EventType.OFFER_SKIPPED: ("campaign_id", "customer_id"),
    EventType.DELIVERY_ATTEMPTED: ("campaign_id", "voucher_id"),
    EventType.VOUCHER_DELIVERED: ("campaign_id", "voucher_id"),
    EventType.DELIVERY_FAILED: ("campaign_id", "voucher_id"),
    EventType.MESSAGE_OPENED: ("customer_id",),
    EventType.MESSAGE_CLICKED: ("customer_id",),
    EventType.SITE_VISITED: ("customer_id",),
}
# Which event creates each kind of id (the other events must find it).
CREATES = {
    "campaign_id": EventType.CAMPAIGN_CREATED,
    "voucher_id": EventType.VOUCHER_CREATED,
    "customer_id": EventType.CUSTOMER_CREATED,
    "order_id": EventType.ORDER_RECORDED,
    "redemption_id": EventType.REDEMPTION_SUCCEEDED,
}
# Events whose customer must have a profile, as the engine requires; elsewhere (publications,
# redemptions, listed segment members) a customer id may come without one.
CUSTOMER_REQUIRED = {EventType.CUSTOMER_UPDATED, EventType.CONSENT_CHANGED, EventType.ORDER_RECORDED,
                     EventType.TRIGGER_MATCHED, EventType.TRIGGER_COMPLETED, EventType.TRIGGER_FAILED,
                     EventType.CUSTOMER_HELD_OUT, EventType.OFFER_SKIPPED,
                     EventType.MESSAGE_OPENED, EventType.MESSAGE_CLICKED,
                     EventType.SITE_VISITED}  # fmt: skip
LOOKUPS = {
    "campaign_id": "SELECT 1 FROM campaigns WHERE campaign_id = ?",
    "voucher_id": "SELECT 1 FROM vouchers WHERE voucher_id = ?",
    "customer_id": "SELECT 1 FROM customers WHERE customer_id = ?",
    "order_id": "SELECT 1 FROM orders WHERE order_id = ?",
    "redemption_id": "SELECT 1 FROM redemptions WHERE redemption_id = ?",
}


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row (the header is row 0)
    field: str
    problem: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.problem}"


class ImportRefused(InvalidInput):
    """The file had bad rows; nothing was written. `errors` lists them (up to 1000)."""

    def __init__(self, errors: list[RowError], total: int) -> None:
        first = errors[0]
        super().__init__(
            f"row {first.row}.{first.field}", f"{first.problem} ({total} bad rows in all)"
        )
        self.errors = errors
        self.total = total


@dataclass
class ImportReport:
    rows: int
    imported: int
    already_present: int
    by_type: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "already_present": self.already_present,
            "by_type": self.by_type,
        }


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a Parquet or CSV file, as dicts; empty CSV cells are missing values."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        if suffix == ".csv":
            text = path.read_bytes().decode("utf-8-sig")
            reader = csv.DictReader(io.StringIO(text, newline=""))
            return [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
    except OSError as error:
        raise InvalidInput("file", f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput("file", f"{path} is not UTF-8 text") from None
    except csv.Error as error:
        raise InvalidInput("file", f"{path} is not valid CSV: {error}") from None
    except Exception as error:  # pyarrow raises its own error types for a corrupt file
        raise InvalidInput("file", f"{path} is not a readable Parquet file: {error}") from None
    raise InvalidInput("file", f"{path}: give a .parquet or .csv file")


def rows_to_events(
    rows: Sequence[Mapping[str, Any]], *, now: datetime
) -> tuple[list[tuple[int, Event]], list[RowError], int]:
    """Check every row: (row number, event) in order of occurrence, the errors, their count."""
    errors: list[RowError] = []
    total = 0
    events: list[tuple[datetime, int, Event]] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        try:
            event = _event(row, now)
        except InvalidInput as error:
            total += 1
            if len(errors) < MAX_REPORTED:
                errors.append(RowError(number, error.field, error.problem))
            continue
        if event.event_id in seen:
            total += 1
            if len(errors) < MAX_REPORTED:
                errors.append(RowError(number, "event_id", f"repeats row {seen[event.event_id]}"))
            continue
        seen[event.event_id] = number
        events.append((event.occurred_at, number, event))
    events.sort(key=lambda item: (item[0], item[1]))
    return [(number, event) for _, number, event in events], errors, total


def _event(row: Mapping[str, Any], now: datetime) -> Event:
    if not isinstance(row, Mapping):
        raise InvalidInput("row", "not a record")
    unknown = sorted(str(k) for k in row if k not in (*COLUMNS, "seq"))
    if unknown:
        raise InvalidInput(unknown[0], "unknown column")
    try:
        kind = EventType(row.get("event_type"))
    except ValueError:
        raise InvalidInput(
            "event_type", f"unknown event type {p.short(row.get('event_type'))}"
        ) from None
    if kind in NOT_IMPORTED:
        raise InvalidInput("event_type", f"{kind} is not imported: keys are issued here")
    event_id = p.identifier(row.get("event_id"), "event_id")
    occurred = _time(row.get("occurred_at"), "occurred_at", now)
    recorded = _time(row.get("recorded_at"), "recorded_at", now) if row.get("recorded_at") else now
    ids = {name: p.optional_identifier(row.get(name), name) for name in ID_COLUMNS}
    channel = row.get("channel")
    if channel is not None and channel not in ("email", "sms", "push"):
        raise InvalidInput("channel", f"unknown channel {p.short(channel)}")
    for name in REQUIRED_IDS.get(kind, ()):
        if ids.get(name) is None:
            raise InvalidInput(name, f"required for {kind}")
    payload = _payload(row.get("payload"), kind)
    return Event(
        kind,
        occurred,
        payload=payload,
        event_id=event_id,
        recorded_at=recorded,
        channel=channel,
        **ids,
    )


def _time(value: object, field: str, now: datetime) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is None:
        raise InvalidInput(field, "needs a time zone (UTC)")
    moment = p.timestamp(value, field)
    if moment < EARLIEST:
        raise InvalidInput(field, f"{p.iso(moment)} is before 1990")
    if moment > now + FUTURE_SLACK:
        raise InvalidInput(field, f"{p.iso(moment)} is in the future")
    return moment


def _payload(value: object, kind: EventType) -> dict[str, Any]:
    if isinstance(value, str):
        if len(value.encode()) > MAX_PAYLOAD_BYTES:
            raise InvalidInput("payload", f"larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidInput("payload", "not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("payload", "must be a JSON object")
    try:
        size = len(orjson.dumps(value))
    except (TypeError, RecursionError):  # nested deeper than any real payload
        raise InvalidInput("payload", "nested too deeply") from None
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidInput("payload", f"larger than {MAX_PAYLOAD_BYTES} bytes")
    for name, kind_of in PAYLOAD_FIELDS.get(kind, {}).items():
        _check(value.get(name), kind_of, f"payload.{name}")
    if kind is EventType.CAMPAIGN_CREATED:
        campaign_from_dict(value["definition"], "payload.definition")
    elif kind is EventType.MAIN_CAMPAIGN_CREATED:
        main_campaign_from_dict(value["definition"], "payload.definition")
    elif kind is EventType.SEGMENT_DEFINED:
        segment_from_dict(value["definition"], "payload.definition")
    elif kind in (EventType.CUSTOMER_CREATED, EventType.CUSTOMER_UPDATED):
        if value.get("signup_at") is not None:
            p.timestamp(value["signup_at"], "payload.signup_at")
        consent_from(value.get("consent") or {}, "payload.consent")
        for name in ("attributes", "metadata"):
            p.mapping(value.get(name) or {}, f"payload.{name}")
    elif kind is EventType.REDEMPTION_SUCCEEDED:
        order = p.mapping(value.get("order"), "payload.order")
        _check(order.get("amount"), "money", "payload.order.amount")
    return value


def _check(value: object, kind: str, field: str) -> None:
    if kind == "money":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
            raise InvalidInput(field, f"must be an integer amount from 0 to {MAX_AMOUNT}")
    elif kind == "int":
        p.integer(value, field, minimum=0, maximum=10**9)
    elif kind == "bool":
        p.boolean(value, field)
    elif kind == "text":
        if not isinstance(value, str) or not value:
            raise InvalidInput(field, "required text")
        p.text(value, field, max_length=1000)
    elif kind == "id":
        p.identifier(value, field)
    elif kind == "code":
        normalize_code(value, field)
    elif kind == "time":
        p.timestamp(value, field)
    elif kind == "object":
        p.mapping(value, field)
    elif kind == "list" and not isinstance(value, list):
        raise InvalidInput(field, "must be a list")


def import_events(engine: Any, rows: Sequence[Mapping[str, Any]]) -> ImportReport:
    """Check, then append in one transaction; raise ImportRefused (nothing written) on bad rows."""
    now = engine.now()
    events, errors, total = rows_to_events(rows, now=now)
    with engine.transaction() as tx:
        fresh: list[Event] = []
        present = 0
        created: dict[str, set[str]] = {name: set() for name in CREATES}
        codes: set[str] = set()
        known: dict[tuple[str, str], bool] = {}
        for number, event in events:
            stored = tx.query(f"{SELECT_EVENT} WHERE event_id = ?", (event.event_id,))
            if stored:
                if _content(event_from_row(stored[0])) != _content(event):
                    total += 1
                    errors.append(
                        RowError(number, "event_id", "already in the ledger with other content")
                    )
                present += 1
                continue
            problem = _reference_problem(tx, event, created, known) or _code_problem(
                tx, event, codes
            )
            if problem is not None:
                total += 1
                if len(errors) < MAX_REPORTED:
                    errors.append(RowError(number, *problem))
                continue
            for name, creator in CREATES.items():
                if event.event_type is creator:
                    created[name].add(getattr(event, name))
            fresh.append(event)
        if errors:
            raise ImportRefused(sorted(errors, key=lambda e: e.row), total)
        try:
            tx.append_many(fresh)
        except Exception as error:  # a row the projection cannot take: refuse the file
            raise ImportRefused([RowError(0, "file", f"cannot be applied: {error}")], 1) from None
    by_type: dict[str, int] = {}
    for event in fresh:
        by_type[str(event.event_type)] = by_type.get(str(event.event_type), 0) + 1
    return ImportReport(len(rows), len(fresh), present, by_type)


def _content(event: Event) -> tuple[Any, ...]:
    """What makes two rows the same event (recorded_at and seq are the ledger's own)."""
    return (
        event.event_type,
        event.occurred_at,
        *(getattr(event, name) for name in ID_COLUMNS),
        event.channel,
        event.payload,
    )


def _code_problem(tx: Any, event: Event, codes: set[str]) -> tuple[str, str] | None:
    if event.event_type is not EventType.VOUCHER_CREATED:
        return None
    code = normalize_code(event.payload["code"])
    if code in codes or tx.existing_codes([code]):
        return "payload.code", f"{code!r} already exists"
    codes.add(code)
    return None


def _reference_problem(
    tx: Any, event: Event, created: dict[str, set[str]], known: dict[tuple[str, str], bool]
) -> tuple[str, str] | None:
    for name, creator in CREATES.items():
        value = getattr(event, name)
        if value is None or event.event_type is creator:
            continue
        if name == "customer_id" and event.event_type not in CUSTOMER_REQUIRED:
            continue
        if name == "order_id" and event.event_type not in (
            EventType.ORDER_REFUNDED,
            EventType.ORDER_CANCELLED,
        ):
            continue  # a redemption names its order before or without an order_recorded
        if name == "redemption_id" and event.event_type is EventType.ROLLBACK_REJECTED:
            continue  # a refused rollback may name a redemption that never existed
        if value in created[name]:
            continue
        key = (name, value)
        if key not in known:
            known[key] = bool(tx.query(LOOKUPS[name], (value,)))
        if not known[key]:
            return name, f"{value!r} does not exist (in the ledger or earlier in the file)"
    if event.event_type in CREATES.values():
        name = next(n for n, c in CREATES.items() if c is event.event_type)
        value = getattr(event, name)
        if value in created[name] or tx.query(LOOKUPS[name], (value,)):
            return name, f"{value!r} already exists"
    return None


def events_to_rows(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The ledger rows of these events (for export, and for tests of the import)."""
    rows = []
    for event in events:
        row: dict[str, Any] = {
            name: getattr(event, name)
            for name in COLUMNS
            if name not in ("payload", "occurred_at", "recorded_at", "event_type")
        }
        row.update(
            event_type=str(event.event_type),
            occurred_at=p.iso(event.occurred_at),
            recorded_at=p.iso(event.recorded_at) if event.recorded_at else None,
            payload=orjson.dumps(event.payload).decode(),
        )
        rows.append(row)
    return rows
