"""The embedded ledger: SQLite in WAL mode.

Why SQLite: one file under PROMO_HOME, ACID transactions across processes, readers that
never block the writer (WAL), and durability that is a pragma away (synchronous=FULL fsyncs
the WAL on every commit). Writers serialise on BEGIN IMMEDIATE, which is what makes a
single-use voucher redeemable exactly once under any number of processes.

The events table refuses UPDATE and DELETE through triggers: append-only is enforced by the
database, not only by this code. The projection tables (campaigns, vouchers, ...) are
derived state, written only by `_apply`, in the same transaction as the event.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from redemption_core.campaigns import Campaign, CampaignStatus, VoucherKind, campaign_from_dict
from redemption_core.events import COLUMNS, Event, EventType
from redemption_core.parsing import from_iso, iso
from redemption_core.segments import compile_members_query, segment_from_dict
from redemption_core.state import (
    CampaignState,
    CustomerState,
    HoldState,
    OrderState,
    RedemptionState,
    VoucherState,
)
from redemption_core.store import LedgerStore, LedgerTransaction

SCHEMA_VERSION = 1

EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    recorded_at     TEXT NOT NULL,
    campaign_id     TEXT,
    voucher_id      TEXT,
    customer_id     TEXT,
    order_id        TEXT,
    channel         TEXT,
    redemption_id   TEXT,
    idempotency_key TEXT,
    device_hash     TEXT,
    ip_hash         TEXT,
    payment_hash    TEXT,
    store_id        TEXT,
    staff_id        TEXT,
    sales_channel   TEXT,
    payload         TEXT NOT NULL CHECK (json_valid(payload))
);
CREATE TRIGGER IF NOT EXISTS events_are_never_updated BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'ledger events are append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_are_never_deleted BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'ledger events are append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_are_never_replaced BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq OR event_id = NEW.event_id)
BEGIN SELECT RAISE(ABORT, 'ledger events are append-only: INSERT OR REPLACE refused'); END;
"""

# Derived state. Every table here is rebuilt from the events by `promo ledger verify`.
PROJECTION_SCHEMA = """
CREATE TABLE IF NOT EXISTS main_campaigns (
    main_campaign_id TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    definition       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id      TEXT PRIMARY KEY,
    main_campaign_id TEXT,
    definition       TEXT NOT NULL,
    status           TEXT NOT NULL,
    vouchers         INTEGER NOT NULL DEFAULT 0,
    redemptions      INTEGER NOT NULL DEFAULT 0,
    budget_used      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS vouchers (
    voucher_id   TEXT PRIMARY KEY,
    code         TEXT NOT NULL UNIQUE,
    campaign_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    holder_id    TEXT,
    disabled     INTEGER NOT NULL DEFAULT 0,
    published_at TEXT,
    accepted_at  TEXT,
    redemptions  INTEGER NOT NULL DEFAULT 0,
    gift_balance INTEGER,
    held_until   TEXT,  -- latest expiry of any validation hold: no hold query needed after it
    created_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vouchers_by_campaign ON vouchers (campaign_id);
-- Redemptions per customer and campaign (per-customer limits). Clustered by customer, so
-- "has this customer redeemed anywhere before" (new-customer rule) is a prefix lookup, and a
-- row stays at 0 after a rollback: the order happened.
CREATE TABLE IF NOT EXISTS customer_campaigns (
    customer_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    redemptions INTEGER NOT NULL,
    PRIMARY KEY (customer_id, campaign_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segment_members (
    customer_id TEXT NOT NULL,
    segment_id  TEXT NOT NULL,
    PRIMARY KEY (customer_id, segment_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redemptions (
    redemption_id  TEXT PRIMARY KEY,
    voucher_id     TEXT NOT NULL,
    campaign_id    TEXT NOT NULL,
    customer_id    TEXT,
    order_id       TEXT,
    discount       INTEGER NOT NULL,
    gift_amount    INTEGER NOT NULL,
    redeemed_at    TEXT NOT NULL,
    rolled_back_at TEXT
);
CREATE INDEX IF NOT EXISTS redemptions_by_order ON redemptions (order_id);
CREATE TABLE IF NOT EXISTS holds (
    session_id  TEXT PRIMARY KEY,
    voucher_id  TEXT NOT NULL,
    customer_id TEXT,
    expires_at  TEXT NOT NULL,
    consumed    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS holds_by_voucher ON holds (voucher_id, consumed, expires_at);
CREATE TABLE IF NOT EXISTS customers (
    customer_id    TEXT PRIMARY KEY,
    signup_at      TEXT NOT NULL,
    birthday       TEXT,  -- MM-DD
    anniversary    TEXT,  -- MM-DD
    attributes     TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    email_hash     TEXT,
    email_masked   TEXT,
    phone_hash     TEXT,
    phone_masked   TEXT,
    consent_email  INTEGER NOT NULL DEFAULT 0,
    consent_sms    INTEGER NOT NULL DEFAULT 0,
    consent_push   INTEGER NOT NULL DEFAULT 0,
    orders         INTEGER NOT NULL DEFAULT 0,  -- placed and not cancelled
    spend          INTEGER NOT NULL DEFAULT 0,  -- net of refunds and cancellations
    first_order_at TEXT,
    last_order_at  TEXT
);
-- History, so that a segment can be evaluated at any past instant.
CREATE TABLE IF NOT EXISTS customer_versions (
    event_id    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    valid_from  TEXT NOT NULL,
    attributes  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS customer_versions_by_customer ON customer_versions (customer_id, valid_from);
CREATE TABLE IF NOT EXISTS consent_changes (
    event_id    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    granted     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_changes_by_customer ON consent_changes (customer_id, channel, changed_at);
CREATE TABLE IF NOT EXISTS orders (
    order_id      TEXT PRIMARY KEY,
    customer_id   TEXT,
    amount        INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    store_id      TEXT,
    sales_channel TEXT,
    ordered_at    TEXT NOT NULL,
    refunded      INTEGER NOT NULL DEFAULT 0,
    cancelled_at  TEXT
);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, ordered_at);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id    TEXT NOT NULL,
    line        INTEGER NOT NULL,
    customer_id TEXT,
    product_id  TEXT NOT NULL,
    category    TEXT,
    quantity    INTEGER NOT NULL,
    amount      INTEGER NOT NULL,
    ordered_at  TEXT NOT NULL,
    PRIMARY KEY (order_id, line)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS order_refunds (
    event_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    refunded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    segment_id TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Vouchers offered by promotions and autopilots: the frequency cap counts these.
CREATE TABLE IF NOT EXISTS offers (
    voucher_id  TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    channel     TEXT,
    source      TEXT NOT NULL,
    trigger_id  TEXT,
    offered_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offers_by_customer ON offers (customer_id, offered_at);
CREATE INDEX IF NOT EXISTS offers_by_campaign ON offers (campaign_id);
CREATE INDEX IF NOT EXISTS offers_by_trigger ON offers (trigger_id);
-- A promotion's decision per customer (published, held_out, skipped): resume sends nobody twice.
CREATE TABLE IF NOT EXISTS audience (
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    decided_at  TEXT NOT NULL,
    PRIMARY KEY (campaign_id, customer_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS triggers (
    trigger_id  TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    matched_at  TEXT NOT NULL,
    status      TEXT NOT NULL,  -- pending, completed, held_out, failed
    reason      TEXT,
    voucher_id  TEXT,
    closed_at   TEXT
);
CREATE INDEX IF NOT EXISTS triggers_by_customer ON triggers (campaign_id, customer_id, matched_at);
CREATE INDEX IF NOT EXISTS triggers_by_status ON triggers (status, campaign_id);
CREATE TABLE IF NOT EXISTS deliveries (
    voucher_id  TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    customer_id TEXT,
    channel     TEXT NOT NULL,
    status      TEXT NOT NULL,  -- delivered or failed (the latest outcome)
    attempts    INTEGER NOT NULL,
    last_error  TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fraud_reviews (
    flag_id     TEXT PRIMARY KEY,  -- the latest decision on each flag
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    decision    TEXT NOT NULL,
    reviewer    TEXT NOT NULL,
    note        TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    reviewed_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    idempotency_key TEXT PRIMARY KEY,
    request_hash    TEXT NOT NULL,
    event_id        TEXT NOT NULL
) WITHOUT ROWID;
"""

