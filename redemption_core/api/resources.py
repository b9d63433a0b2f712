"""Routes for what the core manages besides the checkout: campaigns, vouchers, customers,
orders, segments, the ledger's events (for integrators who follow them) and health.

Each write runs on the writer thread through `Service.idempotent` (so an Idempotency-Key
makes it safe to retry); reads run on the reading engine. Answers are the JSON documents
below; refusals are problem details (problems.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
import orjson
from litestar import Request, Response, delete, get, patch, post
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter

from redemption_core.api.checkout import IdempotencyKey, answer_response, principal_of, service
from redemption_core.api.schemas import (
    NO_CONTEXT,
    CancelIn,
    ConsentIn,
    CustomerRef,
    Document,
    GenerateIn,
    ImportIn,
    NoteIn,
    OrderRecordIn,
    PublishIn,
    RefundIn,
    StatusIn,
    TopUpIn,
)
from redemption_core.domain import parsing as p
from redemption_core.domain.access import Operation, check_store
from redemption_core.domain.codes import normalize_code
from redemption_core.domain.errors import InvalidInput, NotFound
from redemption_core.domain.parsing import iso
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.reports import event_to_dict

MAX_GENERATE = 10_000  # per request; more in several requests (each its own transaction)
MAX_IMPORT_ROWS = 10_000
MAX_PAGE = 1000

CAMPAIGN_EXAMPLE = {
    "id": "spring",
    "name": "Spring sale",
    "currency": "EUR",
    "status": "active",
    "voucher": {"kind": "unique"},
    "discount": {"type": "percent", "percent_off": 15, "max_discount": 1000},
    "limits": {"per_customer": 1, "budget": 500000},
}


async def _write(
    request: Request,
    _operation: Operation,  # checked before the body is read (opt of the route)
    name: str,
    document: Any,
    act: Any,
    idempotency_key: str | None,
    status: int = 200,
) -> Response[Any]:
    api = service(request)
    answer, replayed = await api.idempotent(
        principal_of(request), idempotency_key, name, document, act
    )
    response = answer_response(answer, replayed)
    response.status_code = status
    return response


def _builtins(data: Any) -> Any:
    return msgspec.to_builtins(data)


# -- campaigns ---------------------------------------------------------------------------------
@post(
    "/campaigns",
    status_code=201,
    tags=["campaigns"],
    summary="Create campaigns",
    opt={"operation": Operation.CAMPAIGNS_WRITE},
)
async def create_campaigns(
    request: Request,
    data: Annotated[
        Document,
        Body(
            description="One campaign, or a main campaign with `campaigns: [...]` (the "
            "document `promo campaign create` reads).",
            examples=[Example(summary="A percent-off campaign", value=CAMPAIGN_EXAMPLE)],
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    return await _write(
        request,
        Operation.CAMPAIGNS_WRITE,
        "campaigns.create",
        data,
        lambda engine: {"created": engine.create_from_definition(data)},
        idempotency_key,
        201,
    )


@get(
    "/campaigns",
    tags=["campaigns"],
    summary="Campaigns with status and counters",
    opt={"operation": Operation.CAMPAIGNS_READ},
)
async def list_campaigns(request: Request) -> list[Document]:
    api = service(request)
    with api.reader.store.read() as tx:
        rows = tx.query(f"{CAMPAIGN_ROW} ORDER BY campaign_id", ())
    return [_campaign(row) for row in rows]


@get(
    "/campaigns/{campaign_id:str}",
    tags=["campaigns"],
    summary="One campaign",
    opt={"operation": Operation.CAMPAIGNS_READ},
)
async def get_campaign(request: Request, campaign_id: str) -> Document:
    api = service(request)
    with api.reader.store.read() as tx:
        rows = tx.query(f"{CAMPAIGN_ROW} WHERE campaign_id = ?", (campaign_id,))
    if not rows:
        raise NotFound("campaign_id", campaign_id)
    return _campaign(rows[0])


CAMPAIGN_ROW = (
    "SELECT campaign_id, status, definition, vouchers, redemptions, budget_used FROM campaigns"
)


def _campaign(row: Any) -> Document:
    return {
        "campaign_id": row[0],
        "status": row[1],
        "definition": orjson.loads(row[2]),
        "vouchers": row[3],
        "redemptions": row[4],
        "discount_given": row[5],
    }


@post(
    "/campaigns/{campaign_id:str}/status",
    status_code=200,
    tags=["campaigns"],
    opt={"operation": Operation.CAMPAIGNS_WRITE},
)
async def set_campaign_status(
    request: Request,
    campaign_id: str,
    data: Annotated[
        StatusIn, Body(examples=[Example(summary="Go live", value={"status": "active"})])
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    def act(engine: RedemptionEngine) -> Document:
        engine.set_campaign_status(campaign_id, data.status)
        return {"campaign_id": campaign_id, "status": data.status}

    return await _write(
        request,
        Operation.CAMPAIGNS_WRITE,
        "campaigns.status",
        {"campaign_id": campaign_id, **_builtins(data)},
        act,
        idempotency_key,
    )


@post(
    "/campaigns/{campaign_id:str}/vouchers",
    status_code=201,
    tags=["vouchers"],
    opt={"operation": Operation.VOUCHERS_WRITE},
)
async def generate_vouchers(
    request: Request,
    campaign_id: str,
    data: Annotated[
        GenerateIn, Body(examples=[Example(summary="100 codes", value={"count": 100})])
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    p.integer(data.count, "count", minimum=1, maximum=MAX_GENERATE)
    return await _write(
        request,
        Operation.VOUCHERS_WRITE,
        "vouchers.generate",
        {"campaign_id": campaign_id, **_builtins(data)},
        lambda engine: {
            "campaign_id": campaign_id,
            "codes": engine.generate_codes(campaign_id, data.count),
        },
        idempotency_key,
        201,
    )


@post(
    "/campaigns/{campaign_id:str}/vouchers/import",
    status_code=201,
    tags=["vouchers"],
    opt={"operation": Operation.VOUCHERS_WRITE},
)
async def import_vouchers(
    request: Request,
    campaign_id: str,
    data: Annotated[
        ImportIn,
        Body(
            examples=[
                Example(
                    summary="Two codes, one published",
                    value={
                        "rows": [{"code": "WB-0001"}, {"code": "WB-0002", "customer_id": "c-17"}]
                    },
                )
            ]
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    if len(data.rows) > MAX_IMPORT_ROWS:
        raise InvalidInput("rows", f"more than {MAX_IMPORT_ROWS} rows")
    rows = [{k: v for k, v in _builtins(row).items() if v is not None} for row in data.rows]
    return await _write(
        request,
        Operation.VOUCHERS_WRITE,
        "vouchers.import",
        {"campaign_id": campaign_id, "rows": rows},
        lambda engine: {
            "campaign_id": campaign_id,
            "imported": engine.import_codes(campaign_id, rows),
        },
        idempotency_key,
        201,
    )


@post(
    "/campaigns/{campaign_id:str}/publications",
    status_code=200,
    tags=["vouchers"],
    summary="A voucher of this campaign for a customer (client-side keys may call it)",
    opt={"operation": Operation.PUBLISH_SELF},
)
async def publish_from_campaign(
    request: Request,
    campaign_id: str,
    data: Annotated[
        CustomerRef, Body(examples=[Example(summary="Me", value={"customer_id": "c-17"})])
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    def act(engine: RedemptionEngine) -> Document:
        code, published = engine.publish_next(campaign_id, data.customer_id)
        return {"campaign_id": campaign_id, "customer_id": data.customer_id, "code": code,
                "published": published}  # fmt: skip

    return await _write(
        request,
        Operation.PUBLISH_SELF,
        "vouchers.publish_next",
        {"campaign_id": campaign_id, **_builtins(data)},
        act,
        idempotency_key,
    )


# -- vouchers ----------------------------------------------------------------------------------
@get(
    "/vouchers/{code:str}",
    tags=["vouchers"],
    summary="A voucher's state",
    opt={"operation": Operation.VOUCHERS_READ},
)
async def get_voucher(request: Request, code: str) -> Document:
    api = service(request)
    with api.reader.store.read() as tx:
        voucher = tx.voucher_by_code(normalize_code(code))
    if voucher is None:
        raise NotFound("code", code)
    return {
        "code": voucher.code,
        "voucher_id": voucher.voucher_id,
        "campaign_id": voucher.campaign_id,
        "kind": str(voucher.kind),
        "customer_id": voucher.holder_id,
        "disabled": voucher.disabled,
        "published_at": _when(voucher.published_at),
        "accepted_at": _when(voucher.accepted_at),
        "redemptions": voucher.redemptions,
        "gift_balance": voucher.gift_balance,
    }


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


@post(
    "/vouchers/{code:str}/publish",
    status_code=200,
    tags=["vouchers"],
    opt={"operation": Operation.VOUCHERS_WRITE},
)
async def publish_voucher(
    request: Request,
    code: str,
    data: Annotated[
        PublishIn, Body(examples=[Example(summary="To c-17", value={"customer_id": "c-17"})])
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    return await _write(
        request,
        Operation.VOUCHERS_WRITE,
        "vouchers.publish",
        {"code": code, **_builtins(data)},
        lambda engine: {
            "code": code,
            "customer_id": data.customer_id,
            "changed": engine.publish(code, data.customer_id, channel=data.channel),
        },
        idempotency_key,
    )


@post(
    "/vouchers/{code:str}/accept",
    status_code=200,
    tags=["vouchers"],
    opt={"operation": Operation.VOUCHERS_WRITE},
)
async def accept_voucher(
    request: Request,
    code: str,
    data: Annotated[
        CustomerRef, Body(examples=[Example(summary="c-17 accepts", value={"customer_id": "c-17"})])
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    return await _write(
        request,
        Operation.VOUCHERS_WRITE,
        "vouchers.accept",
        {"code": code, **_builtins(data)},
        lambda engine: {
            "code": code,
            "customer_id": data.customer_id,
            "changed": engine.accept(code, data.customer_id),
        },
        idempotency_key,
    )


def _enabling(enabled: bool) -> Any:
    action = "enable" if enabled else "disable"

    async def handler(
        request: Request,
        code: str,
        data: Annotated[NoteIn, Body(examples=[Example(summary="Why", value={"note": "fraud"})])],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Document]:
        def act(engine: RedemptionEngine) -> Document:
            engine.set_voucher_enabled(code, enabled, note=data.note)
            return {"code": code, "disabled": not enabled}

        return await _write(
            request,
            Operation.VOUCHERS_WRITE,
            f"vouchers.{action}",
            {"code": code, **_builtins(data)},
            act,
            idempotency_key,
        )

    handler.__name__ = f"{action}_voucher"
    return post(
        f"/vouchers/{{code:str}}/{action}",
        status_code=200,
        tags=["vouchers"],
        opt={"operation": Operation.VOUCHERS_WRITE},
    )(handler)


disable_voucher = _enabling(False)
enable_voucher = _enabling(True)


@post(
    "/vouchers/{code:str}/top-up",
    status_code=200,
    tags=["vouchers"],
    opt={"operation": Operation.VOUCHERS_WRITE},
)
async def top_up_voucher(
    request: Request,
    code: str,
    data: Annotated[TopUpIn, Body(examples=[Example(summary="10.00", value={"amount": 1000})])],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    return await _write(
        request,
        Operation.VOUCHERS_WRITE,
        "vouchers.top_up",
        {"code": code, **_builtins(data)},
        lambda engine: {"code": code, "gift_balance": engine.top_up(code, data.amount)},
        idempotency_key,
    )


# -- customers ---------------------------------------------------------------------------------
@post(
    "/customers",
    status_code=201,
    tags=["customers"],
    summary="Add a customer",
    opt={"operation": Operation.CUSTOMERS_WRITE},
)
async def create_customer(
    request: Request,
    data: Annotated[
        Document,
        Body(
            description="A profile as `promo customer add` reads it (email and phone are "
            "stored only hashed and masked).",
            examples=[
                Example(
                    summary="A customer with email consent",
                    value={"id": "c-17", "email": "ada@example.com", "consent": {"email": True}},
                )
            ],
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    def act(engine: RedemptionEngine) -> Document:
        engine.add_customer(data)
        return {"customer_id": data.get("id")}

    return await _write(
        request, Operation.CUSTOMERS_WRITE, "customers.create", data, act, idempotency_key, 201
    )


@get(
    "/customers/{customer_id:str}",
    tags=["customers"],
    summary="A customer (contacts masked)",
    opt={"operation": Operation.CUSTOMERS_READ},
)
async def get_customer(request: Request, customer_id: str) -> Document:
    api = service(request)
    customer = api.reader.customer(customer_id)
    return {
        "customer_id": customer.customer_id,
        "signup_at": iso(customer.signup_at),
        "birthday": customer.birthday,
        "anniversary": customer.anniversary,
        "attributes": customer.attributes,
        "email": customer.email_masked,
        "phone": customer.phone_masked,
        "consent": customer.consent,
        "orders": customer.orders,
        "spend": customer.spend,
        "last_order_at": _when(customer.last_order_at),
    }


@patch(
    "/customers/{customer_id:str}",
    status_code=200,
    tags=["customers"],
    opt={"operation": Operation.CUSTOMERS_WRITE},
)
async def update_customer(
    request: Request,
    customer_id: str,
    data: Annotated[
        Document,
        Body(
            description="Any of birthday, anniversary, attributes, metadata, email, phone.",
            examples=[Example(summary="A birthday", value={"birthday": "04-21"})],
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    def act(engine: RedemptionEngine) -> Document:
        engine.update_customer(customer_id, data)
        return {"customer_id": customer_id}

    return await _write(
        request,
        Operation.CUSTOMERS_WRITE,
        "customers.update",
        {"customer_id": customer_id, "changes": data},
        act,
        idempotency_key,
    )


@post(
    "/customers/{customer_id:str}/consent",
    status_code=200,
    tags=["customers"],
    opt={"operation": Operation.CUSTOMERS_WRITE},
)
async def set_consent(
    request: Request,
    customer_id: str,
    data: Annotated[
        ConsentIn,
        Body(
            examples=[Example(summary="SMS withdrawn", value={"channel": "sms", "granted": False})]
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    return await _write(
        request,
        Operation.CUSTOMERS_WRITE,
        "customers.consent",
        {"customer_id": customer_id, **_builtins(data)},
        lambda engine: {
            "customer_id": customer_id,
            "changed": engine.set_consent(
                customer_id, data.channel, data.granted, source=data.source
            ),
        },
        idempotency_key,
    )


# -- orders ------------------------------------------------------------------------------------
@post(
    "/orders",
    status_code=201,
    tags=["orders"],
    summary="Record an order",
    opt={"operation": Operation.ORDERS_WRITE},
)
async def record_order(
    request: Request,
    data: Annotated[
        OrderRecordIn,
        Body(
            examples=[
                Example(
                    summary="An order at a store",
                    value={
                        "order": {"id": "o-1001", "currency": "EUR", "amount": 2580},
                        "customer_id": "c-17",
                        "context": {"store_id": "store-001"},
                    },
                )
            ]
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    api = service(request)
    principal = principal_of(request)
    context = (data.context or NO_CONTEXT).to_context()
    check_store(principal, context.store_id)
    order = data.order.to_order()

    def act(engine: RedemptionEngine) -> Document:
        engine.record_order(order, customer_id=data.customer_id, context=context)
        return {"order_id": order.id}

    answer, replayed = await api.idempotent(
        principal,
        idempotency_key,
        "orders.record",
        {"body": _builtins(data), "context": context},
        act,
    )
    response = answer_response(answer, replayed)
    response.status_code = 201
    return response


@post(
    "/orders/{order_id:str}/refund",
    status_code=200,
    tags=["orders"],
    opt={"operation": Operation.ORDERS_WRITE},
)
async def refund_order(
    request: Request,
    order_id: str,
    data: Annotated[RefundIn, Body(examples=[Example(summary="Part", value={"amount": 500})])],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    api = service(request)
    principal = principal_of(request)
    api.reader.check_order_store(principal, order_id)
    answer, replayed = await api.idempotent(
        principal,
        idempotency_key,
        "orders.refund",
        {"order_id": order_id, **_builtins(data)},
        lambda engine: {
            "order_id": order_id,
            "refundable_left": engine.refund_order(order_id, data.amount, reason=data.reason),
        },
    )
    return answer_response(answer, replayed)


@post(
    "/orders/{order_id:str}/cancel",
    status_code=200,
    tags=["orders"],
    opt={"operation": Operation.ORDERS_WRITE},
)
async def cancel_order(
    request: Request,
    order_id: str,
    data: Annotated[CancelIn, Body(examples=[Example(summary="Why", value={"reason": "no show"})])],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    api = service(request)
    principal = principal_of(request)
    api.reader.check_order_store(principal, order_id)
    answer, replayed = await api.idempotent(
        principal,
        idempotency_key,
        "orders.cancel",
        {"order_id": order_id, **_builtins(data)},
        lambda engine: {
            "order_id": order_id,
            "rolled_back": engine.cancel_order(order_id, reason=data.reason),
        },
    )
    return answer_response(answer, replayed)


# -- segments ----------------------------------------------------------------------------------
@post(
    "/segments",
    status_code=201,
    tags=["segments"],
    summary="Define a segment",
    opt={"operation": Operation.SEGMENTS_WRITE},
)
async def define_segment(
    request: Request,
    data: Annotated[
        Document,
        Body(
            examples=[
                Example(
                    summary="Regulars gone quiet",
                    value={
                        "id": "regulars-gone-quiet",
                        "match": "all",
                        "rules": [
                            {"field": "order_count", "op": ">=", "value": 3},
                            {"field": "days_since_last_order", "op": ">=", "value": 30},
                        ],
                    },
                )
            ]
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    def act(engine: RedemptionEngine) -> Document:
        engine.define_segment(data)
        return {"segment_id": data.get("id")}

    return await _write(
        request, Operation.SEGMENTS_WRITE, "segments.define", data, act, idempotency_key, 201
    )


@get(
    "/segments/{segment_id:str}/members",
    tags=["segments"],
    summary="Who is in a segment",
    opt={"operation": Operation.SEGMENTS_READ},
)
async def segment_members(
    request: Request,
    segment_id: str,
    at: Annotated[str | None, Parameter(description="an ISO 8601 instant (default: now)")] = None,
    limit: Annotated[int, Parameter(ge=0, le=MAX_PAGE)] = 100,
) -> Document:
    api = service(request)
    moment = None if at is None else p.timestamp(at, "at")
    members = api.reader.segment_members(segment_id, at=moment)
    return {"segment_id": segment_id, "size": len(members), "members": members[:limit]}


@post(
    "/segments/{segment_id:str}/members",
    status_code=200,
    tags=["segments"],
    opt={"operation": Operation.SEGMENTS_WRITE},
)
async def add_segment_member(
    request: Request,
    segment_id: str,
    data: Annotated[
        CustomerRef, Body(examples=[Example(summary="Add", value={"customer_id": "c-17"})])
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    def act(engine: RedemptionEngine) -> Document:
        engine.set_segment_membership(segment_id, data.customer_id, True)
        return {"segment_id": segment_id, "customer_id": data.customer_id, "member": True}

    return await _write(
        request,
        Operation.SEGMENTS_WRITE,
        "segments.add",
        {"segment_id": segment_id, **_builtins(data)},
        act,
        idempotency_key,
    )


@delete(
    "/segments/{segment_id:str}/members/{customer_id:str}",
    status_code=200,
    tags=["segments"],
    opt={"operation": Operation.SEGMENTS_WRITE},
)
async def remove_segment_member(
    request: Request,
    segment_id: str,
    customer_id: str,
    idempotency_key: IdempotencyKey = None,
) -> Response[Document]:
    def act(engine: RedemptionEngine) -> Document:
        engine.set_segment_membership(segment_id, customer_id, False)
        return {"segment_id": segment_id, "customer_id": customer_id, "member": False}

    return await _write(
        request,
        Operation.SEGMENTS_WRITE,
        "segments.remove",
        {"segment_id": segment_id, "customer_id": customer_id},
        act,
        idempotency_key,
    )


# -- the ledger and health -----------------------------------------------------------------------
@get(
    "/ledger/events",
    tags=["ledger"],
    summary="Events after a sequence number, in order",
    opt={"operation": Operation.LEDGER_READ},
)
async def ledger_events(
    request: Request,
    after: Annotated[int, Parameter(ge=0, le=2**62, description="the last seq you have")] = 0,
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
) -> Document:
    api = service(request)
    events = [event_to_dict(event) for event in api.reader.store.events(after, limit)]
    return {"events": events, "next_after": events[-1]["seq"] if events else after}


@get(
    "/health",
    tags=["health"],
    summary="Is the service up, and how far the ledger is (no key needed)",
    security=[],
)
async def health(request: Request) -> Document:
    api = service(request)
    with api.reader.store.read() as tx:
        [(last,)] = tx.query("SELECT coalesce(max(seq), 0) FROM events", ())
    return {"status": "ok", "last_seq": last}


ROUTES = [
    create_campaigns,
    list_campaigns,
    get_campaign,
    set_campaign_status,
    generate_vouchers,
    import_vouchers,
    publish_from_campaign,
    get_voucher,
    publish_voucher,
    accept_voucher,
    disable_voucher,
    enable_voucher,
    top_up_voucher,
    create_customer,
    get_customer,
    update_customer,
    set_consent,
    record_order,
    refund_order,
    cancel_order,
    define_segment,
    segment_members,
    add_segment_member,
    remove_segment_member,
    ledger_events,
    health,
]
