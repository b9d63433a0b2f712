"""One row of the ledger schema (docs/ledger.md) as an event, checked on its own: columns, ids,
timestamps, the payload of its type. What the row means against the ledger's state is
checked next, in replay.py.

This runs for every row of a history of millions, so the common case is kept short: rows come
as columns (reading.py), a timestamp already in the ledger's own format is kept as text (and
parsed once), ids are matched with one regular expression, and the precise message of a bad
value comes from the general checkers only once something is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from redemption_core.domain import parsing as p
from redemption_core.domain.customers import CHANNELS as CUSTOMER_CHANNELS
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import NOT_IMPORTED, Event, EventType
from redemption_core.domain.orders import Order
from redemption_core.domain.reasons import LedgerCode
from redemption_core.imports.payloads import CHECKS, RowInvalid, no_fields_read
from redemption_core.imports.reading import Chunk

MAX_PAYLOAD_BYTES = 64 * 1024
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
ID_COLUMNS = ("campaign_id", "voucher_id", "customer_id", "order_id", "redemption_id", "idempotency_key",
              "device_hash", "ip_hash", "payment_hash", "store_id", "staff_id", "sales_channel")  # fmt: skip
EVENT_TYPES = {kind.value: kind for kind in EventType}
CHANNELS = frozenset(CUSTOMER_CHANNELS)
LEDGER_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
# p.identifier's rule in one match (length included); anything else goes through p.identifier
# for its precise message.
QUICK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}")
QUICK_IDS = re.compile(rf"(?:{QUICK_ID.pattern}(?:\n{QUICK_ID.pattern})*)?")

# Ids each event type needs (what the projection and the rules read).
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
    EventType.VALIDATION_HOLD_CREATED: ("campaign_id", "voucher_id"),
    EventType.REDEMPTION_SUCCEEDED: ("campaign_id", "voucher_id", "redemption_id"),
    EventType.REDEMPTION_ROLLED_BACK: ("campaign_id", "voucher_id", "redemption_id"),
    EventType.ROLLBACK_REJECTED: ("redemption_id",),
    EventType.CUSTOMER_CREATED: ("customer_id",),
    EventType.CUSTOMER_UPDATED: ("customer_id",),
    EventType.CONSENT_CHANGED: ("customer_id",),
    EventType.ORDER_RECORDED: ("order_id",),
    EventType.ORDER_REFUNDED: ("order_id",),
    EventType.ORDER_CANCELLED: ("order_id",),
    EventType.PROMOTION_STARTED: ("campaign_id",),
    EventType.PROMOTION_FINISHED: ("campaign_id",),
    EventType.TRIGGER_MATCHED: ("campaign_id", "customer_id"),
    EventType.TRIGGER_COMPLETED: ("campaign_id", "customer_id"),
    EventType.TRIGGER_FAILED: ("campaign_id", "customer_id"),
    EventType.CUSTOMER_HELD_OUT: ("campaign_id", "customer_id"),
    EventType.OFFER_SKIPPED: ("campaign_id", "customer_id"),
    EventType.DELIVERY_ATTEMPTED: ("campaign_id", "voucher_id"),
    EventType.VOUCHER_DELIVERED: ("campaign_id", "voucher_id", "channel"),
    EventType.DELIVERY_FAILED: ("campaign_id", "voucher_id", "channel"),
    EventType.MESSAGE_OPENED: ("customer_id", "channel"),
    EventType.MESSAGE_CLICKED: ("customer_id", "channel"),
    EventType.SITE_VISITED: ("customer_id",),
}
# A visit has a surface (its payload's), not a channel, as the engine records it.
WITHOUT_CHANNEL = frozenset({EventType.SITE_VISITED})


@dataclass(slots=True)
class ParsedRow:
    number: int  # 1-based data row of the file (the header is row 0)
    event: Event
    row: tuple[Any, ...]  # the events-table row, as ledger/rows.event_row would make it
    order: Order | None  # a redemption's order, parsed


# Where each id column goes in Event's positional fields (after event_type, occurred_at,
# payload) and in the events-table row: channel sits between order_id and redemption_id.
_CHANNEL_AT = ID_COLUMNS.index("redemption_id")
_REQUIRED_AT = {
    kind: tuple(-1 if name == "channel" else ID_COLUMNS.index(name) for name in names)
    for kind, names in REQUIRED_IDS.items()
}


class RowParser:
    def __init__(self, now: datetime) -> None:
        self._now_text = p.iso(now)
        self._latest_text = p.iso(now + FUTURE_SLACK)
        self._earliest_text = p.iso(EARLIEST)

    def parse_chunk(
        self, chunk: Chunk, first: int
    ) -> Iterator[ParsedRow | tuple[int, str, str, str]]:
        """Each row of the chunk, numbered from `first`: parsed, or (row, field, code, problem)."""
        columns = chunk.columns
        missing = [None] * chunk.size

        def column(name: str) -> Sequence[Any]:
            values = columns.get(name)
            return missing if values is None else values

        ids = zip(*(column(name) for name in ID_COLUMNS), strict=True)
        rows = zip(
            column("event_type"),
            column("event_id"),
            column("occurred_at"),
            column("recorded_at"),
            column("channel"),
            column("payload"),
            ids,
            strict=True,
        )
        problems = chunk.problems
        parse = self._parse
        for index, values in enumerate(rows):
            number = first + index
            if problems and index in problems:
                name, problem = problems[index]
                yield number, name, LedgerCode.MALFORMED, problem
                continue
            try:
                yield parse(number, *values)
            except RowInvalid as error:
                yield number, error.field, error.code, error.problem
            except InvalidInput as error:
                yield number, error.field, LedgerCode.MALFORMED, error.problem

    def _parse(
        self,
        number: int,
        event_type: Any,
        event_id: Any,
        occurred_at: Any,
        recorded_at: Any,
        channel: Any,
        payload_value: Any,
        ids: tuple[Any, ...],
    ) -> ParsedRow:
        kind = EVENT_TYPES.get(event_type) if type(event_type) is str else None
        if kind is None:
            raise RowInvalid(
                "event_type", LedgerCode.UNKNOWN_VALUE, f"unknown event type {p.short(event_type)}"
            )
        if kind in NOT_IMPORTED:
            raise RowInvalid(
                "event_type",
                LedgerCode.NOT_IMPORTED,
                f"{kind} is written by this ledger only (API keys and their answers are issued"
                " here), never imported",
            )
        if type(event_id) is not str or not QUICK_ID.fullmatch(event_id):
            if event_id is None:
                raise RowInvalid("event_id", LedgerCode.MALFORMED, "required")
            p.identifier(event_id, "event_id")
        occurred_text, occurred = self._time(occurred_at, "occurred_at")
        if recorded_at is None:
            recorded_text = self._now_text
        else:
            recorded_text = self._time(recorded_at, "recorded_at")[0]
            if recorded_text < occurred_text:
                raise RowInvalid(
                    "recorded_at",
                    LedgerCode.RECORDED_BEFORE_OCCURRED,
                    f"{recorded_text} is before occurred_at {occurred_text}",
                )
        try:  # every id at once: one match of the ids joined by a character no id has
            valid = QUICK_IDS.fullmatch("\n".join([v for v in ids if v is not None]))
        except TypeError:
            valid = None
        if valid is None and any(v is not None for v in ids):
            for name, value in zip(ID_COLUMNS, ids, strict=True):
                p.optional_identifier(value, name)  # raises, naming the column
        if channel is not None and channel not in CHANNELS:
            raise RowInvalid(
                "channel", LedgerCode.UNKNOWN_VALUE, f"unknown channel {p.short(channel)}"
            )
        if channel is not None and kind in WITHOUT_CHANNEL:
            raise RowInvalid("channel", LedgerCode.MALFORMED, f"{kind} has no channel")
        for at in _REQUIRED_AT.get(kind, ()):
            if (channel if at < 0 else ids[at]) is None:
                name = "channel" if at < 0 else ID_COLUMNS[at]
                raise RowInvalid(name, LedgerCode.MALFORMED, f"required for {kind}")
        payload, payload_text = _payload(payload_value)
        order = CHECKS.get(kind, no_fields_read)(payload)
        if payload.get("actor") is not None:  # who acted through the HTTP API (any event)
            p.identifier(payload["actor"], "payload.actor")
        if ids[5] is not None and not isinstance(payload.get("request_hash"), str):
            raise RowInvalid(
                "payload.request_hash", LedgerCode.MALFORMED, "required with an idempotency_key"
            )
        event = Event(
            kind,
            occurred,
            payload,
            *ids[:4],
            channel,
            *ids[4:],
            event_id,  # type: ignore[misc]
        )
        row = (
            event_id, event_type, occurred_text, recorded_text,
            *ids[:4], channel, *ids[4:], payload_text,
        )  # fmt: skip
        return ParsedRow(number, event, row, order)

    def _time(self, value: object, field: str) -> tuple[str, datetime]:
        """The instant as the ledger's text and as a datetime, within [1990, now + 1 day]."""
        if type(value) is str and LEDGER_TIME.fullmatch(value):
            text = value
            moment = datetime.fromisoformat(value)
        else:
            if isinstance(value, datetime) and value.tzinfo is None:
                raise RowInvalid(field, LedgerCode.TIME_OUT_OF_RANGE, "needs a time zone (UTC)")
            try:
                moment = p.timestamp(value, field)
            except InvalidInput as error:
                raise RowInvalid(field, LedgerCode.TIME_OUT_OF_RANGE, error.problem) from None
            text = p.iso(moment)
        if text < self._earliest_text:
            raise RowInvalid(field, LedgerCode.TIME_OUT_OF_RANGE, f"{text} is before 1990")
        if text > self._latest_text:
            raise RowInvalid(field, LedgerCode.TIME_OUT_OF_RANGE, f"{text} is in the future")
        return text, moment


