"""The ledger port: what the engine needs from an event store, independent of the database.

SqliteLedgerStore (sqlite.py) is the embedded adapter, PostgresLedgerStore (postgres.py) the
one for several machines; both hand out the same ProjectionTransaction (projection/), and
nothing above this interface knows which one it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from redemption_core.domain.catalogue import Product, ProductFacts
from redemption_core.domain.events import Event
from redemption_core.domain.state import (
    ApiKeyState,
    CampaignState,
    CustomerState,
    HoldState,
    OpenHolds,
    OrderState,
    RedemptionState,
    VoucherState,
)
from redemption_core.ledger.dialect import Dialect


class WriteConflict(Exception):
    """The database gave up a write transaction to let a concurrent one go on (a deadlock or a
    serialisation failure); nothing of it was written, and running it again is safe."""


class RowLocks(ABC):
    """How an adapter whose writers run side by side serialises the ones deciding on the same
    things (see LedgerStore.write's `concurrent`). The projection's reads say what they decide
    on; vouchers and counted campaigns are locked with the rows they read (FOR UPDATE)."""

    @abstractmethod
    def lock(self, kind: str, key: str) -> None:
        """Hold a lock on (kind, key), e.g. ("customer", id), until the transaction ends."""

    @abstractmethod
    def lock_many(self, kind: str, keys: Sequence[str]) -> None:
        """`lock` for every key, in one round trip, in an order every writer uses."""


class LedgerTransaction(ABC):
    """Reads of the projection and appends of events, inside one transaction.

    `append` updates the projection in the same transaction, so that state and ledger can
    never disagree about a committed event. `dialect` names the SQL of `query`.
    """

    dialect: Dialect

    @abstractmethod
    def append(self, event: Event) -> None:
        """Append one event and apply it to the projection (the store assigns its seq)."""

    def append_many(self, events: Sequence[Event]) -> None:
        for event in events:
            self.append(event)

    def append_row(self, event: Event, row: Sequence[Any]) -> None:
        """Append an event whose events-table row (ledger/rows.event_row) is already made, as
        an import has it from the file's text; an adapter may ignore the row."""
        self.append(event)

    @abstractmethod
    def flush(self) -> None:
        """Write what this transaction buffers (it stays uncommitted); reads see it anyway."""

    @abstractmethod
    def main_campaign_exists(self, main_campaign_id: str) -> bool: ...

    @abstractmethod
    def campaign_state(self, campaign_id: str) -> CampaignState | None: ...

    def lock_campaign_counters(self, campaign_id: str) -> bool:
        """Lock a campaign's counters for the rest of the transaction, where writers run side
        by side and campaign_state may have read them unlocked (a redemption that passed its
        checks asks, just before it appends). True when they moved since they were read:
        the caller checks again against the fresh campaign_state. Counters only grow while
        concurrent writers run, so a refusal on the counters read first stands."""
        return False

    def prepare_redemptions(
        self, codes: Sequence[str], customer_ids: Sequence[str], keys: Sequence[str]
    ) -> None:
        """Read ahead, and lock, what a batch of redemptions will ask about (an adapter whose
        every read is a round trip to a server saves them); nothing changes otherwise."""
        return None

    @abstractmethod
    def voucher_by_code(self, code: str) -> VoucherState | None: ...

    @abstractmethod
    def voucher_by_id(self, voucher_id: str) -> VoucherState | None: ...

    @abstractmethod
    def existing_codes(self, codes: Sequence[str]) -> set[str]: ...

    @abstractmethod
    def existing_ids(self, table: str, ids: Sequence[str]) -> set[str]:
        """Which of these ids exist in `orders` or `customers`."""

    @abstractmethod
    def redemption(self, redemption_id: str) -> RedemptionState | None: ...

    @abstractmethod
    def redemption_exists(self, redemption_id: str) -> bool:
        """Whether a redemption was recorded, cheaply (no flush of what is pending)."""

    @abstractmethod
    def order_exists(self, order_id: str) -> bool:
        """Whether an order was recorded, cheaply (no flush of what is pending)."""

    @abstractmethod
    def idempotency_key_used(self, key: str) -> bool: ...

    @abstractmethod
    def hold(self, session_id: str) -> HoldState | None: ...

    @abstractmethod
    def idempotent_event(self, key: str) -> tuple[str, Event] | None:
        """The request hash and the event first recorded under this idempotency key."""

    @abstractmethod
    def customer(self, customer_id: str) -> CustomerState | None: ...

    @abstractmethod
    def order(self, order_id: str) -> OrderState | None: ...

    @abstractmethod
    def open_redemptions_of_order(self, order_id: str) -> list[RedemptionState]:
        """Redemptions on this order that are not rolled back."""

    @abstractmethod
    def segment_definition(self, segment_id: str) -> dict | None: ...

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
        """A read-only query in the adapter's SQL dialect (segment evaluation, reports)."""

    # Distribution (see distribution.py).
    @abstractmethod
    def campaign_ids(self) -> list[str]: ...

    @abstractmethod
    def frequency_cap(self) -> tuple[int, int] | None:
        """(max offers, per days), or None when no cap is set."""

    @abstractmethod
    def offers_since(self, customer_id: str, since: datetime) -> int: ...

    @abstractmethod
    def recently_triggered(
        self, campaign_id: str, customer_ids: Sequence[str], since: datetime
    ) -> set[str]:
        """Which of these customers a campaign's trigger matched after `since`."""

    @abstractmethod
    def audience_decided(self, campaign_id: str, customer_ids: Sequence[str]) -> set[str]:
        """Which of these customers a promotion has already decided about."""

    @abstractmethod
    def audience_outcomes(self, campaign_id: str, customer_id: str) -> list[str]:
        """The promotion's decisions about this customer (published, not_sent, held_out,
        skipped), one per voucher sent or decided."""

    @abstractmethod
    def delivery_status(self, voucher_id: str) -> str | None:
        """The latest delivery outcome of an offered voucher (delivered, failed, not_sent)."""

    @abstractmethod
    def trigger_owner(self, trigger_id: str) -> tuple[str, str] | None:
        """(campaign_id, customer_id) of an autopilot trigger."""

    @abstractmethod
    def pending_triggers(self, campaign_id: str, *, limit: int) -> list[tuple[str, str]]:
        """(trigger_id, customer_id) of pending triggers with no voucher yet, oldest first."""

    @abstractmethod
    def undelivered_offers(self, campaign_id: str) -> list[tuple[str, str, str, str, str | None]]:
        """(voucher_id, code, customer_id, channel, trigger_id) published but never delivered."""

    @abstractmethod
    def failed_deliveries(
        self, campaign_id: str | None
    ) -> list[tuple[str, str, str, str, str, str | None]]:
        """(campaign_id, voucher_id, code, customer_id, channel, trigger_id), last attempt failed."""

    # Facts the rules ask about a customer (see rules.Facts).
    @abstractmethod
    def customer_campaign_redemptions(self, campaign_id: str, customer_id: str) -> int: ...

    @abstractmethod
    def customer_has_orders(self, customer_id: str) -> bool: ...

    @abstractmethod
    def customer_in_any_segment(
        self, customer_id: str, segments: frozenset[str], now: datetime
    ) -> bool: ...

    @abstractmethod
    def holds_by_others(self, voucher_id: str, session_id: str | None, now: datetime) -> int: ...

    # The product catalogue (see catalogue.py).
    @abstractmethod
    def product_facts(self, product_ids: frozenset[str]) -> Mapping[str, ProductFacts]:
        """Category, brand and collections of those of these products the catalogue knows."""

    @abstractmethod
    def product(self, product_id: str) -> Product | None: ...

    @abstractmethod
    def customer_attribute_types(self) -> dict[str, str]:
        """The merchant's declared customer attributes: name -> `numeric` or `categorical`."""

    # Access and abuse limits (see engine/access.py and engine/guard.py).
    @abstractmethod
    def open_holds(
        self,
        customer_id: str | None,
        device_hash: str | None,
        ip_hash: str | None,
        now: datetime,
    ) -> OpenHolds:
        """Holds not yet expired nor consumed, per customer, device and IP."""

    @abstractmethod
    def api_key_by_hash(self, key_hash: str) -> ApiKeyState | None: ...

    @abstractmethod
    def api_keys(self) -> list[ApiKeyState]: ...

    @abstractmethod
    def voucher_for_customer(self, campaign_id: str, customer_id: str) -> VoucherState | None:
        """The campaign's voucher this customer holds, else an unpublished enabled one."""


class LedgerStore(ABC):
    dialect: Dialect

    @abstractmethod
    def write(self, *, concurrent: bool = False) -> AbstractContextManager[LedgerTransaction]:
        """A write transaction: committed on success, rolled back on error.

        By default it is exclusive: no other write runs beside it, as if the ledger had one
        writer. `concurrent=True` is for a caller whose decisions rest only on the reads that
        lock what they read (idempotent_event, voucher_by_code, campaign_state, the customer
        facts of the rules): an adapter may then run it beside other concurrent writes, and
        raise WriteConflict when the database gives it up (the caller runs it again).
        """

    @abstractmethod
    def read(self) -> AbstractContextManager[LedgerTransaction]:
        """A consistent read snapshot that never blocks writers."""

    def batch(self) -> AbstractContextManager[None]:
        """Writes inside share one commit, each still all-or-nothing on its own.

        For work that is rebuilt from its input if lost (a simulation, an import): fewer
        commits, and a page changed by many writes is written out once. An adapter without
        it commits every write alone, which is always correct.
        """
        return nullcontext()

    @abstractmethod
    def events(self, after_seq: int = 0, limit: int | None = None) -> Iterator[Event]:
        """Events in sequence order, starting after `after_seq`."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the ledger is, for messages (a path, or a URL without its password)."""

    @abstractmethod
    def close(self) -> None: ...