# Primary keys of the projection tables, for verify's row-by-row comparison.
PROJECTION_KEYS: dict[str, tuple[str, ...]] = {
    "main_campaigns": ("main_campaign_id",),
    "campaigns": ("campaign_id",),
    "vouchers": ("voucher_id",),
    "customer_campaigns": ("customer_id", "campaign_id"),
    "segment_members": ("customer_id", "segment_id"),
    "redemptions": ("redemption_id",),
    "holds": ("session_id",),
    "idempotency": ("idempotency_key",),
    "customers": ("customer_id",),
    "customer_versions": ("event_id",),
    "consent_changes": ("event_id",),
    "orders": ("order_id",),
    "order_lines": ("order_id", "line"),
    "order_refunds": ("event_id",),
    "segments": ("segment_id",),
    "settings": ("key",),
    "offers": ("voucher_id",),
    "audience": ("campaign_id", "customer_id"),
    "triggers": ("trigger_id",),
    "deliveries": ("voucher_id",),
    "fraud_reviews": ("flag_id",),
}

INSERT_EVENT = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# Profile fields a customer_updated event may change (columns of `customers`).
CUSTOMER_UPDATABLE = (
    "birthday", "anniversary", "attributes", "metadata",
    "email_hash", "email_masked", "phone_hash", "phone_masked",
)  # fmt: skip
OFFER_SOURCES = ("promotion", "autopilot")  # publications that count as offers
VOUCHER_KINDS = {kind.value: kind for kind in VoucherKind}
SELECT_EVENT = f"SELECT seq, {', '.join(COLUMNS)} FROM events"
SELECT_VOUCHER = (
    "SELECT voucher_id, code, campaign_id, kind, holder_id, disabled, published_at,"
    " accepted_at, redemptions, gift_balance, held_until FROM vouchers"
)


def dumps(value: Any) -> str:
    # orjson: compact UTF-8 JSON, several times faster than json.dumps on the hot path.
    return orjson.dumps(value).decode()


def event_row(event: Event) -> tuple[Any, ...]:
    occurred = iso(event.occurred_at)
    return (
        event.event_id,
        str(event.event_type),
        occurred,
        iso(event.recorded_at) if event.recorded_at is not None else occurred,
        event.campaign_id,
        event.voucher_id,
        event.customer_id,
        event.order_id,
        event.channel,
        event.redemption_id,
        event.idempotency_key,
        event.device_hash,
        event.ip_hash,
        event.payment_hash,
        event.store_id,
        event.staff_id,
        event.sales_channel,
        dumps(event.payload),
    )


def event_from_row(row: Sequence[Any]) -> Event:
    return Event(
        seq=row[0],
        event_id=row[1],
        event_type=EventType(row[2]),
        occurred_at=from_iso(row[3]),
        recorded_at=from_iso(row[4]),
        campaign_id=row[5],
        voucher_id=row[6],
        customer_id=row[7],
        order_id=row[8],
        channel=row[9],
        redemption_id=row[10],
        idempotency_key=row[11],
        device_hash=row[12],
        ip_hash=row[13],
        payment_hash=row[14],
        store_id=row[15],
        staff_id=row[16],
        sales_channel=row[17],
        payload=orjson.loads(row[18]),
    )


def connect(
    path: Path | str, *, durable: bool = True, read_only: bool = False
) -> sqlite3.Connection:
    """A connection with the ledger's pragmas. isolation_level=None: we issue BEGIN ourselves."""
    if read_only:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        connection = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=60.0
        )
    connection.execute("PRAGMA busy_timeout = 60000")
    if not read_only:
        connection.execute("PRAGMA journal_mode = WAL")
        # FULL: every commit fsyncs the WAL, so an acknowledged redemption survives power loss.
        connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        # The Checkpointer thread below copies the WAL into the database off the commit path;
        # this automatic checkpoint (every ~40 MB, SQLite's default is 4 MB) is only the safety
        # net for when it cannot keep up. Durability is the same either way.
        connection.execute("PRAGMA wal_autocheckpoint = 10000")
        connection.execute(f"PRAGMA journal_size_limit = {128 * 1024 * 1024}")
    connection.execute("PRAGMA cache_size = -65536")
    return connection


