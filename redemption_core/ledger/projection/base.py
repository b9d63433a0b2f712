"""What the projection shares: the write-behind buffers and their flush, the campaign
counters, and appending events.

The projection is written once against `self._db`, a DB-API connection whose `execute`
returns a cursor and which has `executemany`, with `?` and `:name` parameters, in SQL both
backends take (dialect.py names what differs). The adapters (sqlite.py, postgres.py) own
connections, transactions and locks; they hand a connection in, and a `RowLocks` when their
writers run side by side (PostgreSQL): then the reads that decide a redemption lock what they
read (locks.py says which and why).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from redemption_core.domain.campaigns import Campaign, VoucherKind, campaign_from_dict
from redemption_core.domain.events import Event
from redemption_core.domain.parsing import remember_iso
from redemption_core.ledger.dialect import SQLITE, Dialect
from redemption_core.ledger.rows import INSERT_EVENT, event_row
from redemption_core.ledger.store import LedgerTransaction, RowLocks

# Profile fields a customer_updated event may change (columns of `customers`).
CUSTOMER_UPDATABLE = (
    "birthday", "anniversary", "attributes", "metadata",
    "email_hash", "email_masked", "phone_hash", "phone_masked",
)  # fmt: skip
OFFER_SOURCES = ("promotion", "autopilot")  # publications that count as offers
VOUCHER_KINDS = {kind.value: kind for kind in VoucherKind}
SELECT_VOUCHER = (
    "SELECT voucher_id, code, campaign_id, kind, holder_id, disabled, published_at,"
    " accepted_at, redemptions, gift_balance, held_until, created_at,"
    # a subquery, not a join: PostgreSQL locks the voucher row read FOR UPDATE
    " (SELECT applies_to FROM voucher_contents AS c WHERE c.voucher_id = vouchers.voucher_id)"
    " FROM vouchers"
)


@dataclass(slots=True)
class _CampaignRow:
    campaign_id: str
    definition: str
    status: str
    vouchers: int
    redemptions: int
    budget_used: int
    dirty: bool = False
    locked: bool = False  # read FOR UPDATE (lock_campaign_counters)
    # As read: flush writes the differences, so that writers that did not lock the row (a
    # campaign without campaign-wide limits, on PostgreSQL) add up instead of overwriting.
    read_status: str = ""
    read_vouchers: int = 0
    read_redemptions: int = 0
    read_budget_used: int = 0

    def mark_read(self) -> None:
        self.read_status, self.read_vouchers = self.status, self.vouchers
        self.read_redemptions, self.read_budget_used = self.redemptions, self.budget_used


class ProjectionBase(LedgerTransaction):
    def __init__(
        self,
        connection: Any,
        campaigns: dict[str, Campaign],
        *,
        dialect: Dialect = SQLITE,
        locks: RowLocks | None = None,
    ) -> None:
        self._db = connection
        self.dialect = dialect
        self._locks = locks
        self.appended = 0  # events applied in this transaction (a batch's write checks it)
        # Read ahead by prepare_redemptions (writers side by side only): voucher rows by code
        # (None: no such code), idempotency keys known absent, customers locked with their
        # per-campaign uses and whether they have orders.
        self._vouchers: dict[str, tuple[Any, ...] | None] = {}
        self._voucher_codes: dict[str, str] = {}  # voucher id → code, of those read ahead
        self._known_keys: dict[str, bool] = {}
        self._customers_locked: set[str] = set()
        self._customer_campaigns: dict[tuple[str, str], int] = {}
        self._has_orders: dict[str, bool] = {}
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
        self._pending_redemption_ids: set[str] = set()
        self._order_rows: list[tuple[Any, ...]] = []
        self._pending_order_ids: set[str] = set()
        self._order_line_rows: list[tuple[Any, ...]] = []
        self._customer_orders: dict[str, list[Any]] = {}  # orders, spend, first, last
        self._campaigns = campaigns  # definitions are immutable: parse each once per process
        # Who acts (an API key id, a console user): stamped on each event this transaction
        # appends that does not name one already (payload "actor"). None: the operator.
        self.actor: str | None = None

    @abstractmethod
    def _flush_for_order(self, order_id: str) -> None:
        """Write what is pending if it concerns this order (ProjectionReads)."""

    @abstractmethod
    def apply(self, event: Event) -> None:
        """Update the projection for one event (ProjectionTransaction dispatches by type)."""

    # -- appends ---------------------------------------------------------------------------
    def append(self, event: Event) -> None:
        # Event rows are inserted in one executemany before COMMIT (see flush); the
        # projection is updated now, so later reads in this transaction see the event.
        if self.actor is not None:
            event.payload.setdefault("actor", self.actor)
        self._rows.append(event_row(event))
        self.apply(event)

    def append_many(self, events: Sequence[Event]) -> None:
        if self.actor is not None:
            for event in events:
                event.payload.setdefault("actor", self.actor)
        self._rows.extend(event_row(event) for event in events)
        for event in events:
            self.apply(event)

    def append_row(self, event: Event, row: Sequence[Any]) -> None:
        self._rows.append(row)
        remember_iso(event.occurred_at, row[2])  # the row holds occurred_at as ledger text
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
                " first_order_at = CASE WHEN first_order_at IS NULL OR first_order_at > ?"
                "   THEN ? ELSE first_order_at END,"
                " last_order_at = CASE WHEN last_order_at IS NULL OR last_order_at < ?"
                "   THEN ? ELSE last_order_at END WHERE customer_id = ?",
                [
                    (orders, spend, first, first, last, last, customer)
                    for customer, (orders, spend, first, last) in sorted(
                        self._customer_orders.items()
                    )
                ],
            )
            self._order_rows, self._order_line_rows, self._customer_orders = [], [], {}
            self._pending_order_ids = set()
        if self._voucher_uses:
            for voucher_id, (uses, gift) in self._voucher_uses.items():
                self._voucher_flushed(voucher_id, uses, gift)
            db.executemany(
                "UPDATE vouchers SET redemptions = redemptions + ?,"
                " gift_balance = gift_balance - ? WHERE voucher_id = ?",
                [
                    (uses, gift, voucher_id)
                    for voucher_id, (uses, gift) in sorted(self._voucher_uses.items())
                ],
            )
            self._voucher_uses = {}
        if self._customer_uses:
            db.executemany(
                "INSERT INTO customer_campaigns VALUES (?, ?, ?)"
                " ON CONFLICT (customer_id, campaign_id) DO UPDATE"
                " SET redemptions = customer_campaigns.redemptions + excluded.redemptions",
                [
                    (customer, campaign, uses)
                    for (customer, campaign), uses in sorted(self._customer_uses.items())
                ],
            )
            for key, uses in self._customer_uses.items():
                if key[0] in self._customers_locked:  # the read-ahead stays true
                    self._customer_campaigns[key] = self._customer_campaigns.get(key, 0) + uses
            self._customer_uses = {}
            self._pending_customers = set()
        if self._redemption_rows:
            db.executemany(
                "INSERT INTO redemptions (redemption_id, voucher_id, campaign_id, customer_id,"
                " order_id, discount, gift_amount, redeemed_at, store_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._redemption_rows,
            )
            self._redemption_rows = []
            self._pending_redemption_ids = set()
        # In campaign id order: two writers that update the same campaigns take their row
        # locks in the same order, and cannot deadlock on them.
        dirty = sorted(
            (row for row in self._campaign_rows.values() if row.dirty),
            key=lambda row: row.campaign_id,
        )
        if dirty:
            self._db.executemany(
                "UPDATE campaigns SET status = CASE WHEN ? = 1 THEN ? ELSE status END,"
                " vouchers = vouchers + ?, redemptions = redemptions + ?,"
                " budget_used = budget_used + ? WHERE campaign_id = ?",
                [
                    (
                        int(r.status != r.read_status),
                        r.status,
                        r.vouchers - r.read_vouchers,
                        r.redemptions - r.read_redemptions,
                        r.budget_used - r.read_budget_used,
                        r.campaign_id,
                    )
                    for r in dirty
                ],
            )
            for row in dirty:
                row.dirty = False
                row.mark_read()

    def _voucher_flushed(self, voucher_id: str, uses: int, gift: int) -> None:
        """Keep a read-ahead voucher row true once its pending uses are written."""
        code = self._voucher_codes.get(voucher_id)
        row = None if code is None else self._vouchers.get(code)
        if code is not None and row is not None:
            balance = None if row[9] is None else row[9] - gift
            self._vouchers[code] = (*row[:8], row[8] + uses, balance, *row[10:])

    def _campaign_row(self, campaign_id: str) -> _CampaignRow | None:
        row = self._campaign_rows.get(campaign_id)
        if row is None:
            select = (
                "SELECT definition, status, vouchers, redemptions, budget_used FROM campaigns"
                " WHERE campaign_id = ?"
            )
            found = self._db.execute(select, (campaign_id,)).fetchone()
            if found is None:
                return None
            row = _CampaignRow(campaign_id, found[0], *found[1:])
            row.mark_read()
            self._campaign_rows[campaign_id] = row
        return row

    def lock_campaign_counters(self, campaign_id: str) -> bool:
        """See LedgerTransaction. Taken as late as possible, just before the append: the lock
        is held to the commit, and every redemption of the campaign waits for it."""
        row = self._campaign_rows.get(campaign_id)
        if self._locks is None or row is None or row.locked:
            return False
        if not _counted(self._campaign(campaign_id, row.definition)):
            return False  # no limit reads its counters: they are added to, never compared
        found = self._db.execute(
            "SELECT status, vouchers, redemptions, budget_used FROM campaigns"
            " WHERE campaign_id = ? FOR UPDATE",
            (campaign_id,),
        ).fetchone()
        row.locked = True
        read = (row.read_status, row.read_vouchers, row.read_redemptions, row.read_budget_used)
        if tuple(found) == read:
            return False
        # What this transaction added so far stays added, on top of the fresh counters.
        row.vouchers += found[1] - row.read_vouchers
        row.redemptions += found[2] - row.read_redemptions
        row.budget_used += found[3] - row.read_budget_used
        if row.status == row.read_status:
            row.status = found[0]
        row.read_status, row.read_vouchers, row.read_redemptions, row.read_budget_used = found
        return True

    def _campaign(self, campaign_id: str, definition: str) -> Campaign:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            campaign = campaign_from_dict(orjson.loads(definition))
            self._campaigns[campaign_id] = campaign
        return campaign

    def _lock(self, kind: str, key: str) -> None:
        """Serialise with other writers deciding on the same (kind, key) (see RowLocks)."""
        if self._locks is not None:
            self._locks.lock(kind, key)

    def _counters(self, event: Event) -> _CampaignRow:
        row = self._campaign_row(event.campaign_id or "")
        if row is None:
            raise LookupError(
                f"{event.event_type} {event.event_id}: no campaign {event.campaign_id!r}"
            )
        row.dirty = True
        return row


def _counted(campaign: Campaign) -> bool:
    """Whether a redemption's checks read the campaign's counters (campaign-wide limits)."""
    return campaign.limits.campaign_total is not None or campaign.limits.budget is not None
