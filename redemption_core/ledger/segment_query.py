"""A segment's rules as one SQL query over the projection's history tables.

Orders, order lines, refunds, consent changes and attribute versions as they stood at the
instant asked for, so "who was in this segment on March 1st" has an answer for reports and
backtests. Field names come from a fixed list and every value is a bound parameter: a segment
definition can never change the SQL.
"""

from __future__ import annotations

from typing import Any

from redemption_core.domain.segments import Segment

NUMERIC_FIELDS = {
    "days_since_last_order": "julianday(:at) - julianday(stats.last_order_at)",
    "days_since_signup": "julianday(:at) - julianday(c.signup_at)",
    "order_count": "coalesce(stats.order_count, 0)",
    "total_spend": "coalesce(stats.total_spend, 0)",
    "avg_basket": "stats.total_spend * 1.0 / stats.order_count",
}
OPERATORS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
LIST_OPERATORS = {"in": "IN", "not_in": "NOT IN"}


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