@dataclass(slots=True)
class _CampaignRow:
    campaign_id: str
    definition: str
    status: str
    vouchers: int
    redemptions: int
    budget_used: int
    dirty: bool = False


class SqliteTransaction(LedgerTransaction):
    def __init__(self, connection: sqlite3.Connection, campaigns: dict[str, Campaign]) -> None:
        self._db = connection
        self._rows: list[tuple[Any, ...]] = []
        # Campaign rows are the hottest in a batch (every redemption reads and bumps them):
        # they are read once per transaction, updated here, and written back by flush().
        self._campaign_rows: dict[str, _CampaignRow] = {}
        # Write-behind for what each redemption adds (group commit): per-voucher uses and gift
        # amounts, per-customer-and-campaign uses, and the redemption rows are written with
        # one executemany each at flush(); the reads below add what is still pending.
        self._voucher_uses: dict[str, list[int]] = {}
        self._customer_uses: dict[tuple[str, str], int] = {}
        self._pending_customers: set[str] = set()
        self._redemption_rows: list[tuple[Any, ...]] = []
        self._order_rows: list[tuple[Any, ...]] = []
        self._order_line_rows: list[tuple[Any, ...]] = []
        self._customer_orders: dict[str, list[Any]] = {}  # orders, spend, first, last
        self._campaigns = campaigns  # definitions are immutable: parse each once per process

    # -- appends ---------------------------------------------------------------------------
    def append(self, event: Event) -> None:
        # Event rows are inserted in one executemany before COMMIT (see flush); the
        # projection is updated now, so later reads in this transaction see the event.
        self._rows.append(event_row(event))
        self.apply(event)

    def append_many(self, events: Sequence[Event]) -> None:
        self._rows.extend(event_row(event) for event in events)
        for event in events:
            self.apply(event)

    def flush(self) -> None:
        """Write buffered event rows and projection changes; called before COMMIT."""
        self._flush_projection()
        if self._rows:
            self._db.executemany(INSERT_EVENT, self._rows)
            self._rows = []

    def _flush_projection(self) -> None:
        db = self._db
        if self._order_rows:
            db.executemany(
                "INSERT INTO orders (order_id, customer_id, amount, currency, store_id,"
                " sales_channel, ordered_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                self._order_rows,
            )
            db.executemany(
                "INSERT INTO order_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._order_line_rows
            )
            db.executemany(
                "UPDATE customers SET orders = orders + ?, spend = spend + ?,"
                " first_order_at = coalesce(min(first_order_at, ?), ?),"
                " last_order_at = max(coalesce(last_order_at, ''), ?) WHERE customer_id = ?",
                [
                    (orders, spend, first, first, last, customer)
                    for customer, (orders, spend, first, last) in self._customer_orders.items()
                ],
            )
            self._order_rows, self._order_line_rows, self._customer_orders = [], [], {}
        if self._voucher_uses:
            db.executemany(
                "UPDATE vouchers SET redemptions = redemptions + ?,"
                " gift_balance = gift_balance - ? WHERE voucher_id = ?",
                [
                    (uses, gift, voucher_id)
                    for voucher_id, (uses, gift) in self._voucher_uses.items()
                ],
            )
            self._voucher_uses = {}
        if self._customer_uses:
            db.executemany(
                "INSERT INTO customer_campaigns VALUES (?, ?, ?) ON CONFLICT DO UPDATE"
                " SET redemptions = redemptions + excluded.redemptions",
                [
                    (customer, campaign, uses)
                    for (customer, campaign), uses in self._customer_uses.items()
                ],
            )
            self._customer_uses = {}
            self._pending_customers = set()
        if self._redemption_rows:
            db.executemany(
                "INSERT INTO redemptions VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                self._redemption_rows,
            )
            self._redemption_rows = []
        dirty = [row for row in self._campaign_rows.values() if row.dirty]
        if dirty:
            self._db.executemany(
                "UPDATE campaigns SET status = ?, vouchers = ?, redemptions = ?, budget_used = ?"
                " WHERE campaign_id = ?",
                [
                    (r.status, r.vouchers, r.redemptions, r.budget_used, r.campaign_id)
                    for r in dirty
                ],
            )
            for row in dirty:
                row.dirty = False

    def _campaign_row(self, campaign_id: str) -> _CampaignRow | None:
        row = self._campaign_rows.get(campaign_id)
        if row is None:
            found = self._db.execute(
                "SELECT definition, status, vouchers, redemptions, budget_used FROM campaigns"
                " WHERE campaign_id = ?",
                (campaign_id,),
            ).fetchone()
            if found is None:
                return None
            row = _CampaignRow(campaign_id, found[0], *found[1:])
            self._campaign_rows[campaign_id] = row
        return row

    def _counters(self, event: Event) -> _CampaignRow:
        row = self._campaign_row(event.campaign_id or "")
        if row is None:
            raise LookupError(
                f"{event.event_type} {event.event_id}: no campaign {event.campaign_id!r}"
            )
        row.dirty = True
        return row

    def apply(self, event: Event) -> None:
        """Update the projection for one event. Also used to rebuild it from the ledger."""
        handler = _APPLY_BY_TYPE.get(event.event_type)
        if handler is not None:
            handler(self, event)
        if event.idempotency_key is not None:
            self._db.execute(
                "INSERT INTO idempotency VALUES (?, ?, ?)",
                (event.idempotency_key, event.payload["request_hash"], event.event_id),
            )

    def _main_campaign_created(self, event: Event) -> None:
        definition = event.payload["definition"]
        self._db.execute(
            "INSERT INTO main_campaigns VALUES (?, ?, ?)",
            (definition["id"], definition["name"], dumps(definition)),
        )

    def _campaign_created(self, event: Event) -> None:
        definition = event.payload["definition"]
        self._db.execute(
            "INSERT INTO campaigns (campaign_id, main_campaign_id, definition, status)"
            " VALUES (?, ?, ?, ?)",
            (
                event.campaign_id,
                definition.get("main_campaign"),
                dumps(definition),
                definition["status"],
            ),
        )

    def _campaign_status_changed(self, event: Event) -> None:
        self._counters(event).status = event.payload["status"]

    def _voucher_created(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT INTO vouchers (voucher_id, code, campaign_id, kind, gift_balance, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                event.voucher_id,
                payload["code"],
                event.campaign_id,
                payload["kind"],
                payload.get("gift_balance"),
                iso(event.occurred_at),
            ),
        )
        self._counters(event).vouchers += 1

    def _voucher_published(self, event: Event) -> None:
        if event.payload.get("source") in OFFER_SOURCES:
            self._offer_published(event)
        self._db.execute(
            "UPDATE vouchers SET holder_id = ?, published_at = ?, accepted_at = NULL"
            " WHERE voucher_id = ?",
            (event.customer_id, iso(event.occurred_at), event.voucher_id),
        )

    def _voucher_accepted(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET accepted_at = ? WHERE voucher_id = ?",
            (iso(event.occurred_at), event.voucher_id),
        )

    def _voucher_disabled(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET disabled = 1 WHERE voucher_id = ?", (event.voucher_id,)
        )

    def _voucher_enabled(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET disabled = 0 WHERE voucher_id = ?", (event.voucher_id,)
        )

    def _gift_card_topped_up(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET gift_balance = gift_balance + ? WHERE voucher_id = ?",
            (event.payload["amount"], event.voucher_id),
        )

    def _segment_member_added(self, event: Event) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO segment_members VALUES (?, ?)",
            (event.customer_id, event.payload["segment_id"]),
        )

    def _segment_member_removed(self, event: Event) -> None:
        self._db.execute(
            "DELETE FROM segment_members WHERE customer_id = ? AND segment_id = ?",
            (event.customer_id, event.payload["segment_id"]),
        )

    def _validation_hold_created(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET held_until = max(coalesce(held_until, ''), ?) WHERE voucher_id = ?",
            (event.payload["expires_at"], event.voucher_id),
        )
        self._db.execute(
            "INSERT INTO holds (session_id, voucher_id, customer_id, expires_at) VALUES (?, ?, ?, ?)",
            (
                event.payload["session_id"],
                event.voucher_id,
                event.customer_id,
                event.payload["expires_at"],
            ),
        )

    def _redemption_succeeded(self, event: Event) -> None:
        payload = event.payload
        discount = payload["discount"]
        gift_amount = payload["gift_amount"]
        uses = self._voucher_uses.get(event.voucher_id or "")
        if uses is None:
            self._voucher_uses[event.voucher_id or ""] = [1, gift_amount]
        else:
            uses[0] += 1
            uses[1] += gift_amount
        counters = self._counters(event)
        counters.redemptions += 1
        counters.budget_used += discount
        if event.customer_id is not None:
            key = (event.customer_id, event.campaign_id or "")
            self._customer_uses[key] = self._customer_uses.get(key, 0) + 1
            self._pending_customers.add(event.customer_id)
        self._redemption_rows.append(
            (
                event.redemption_id,
                event.voucher_id,
                event.campaign_id,
                event.customer_id,
                event.order_id,
                discount,
                gift_amount,
                iso(event.occurred_at),
            )
        )
        if payload.get("session_id") is not None:
            self._db.execute(
                "UPDATE holds SET consumed = 1 WHERE session_id = ?", (payload["session_id"],)
            )

    def _redemption_rolled_back(self, event: Event) -> None:
        payload = event.payload
        self._flush_projection()  # rollbacks are rare: write what is pending, then adjust
        db = self._db
        db.execute(
            "UPDATE vouchers SET redemptions = redemptions - 1,"
            " gift_balance = gift_balance + ? WHERE voucher_id = ?",
            (payload["gift_amount"], event.voucher_id),
        )
        counters = self._counters(event)
        counters.redemptions -= 1
        counters.budget_used -= payload["discount"]
        if event.customer_id is not None:
            db.execute(
                "UPDATE customer_campaigns SET redemptions = redemptions - 1"
                " WHERE customer_id = ? AND campaign_id = ?",
                (event.customer_id, event.campaign_id),
            )
        db.execute(
            "UPDATE redemptions SET rolled_back_at = ? WHERE redemption_id = ?",
            (iso(event.occurred_at), event.redemption_id),
        )

    # -- customers, orders, segments ---------------------------------------------------------
    def _customer_created(self, event: Event) -> None:
        payload = event.payload
        consent = payload.get("consent", {})
        self._db.execute(
            "INSERT INTO customers (customer_id, signup_at, birthday, anniversary, attributes,"
            " metadata, email_hash, email_masked, phone_hash, phone_masked, consent_email,"
            " consent_sms, consent_push) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.customer_id,
                payload.get("signup_at") or iso(event.occurred_at),
                payload.get("birthday"),
                payload.get("anniversary"),
                dumps(payload.get("attributes", {})),
                dumps(payload.get("metadata", {})),
                payload.get("email_hash"),
                payload.get("email_masked"),
                payload.get("phone_hash"),
                payload.get("phone_masked"),
                int(bool(consent.get("email"))),
                int(bool(consent.get("sms"))),
                int(bool(consent.get("push"))),
            ),
        )
        self._customer_version(event)
        for channel, granted in consent.items():
            self._consent_change(event, channel, granted)

    def _customer_updated(self, event: Event) -> None:
        payload = event.payload
        changes = {key: payload[key] for key in CUSTOMER_UPDATABLE if key in payload}
        if not changes:
            return
        columns = ", ".join(f"{key} = ?" for key in changes)
        values = [
            dumps(v) if key in ("attributes", "metadata") else v for key, v in changes.items()
        ]
        self._db.execute(
            f"UPDATE customers SET {columns} WHERE customer_id = ?", (*values, event.customer_id)
        )
        if "attributes" in changes:
            self._customer_version(event)

    def _customer_version(self, event: Event) -> None:
        self._db.execute(
            "INSERT INTO customer_versions VALUES (?, ?, ?, ?)",
            (
                event.event_id,
                event.customer_id,
                iso(event.occurred_at),
                dumps(event.payload.get("attributes", {})),
            ),
        )

    def _consent_changed(self, event: Event) -> None:
        channel = event.payload["channel"]
        granted = event.payload["granted"]
        if channel not in ("email", "sms", "push"):
            raise ValueError(f"unknown consent channel {channel!r}")
        self._db.execute(
            f"UPDATE customers SET consent_{channel} = ? WHERE customer_id = ?",
            (int(bool(granted)), event.customer_id),
        )
        self._consent_change(event, channel, granted)

    def _consent_change(self, event: Event, channel: str, granted: bool) -> None:
        self._db.execute(
            "INSERT INTO consent_changes VALUES (?, ?, ?, ?, ?)",
            (
                f"{event.event_id}:{channel}",
                event.customer_id,
                channel,
                iso(event.occurred_at),
                int(bool(granted)),
            ),
        )

    def _order_recorded(self, event: Event) -> None:
        # Written behind, like redemptions: orders come in large batches (see _flush_projection).
        payload = event.payload
        at = iso(event.occurred_at)
        self._order_rows.append(
            (
                event.order_id,
                event.customer_id,
                payload["amount"],
                payload["currency"],
                event.store_id,
                event.sales_channel,
                at,
            )
        )
        self._order_line_rows.extend(
            (
                event.order_id,
                line,
                event.customer_id,
                item["product_id"],
                item.get("category"),
                item["quantity"],
                item["quantity"] * item["unit_price"],
                at,
            )
            for line, item in enumerate(payload.get("items", ()))
        )
        if event.customer_id is not None:
            stats = self._customer_orders.get(event.customer_id)
            if stats is None:
                self._customer_orders[event.customer_id] = [1, payload["amount"], at, at]
            else:
                stats[0] += 1
                stats[1] += payload["amount"]
                stats[2] = min(stats[2], at)
                stats[3] = max(stats[3], at)

    def _order_refunded(self, event: Event) -> None:
        self._flush_projection()  # rare: write the pending orders first
        amount = event.payload["amount"]
        self._db.execute(
            "UPDATE orders SET refunded = refunded + ? WHERE order_id = ?", (amount, event.order_id)
        )
        self._db.execute(
            "INSERT INTO order_refunds VALUES (?, ?, ?, ?)",
            (event.event_id, event.order_id, amount, iso(event.occurred_at)),
        )
        if event.customer_id is not None:
            self._db.execute(
                "UPDATE customers SET spend = spend - ? WHERE customer_id = ?",
                (amount, event.customer_id),
            )

    def _order_cancelled(self, event: Event) -> None:
        self._flush_projection()
        db = self._db
        row = db.execute(
            "SELECT amount - refunded FROM orders WHERE order_id = ?", (event.order_id,)
        ).fetchone()
        db.execute(
            "UPDATE orders SET cancelled_at = ? WHERE order_id = ?",
            (iso(event.occurred_at), event.order_id),
        )
        if event.customer_id is not None and row is not None:
            # First and last order dates come back from the orders that still stand.
            db.execute(
                "UPDATE customers SET orders = orders - 1, spend = spend - :net,"
                " first_order_at = (SELECT min(ordered_at) FROM orders"
                "   WHERE customer_id = :customer AND cancelled_at IS NULL),"
                " last_order_at = (SELECT max(ordered_at) FROM orders"
                "   WHERE customer_id = :customer AND cancelled_at IS NULL)"
                " WHERE customer_id = :customer",
                {"net": row[0], "customer": event.customer_id},
            )

    def _segment_defined(self, event: Event) -> None:
        definition = event.payload["definition"]
        self._db.execute(
            "INSERT INTO segments VALUES (?, ?) ON CONFLICT DO UPDATE SET definition = excluded.definition",
            (definition["id"], dumps(definition)),
        )

    # -- distribution --------------------------------------------------------------------------
    def _frequency_cap_set(self, event: Event) -> None:
        self._db.execute(
            "INSERT INTO settings VALUES ('frequency_cap', ?)"
            " ON CONFLICT DO UPDATE SET value = excluded.value",
            (dumps(event.payload),),
        )

    def _audience(self, event: Event, outcome: str, reason: str | None) -> None:
        if event.payload.get("source") == "promotion":
            self._db.execute(
                "INSERT INTO audience VALUES (?, ?, ?, ?, ?)",
                (event.campaign_id, event.customer_id, outcome, reason, iso(event.occurred_at)),
            )

    def _fraud_review_recorded(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT OR REPLACE INTO fraud_reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                payload["flag_id"],
                payload["entity_type"],
                payload["entity_id"],
                payload["decision"],
                payload["reviewer"],
                payload.get("note", ""),
                event.event_id,
                iso(event.occurred_at),
            ),
        )

    def _customer_held_out(self, event: Event) -> None:
        self._audience(event, "held_out", None)

    def _offer_skipped(self, event: Event) -> None:
        self._audience(event, "skipped", event.payload["reason"])

    def _offer_published(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT INTO offers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.voucher_id,
                event.campaign_id,
                event.customer_id,
                event.channel,
                payload["source"],
                payload.get("trigger_id"),
                iso(event.occurred_at),
            ),
        )
        self._audience(event, "published", None)

    def _trigger_matched(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT INTO triggers (trigger_id, campaign_id, customer_id, kind, matched_at, status)"
            " VALUES (?, ?, ?, ?, ?, 'pending')",
            (
                payload["trigger_id"],
                event.campaign_id,
                event.customer_id,
                payload["trigger"],
                iso(event.occurred_at),
            ),
        )

    def _trigger_closed(self, event: Event) -> None:
        payload = event.payload
        failed = event.event_type is EventType.TRIGGER_FAILED
        status = "failed" if failed else payload.get("outcome", "completed")
        self._db.execute(
            "UPDATE triggers SET status = ?, reason = ?, voucher_id = ?, closed_at = ?"
            " WHERE trigger_id = ?",
            (
                status,
                payload.get("reason"),
                event.voucher_id,
                iso(event.occurred_at),
                payload["trigger_id"],
            ),
        )

    def _delivery_outcome(self, event: Event) -> None:
        payload = event.payload
        delivered = event.event_type is EventType.VOUCHER_DELIVERED
        self._db.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " channel = excluded.channel, status = excluded.status,"
            " attempts = deliveries.attempts + excluded.attempts,"
            " last_error = excluded.last_error, updated_at = excluded.updated_at",
            (
                event.voucher_id,
                event.campaign_id,
                event.customer_id,
                event.channel,
                "delivered" if delivered else "failed",
                payload["attempts"],
                None if delivered else payload.get("error"),
                iso(event.occurred_at),
            ),
        )

    # -- reads -----------------------------------------------------------------------------
    def main_campaign_exists(self, main_campaign_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM main_campaigns WHERE main_campaign_id = ?", (main_campaign_id,)
        ).fetchone()
        return row is not None

    def campaign_state(self, campaign_id: str) -> CampaignState | None:
        row = self._campaign_row(campaign_id)
        if row is None:
            return None
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            campaign = campaign_from_dict(json.loads(row.definition))
            self._campaigns[campaign_id] = campaign
        return CampaignState(
            campaign, CampaignStatus(row.status), row.redemptions, row.budget_used, row.vouchers
        )

    def campaign_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT campaign_id FROM campaigns ORDER BY 1")]

    def voucher_by_code(self, code: str) -> VoucherState | None:
        row = self._db.execute(f"{SELECT_VOUCHER} WHERE code = ?", (code,)).fetchone()
        if row is None:
            return None
        redemptions, gift_balance = row[8], row[9]
        pending = self._voucher_uses.get(row[0])
        if pending is not None:
            redemptions += pending[0]
            gift_balance = None if gift_balance is None else gift_balance - pending[1]
        return VoucherState(
            voucher_id=row[0],
            code=row[1],
            campaign_id=row[2],
            kind=VOUCHER_KINDS[row[3]],
            holder_id=row[4],
            disabled=bool(row[5]),
            published_at=from_iso(row[6]) if row[6] else None,
            accepted_at=from_iso(row[7]) if row[7] else None,
            redemptions=redemptions,
            gift_balance=gift_balance,
            held_until=from_iso(row[10]) if row[10] else None,
        )

    def _found(self, sql: str, fixed: Sequence[Any], ids: Sequence[str]) -> set[str]:
        """The first column of `sql ... IN (ids)`, asked 500 ids at a time."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            query = f"{sql} IN ({', '.join('?' * len(chunk))})"
            found.update(row[0] for row in self._db.execute(query, [*fixed, *chunk]))
        return found

    def existing_ids(self, table: str, ids: Sequence[str]) -> set[str]:
        """Which of these orders or customers exist."""
        column = {"orders": "order_id", "customers": "customer_id"}[table]
        if table == "orders" and self._order_rows:
            self._flush_projection()
        return self._found(f"SELECT {column} FROM {table} WHERE {column}", (), ids)

    def existing_codes(self, codes: Sequence[str]) -> set[str]:
        return self._found("SELECT code FROM vouchers WHERE code", (), codes)

    def vouchers_of_campaign(self, campaign_id: str) -> list[tuple[Any, ...]]:
        return self._db.execute(
            "SELECT code, voucher_id, holder_id, disabled, published_at, accepted_at,"
            " redemptions, gift_balance FROM vouchers WHERE campaign_id = ? ORDER BY rowid",
            (campaign_id,),
        ).fetchall()

    def redemption(self, redemption_id: str) -> RedemptionState | None:
        self._flush_projection()
        row = self._db.execute(
            "SELECT redemption_id, voucher_id, campaign_id, customer_id, order_id, discount,"
            " gift_amount, rolled_back_at FROM redemptions WHERE redemption_id = ?",
            (redemption_id,),
        ).fetchone()
        if row is None:
            return None
        return RedemptionState(*row[:7], rolled_back=row[7] is not None)

    def hold(self, session_id: str) -> HoldState | None:
        row = self._db.execute(
            "SELECT session_id, voucher_id, customer_id, expires_at, consumed FROM holds"
            " WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            return None
        return HoldState(row[0], row[1], row[2], from_iso(row[3]), bool(row[4]))

    def idempotent_event(self, key: str) -> tuple[str, Event] | None:
        row = self._db.execute(
            "SELECT request_hash, event_id FROM idempotency WHERE idempotency_key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        self.flush()  # the first event may still be waiting in this transaction
        event_row_ = self._db.execute(f"{SELECT_EVENT} WHERE event_id = ?", (row[1],)).fetchone()
        return row[0], event_from_row(event_row_)

    def customer(self, customer_id: str) -> CustomerState | None:
        if customer_id in self._customer_orders:
            self._flush_projection()
        row = self._db.execute(
            "SELECT customer_id, signup_at, birthday, anniversary, attributes, email_masked,"
            " phone_masked, consent_email, consent_sms, consent_push, orders, spend,"
            " first_order_at, last_order_at FROM customers WHERE customer_id = ?",
            (customer_id,),
        ).fetchone()
        if row is None:
            return None
        return CustomerState(
            customer_id=row[0],
            signup_at=from_iso(row[1]),
            birthday=row[2],
            anniversary=row[3],
            attributes=orjson.loads(row[4]),
            email_masked=row[5],
            phone_masked=row[6],
            consent={"email": bool(row[7]), "sms": bool(row[8]), "push": bool(row[9])},
            orders=row[10],
            spend=row[11],
            first_order_at=from_iso(row[12]) if row[12] else None,
            last_order_at=from_iso(row[13]) if row[13] else None,
        )

    def order(self, order_id: str) -> OrderState | None:
        if self._order_rows:
            self._flush_projection()
        row = self._db.execute(
            "SELECT order_id, customer_id, amount, currency, refunded, cancelled_at FROM orders"
            " WHERE order_id = ?",
            (order_id,),
        ).fetchone()
        if row is None:
            return None
        return OrderState(*row[:5], cancelled=row[5] is not None)

    def open_redemptions_of_order(self, order_id: str) -> list[RedemptionState]:
        self._flush_projection()
        rows = self._db.execute(
            "SELECT redemption_id, voucher_id, campaign_id, customer_id, order_id, discount,"
            " gift_amount FROM redemptions WHERE order_id = ? AND rolled_back_at IS NULL"
            " ORDER BY redeemed_at",
            (order_id,),
        )
        return [RedemptionState(*row, rolled_back=False) for row in rows]

    def segment_definition(self, segment_id: str) -> dict | None:
        row = self._db.execute(
            "SELECT definition FROM segments WHERE segment_id = ?", (segment_id,)
        ).fetchone()
        return None if row is None else orjson.loads(row[0])

    # -- distribution reads ----------------------------------------------------------------------
    def frequency_cap(self) -> tuple[int, int] | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = 'frequency_cap'").fetchone()
        if row is None:
            return None
        cap = orjson.loads(row[0])
        return cap["max_offers"], cap["days"]

    def offers_since(self, customer_id: str, since: datetime) -> int:
        return self._db.execute(
            "SELECT count(*) FROM offers WHERE customer_id = ? AND offered_at > ?",
            (customer_id, iso(since)),
        ).fetchone()[0]

    def recently_triggered(
        self, campaign_id: str, customer_ids: Sequence[str], since: datetime
    ) -> set[str]:
        return self._found(
            "SELECT customer_id FROM triggers WHERE campaign_id = ? AND matched_at > ?"
            " AND customer_id",
            (campaign_id, iso(since)),
            customer_ids,
        )

    def audience_decided(self, campaign_id: str, customer_ids: Sequence[str]) -> set[str]:
        return self._found(
            "SELECT customer_id FROM audience WHERE campaign_id = ? AND customer_id",
            (campaign_id,),
            customer_ids,
        )

    def pending_triggers(self, campaign_id: str, *, limit: int) -> list[tuple[str, str]]:
        rows = self._db.execute(
            "SELECT trigger_id, customer_id FROM triggers WHERE status = 'pending'"
            " AND campaign_id = ? AND NOT EXISTS (SELECT 1 FROM offers o"
            " WHERE o.trigger_id = triggers.trigger_id) ORDER BY matched_at, trigger_id LIMIT ?",
            (campaign_id, limit),
        )
        return [(row[0], row[1]) for row in rows]

    def undelivered_offers(self, campaign_id: str) -> list[tuple[str, str, str, str, str | None]]:
        rows = self._db.execute(
            "SELECT o.voucher_id, v.code, o.customer_id, o.channel, o.trigger_id FROM offers o"
            " JOIN vouchers v USING (voucher_id)"
            " LEFT JOIN deliveries d USING (voucher_id)"
            " WHERE o.campaign_id = ? AND d.voucher_id IS NULL ORDER BY o.offered_at, o.voucher_id",
            (campaign_id,),
        )
        return [tuple(row) for row in rows]

    def failed_deliveries(
        self, campaign_id: str | None
    ) -> list[tuple[str, str, str, str, str, str | None]]:
        rows = self._db.execute(
            "SELECT d.campaign_id, d.voucher_id, v.code, d.customer_id, d.channel, o.trigger_id"
            " FROM deliveries d JOIN vouchers v USING (voucher_id)"
            " LEFT JOIN offers o USING (voucher_id)"
            " WHERE d.status = 'failed' AND (?1 IS NULL OR d.campaign_id = ?1)"
            " ORDER BY d.updated_at, d.voucher_id",
            (campaign_id,),
        )
        return [tuple(row) for row in rows]

    def customer_campaign_redemptions(self, campaign_id: str, customer_id: str) -> int:
        key = (customer_id, campaign_id)
        pending = self._customer_uses.get(key, 0)
        row = self._db.execute(
            "SELECT redemptions FROM customer_campaigns WHERE customer_id = ? AND campaign_id = ?",
            key,
        ).fetchone()
        return pending + (0 if row is None else row[0])

    def customer_has_orders(self, customer_id: str) -> bool:
        """An order that stands (recorded, not cancelled) or a redemption that stands."""
        if customer_id in self._pending_customers or customer_id in self._customer_orders:
            return True
        row = self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = ?1 AND orders > 0)"
            " OR EXISTS (SELECT 1 FROM customer_campaigns WHERE customer_id = ?1"
            " AND redemptions > 0)",
            (customer_id,),
        ).fetchone()
        return bool(row[0])

    def customer_in_any_segment(
        self, customer_id: str, segments: frozenset[str], now: datetime
    ) -> bool:
        """Listed members (segment_member_added) or a match of the segment's rules at now."""
        rows = self._db.execute(
            "SELECT segment_id FROM segment_members WHERE customer_id = ?", (customer_id,)
        )
        if any(row[0] in segments for row in rows):
            return True
        for segment_id in sorted(segments):
            definition = self.segment_definition(segment_id)
            if definition is None:
                continue
            sql, params = compile_members_query(segment_from_dict(definition), one_customer=True)
            if self.query(sql, {**params, "at": iso(now), "customer": customer_id}):
                return True
        return False

    def query(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
        self._flush_projection()
        return self._db.execute(sql, params).fetchall()

    def holds_by_others(self, voucher_id: str, session_id: str | None, now: datetime) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM holds WHERE voucher_id = ? AND consumed = 0"
            " AND expires_at > ? AND session_id IS NOT ?",
            (voucher_id, iso(now), session_id),
        ).fetchone()
        return row[0]


