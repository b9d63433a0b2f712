"""The ASGI application: `create_app()` (uvicorn calls it once per worker process, as a
factory), its OpenAPI document, and the export that keeps docs/openapi.json in step.

Why Litestar on uvicorn: measured on this project's 2-core machine with the same endpoint
shape (a bearer key, a nested JSON order, a JSON answer; docs/architecture.md has the
figures), Litestar with msgspec cost about 160 us of server CPU a request against FastAPI's
230-380, and uvicorn (httptools, uvloop) about as much as granian with less variance, while
already being in the lock.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, Router
from litestar.exceptions import ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.serialization import default_serializer

from redemption_core.api.checkout import ROUTES as CHECKOUT
from redemption_core.api.problems import EXCEPTION_HANDLERS, PROBLEM_RESPONSES
from redemption_core.api.resources import ROUTES as RESOURCES
from redemption_core.api.service import ApiSettings, Service
from redemption_core.domain.access import ACTING
from redemption_core.ledger.home import promo_home

VERSION = "1.0.0"
ROUTES = [*CHECKOUT, *RESOURCES]
for _handler in ROUTES:
    _handler.responses = PROBLEM_RESPONSES
    if _handler.opt.get("operation") is not None:  # every route but health needs a key
        _handler.security = [{"bearer": []}]

OPENAPI_DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def settings_from_env() -> ApiSettings:
    """PROMO_HOME, and PROMO_API_VALIDATION_BUFFER (1: write each validation before answering)."""
    buffer = os.environ.get("PROMO_API_VALIDATION_BUFFER")
    return ApiSettings(
        home=promo_home(),
        validation_buffer=int(buffer) if buffer else ApiSettings.validation_buffer,
    )


async def before_request(request: Request) -> None:
    """Before the body is read: who asks, charged to its rate limits and allowed the route's
    operation (a request without a valid key learns nothing about the body's form), then the
    body's JSON types, strictly (Litestar converts "5001" to 5001; the core would refuse it)."""
    handler = request.route_handler
    operation = handler.opt.get("operation")
    if operation is not None:
        principal = request.app.state.service.authorize(request, operation)
        request.state.principal = principal
        # The request runs in its own task: the engine stamps this key on the events it writes
        # for it (also on the writer's thread, which runs each call in the request's context).
        ACTING.set(principal.actor)
    unknown = sorted(set(request.query_params) - _query_names(handler))
    if unknown:
        raise ValidationException(
            extra=[{"message": "unknown query parameter", "key": unknown[0], "source": "query"}]
        )
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is not None:
        body_type = data.annotation
        body = await request.body()
        try:
            _decoder(body_type).decode(body)
        except msgspec.ValidationError as error:
            raise ValidationException(extra=[{"message": str(error)}]) from None
        except msgspec.DecodeError:
            raise ValidationException(extra=[{"message": "the body is not JSON"}]) from None


NOT_QUERY = frozenset({"request", "data", "idempotency_key"})


@functools.cache
def _query_names(handler: Any) -> frozenset[str]:
    """The query parameters a route declares (the rest of a URL's query is refused, as an
    unknown body field is)."""
    paths = " ".join(handler.paths)
    return frozenset(
        name
        for name in handler.parsed_fn_signature.parameters
        if name not in NOT_QUERY and f"{{{name}:" not in paths
    )


@functools.cache
def _decoder(body_type: Any) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(body_type)


def create_app(settings: ApiSettings | None = None) -> Litestar:
    chosen = settings or settings_from_env()
    holder: dict[str, Service] = {}

    def start(app: Litestar) -> None:
        holder["service"] = app.state.service = Service(chosen)

    def stop(app: Litestar) -> None:
        service = holder.pop("service", None)
        if service is not None:
            service.close()

    return Litestar(
        route_handlers=[Router("/v1", route_handlers=ROUTES)],
        on_startup=[start],
        on_shutdown=[stop],
        before_request=before_request,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(),
        debug=False,
    )


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="promoledger API",
        version=VERSION,
        description=(
            "Campaigns, vouchers, validation, redemption, customers and orders over the "
            "redemption core. Keys are bearer tokens (`promo keys create`); money is in minor "
            "units; errors are RFC 9457 problem details (docs/reason-codes.md)."
        ),
        path="/v1/openapi",
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", description="API key")
            }
        ),
        use_handler_docstrings=False,
    )


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as the service serves it (no ledger is opened)."""
    app = Litestar(
        route_handlers=[Router("/v1", route_handlers=ROUTES)],
        openapi_config=openapi_config(),
    )
    return json.loads(json.dumps(app.openapi_schema.to_schema(), default=default_serializer))


def export_openapi(path: Path = OPENAPI_DOC) -> None:
    path.write_text(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    export_openapi()
