"""A segment's rules as one SQL query over the projection's history tables.

Orders, order lines, refunds, consent changes and attribute versions as they stood at the
instant asked for, so "who was in this segment on March 1st" has an answer for reports and
backtests. Field names come from a fixed list and every value is a bound parameter: a segment
definition can never change the SQL.
"""

from __future__ import annotations

from typing import Any

from redemption_core.domain.segments import Segment
from redemption_core.ledger.dialect import SQLITE, Dialect


def _numeric_fields(dialect: Dialect) -> dict[str, str]:
    return {
        "days_since_last_order": dialect.days_between(":at", "stats.last_order_at"),
        "days_since_signup": dialect.days_between(":at", "c.signup_at"),
        "order_count": "coalesce(stats.order_count, 0)",
        "total_spend": "coalesce(stats.total_spend, 0)",
        "avg_basket": "stats.total_spend * 1.0 / stats.order_count",
    }


OPERATORS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
LIST_OPERATORS = {"in": "IN", "not_in": "NOT IN"}


def compile_members_query(
    segment: Segment, *, one_customer: bool = False, dialect: Dialect = SQLITE
) -> tuple[str, dict[str, Any]]:
    """SQL selecting the customer ids in the segment at :at, and its parameters.

    With one_customer, the query also takes :customer and answers for that customer only.
    """
    params: dict[str, Any] = {}
    predicates = []
    needs: set[str] = set()
    for i, condition in enumerate(segment.conditions):
        expression = _expression(condition.field, i, params, needs, dialect)
        is_attribute = condition.field.startswith("attributes.")

        def bind(name: str, value: Any, is_attribute: bool = is_attribute) -> str:
            if is_attribute:
                params[name] = dialect.attribute_value(value)
                return dialect.json_value(name)
            params[name] = int(value) if isinstance(value, bool) else value
            return f":{name}"

        if condition.op in LIST_OPERATORS:
            names = [bind(f"v{i}_{j}", item) for j, item in enumerate(condition.value)]
            predicates.append(f"({expression} {LIST_OPERATORS[condition.op]} ({', '.join(names)}))")
        else:
            placeholder = bind(f"v{i}", condition.value)
            predicates.append(f"({expression} {OPERATORS[condition.op]} {placeholder})")
    joiner = " AND " if segment.match == "all" else " OR "
    ctes = [
        CTES[name].replace(
            "{rank_spend}", dialect.zero_padded("999999999999999 - sum(l.amount)", 15)
        )
        for name in ("stats", "fav", "consent", "attrs")
        if name in needs
    ]
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


def _expression(
    name: str, index: int, params: dict[str, Any], needs: set[str], dialect: Dialect
) -> str:
    numeric = _numeric_fields(dialect)
    if name in numeric:
        if name != "days_since_signup":
            needs.add("stats")
        return numeric[name]
    if name == "favourite_category":
        needs.add("fav")
        return "fav.category"
    if name.startswith("consent."):
        needs.add("consent")
        return f"coalesce(consent.{name[len('consent.') :]}, 0)"
    needs.add("attrs")
    params[f"path{index}"] = dialect.attribute_path(name[len("attributes.") :])
    return dialect.json_attribute("attrs.attributes", f"path{index}")


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
                   {rank_spend} || ' ' || l.category AS rank_key
            FROM order_lines l JOIN orders o USING (order_id)
            WHERE l.customer_id IS NOT NULL AND l.category IS NOT NULL AND l.ordered_at <= :at
              AND (o.cancelled_at IS NULL OR o.cancelled_at > :at)
            GROUP BY l.customer_id, l.category) AS ranked
        GROUP BY customer_id)""",
    "consent": """consent AS (
        SELECT customer_id,
               max(CASE WHEN channel = 'email' THEN granted END) AS email,
               max(CASE WHEN channel = 'sms' THEN granted END) AS sms,
               max(CASE WHEN channel = 'push' THEN granted END) AS push
        FROM (SELECT customer_id, channel, granted, row_number() OVER (
                  PARTITION BY customer_id, channel ORDER BY changed_at DESC, rowid DESC) AS rank
              FROM consent_changes WHERE changed_at <= :at) AS latest
        WHERE rank = 1 GROUP BY customer_id)""",
    "attrs": """attrs AS (
        SELECT customer_id, attributes FROM (
            SELECT customer_id, attributes, row_number() OVER (
                PARTITION BY customer_id ORDER BY valid_from DESC, rowid DESC) AS rank
            FROM customer_versions WHERE valid_from <= :at) AS latest
        WHERE rank = 1)""",
}
JOINS = {
    "stats": "LEFT JOIN stats ON stats.customer_id = c.customer_id",
    "fav": "LEFT JOIN fav ON fav.customer_id = c.customer_id",
    "consent": "LEFT JOIN consent ON consent.customer_id = c.customer_id",
    "attrs": "LEFT JOIN attrs ON attrs.customer_id = c.customer_id",
}