# How each event type changes the projection (types not listed change nothing but the
# idempotency table).
_APPLY_BY_TYPE: dict[EventType, Callable[[SqliteTransaction, Event], None]] = {
    EventType.MAIN_CAMPAIGN_CREATED: SqliteTransaction._main_campaign_created,
    EventType.CAMPAIGN_CREATED: SqliteTransaction._campaign_created,
    EventType.CAMPAIGN_STATUS_CHANGED: SqliteTransaction._campaign_status_changed,
    EventType.VOUCHER_CREATED: SqliteTransaction._voucher_created,
    EventType.VOUCHER_PUBLISHED: SqliteTransaction._voucher_published,
    EventType.VOUCHER_ACCEPTED: SqliteTransaction._voucher_accepted,
    EventType.VOUCHER_DISABLED: SqliteTransaction._voucher_disabled,
    EventType.VOUCHER_ENABLED: SqliteTransaction._voucher_enabled,
    EventType.GIFT_CARD_TOPPED_UP: SqliteTransaction._gift_card_topped_up,
    EventType.SEGMENT_MEMBER_ADDED: SqliteTransaction._segment_member_added,
    EventType.SEGMENT_MEMBER_REMOVED: SqliteTransaction._segment_member_removed,
    EventType.VALIDATION_HOLD_CREATED: SqliteTransaction._validation_hold_created,
    EventType.REDEMPTION_SUCCEEDED: SqliteTransaction._redemption_succeeded,
    EventType.REDEMPTION_ROLLED_BACK: SqliteTransaction._redemption_rolled_back,
    EventType.CUSTOMER_CREATED: SqliteTransaction._customer_created,
    EventType.CUSTOMER_UPDATED: SqliteTransaction._customer_updated,
    EventType.CONSENT_CHANGED: SqliteTransaction._consent_changed,
    EventType.ORDER_RECORDED: SqliteTransaction._order_recorded,
    EventType.ORDER_REFUNDED: SqliteTransaction._order_refunded,
    EventType.ORDER_CANCELLED: SqliteTransaction._order_cancelled,
    EventType.SEGMENT_DEFINED: SqliteTransaction._segment_defined,
    EventType.FREQUENCY_CAP_SET: SqliteTransaction._frequency_cap_set,
    EventType.CUSTOMER_HELD_OUT: SqliteTransaction._customer_held_out,
    EventType.OFFER_SKIPPED: SqliteTransaction._offer_skipped,
    EventType.TRIGGER_MATCHED: SqliteTransaction._trigger_matched,
    EventType.TRIGGER_COMPLETED: SqliteTransaction._trigger_closed,
    EventType.TRIGGER_FAILED: SqliteTransaction._trigger_closed,
    EventType.VOUCHER_DELIVERED: SqliteTransaction._delivery_outcome,
    EventType.DELIVERY_FAILED: SqliteTransaction._delivery_outcome,
    EventType.FRAUD_REVIEW_RECORDED: SqliteTransaction._fraud_review_recorded,
}


