"""Segments: rules over a customer's profile and order history, evaluated at any instant.

A segment is a list of conditions (`match: all` or `any`), each `{field, op, value}`:

    days_since_last_order, days_since_signup, order_count, total_spend, avg_basket,
    favourite_category, consent.email|sms|push, attributes.<name>

This module parses and checks definitions; ledger/segment_query.py compiles them to SQL over
the projection's history, so "who was in this segment on March 1st" has an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.customers import CHANNELS
from redemption_core.domain.errors import InvalidInput

NUMERIC_FIELDS = (
    "days_since_last_order", "days_since_signup", "order_count", "total_spend", "avg_basket",
)  # fmt: skip
OPERATORS = ("==", "!=", "<", "<=", ">", ">=")
LIST_OPERATORS = ("in", "not_in")
MAX_CONDITIONS = 50


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    match: str  # "all" or "any"
    conditions: tuple[Condition, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "match": self.match,
            "rules": [{"field": c.field, "op": c.op, "value": c.value} for c in self.conditions],
        }


def segment_from_dict(data: object, field: str = "segment") -> Segment:
    d = p.mapping(data, field)
    p.reject_unknown(d, {"id", "name", "match", "rules"}, field)
    segment_id = p.identifier(d.get("id"), f"{field}.id")
    match = d.get("match", "all")
    if match not in ("all", "any"):
        raise InvalidInput(f"{field}.match", "must be all or any")
    rules = d.get("rules")
    if not isinstance(rules, list) or not rules:
        raise InvalidInput(f"{field}.rules", "must be a non-empty list of conditions")
    if len(rules) > MAX_CONDITIONS:
        raise InvalidInput(f"{field}.rules", f"more than {MAX_CONDITIONS} conditions")
    conditions = tuple(_condition(rule, f"{field}.rules[{i}]") for i, rule in enumerate(rules))
    name = p.text(d.get("name", segment_id), f"{field}.name", max_length=200)
    return Segment(segment_id, name, match, conditions)


def _condition(data: object, field: str) -> Condition:
    d = p.mapping(data, field)
    p.reject_unknown(d, {"field", "op", "value"}, field)
    name, op, value = d.get("field"), d.get("op"), d.get("value")
    if not isinstance(name, str):
        raise InvalidInput(f"{field}.field", "must name a field")
    if op not in OPERATORS and op not in LIST_OPERATORS:
        choices = ", ".join([*OPERATORS, *LIST_OPERATORS])
        raise InvalidInput(f"{field}.op", f"must be one of {choices}, got {p.short(op)}")
    if op in LIST_OPERATORS:
        if not isinstance(value, list) or not value or len(value) > 1000:
            raise InvalidInput(f"{field}.value", f"{op} needs a non-empty list")
        items = value
    else:
        items = [value]
    if name in NUMERIC_FIELDS:
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise InvalidInput(f"{field}.value", f"{name} compares with numbers")
    elif name == "favourite_category":
        for item in items:
            p.identifier(item, f"{field}.value")
    elif name.startswith("consent."):
        p.reject_unknown({name[len("consent.") :]: 0}, set(CHANNELS), f"{field}.field")
        if op not in ("==", "!=") or not isinstance(value, bool):
            raise InvalidInput(f"{field}.value", "consent compares with == or != to true/false")
    elif name.startswith("attributes."):
        p.identifier(name[len("attributes.") :], f"{field}.field")
        for item in items:
            if not isinstance(item, str | int | float | bool):
                raise InvalidInput(f"{field}.value", "must be text, a number or true/false")
    else:
        known = ", ".join(
            [*NUMERIC_FIELDS, "favourite_category", "consent.<channel>", "attributes.<name>"]
        )
        raise InvalidInput(f"{field}.field", f"unknown field {p.short(name)}; one of {known}")
    return Condition(name, str(op), value)
