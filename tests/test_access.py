"""Keys and roles (domain/access.py, engine/access.py): who may do what, keys issued and revoked
as ledger events and kept only as hashes, and the actor recorded on what a key does."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import cart, engine_at, events, order, redeem, standalone
from reliability_helpers import create_ledger, downgrade_ledger, standalone_def

from redemption_core.domain.access import (
    CLIENT_PERMISSIONS,
    PERMISSIONS,
    Forbidden,
    KeyKind,
    Operation,
    Principal,
    Role,
    Unauthenticated,
    acting_as,
    check,
    check_store,
    key_terms,
)
from redemption_core.domain.errors import Conflict, InvalidInput, NotFound
from redemption_core.domain.events import EventType
from redemption_core.domain.orders import RequestContext
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine
from redemption_core.imports.ledger_schema import ImportRefused, import_events
from redemption_core.ledger.home import ledger_path
from redemption_core.ledger.verify import verify_ledger


def principal(role: Role | None, *, stores: frozenset[str] = frozenset()) -> Principal:
    kind = KeyKind.CLIENT if role is None else KeyKind.SERVER
    return Principal("key_test", kind, role, stores)


def test_admin_may_do_everything_and_viewer_only_reads() -> None:
    assert all(principal(Role.ADMIN).may(op) for op in Operation)
    assert {op for op in Operation if principal(Role.VIEWER).may(op)} == {
        Operation.CAMPAIGNS_READ,
        Operation.VOUCHERS_READ,
        Operation.CUSTOMERS_READ,
        Operation.SEGMENTS_READ,
        Operation.LEDGER_READ,
    }


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        (Role.MERCHANT, Operation.REDEEM, Operation.CAMPAIGNS_WRITE),
        (Role.MERCHANT, Operation.ORDERS_WRITE, Operation.CUSTOMERS_WRITE),
        (Role.USER, Operation.CAMPAIGNS_WRITE, Operation.REDEEM),
        (Role.USER, Operation.CUSTOMERS_WRITE, Operation.ROLLBACK),
        (Role.ANALYST, Operation.REPORTS_READ, Operation.REVIEWS_WRITE),
        (Role.REVIEWER, Operation.REVIEWS_WRITE, Operation.VALIDATE),
    ],
)
def test_each_role_is_allowed_its_operations_and_refused_the_others(
    role: Role, allowed: Operation, refused: Operation
) -> None:
    check(principal(role), allowed)

    with pytest.raises(Forbidden) as refusal:
        check(principal(role), refused)
    assert refusal.value.field == "authorization"
    assert str(role) in str(refusal.value)


def test_a_client_side_key_may_only_validate_and_publish_to_itself() -> None:
    client = principal(None)

    assert {op for op in Operation if client.may(op)} == set(CLIENT_PERMISSIONS)
    assert {Operation.VALIDATE, Operation.PUBLISH_SELF} == CLIENT_PERMISSIONS
    assert not client.may(Operation.VALIDATE_HOLD)


def test_every_role_has_its_permissions_listed_once() -> None:
    assert set(PERMISSIONS) == set(Role)


def test_a_key_limited_to_stores_acts_only_there_and_must_say_where() -> None:
    merchant = principal(Role.MERCHANT, stores=frozenset({"s-1", "s-2"}))

    check_store(merchant, "s-1")
    check_store(principal(Role.MERCHANT), None)  # unlimited: anywhere, or nowhere said
    with pytest.raises(Forbidden, match="s-3"):
        check_store(merchant, "s-3")
    with pytest.raises(Forbidden) as missing:
        check_store(merchant, None)
    assert missing.value.field == "context.store_id"


@pytest.mark.parametrize(
    ("role", "kind", "stores", "field"),
    [
        ("OWNER", "server", [], "role"),
        (None, "server", [], "role"),
        ("ADMIN", "client", [], "role"),
        ("ADMIN", "browser", [], "kind"),
        ("USER", "server", ["s-1"], "stores"),
        ("MERCHANT", "server", ["s 1"], "stores[0]"),
    ],
)
def test_key_terms_refuse_what_makes_no_sense_naming_the_field(
    role: object, kind: str, stores: list[str], field: str
) -> None:
    with pytest.raises(InvalidInput) as refusal:
        key_terms(role, kind, stores, "")

    assert refusal.value.field == field


def test_a_key_is_issued_as_a_ledger_event_that_keeps_only_its_hash(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    issued = engine.issue_key("MERCHANT", stores=["s-1"], name="till 7")

    [event] = events(engine, EventType.API_KEY_ISSUED)
    assert issued.token.startswith("sk_") and len(issued.token) > 40
    assert event.payload["key_id"] == issued.key_id
    assert event.payload["role"] == "MERCHANT" and event.payload["stores"] == ["s-1"]
    ledger = Path(engine.store.path).read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("ledger.sqlite-*")
    )
    assert issued.token.encode() not in ledger
    assert issued.token[3:].encode() not in ledger
    assert engine.authenticate(issued.token) == issued.principal


def test_a_revoked_key_no_longer_authenticates_and_stays_in_the_ledger(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    issued = engine.issue_key("VIEWER")
    engine.authenticate(issued.token)

    engine.revoke_key(issued.key_id, reason="leaked")

    with pytest.raises(Unauthenticated):
        engine.authenticate(issued.token)
    with pytest.raises(Conflict):
        engine.revoke_key(issued.key_id)
    with pytest.raises(NotFound):
        engine.revoke_key("key_unknown")
    [key] = engine.api_keys()
    assert key.revoked_at is not None
    assert [e.event_type for e in events(engine, EventType.API_KEY_REVOKED)] == [
        EventType.API_KEY_REVOKED
    ]


@pytest.mark.parametrize("token", ["", "sk_nope", "x" * 500, "sk_\u00e9", None])
def test_no_key_a_wrong_key_or_junk_is_unauthenticated(tmp_path: Path, token: object) -> None:
    engine = engine_at(tmp_path)
    engine.issue_key("ADMIN")

    with pytest.raises(Unauthenticated) as refusal:
        engine.authenticate(token)

    assert refusal.value.field == "authorization"


def test_what_a_key_does_is_recorded_with_it_as_the_actor(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)

    with acting_as("key_till7"):
        engine.set_voucher_enabled(code, False, note="checking")
        validation = engine.validate(code, order(), customer_id="c-1")
    redeemed = engine.redeem(RedeemRequest(code, order(), actor="key_till8"))
    by_operator = redeem(engine, code)
    engine.flush()

    payloads = {e.event_id: e.payload for e in events(engine)}
    [disabled] = events(engine, EventType.VOUCHER_DISABLED)
    assert disabled.payload["actor"] == "key_till7"
    assert payloads[validation.event_id]["actor"] == "key_till7"
    assert payloads[redeemed.event_id]["actor"] == "key_till8"
    assert "actor" not in payloads[by_operator.event_id]


def test_key_events_are_never_imported_from_another_system(tmp_path: Path) -> None:
    source = engine_at(tmp_path / "source")
    source.issue_key("ADMIN")
    rows = [
        {
            "event_id": e.event_id,
            "event_type": str(e.event_type),
            "occurred_at": e.occurred_at.isoformat(),
            "payload": e.payload,
        }
        for e in events(source)
    ]
    target = engine_at(tmp_path / "target")

    with pytest.raises(ImportRefused) as refused:
        import_events(target, rows)

    assert refused.value.errors[0].field == "event_type"
    assert target.api_keys() == []


def test_a_ledger_of_schema_1_is_migrated_and_its_holds_and_redemptions_filled_in(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("old", "OLD10", limits={"per_customer": 5})])
    with RedemptionEngine.open(home) as engine:
        engine.validate(
            "OLD10",
            cart(),
            customer_id="c-1",
            hold_seconds=600,
        )
        engine.redeem(
            RedeemRequest(
                "OLD10", order(), customer_id="c-1", context=RequestContext(store_id="store-9")
            )
        )
    downgrade_ledger(path, 1)

    with RedemptionEngine.open(home) as engine, engine.store.read() as tx:
        held = tx.open_holds("c-1", None, None, engine.now())
        [(store,)] = tx.query("SELECT store_id FROM redemptions", ())

    assert held.by_customer == 1
    assert store == "store-9"
    assert verify_ledger(ledger_path(home)).clean
