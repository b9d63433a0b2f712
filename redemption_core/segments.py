"""Segments: rules over a customer's profile and order history, evaluated at any instant.

A segment is a list of conditions (`match: all` or `any`), each `{field, op, value}`:

    days_since_last_order, days_since_signup, order_count, total_spend, avg_basket,
    favourite_category, consent.email|sms|push, attributes.<name>

Evaluation compiles the rules to one SQL query over the projection's history tables (orders,
order lines, refunds, consent changes, attribute versions) as they stood at the instant asked
for, so "who was in this segment on March 1st" has an answer for reports and backtests.
Field names come from a fixed list and every value is a bound parameter: a segment definition
can never change the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redemption_core import parsing as p
from redemption_core.customers import CHANNELS
from redemption_core.errors import InvalidInput

NUMERIC_FIELDS = {
    "days_since_last_order": "julianday(:at) - julianday(stats.last_order_at)",
    "days_since_signup": "julianday(:at) - julianday(c.signup_at)",
    "order_count": "coalesce(stats.order_count, 0)",
    "total_spend": "coalesce(stats.total_spend, 0)",
    "avg_basket": "stats.total_spend * 1.0 / stats.order_count",
}
OPERATORS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
LIST_OPERATORS = {"in": "IN", "not_in": "NOT IN"}
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


def compile_members_query(
    segment: Segment, *, one_customer: bool = False
) -> tuple[str, dict[str, Any]]:
    """SQL selecting the customer ids in the segment at :at, and its parameters.

    With one_customer, the query also takes :customer and answers for that customer only.
    """
    params: dict[str, Any] = {}
    predicates = []
    needs = set()
    for i, condition in enumerate(segment.conditions):
        expression = _expression(condition.field, i, params, needs)
        if condition.op in LIST_OPERATORS:
            names = []
            for j, item in enumerate(condition.value):
                params[f"v{i}_{j}"] = item
                names.append(f":v{i}_{j}")
            predicates.append(f"({expression} {LIST_OPERATORS[condition.op]} ({', '.join(names)}))")
        else:
            value = condition.value
            params[f"v{i}"] = int(value) if isinstance(value, bool) else value
            predicates.append(f"({expression} {OPERATORS[condition.op]} :v{i})")
    joiner = " AND " if segment.match == "all" else " OR "
    ctes = [CTES[name] for name in ("stats", "fav", "consent", "attrs") if name in needs]
    joins = [JOINS[name] for name in ("stats", "fav", "consent", "attrs") if name in needs]
    sql = (
        (f"WITH {', '.join(ctes)} " if ctes else "")
        + "SELECT c.customer_id FROM customers c "
        + " ".join(joins)
        + " WHERE c.signup_at <= :at"
        + (" AND c.customer_id = :customer" if one_customer else "")
        + f" AND ({joiner.join(predicates)}) ORDER BY c.customer_id"
    )
    return sql, params


def _expression(name: str, index: int, params: dict[str, Any], needs: set[str]) -> str:
    if name in NUMERIC_FIELDS:
        if name != "days_since_signup":
            needs.add("stats")
        return NUMERIC_FIELDS[name]
    if name == "favourite_category":
        needs.add("fav")
        return "fav.category"
    if name.startswith("consent."):
        needs.add("consent")
        return f"coalesce(consent.{name[len('consent.') :]}, 0)"
    needs.add("attrs")
    params[f"path{index}"] = f'$."{name[len("attributes.") :]}"'
    return f"json_extract(attrs.attributes, :path{index})"


CTES = {
    "stats": """stats AS (
        SELECT o.customer_id, count(*) AS order_count, max(o.ordered_at) AS last_order_at,
               sum(o.amount) - coalesce(sum(rf.refunded), 0) AS total_spend
        FROM orders o
        LEFT JOIN (SELECT order_id, sum(amount) AS refunded FROM order_refunds
                   WHERE refunded_at <= :at GROUP BY order_id) rf USING (order_id)
        WHERE o.customer_id IS NOT NULL AND o.ordered_at <= :at
          AND (o.cancelled_at IS NULL OR o.cancelled_at > :at)
        GROUP BY o.customer_id)""",
    # The favourite category: most spend, ties to the first name. One GROUP BY over a key
    # that sorts that way (inverted spend, then the name), not a window over every order
    # line, so memory stays bounded on large ledgers.
    "fav": """fav AS (
        SELECT customer_id, substr(min(rank_key), 17) AS category FROM (
            SELECT l.customer_id,
                   printf('%015d', 999999999999999 - sum(l.amount)) || ' ' || l.category AS rank_key
            FROM order_lines l JOIN orders o USING (order_id)
            WHERE l.customer_id IS NOT NULL AND l.category IS NOT NULL AND l.ordered_at <= :at
              AND (o.cancelled_at IS NULL OR o.cancelled_at > :at)
            GROUP BY l.customer_id, l.category)
        GROUP BY customer_id)""",
    "consent": """consent AS (
        SELECT customer_id,
               max(CASE WHEN channel = 'email' THEN granted END) AS email,
               max(CASE WHEN channel = 'sms' THEN granted END) AS sms,
               max(CASE WHEN channel = 'push' THEN granted END) AS push
        FROM (SELECT customer_id, channel, granted, row_number() OVER (
                  PARTITION BY customer_id, channel ORDER BY changed_at DESC, rowid DESC) AS rank
              FROM consent_changes WHERE changed_at <= :at)
        WHERE rank = 1 GROUP BY customer_id)""",
    "attrs": """attrs AS (
        SELECT customer_id, attributes FROM (
            SELECT customer_id, attributes, row_number() OVER (
                PARTITION BY customer_id ORDER BY valid_from DESC, rowid DESC) AS rank
            FROM customer_versions WHERE valid_from <= :at)
        WHERE rank = 1)""",
}
JOINS = {
    "stats": "LEFT JOIN stats ON stats.customer_id = c.customer_id",
    "fav": "LEFT JOIN fav ON fav.customer_id = c.customer_id",
    "consent": "LEFT JOIN consent ON consent.customer_id = c.customer_id",
    "attrs": "LEFT JOIN attrs ON attrs.customer_id = c.customer_id",
}
