"""Schemathesis against the service's own OpenAPI (docs/openapi.json, what the service serves):
for every operation, generated and hostile requests get a 2xx or a 4xx problem, never a 500;
answers match the documented schemas; and the ledger changes only on a 2xx.

One worker, validation events written before they are answered (PROMO_API_VALIDATION_BUFFER=1),
so that "did this request change the ledger?" is a question about this request alone; limits
high enough that generated requests test the contract rather than the throttles (those have
their own tests in test_api.py). Bounded: a fixed number of examples per operation.

Two of schemathesis's checks do not apply and are left out: `positive_data_acceptance` (that
every schema-valid request is accepted: the core's rules about ids, codes, currencies and
campaign documents go beyond what a JSON schema says, and are answered 422 naming the field),
and `unsupported_method` with `allow_header_conformance` (Litestar answers OPTIONS itself, 204
with the allowed methods, as HTTP has it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_helpers import Server, issue_key
from hypothesis import HealthCheck, settings
from reliability_helpers import read_only
from schemathesis import GenerationMode
from schemathesis.checks import (
    allow_header_conformance,
    positive_data_acceptance,
    unsupported_method,
)
from schemathesis.core.parameters import ParameterLocation

from redemption_core.api.app import openapi_document
from redemption_core.ledger.home import ledger_path

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
EXAMPLES_PER_OPERATION = 25
EXCLUDED = [positive_data_acceptance, unsupported_method, allow_header_conformance]


class Live:
    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.base_url = server.url.removesuffix("/v1")
        self.headers = {"Authorization": f"Bearer {key}"}
        self.path: Path = ledger_path(server.home)

    def last_seq(self) -> int:
        db = read_only(self.path)
        try:
            return db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        finally:
            db.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("schemathesis") / "home"
    limits = {
        "unauthenticated_per_ip": {"rate": 100_000, "burst": 100_000},
        "backoff": {"misses": 1_000_000},
    }
    server = Server(home, workers=1, limits=limits, env={"PROMO_API_VALIDATION_BUFFER": "1"})
    try:
        yield Live(server, issue_key(home, "ADMIN"))
    finally:
        server.stop()


def key_headers(case: schemathesis.Case, live: Live) -> dict[str, str] | None:
    """The key to send: a valid one, unless schemathesis made the headers the invalid part of
    the request (say, no Authorization at all), which is then sent as generated."""
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if headers is not None and headers.mode is GenerationMode.NEGATIVE:
        return None
    return live.headers


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_2xx_or_a_4xx_problem_and_writes_only_on_2xx(
    case: schemathesis.Case, live: Live
) -> None:
    before = live.last_seq()

    response = case.call(base_url=live.base_url, headers=key_headers(case, live))

    after = live.last_seq()
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        [content_type] = response.headers["content-type"]
        assert content_type.startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == response.status_code and problem["code"], problem
        assert after == before, f"a {response.status_code} changed the ledger: {problem}"
    case.validate_response(response, excluded_checks=EXCLUDED)
