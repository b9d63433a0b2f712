"""The checkout's routes: validate (with an optional hold), redeem (group-committed by the
writer), roll back. Thin: who asks and may they, the core's objects from the body, the
engine, the answer."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.openapi.spec import Example
from litestar.params import Body, HeaderParameter

from redemption_core.api.schemas import (
    NO_CONTEXT,
    RedeemIn,
    RedemptionOut,
    RollbackIn,
    RollbackOut,
    ValidateIn,
    ValidationOut,
)
from redemption_core.api.service import Service, client_ip
from redemption_core.domain.access import KeyKind, Operation, Principal, check, check_store
from redemption_core.engine.redemption import RedeemRequest

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$",
        description="Retries with the same key and body get the first answer (replayed); "
        "the same key with another body is refused (422).",
    ),
]

ORDER_EXAMPLE = {
    "id": "o-1001",
    "currency": "EUR",
    "items": [{"product_id": "burger", "category": "mains", "quantity": 2, "unit_price": 1290}],
}
CONTEXT_EXAMPLE = {"device_id": "till-7", "ip": "203.0.113.9", "store_id": "store-001"}


def service(request: Request) -> Service:
    return request.app.state.service


def principal_of(request: Request) -> Principal:
    """Who asks: found, charged and allowed before the body was read (app.before_request)."""
    return request.state.principal


@post(
    "/validations",
    status_code=200,
    summary="Would this code apply to this order?",
    description="Records a validation event. With hold_seconds (and a cart) a valid answer "
    "reserves one use for redeem with the returned session_id.",
    tags=["checkout"],
    opt={"operation": Operation.VALIDATE},
)
async def validate(
    request: Request,
    data: Annotated[
        ValidateIn,
        Body(
            examples=[
                Example(
                    summary="A code against a cart",
                    value={
                        "code": "SPRING10",
                        "order": ORDER_EXAMPLE,
                        "customer_id": "c-17",
                        "context": CONTEXT_EXAMPLE,
                    },
                )
            ]
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[ValidationOut]:
    api = service(request)
    principal = principal_of(request)
    given = data.context or NO_CONTEXT
    if principal.kind is KeyKind.CLIENT:
        # A client-side key speaks for a browser or an app: the IP is the peer's, always.
        context = given.to_context(ip=client_ip(request))
    else:
        context = given.to_context()
    check_store(principal, context.store_id)
    order = data.order.to_order()
    if data.hold_seconds is None and idempotency_key is None:
        result = api.reader.validate(
            data.code, order, customer_id=data.customer_id, context=context
        )
        return Response(result.to_dict())
    if data.hold_seconds is not None:
        check(principal, Operation.VALIDATE_HOLD)
    answer, replayed = await api.idempotent(
        principal,
        idempotency_key,
        "validate",
        {"body": _document(data), "context": context},
        lambda engine: engine.validate(
            data.code,
            order,
            customer_id=data.customer_id,
            context=context,
            hold_seconds=data.hold_seconds,
        ).to_dict(),
    )
    return answer_response(answer, replayed)


@post(
    "/redemptions",
    status_code=200,
    summary="Redeem a code: one durable transaction, group-committed with others",
    description="200 with ok=true, or ok=false and the reasons (recorded too); the answer "
    "comes only after the redemption is durable.",
    tags=["checkout"],
    opt={"operation": Operation.REDEEM},
)
async def redeem(
    request: Request,
    data: Annotated[
        RedeemIn,
        Body(
            examples=[
                Example(
                    summary="Redeem at a till",
                    value={
                        "code": "SPRING10",
                        "order": ORDER_EXAMPLE,
                        "customer_id": "c-17",
                        "context": CONTEXT_EXAMPLE,
                    },
                )
            ]
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[RedemptionOut]:
    api = service(request)
    principal = principal_of(request)
    context = (data.context or NO_CONTEXT).to_context()
    check_store(principal, context.store_id)
    result = await api.writer.redeem(
        RedeemRequest(
            code=data.code,
            order=data.order.to_order(),
            customer_id=data.customer_id,
            context=context,
            idempotency_key=api.scoped_key(principal, idempotency_key),
            session_id=data.session_id,
            gift_amount=data.gift_amount,
            actor=principal.actor,
        )
    )
    return Response(result.to_dict())


@post(
    "/redemptions/{redemption_id:str}/rollback",
    status_code=200,
    summary="Give back what a redemption took",
    tags=["checkout"],
    opt={"operation": Operation.ROLLBACK},
)
async def rollback(
    request: Request,
    redemption_id: str,
    data: Annotated[
        RollbackIn, Body(examples=[Example(summary="Order returned", value={"reason": "returned"})])
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response[RollbackOut]:
    api = service(request)
    principal = principal_of(request)
    key = api.scoped_key(principal, idempotency_key)
    engine = api.engine
    result = await api.writer.call(
        lambda: engine.rollback(
            redemption_id, reason=data.reason, idempotency_key=key, principal=principal
        )
    )
    return Response(result.to_dict())


def _document(data: Any) -> Any:
    return msgspec.to_builtins(data)


def answer_response(answer: Any, replayed: bool) -> Response[Any]:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(dict(answer), headers=headers)


ROUTES = [validate, redeem, rollback]
