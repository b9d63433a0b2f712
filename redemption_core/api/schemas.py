"""The API's request and response bodies: msgspec structs, which are also its OpenAPI schema.

They check JSON types only (and refuse unknown fields); every rule about values (ids, codes,
amounts, currencies, sizes) is the core's, applied when the route builds the core's objects,
so the API refuses exactly what the engine refuses, naming the same fields.
"""

from __future__ import annotations

from typing import Any

import msgspec

from redemption_core.domain.orders import Order, OrderItem, RequestContext


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    pass


class ItemIn(Strict):
    product_id: str
    unit_price: int
    quantity: int = 1
    category: str | None = None


class OrderIn(Strict):
    currency: str
    amount: int | None = None  # default: the items' sum
    id: str | None = None
    items: list[ItemIn] = []

    def to_order(self) -> Order:
        items = tuple(
            OrderItem(item.product_id, item.quantity, item.unit_price, item.category)
            for item in self.items
        )
        amount = self.amount if self.amount is not None else sum(i.total for i in items)
        return Order(amount=amount, currency=self.currency, items=items, id=self.id)


class ContextIn(Strict):
    device_id: str | None = None
    ip: str | None = None
    payment_fingerprint: str | None = None
    store_id: str | None = None
    staff_id: str | None = None
    sales_channel: str | None = None

    def to_context(self, *, ip: str | None = None) -> RequestContext:
        return RequestContext(
            device_id=self.device_id,
            ip=ip if ip is not None else self.ip,
            payment_fingerprint=self.payment_fingerprint,
            store_id=self.store_id,
            staff_id=self.staff_id,
            sales_channel=self.sales_channel,
        )


NO_CONTEXT = ContextIn()


class ValidateIn(Strict):
    code: str
    order: OrderIn
    customer_id: str | None = None
    context: ContextIn | None = None
    hold_seconds: int | None = None  # reserve one use for this long (needs a cart)


class RedeemIn(Strict):
    code: str
    order: OrderIn
    customer_id: str | None = None
    context: ContextIn | None = None
    session_id: str | None = None  # of a hold taken by validate
    gift_amount: int | None = None  # gift cards: how much of the balance to use


class RollbackIn(Strict):
    reason: str = ""


class ReasonOut(msgspec.Struct):
    code: str
    family: str
    message: str


class ValidationOut(msgspec.Struct):
    valid: bool
    code: str
    voucher_id: str | None
    campaign_id: str | None
    currency: str
    order_amount: int
    discount: int
    gift_amount: int
    amount_to_pay: int
    reasons: list[ReasonOut]
    event_id: str
    session_id: str | None
    session_expires_at: str | None


class RedemptionOut(msgspec.Struct):
    ok: bool
    redemption_id: str | None
    code: str
    voucher_id: str | None
    campaign_id: str | None
    currency: str
    order_amount: int
    discount: int
    gift_amount: int
    amount_to_pay: int
    reasons: list[ReasonOut]
    event_id: str
    replayed: bool
    rolled_back: bool


class RollbackOut(msgspec.Struct):
    ok: bool
    redemption_id: str
    rollback_id: str | None
    discount: int
    gift_amount: int
    reasons: list[ReasonOut]
    event_id: str
    replayed: bool


class StatusIn(Strict):
    status: str  # draft, active, paused, finished


class GenerateIn(Strict):
    count: int


class ImportRow(Strict):
    code: str
    customer_id: str | None = None
    gift_balance: int | None = None


class ImportIn(Strict):
    rows: list[ImportRow]


class CustomerRef(Strict):
    customer_id: str


class PublishIn(Strict):
    customer_id: str
    channel: str | None = None


class NoteIn(Strict):
    note: str = ""


class TopUpIn(Strict):
    amount: int


class ConsentIn(Strict):
    channel: str  # email, sms, push
    granted: bool
    source: str = "api"


class OrderRecordIn(Strict):
    order: OrderIn
    customer_id: str | None = None
    context: ContextIn | None = None


class RefundIn(Strict):
    amount: int
    reason: str = ""


class CancelIn(Strict):
    reason: str = ""


Document = dict[str, Any]
