"""Errors as RFC 9457 problem details (`application/problem+json`), with the codes and fields
of the core's errors (docs/reason-codes.md lists them): 4xx for the caller's mistakes, and
a 500 only for a fault of ours, which is logged."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from redemption_core.domain.access import Forbidden, Unauthenticated
from redemption_core.domain.errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PromoError,
)
from redemption_core.domain.limits import Throttled

PROBLEM_JSON = "application/problem+json"
LOG = logging.getLogger("promoledger.api")
TITLES = {
    "invalid_input": "Invalid input",
    "idempotency_key_reused": "Idempotency key reused",
    "not_found": "Not found",
    "conflict": "Conflict",
    "unauthenticated": "Unauthenticated",
    "forbidden": "Forbidden",
    "rate_limited": "Too many requests",
    "guessing_backoff": "Too many unknown codes",
    "method_not_allowed": "Method not allowed",
    "unsupported_media_type": "Unsupported media type",
    "internal_error": "Internal error",
}
# msgspec names the place of a type error as `$.order.items[0].quantity`.
_PATH = re.compile(r"at `\$\.?([^`]*)`")


def problem(
    status: int,
    code: str,
    detail: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": TITLES.get(code, code.replace("_", " ").capitalize()),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field is not None:
        body["field"] = field
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def promo_error(_: Request, error: PromoError) -> Response[dict[str, Any]]:
    field = getattr(error, "field", None)
    if isinstance(error, Throttled):
        return problem(429, error.code, str(error), field, {"Retry-After": str(error.retry_after)})
    if isinstance(error, Unauthenticated):
        return problem(401, "unauthenticated", str(error), field, {"WWW-Authenticate": "Bearer"})
    if isinstance(error, Forbidden):
        return problem(403, "forbidden", str(error), field)
    if isinstance(error, IdempotencyKeyReused):
        return problem(422, "idempotency_key_reused", str(error), "Idempotency-Key")
    if isinstance(error, NotFound):
        return problem(404, "not_found", str(error), field)
    if isinstance(error, Conflict):
        return problem(409, "conflict", str(error), field)
    if isinstance(error, InvalidInput):
        return problem(422, "invalid_input", str(error), field)
    return problem(422, "invalid_input", str(error), field)


def validation_error(_: Request, error: ValidationException) -> Response[dict[str, Any]]:
    """The body is not JSON, or not of the types the schema says."""
    messages = [
        str(item.get("message", "")) for item in error.extra or [] if isinstance(item, dict)
    ]
    message = messages[0] if messages else str(error.detail)
    found = _PATH.search(message)
    field = found.group(1) if found and found.group(1) else "body"
    for item in error.extra or []:
        if isinstance(item, dict) and item.get("source") in ("query", "path", "header"):
            field = str(item.get("key") or field)
            message = str(item.get("message") or message)
    return problem(422, "invalid_input", f"{field}: {message}", field)


def http_error(_: Request, error: HTTPException) -> Response[dict[str, Any]]:
    status = error.status_code
    code = {
        404: "not_found",
        405: "method_not_allowed",
        415: "unsupported_media_type",
    }.get(status, "invalid_input" if status < 500 else "internal_error")
    field = "path" if status in (404, 405) else None
    return problem(status, code, str(error.detail), field, dict(error.headers or {}))


def internal_error(request: Request, error: Exception) -> Response[dict[str, Any]]:
    LOG.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(500, "internal_error", "an unexpected error; it was logged")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    PromoError: promo_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}


class Problem(msgspec.Struct):
    """RFC 9457 problem details, with the core's error code and the field to fix."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_JSON,
        description=description,
        generate_examples=False,
    )


# Documented on every route (the OpenAPI is the contract schemathesis checks answers against).
PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    400: _spec("Malformed request"),
    401: _spec("No key, an unknown or a revoked key"),
    403: _spec("The key's role or stores do not allow this"),
    404: _spec("What the request names does not exist"),
    405: _spec("Method not allowed"),
    409: _spec("The request contradicts the ledger"),
    422: _spec("Invalid input (the field is named), or an Idempotency-Key reused"),
    429: _spec("Rate limit spent, or guessing back-off; see Retry-After"),
}