@dataclass(slots=True)
class _Batch:
    broken: bool = False  # a write failed half-way and the batch was rolled back

    def check_usable(self) -> None:
        if self.broken:
            raise RuntimeError("a write failed half-way: the whole batch was rolled back")


class Checkpointer:
    """Copies committed WAL frames into the database file from a thread of its own.

    A checkpoint run by the committing connection stalls that commit for as long as it takes
    to write and fsync the pages; here a PASSIVE checkpoint (which never blocks writers or
    readers) runs on its own connection whenever the WAL has grown past `threshold_pages`.
    """

    def __init__(self, path: Path, *, threshold_pages: int = 2000, interval_s: float = 0.05):
        self._path = path
        self._threshold = threshold_pages
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpointer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval):
                wal = self._path.with_name(self._path.name + "-wal")
                try:
                    size = wal.stat().st_size
                except FileNotFoundError:
                    continue
                if size > self._threshold * 4096:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the safety-net autocheckpoint of the writers takes over
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class SqliteLedgerStore(LedgerStore):
    """One connection per store object; one store per process (or per thread)."""

    def __init__(self, path: Path | str, *, durable: bool = True, read_only: bool = False) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        if isinstance(self.path, Path) and not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(path, durable=durable, read_only=read_only)
        self._lock = threading.RLock()
        self._campaigns: dict[str, Campaign] = {}
        self._batch: _Batch | None = None
        self.read_only = read_only
        self._checkpointer: Checkpointer | None = None
        if not read_only:
            self._create_schema()
            if isinstance(self.path, Path):
                self._checkpointer = Checkpointer(self.path)

    def _create_schema(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise RuntimeError(f"ledger schema {version} is newer than this code")
                for statement in (EVENTS_SCHEMA + PROJECTION_SCHEMA).split(";\n"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def write(self) -> Iterator[SqliteTransaction]:
        with self._lock:
            if self._batch is not None:
                with self._batch_write() as tx:
                    yield tx
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                tx = SqliteTransaction(self._db, self._campaigns)
                yield tx
                tx.flush()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _batch_write(self) -> Iterator[SqliteTransaction]:
        """A write inside a batch, without a SAVEPOINT of its own.

        A savepoint copies every page the write touches to a statement journal (a temporary
        file), which cost more than the commits the batch saves. Instead: a write that fails
        before changing the database (the engine checks before it appends) leaves the batch
        as it was; one that fails after rolls back the whole batch, so nothing partial is
        ever committed.
        """
        batch = self._batch
        assert batch is not None
        batch.check_usable()
        changes = self._db.total_changes
        try:
            tx = SqliteTransaction(self._db, self._campaigns)
            yield tx
            tx.flush()
        except BaseException:
            if self._db.total_changes != changes:
                self._db.execute("ROLLBACK")
                batch.broken = True
            raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One BEGIN IMMEDIATE ... COMMIT around every write inside (see LedgerStore.batch).

        Every write still reads, checks, appends and applies exactly as alone, and reads see
        the batch so far; only the commit is shared. Nothing of the batch is durable until
        it ends, so this is for work that is rebuilt from its input.
        """
        with self._lock:
            if self._batch is not None:  # nested: part of the outer batch
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            batch = self._batch = _Batch()
            try:
                yield
            except BaseException:
                if not batch.broken:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._batch = None
            batch.check_usable()
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[SqliteTransaction]:
        with self._lock:
            if self._batch is not None:  # inside the batch's transaction, which it sees
                self._batch.check_usable()
                yield SqliteTransaction(self._db, self._campaigns)
                return
            self._db.execute("BEGIN")
            try:
                yield SqliteTransaction(self._db, self._campaigns)
            finally:
                self._db.execute("COMMIT")

    def events(self, after_seq: int = 0, limit: int | None = None) -> Iterator[Event]:
        query = f"{SELECT_EVENT} WHERE seq > ? ORDER BY seq"
        params: tuple[Any, ...] = (after_seq,)
        if limit is not None:
            query += " LIMIT ?"
            params += (limit,)
        with self._lock:
            rows = self._db.execute(query, params).fetchall() if limit is not None else None
        if rows is not None:
            yield from (event_from_row(row) for row in rows)
            return
        # Unbounded: page through by seq so memory stays flat on a large ledger.
        last = after_seq
        while True:
            with self._lock:
                page = self._db.execute(
                    f"{SELECT_EVENT} WHERE seq > ? ORDER BY seq LIMIT 10000", (last,)
                ).fetchall()
            if not page:
                return
            for row in page:
                yield event_from_row(row)
            last = page[-1][0]

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for read-only reporting queries (stats, export, verify)."""
        return self._db

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._db.close()