def _payload(value: object) -> tuple[dict[str, Any], str]:
    """The payload as a dict and as the ledger's compact JSON text."""
    source = value
    if isinstance(value, str):
        if len(value) > MAX_PAYLOAD_BYTES or (
            len(value) > MAX_PAYLOAD_BYTES // 4 and len(value.encode()) > MAX_PAYLOAD_BYTES
        ):
            raise RowInvalid(
                "payload", LedgerCode.MALFORMED, f"larger than {MAX_PAYLOAD_BYTES} bytes"
            )
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as error:
            problem = "nested too deeply" if "depth" in str(error) else "not valid JSON"
            raise RowInvalid("payload", LedgerCode.MALFORMED, problem) from None
    if not isinstance(value, dict):
        raise RowInvalid("payload", LedgerCode.MALFORMED, "must be a JSON object")
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, RecursionError):  # nested deeper than any real payload, or not JSON
        raise RowInvalid("payload", LedgerCode.MALFORMED, "nested too deeply or not JSON") from None
    if len(text) > MAX_PAYLOAD_BYTES:
        raise RowInvalid("payload", LedgerCode.MALFORMED, f"larger than {MAX_PAYLOAD_BYTES} bytes")
    # orjson reads an integer beyond 64 bits as a float, silently, and writes it back with an
    # exponent ("1e+23"): a payload that gained one is read again exactly, and refused.
    if not isinstance(source, str) or text.count("e+") != source.count("e+"):
        exact = json.loads(source) if isinstance(source, str) else source
        p.bounded_document(exact, "payload", max_depth=1_000, max_nodes=MAX_PAYLOAD_BYTES)
    return value, text
