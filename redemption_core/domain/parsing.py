"""Small checkers for definitions and requests read from YAML, JSON or CSV.

Each takes the value and the dotted field path it came from, so that an error names exactly
the field a person has to fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redemption_core.domain.errors import InvalidInput

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 1_000
MAX_LIST_LENGTH = 1_000
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]*")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f]")  # below 32, except tab and newline


def short(value: object) -> str:
    """A value as a message shows it: short, and a missing one as 'nothing', never 'None'."""
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(field, f"must be a mapping, got {type(value).__name__}")
    return value


def reject_unknown(data: Mapping[str, Any], allowed: set[str], field: str) -> None:
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        prefix = f"{field}." if field else ""
        raise InvalidInput(f"{prefix}{unknown[0]}", "unknown field")


def identifier(value: object, field: str) -> str:
    """An id chosen by a merchant or another system: printable ASCII, no spaces."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string id, got {type(value).__name__}")
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(field, f"longer than {MAX_ID_LENGTH} characters")
    if not ID_PATTERN.fullmatch(value):
        raise InvalidInput(field, "may contain only A-Z, a-z, 0-9 and _ . : @ + -")
    return value


def optional_identifier(value: object, field: str) -> str | None:
    return None if value is None else identifier(value, field)


def text(value: object, field: str, *, max_length: int = MAX_TEXT_LENGTH) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be text, got {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidInput(field, f"longer than {max_length} characters")
    if CONTROL_CHARACTERS.search(value):  # one regex scan, not a Python loop per character
        raise InvalidInput(field, "contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "is not valid Unicode text (lone surrogate)") from None
    return value


def integer(value: object, field: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an integer, got {short(value)}")
    if not minimum <= value <= maximum:
        raise InvalidInput(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


MAX_JSON_INTEGER = 2**63 - 1  # what SQLite, DuckDB and Parquet hold as an integer


def json_number(value: float | int, field: str) -> float | int:
    """A number as JSON and the ledger's readers hold it: finite, integers within 64 bits."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, f"must be a finite number, got {value!r}")
    elif not -MAX_JSON_INTEGER - 1 <= value <= MAX_JSON_INTEGER:
        raise InvalidInput(field, "integer out of the 64-bit range")
    return value


def bounded_document(
    value: object, field: str, *, max_depth: int, max_nodes: int, numbers: bool = True
) -> None:
    """A parsed JSON or YAML document no deeper than `max_depth` and with at most `max_nodes`
    values, counting a YAML alias as often as it is used (so an alias bomb is refused, not
    expanded by whoever walks it next); with `numbers`, numbers as json_number allows (the
    checks of a definition's own fields name a bad number more precisely)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise InvalidInput(field, f"more than {max_nodes} values")
        if depth > max_depth:
            raise InvalidInput(field, f"nested deeper than {max_depth} levels")
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
            stack.extend((key, depth + 1) for key in item)
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        elif numbers and isinstance(item, float | int) and not isinstance(item, bool):
            json_number(item, field)


def boolean(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(field, f"must be true or false, got {short(value)}")
    return value


def id_set(value: object, field: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise InvalidInput(field, "must be a list of ids")
    if len(value) > MAX_LIST_LENGTH:
        raise InvalidInput(field, f"more than {MAX_LIST_LENGTH} entries")
    return frozenset(identifier(item, f"{field}[{i}]") for i, item in enumerate(value))


def timestamp(value: object, field: str) -> datetime:
    """An instant: an ISO 8601 string with a UTC offset (or a YAML timestamp)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(field, f"not an ISO 8601 timestamp: {short(value)}") from None
    else:
        raise InvalidInput(field, f"must be an ISO 8601 timestamp, got {short(value)}")
    if moment.tzinfo is None:
        raise InvalidInput(field, "needs a UTC offset, e.g. 2026-01-31T00:00:00Z")
    if not 1970 <= moment.year <= 9998:
        raise InvalidInput(field, f"year {moment.year} is out of range")
    return moment.astimezone(UTC)


def optional_timestamp(value: object, field: str) -> datetime | None:
    return None if value is None else timestamp(value, field)


_last_iso: tuple[datetime | None, str] = (None, "")


def iso(moment: datetime) -> str:
    """The ledger's timestamp format: UTC, microseconds, 'Z'. Sorts as text."""
    global _last_iso
    last, text = _last_iso
    if moment is last:  # the events of one request share one instant: format it once
        return text
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    text = utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    _last_iso = (moment, text)
    return text


def remember_iso(moment: datetime, text: str) -> None:
    """Tell iso() the text of an instant already in the ledger's format (an import read it so),
    so that the projection's writes of the same event do not format it again."""
    global _last_iso
    _last_iso = (moment, text)


def from_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)  # Python 3.11 reads the trailing 'Z' as UTC
