"""Who may do what: one identity model for people and systems.

API keys (and, later, console users) carry one of Voucherify's dashboard roles; a client-side
key (the kind a web page or app embeds, as Voucherify's client keys) may only validate and
publish a voucher to the customer it names. Each door asks `check(principal, operation)`
before it calls the engine, and `check_store` where the act happens in a store, so that the
rules of access are written once, here.

Pure: the principal comes from the ledger's `api_keys` projection (engine/access.py); this
module decides only.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput, PromoError

MAX_STORES_PER_KEY = 1000


class Role(StrEnum):
    ADMIN = "ADMIN"  # everything
    USER = "USER"  # campaigns, vouchers, segments and customers
    MERCHANT = "MERCHANT"  # the checkout: validate, redeem, rollback, orders; its stores only
    ANALYST = "ANALYST"  # reads, and the console's reports
    REVIEWER = "REVIEWER"  # reads, and fraud review decisions
    VIEWER = "VIEWER"  # reads only


class KeyKind(StrEnum):
    SERVER = "server"  # secret, kept on a server; carries a role
    CLIENT = "client"  # embedded in a page or app: validate and publish-to-self only


class Operation(StrEnum):
    CAMPAIGNS_READ = "campaigns.read"
    CAMPAIGNS_WRITE = "campaigns.write"  # create, change status
    VOUCHERS_READ = "vouchers.read"
    VOUCHERS_WRITE = "vouchers.write"  # generate, import, publish, accept, disable, top up
    PUBLISH_SELF = "vouchers.publish_self"  # a voucher of a campaign to the customer named
    VALIDATE = "validate"
    VALIDATE_HOLD = "validate.hold"  # a validation that reserves a use
    REDEEM = "redeem"
    ROLLBACK = "rollback"
    CUSTOMERS_READ = "customers.read"
    CUSTOMERS_WRITE = "customers.write"  # create, update, consent
    ORDERS_WRITE = "orders.write"  # record, refund, cancel
    SEGMENTS_READ = "segments.read"
    SEGMENTS_WRITE = "segments.write"  # define, add and remove members
    LEDGER_READ = "ledger.read"  # the event tail, for integrators who follow events
    REPORTS_READ = "reports.read"  # the console's marts
    REVIEWS_WRITE = "reviews.write"  # fraud review decisions (console)
    KEYS_MANAGE = "keys.manage"  # issue and revoke keys


READS = frozenset(
    {
        Operation.CAMPAIGNS_READ,
        Operation.VOUCHERS_READ,
        Operation.CUSTOMERS_READ,
        Operation.SEGMENTS_READ,
        Operation.LEDGER_READ,
    }
)
CHECKOUT = frozenset(
    {
        Operation.VALIDATE,
        Operation.VALIDATE_HOLD,
        Operation.REDEEM,
        Operation.ROLLBACK,
        Operation.ORDERS_WRITE,
    }
)
MARKETING = frozenset(
    {
        Operation.CAMPAIGNS_WRITE,
        Operation.VOUCHERS_WRITE,
        Operation.PUBLISH_SELF,
        Operation.CUSTOMERS_WRITE,
        Operation.SEGMENTS_WRITE,
    }
)

PERMISSIONS: dict[Role, frozenset[Operation]] = {
    Role.ADMIN: frozenset(Operation),
    Role.USER: READS | MARKETING,
    Role.MERCHANT: CHECKOUT | {Operation.VOUCHERS_READ, Operation.CUSTOMERS_READ},
    Role.ANALYST: READS | {Operation.REPORTS_READ},
    Role.REVIEWER: READS | {Operation.REPORTS_READ, Operation.REVIEWS_WRITE},
    Role.VIEWER: READS,
}
CLIENT_PERMISSIONS = frozenset({Operation.VALIDATE, Operation.PUBLISH_SELF})


class Forbidden(PromoError):
    """The principal's role or stores do not allow this act; nothing was done."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Unauthenticated(PromoError):
    """No key, an unknown key, or a revoked one."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"authorization: {problem}")
        self.field = "authorization"
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: an API key (or, later, a console user) with its role and stores."""

    key_id: str
    kind: KeyKind
    role: Role | None  # None for a client-side key
    stores: frozenset[str] = frozenset()  # empty: every store
    name: str = ""

    @property
    def actor(self) -> str:
        """How the ledger names who acted."""
        return self.key_id

    def may(self, operation: Operation) -> bool:
        if self.kind is KeyKind.CLIENT:
            return operation in CLIENT_PERMISSIONS
        return self.role is not None and operation in PERMISSIONS[self.role]


def check(principal: Principal, operation: Operation) -> None:
    if not principal.may(operation):
        who = "a client-side key" if principal.kind is KeyKind.CLIENT else f"role {principal.role}"
        raise Forbidden("authorization", f"{who} may not {operation}")


def check_store(
    principal: Principal, store_id: str | None, field: str = "context.store_id"
) -> None:
    """A key limited to stores acts only in them, and must say in which."""
    if not principal.stores:
        return
    if store_id is None:
        raise Forbidden(field, f"required: this key acts only in {_listed(principal.stores)}")
    if store_id not in principal.stores:
        raise Forbidden(field, f"{store_id!r} is not one of this key's stores")


def _listed(stores: frozenset[str]) -> str:
    shown = sorted(stores)[:5]
    more = "" if len(stores) <= 5 else f" and {len(stores) - 5} more"
    return "stores " + ", ".join(shown) + more


def key_terms(
    role: object, kind: object, stores: object, name: object
) -> tuple[Role | None, KeyKind, frozenset[str], str]:
    """A key's role, kind, stores and name, checked, as issue_key records them."""
    try:
        kind = KeyKind(kind)
    except ValueError:
        raise InvalidInput("kind", f"must be one of {', '.join(KeyKind)}") from None
    if kind is KeyKind.CLIENT:
        if role is not None:
            raise InvalidInput("role", "a client-side key has no role")
        checked_role = None
    else:
        try:
            checked_role = Role(role)
        except ValueError:
            raise InvalidInput("role", f"must be one of {', '.join(Role)}") from None
    store_set = p.id_set(stores, "stores")
    if len(store_set) > MAX_STORES_PER_KEY:
        raise InvalidInput("stores", f"more than {MAX_STORES_PER_KEY}")
    if store_set and checked_role not in (Role.MERCHANT, None):
        raise InvalidInput("stores", "only MERCHANT and client-side keys are limited to stores")
    return checked_role, kind, store_set, p.text(name, "name", max_length=200)


# Who acts in this thread or task: the engine stamps it on the events it writes
# (payload["actor"]), so that the ledger records who acted. Unset: the operator (CLI, code).
ACTING: contextvars.ContextVar[str | None] = contextvars.ContextVar("acting", default=None)


@contextmanager
def acting_as(actor: str | None) -> Iterator[None]:
    token = ACTING.set(actor)
    try:
        yield
    finally:
        ACTING.reset(token)
