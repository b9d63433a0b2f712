"""Typed errors of the core. Every refusal names the field it is about, so a caller can fix it."""


class PromoError(Exception):
    """Base class for every error the core raises on purpose."""


class InvalidInput(PromoError, ValueError):
    """A request or definition is malformed; nothing was recorded."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(PromoError, LookupError):
    """An administrative action names a campaign, voucher or redemption that does not exist."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field}: {value!r} does not exist")
        self.field = field
        self.value = value


class Conflict(PromoError):
    """The request contradicts the ledger (duplicate id or code, illegal status change)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class IdempotencyKeyReused(Conflict):
    """The idempotency key was first used with a different request; the new one is refused."""

    def __init__(self, key: str) -> None:
        super().__init__("idempotency_key", f"{key!r} was already used for a different request")
        self.key = key
