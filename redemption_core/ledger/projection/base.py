"""What the projection shares: the write-behind buffers and their flush, the campaign
counters, and appending events.

The projection is written once against `self._db`, a DB-API connection whose `execute`
returns a cursor and which has `executemany`, with `?` and `:name` parameters. The adapters
(sqlite.py) own connections, transactions and locks; they hand a connection in.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redemption_core.domain.campaigns import Campaign, VoucherKind
from redemption_core.domain.events import Event
from redemption_core.domain.parsing import remember_iso
from redemption_core.ledger.rows import INSERT_EVENT, event_row
from redemption_core.ledger.store import LedgerTransaction

# Profile fields a customer_updated event may change (columns of `customers`).
CUSTOMER_UPDATABLE = (
    "birthday", "anniversary", "attributes", "metadata",
    "email_hash", "email_masked", "phone_hash", "phone_masked",
)  # fmt: skip
OFFER_SOURCES = ("promotion", "autopilot")  # publications that count as offers
VOUCHER_KINDS = {kind.value: kind for kind in VoucherKind}
SELECT_VOUCHER = (
    "SELECT voucher_id, code, campaign_id, kind, holder_id, disabled, published_at,"
    " accepted_at, redemptions, gift_balance, held_until, created_at, applies_to"
    " FROM vouchers LEFT JOIN voucher_contents USING (voucher_id)"
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


class ProjectionBase(LedgerTransaction):
    def __init__(self, connection: Any, campaigns: dict[str, Campaign]) -> None:
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
                " first_order_at = coalesce(min(first_order_at, ?), ?),"
                " last_order_at = max(coalesce(last_order_at, ''), ?) WHERE customer_id = ?",
                [
                    (orders, spend, first, first, last, customer)
                    for customer, (orders, spend, first, last) in self._customer_orders.items()
                ],
            )
            self._order_rows, self._order_line_rows, self._customer_orders = [], [], {}
            self._pending_order_ids = set()
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
                "INSERT INTO redemptions (redemption_id, voucher_id, campaign_id, customer_id,"
                " order_id, discount, gift_amount, redeemed_at, store_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._redemption_rows,
            )
            self._redemption_rows = []
            self._pending_redemption_ids = set()
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
