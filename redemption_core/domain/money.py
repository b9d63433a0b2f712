"""Money as integer minor units with an ISO 4217 currency; never floats.

Rounding (the one place fractions appear): a percentage of an amount is rounded half up
to the nearest minor unit, e.g. 15% of 333 cents = 49.95 -> 50 cents. Caps are applied
after rounding, and a discount never exceeds the amount it applies to.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.parsing import short

# Minor-unit exponents of the currencies the core accepts (ISO 4217).
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0,
    "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2,
    "ILS": 2, "INR": 2, "ISK": 0, "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2,
    "NOK": 2, "NZD": 2, "PHP": 2, "PLN": 2, "RON": 2, "SAR": 2, "SEK": 2, "SGD": 2,
    "THB": 2, "TRY": 2, "TWD": 2, "UAH": 2, "USD": 2, "ZAR": 2,
}  # fmt: skip

# Upper bound for any single amount: 10^13 minor units (100 billion in a 2-decimal currency).
# Far above any real order, low enough that sums over many orders stay exact in int64.
MAX_AMOUNT = 10**13

BASIS_POINTS_PER_WHOLE = 10_000
PERCENT_TEXT = re.compile(r"[0-9]{1,3}(\.[0-9]+)?")


def check_currency(value: object, field: str) -> str:
    if value is None:
        raise InvalidInput(field, "is required: an ISO 4217 code such as EUR")
    if not isinstance(value, str) or value not in CURRENCY_EXPONENTS:
        raise InvalidInput(field, f"unknown currency {short(value)} (expected an ISO 4217 code)")
    return value


def check_amount(value: object, field: str, *, allow_zero: bool = True) -> int:
    """An amount in minor units: an int (not bool, not float) within [0, MAX_AMOUNT]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an integer amount in minor units, got {short(value)}")
    if value < 0:
        raise InvalidInput(field, f"must not be negative, got {value}")
    if value == 0 and not allow_zero:
        raise InvalidInput(field, "must be greater than zero")
    if value > MAX_AMOUNT:
        raise InvalidInput(field, f"must be at most {MAX_AMOUNT}, got {value}")
    return value


def parse_percent(value: object, field: str) -> int:
    """A percentage (e.g. 15 or "12.5") as basis points, exact: at most two decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(field, f"must be a number of percent, got {short(value)}")
    if isinstance(value, str) and not PERCENT_TEXT.fullmatch(value):
        raise InvalidInput(field, f"must be a number like 15 or 12.5, got {short(value)}")
    try:
        decimal = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput(field, f"must be a number of percent, got {short(value)}") from None
    if not decimal.is_finite() or decimal <= 0 or decimal > 100:
        raise InvalidInput(field, f"must be above 0 and at most 100, got {short(value)}")
    basis_points = decimal * 100
    if basis_points != basis_points.to_integral_value():
        raise InvalidInput(field, f"at most two decimals, got {short(value)}")
    return int(basis_points)


def percent_of(amount: int, basis_points: int) -> int:
    """amount * basis_points / 10000, rounded half up to a whole minor unit (amount >= 0)."""
    return (amount * basis_points + BASIS_POINTS_PER_WHOLE // 2) // BASIS_POINTS_PER_WHOLE


def format_money(amount: int, currency: str) -> str:
    exponent = CURRENCY_EXPONENTS[currency]
    if exponent == 0:
        return f"{amount} {currency}"
    whole, minor = divmod(abs(amount), 10**exponent)
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole}.{minor:0{exponent}d} {currency}"
