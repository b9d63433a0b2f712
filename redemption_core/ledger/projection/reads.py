"""The reads the engine and distribution ask of the projection inside a transaction; each
adds what the write-behind buffers still hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from redemption_core.domain.campaigns import CampaignStatus, item_filter_from_dict
from redemption_core.domain.catalogue import Product, ProductFacts
from redemption_core.domain.events import Event
from redemption_core.domain.invariants import REFUND_CAUSE
from redemption_core.domain.parsing import from_iso, iso
from redemption_core.domain.segments import segment_from_dict
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
from redemption_core.ledger.projection.base import (
    SELECT_VOUCHER,
    VOUCHER_KINDS,
    ProjectionBase,
)
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row
from redemption_core.ledger.segment_query import compile_members_query


class ProjectionReads(ProjectionBase):
    def main_campaign_exists(self, main_campaign_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM main_campaigns WHERE main_campaign_id = ?", (main_campaign_id,)
        ).fetchone()
        return row is not None

    def campaign_state(self, campaign_id: str) -> CampaignState | None:
        row = self._campaign_row(campaign_id)
        if row is None:
            return None
        campaign = self._campaign(campaign_id, row.definition)
        return CampaignState(
            campaign, CampaignStatus(row.status), row.redemptions, row.budget_used, row.vouchers
        )

    def campaign_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT campaign_id FROM campaigns ORDER BY 1")]

    def prepare_redemptions(
        self, codes: Sequence[str], customer_ids: Sequence[str], keys: Sequence[str]
    ) -> None:
        """See LedgerTransaction: with side-by-side writers, lock and read in a few round
        trips what a batch asks one by one (idempotency keys, vouchers, customers), in the
        order every writer locks them (keys, vouchers, customers, campaign counters)."""
        if self._locks is None:
            return
        keys = sorted(set(keys))
        if keys:
            self._locks.lock_many("idempotency", keys)
            found = self._in("SELECT idempotency_key FROM idempotency WHERE idempotency_key", keys)
            self._known_keys.update({key: key in found for key in keys})
        wanted = sorted(set(codes) - set(self._vouchers))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self._db.execute(
                f"{SELECT_VOUCHER} WHERE code IN ({', '.join('?' * len(chunk))})"
                " ORDER BY voucher_id FOR UPDATE",
                chunk,
            ).fetchall()
            self._vouchers.update({code: None for code in chunk})
            self._vouchers.update({row[1]: tuple(row) for row in rows})
            self._voucher_codes.update({row[0]: row[1] for row in rows})
        self._read_customers(customer_ids)

    def _read_customers(self, customer_ids: Sequence[str]) -> None:
        """Lock customers and read what the rules ask about them (their uses per campaign,
        whether they have orders): the facts cannot change under the lock, so a second check
        of the same request (lock_campaign_counters) needs no round trip."""
        assert self._locks is not None
        customers = sorted(set(customer_ids) - self._customers_locked)
        if not customers:
            return
        self._locks.lock_many("customer", customers)
        self._customers_locked.update(customers)
        for start in range(0, len(customers), 500):
            chunk = customers[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            # Both sent before either is read: one round trip (the lock's wait included).
            uses = self._db.execute(
                "SELECT customer_id, campaign_id, redemptions FROM customer_campaigns"
                f" WHERE customer_id IN ({marks})",
                chunk,
            )
            ordered = self._db.execute(
                f"SELECT customer_id FROM customers WHERE orders > 0 AND customer_id IN ({marks})",
                chunk,
            )
            for customer, campaign, count in uses.fetchall():
                self._customer_campaigns[(customer, campaign)] = count
            with_orders = {row[0] for row in ordered.fetchall()}
            for customer in chunk:
                self._has_orders[customer] = customer in with_orders

    def _in(self, sql: str, values: Sequence[str]) -> set[str]:
        return self._found(sql, (), values)

    def voucher_by_code(self, code: str) -> VoucherState | None:
        if code in self._vouchers:  # read ahead, locked (prepare_redemptions)
            return self._voucher(self._vouchers[code])
        # Writers side by side lock the voucher they decide on: uses, holds, gift balance.
        lock = " FOR UPDATE" if self._locks is not None else ""
        return self._voucher(
            self._db.execute(f"{SELECT_VOUCHER} WHERE code = ?{lock}", (code,)).fetchone()
        )

    def voucher_by_id(self, voucher_id: str) -> VoucherState | None:
        lock = " FOR UPDATE" if self._locks is not None else ""
        return self._voucher(
            self._db.execute(
                f"{SELECT_VOUCHER} WHERE voucher_id = ?{lock}", (voucher_id,)
            ).fetchone()
        )

    def _voucher(self, row: Sequence[Any] | None) -> VoucherState | None:
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
            created_at=from_iso(row[11]),
            applies_to=item_filter_from_dict(orjson.loads(row[12]), "applies_to")
            if row[12]
            else None,
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

    def _flush_for_order(self, order_id: str) -> None:
        """Write what is pending only if it concerns this order (refunds and cancellations
        in an import come between thousands of orders still waiting in the buffers)."""
        if order_id in self._pending_order_ids or any(
            row[4] == order_id for row in self._redemption_rows
        ):
            self._flush_projection()

    def redemption(self, redemption_id: str) -> RedemptionState | None:
        if redemption_id in self._pending_redemption_ids:
            self._flush_projection()
        row = self._db.execute(
            "SELECT redemption_id, voucher_id, campaign_id, customer_id, order_id, discount,"
            " gift_amount, rolled_back_at, redeemed_at, store_id FROM redemptions"
            " WHERE redemption_id = ?",
            (redemption_id,),
        ).fetchone()
        if row is None:
            return None
        return RedemptionState(
            *row[:7], rolled_back=row[7] is not None, redeemed_at=from_iso(row[8]), store_id=row[9]
        )

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
        if self._known_keys.get(key) is False:  # read ahead: not there (and locked)
            return None
        # A concurrent request with the same key waits here for the first one to finish,
        # and then answers from it.
        self._lock("idempotency", key)
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
        self._flush_for_order(order_id)
        row = self._db.execute(
            "SELECT order_id, customer_id, amount, currency, refunded, cancelled_at, ordered_at,"
            " (SELECT CAST(coalesce(sum(discount), 0) AS BIGINT) FROM redemptions r"
            "  WHERE r.order_id = :order"
            "  AND (r.rolled_back_at IS NULL OR r.rollback_cause = :cause)), store_id"
            " FROM orders WHERE order_id = :order",
            {"order": order_id, "cause": REFUND_CAUSE},
        ).fetchone()
        if row is None:
            return None
        return OrderState(
            *row[:5],
            cancelled=row[5] is not None,
            ordered_at=from_iso(row[6]),
            discounts=row[7],
            store_id=row[8],
        )

    def order_exists(self, order_id: str) -> bool:
        """Whether an order was recorded, without flushing the write-behind buffers."""
        if order_id in self._pending_order_ids:
            return True
        row = self._db.execute("SELECT 1 FROM orders WHERE order_id = ?", (order_id,))
        return row.fetchone() is not None

    def redemption_exists(self, redemption_id: str) -> bool:
        """Whether a redemption was recorded, without flushing the write-behind buffers."""
        if redemption_id in self._pending_redemption_ids:
            return True
        row = self._db.execute(
            "SELECT 1 FROM redemptions WHERE redemption_id = ?", (redemption_id,)
        )
        return row.fetchone() is not None

    def open_redemptions_of_order(self, order_id: str) -> list[RedemptionState]:
        self._flush_for_order(order_id)
        rows = self._db.execute(
            "SELECT redemption_id, voucher_id, campaign_id, customer_id, order_id, discount,"
            " gift_amount, store_id FROM redemptions WHERE order_id = ? AND rolled_back_at IS NULL"
            " ORDER BY redeemed_at",
            (order_id,),
        )
        return [RedemptionState(*row[:7], rolled_back=False, store_id=row[7]) for row in rows]

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
            "SELECT DISTINCT customer_id FROM audience WHERE campaign_id = ? AND customer_id",
            (campaign_id,),
            customer_ids,
        )

    def audience_outcomes(self, campaign_id: str, customer_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT outcome FROM audience WHERE campaign_id = ? AND customer_id = ?",
            (campaign_id, customer_id),
        )
        return [row[0] for row in rows]

    def delivery_status(self, voucher_id: str) -> str | None:
        row = self._db.execute(
            "SELECT status FROM deliveries WHERE voucher_id = ?", (voucher_id,)
        ).fetchone()
        return None if row is None else row[0]

    def trigger_owner(self, trigger_id: str) -> tuple[str, str] | None:
        row = self._db.execute(
            "SELECT campaign_id, customer_id FROM triggers WHERE trigger_id = ?", (trigger_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def idempotency_key_used(self, key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM idempotency WHERE idempotency_key = ?", (key,)
        ).fetchone()
        return row is not None

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
            " WHERE d.status = 'failed' AND (CAST(:campaign AS TEXT) IS NULL"
            " OR d.campaign_id = :campaign) ORDER BY d.updated_at, d.voucher_id",
            {"campaign": campaign_id},
        )
        return [tuple(row) for row in rows]

    def customer_campaign_redemptions(self, campaign_id: str, customer_id: str) -> int:
        key = (customer_id, campaign_id)
        pending = self._customer_uses.get(key, 0)
        if self._locks is not None:  # writers side by side: lock the customer, read ahead
            self._read_customers([customer_id])
            return pending + self._customer_campaigns.get(key, 0)
        row = self._db.execute(
            "SELECT redemptions FROM customer_campaigns WHERE customer_id = ? AND campaign_id = ?",
            key,
        ).fetchone()
        return pending + (0 if row is None else row[0])

    def customer_has_orders(self, customer_id: str) -> bool:
        """An order that stands (recorded, not cancelled) or a redemption that stands."""
        if customer_id in self._pending_customers or customer_id in self._customer_orders:
            return True
        if self._locks is not None:  # writers side by side: lock the customer, read ahead
            self._read_customers([customer_id])
            return self._has_orders[customer_id] or any(
                uses > 0
                for (customer, _), uses in self._customer_campaigns.items()
                if customer == customer_id
            )
        row = self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = :customer AND orders > 0)"
            " OR EXISTS (SELECT 1 FROM customer_campaigns WHERE customer_id = :customer"
            " AND redemptions > 0)",
            {"customer": customer_id},
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
            sql, params = compile_members_query(
                segment_from_dict(definition), one_customer=True, dialect=self.dialect
            )
            if self.query(sql, {**params, "at": iso(now), "customer": customer_id}):
                return True
        return False

    def query(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
        self._flush_projection()
        return self._db.execute(sql, params).fetchall()

    def open_holds(
        self,
        customer_id: str | None,
        device_hash: str | None,
        ip_hash: str | None,
        now: datetime,
    ) -> OpenHolds:
        counts = []
        for kind, column, value in (
            ("customer", "customer_id", customer_id),
            ("device", "device_hash", device_hash),
            ("ip", "ip_hash", ip_hash),
        ):
            if value is None:
                counts.append(0)
                continue
            # Writers side by side: two holds of different vouchers by one customer, device
            # or IP would each count the other's as not there yet.
            self._lock(kind, value)
            counts.append(
                self._db.execute(
                    f"SELECT count(*) FROM holds WHERE {column} = ? AND expires_at > ?"
                    " AND consumed = 0",
                    (value, iso(now)),
                ).fetchone()[0]
            )
        return OpenHolds(*counts)

    def api_key_by_hash(self, key_hash: str) -> ApiKeyState | None:
        row = self._db.execute(f"{SELECT_API_KEY} WHERE key_hash = ?", (key_hash,)).fetchone()
        return None if row is None else _api_key(row)

    def api_keys(self) -> list[ApiKeyState]:
        return [_api_key(row) for row in self._db.execute(f"{SELECT_API_KEY} ORDER BY issued_at")]

    def voucher_for_customer(self, campaign_id: str, customer_id: str) -> VoucherState | None:
        """The campaign's voucher this customer holds, else an unpublished enabled one."""
        row = (
            self._db.execute(
                "SELECT code FROM vouchers WHERE campaign_id = ? AND holder_id = ? LIMIT 1",
                (campaign_id, customer_id),
            ).fetchone()
            or self._db.execute(
                "SELECT code FROM vouchers WHERE campaign_id = ? AND holder_id IS NULL"
                " AND disabled = 0 LIMIT 1",
                (campaign_id,),
            ).fetchone()
        )
        return None if row is None else self.voucher_by_code(row[0])

    def holds_by_others(self, voucher_id: str, session_id: str | None, now: datetime) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM holds WHERE voucher_id = ? AND consumed = 0"
            " AND expires_at > ? AND session_id IS DISTINCT FROM CAST(? AS TEXT)",
            (voucher_id, iso(now), session_id),
        ).fetchone()
        return row[0]

    # -- the product catalogue -------------------------------------------------------------
    def product_facts(self, product_ids: frozenset[str]) -> dict[str, ProductFacts]:
        found: dict[str, ProductFacts] = {}
        ids = sorted(product_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for product_id, category, brand, collections in self._db.execute(
                "SELECT product_id, category, brand, collections FROM products"
                f" WHERE product_id IN ({marks})",
                chunk,
            ):
                found[product_id] = ProductFacts(
                    category, brand, frozenset(orjson.loads(collections))
                )
        return found

    def product(self, product_id: str) -> Product | None:
        row = self._db.execute(
            "SELECT product_id, name, category, brand, price, currency, collections"
            " FROM products WHERE product_id = ?",
            (product_id,),
        ).fetchone()
        if row is None:
            return None
        return Product(*row[:6], collections=frozenset(orjson.loads(row[6])))

    def customer_attribute_types(self) -> dict[str, str]:
        row = self._db.execute(
            "SELECT value FROM settings WHERE key = 'customer_attribute_types'"
        ).fetchone()
        return {} if row is None else dict(orjson.loads(row[0]))


SELECT_API_KEY = "SELECT key_id, kind, role, stores, name, issued_at, revoked_at FROM api_keys"


def _api_key(row: Sequence[Any]) -> ApiKeyState:
    return ApiKeyState(
        key_id=row[0],
        kind=row[1],
        role=row[2],
        stores=tuple(orjson.loads(row[3])),
        name=row[4],
        issued_at=from_iso(row[5]),
        revoked_at=from_iso(row[6]) if row[6] else None,
    )
