"""Great Expectations suites that gate the pipeline: one on the raw extract, one on key marts.

DuckDB stages a narrow table per suite in the build warehouse's `quality` schema (private: a
publish copies only `marts` and `ml`), and Great Expectations validates it through its SQL
datasource, so every metric is a SQL query DuckDB runs, never a pandas frame of the ledger.

The raw suite checks the batch the raw layer gained since the last time it passed (everything on
the first run); facts that span batches are computed against the whole raw layer: a batch event
reusing an older event's seq or event_id is a duplicate (the older row is staged beside it, so
the failure names both), and a reference is broken only if what it names was never created
anywhere in the raw layer. A failure names the offending rows by `seq` and `event_id`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from pipelines.partitions import EARLIEST_DAY
from redemption_core import CURRENCY_EXPONENTS, EventType

# An event may be stamped a little after it is stored (clock skew between tills), never a day.
MAX_SECONDS_AFTER_RECORDED = 86_400
EARLIEST_PLAUSIBLE = EARLIEST_DAY.isoformat()
# The ledger's timestamp format (redemption_core.domain.parsing.iso: UTC, microseconds, 'Z'), which sorts
# as text: the lake's partitions, the models' cut-offs and the marts' "as of" compare the text.
TIMESTAMP_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z"
# Every numeric field the typed staging models (dbt_project/models/staging/typed) read from a
# payload, by JSON path ("[*]": in each element of a list), with the type their json_transform
# structure gives it. json_transform converts without a word ("500" becomes 500, 5.5 becomes 6,
# true 1, "abc" NULL), so the raw suite stops a payload holding anything there but null or a JSON
# number, an integer if the type is one. tests/test_quality_gates.py checks this against the
# models' structures, so that the two cannot drift apart.
NUMERIC_PAYLOAD_FIELDS = {
    "$.discount": "BIGINT",
    "$.gift_amount": "BIGINT",
    "$.order.amount": "BIGINT",
    "$.amount": "BIGINT",
    "$.balance": "BIGINT",
    "$.gift_balance": "BIGINT",
    "$.attempt": "INTEGER",
    "$.attempts": "INTEGER",
    "$.latency_ms": "DOUBLE",
    "$.backoff_ms": "DOUBLE",
    "$.items[*].quantity": "INTEGER",
    "$.items[*].unit_price": "BIGINT",
}
# Currency fields, by the event types whose currency the core checked before writing them (a
# rejected or validated request records whatever currency it was sent, known or not).
CURRENCY_PAYLOAD_FIELDS = {
    "campaign_created": ("$.definition.currency",),
    "order_recorded": ("$.currency",),
    "redemption_succeeded": ("$.currency", "$.order.currency"),
}
INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
# the amounts staged as columns and checked not to be negative: column -> payload path
AMOUNT_COLUMNS = {
    "discount": "$.discount",
    "gift_amount": "$.gift_amount",
    "order_amount": "$.order.amount",
    "amount": "$.amount",
    "balance": "$.balance",
    "latency_ms": "$.latency_ms",
}
# A payload field's value as JSON text (minified by the parser: an integer is digits and a minus,
# any other number has a point or an exponent, everything else a quote or a letter) holding a
# character outside these is not an integer, or not a number.
NOT_INTEGER_GLOB = "*[!0-9-]*"
NOT_NUMBER_GLOB = "*[!0-9eE.+-]*"
SHOWN_CHARS = 40  # of a wrong value, in payload_type_error
SAMPLE_ROWS = 20
# The campaign funnel's rates (fct_campaign_funnel), each a count of vouchers of a cohort over
# an earlier count. Those over `published` are shares of the cohort; the others are not bounded
# by 1 for every campaign the core allows (see check_marts).
FUNNEL_RATES = (
    "delivered_per_published",
    "accepted_per_delivered",
    "redeemed_per_accepted",
    "redeemed_per_published",
)

QUALITY_SCHEMA = "quality"
# The raw layer as of the last raw check that passed, per event day: its event count and seq sum
# (a day re-loaded with the same seqs is the same events: the ledger is append-only and seq is
# its key) and highest seq. Written only when the suite passes, so a failed batch is checked
# again on the next run instead of slipping behind the watermark.
CHECKED_DAYS = f"{QUALITY_SCHEMA}.raw_checked_days"
PENDING_DAYS = f"{QUALITY_SCHEMA}.raw_pending_days"
RAW_BATCH = f"{QUALITY_SCHEMA}.raw_batch"
MART_RECONCILIATION = f"{QUALITY_SCHEMA}.mart_reconciliation"
FUNNEL_KEYS = f"{QUALITY_SCHEMA}.campaign_funnel_rates"

# A NULL event_date or seq must not let a row fall outside every batch.
_DAY = "coalesce(event_date, '')"

RAW_BATCH_QUERY = """
CREATE OR REPLACE TABLE {raw_batch} AS
WITH batch AS {materialized} (
    SELECT seq, event_id, event_type, occurred_at, recorded_at, voucher_id, campaign_id,
        redemption_id, payload
    FROM raw.ledger_events
    WHERE {in_batch}
),
events AS {materialized} (
    SELECT *, true AS in_batch FROM batch
    {witnesses}
),
vouchers AS (
    SELECT DISTINCT voucher_id FROM raw.ledger_events
    WHERE event_type = 'voucher_created' {voucher_scope}
),
campaigns AS (
    SELECT DISTINCT campaign_id FROM raw.ledger_events
    WHERE event_type = 'campaign_created' {campaign_scope}
),
redemptions AS (
    SELECT DISTINCT redemption_id FROM raw.ledger_events
    WHERE event_type = 'redemption_succeeded' {redemption_scope}
),
parsed AS (
    SELECT
        e.seq,
        e.event_id,
        e.event_type,
        try_cast(replace(e.occurred_at, 'Z', '') AS timestamp) AS occurred,
        try_cast(replace(e.recorded_at, 'Z', '') AS timestamp) AS recorded,
        CASE
            WHEN e.occurred_at NOT GLOB {timestamp_glob}
                THEN 'occurred_at ' || left(e.occurred_at, 40) || ' is not like 2026-05-04T22:00:00.000000Z'
            WHEN e.recorded_at NOT GLOB {timestamp_glob}
                THEN 'recorded_at ' || left(e.recorded_at, 40) || ' is not like 2026-05-04T22:00:00.000000Z'
        END AS timestamp_format_error,
        -- one parse per payload, the way the typed staging models read it, gives every numeric
        -- field as JSON text (amounts and their JSON types alike) and says whether it is JSON (a
        -- payload that is not JSON, or none, gives NULL and fails its own expectation instead
        -- of stopping the query): parsing is most of the staging's cost
        try(json_transform(e.payload, {numeric_structure})) AS fields,
        fields IS NOT NULL AS payload_is_json,
        CASE
            WHEN e.voucher_id IS NOT NULL AND e.event_type <> 'voucher_created'
                AND v.voucher_id IS NULL THEN 'voucher ' || e.voucher_id || ' was never created'
            WHEN e.campaign_id IS NOT NULL AND e.event_type <> 'campaign_created'
                AND c.campaign_id IS NULL THEN 'campaign ' || e.campaign_id || ' was never created'
            WHEN e.event_type = 'redemption_rolled_back'
                AND r.redemption_id IS NULL THEN 'redemption ' || coalesce(e.redemption_id, '(none)') || ' never succeeded'
        END AS broken_reference,
        e.in_batch,
    FROM events AS e
    LEFT JOIN vouchers AS v ON v.voucher_id = e.voucher_id
    LEFT JOIN campaigns AS c ON c.campaign_id = e.campaign_id
    LEFT JOIN redemptions AS r ON r.redemption_id = e.redemption_id
)
SELECT
    seq, event_id, event_type, occurred, recorded, timestamp_format_error, payload_is_json,
    {payload_type_error} AS payload_type_error,
    {amount_columns},
    -- a discount never exceeds the amount it applies to, and a gift card pays at most what is
    -- left to pay (redemption_core.domain.money, rules): what a redemption takes off an order
    -- is at most the order
    CASE
        WHEN event_type = 'redemption_succeeded'
            AND coalesce(discount, 0) + coalesce(gift_amount, 0) > order_amount
            THEN 'discount ' || coalesce(discount, 0) || ' and gift amount '
                || coalesce(gift_amount, 0) || ' exceed the order amount ' || order_amount
    END AS amount_rule_error,
    {currency_error} AS currency_error,
    broken_reference,
    date_diff('second', recorded, occurred) AS seconds_after_recorded,
    in_batch,
FROM parsed
"""

# Older rows sharing a seq or event_id with the batch, staged beside it (not counted as checked):
# a duplicate across batches then fails uniqueness like one inside the batch, naming both rows.
WITNESSES = """
    UNION ALL
    SELECT seq, event_id, event_type, occurred_at, recorded_at, voucher_id, campaign_id,
        redemption_id, payload, false
    FROM raw.ledger_events
    -- two semi-joins, not one OR of them (which probes every row twice): the seq one is pruned
    -- to the batch's seq range
    WHERE seq IN (SELECT seq FROM batch) AND NOT ({in_batch})
    UNION
    SELECT seq, event_id, event_type, occurred_at, recorded_at, voucher_id, campaign_id,
        redemption_id, payload, false
    FROM raw.ledger_events
    WHERE event_id IN (SELECT event_id FROM batch) AND NOT ({in_batch})
"""


@dataclass(frozen=True)
class FailedExpectation:
    expectation: str
    column: str | None
    unexpected_count: int | None
    rows: list[dict[str, Any]]  # up to SAMPLE_ROWS offending rows, by seq and event_id
    observed: Any = None
    rule: str | None = None  # what the expectation enforces, in words

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        count = (
            f"{self.unexpected_count} rows"
            if self.unexpected_count is not None
            else f"observed {self.observed}"
        )
        sample = "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in self.rows)
        rule = f" [rule: {self.rule}]" if self.rule else ""
        return f"{self.expectation}{where}: {count}{rule}" + (f" — e.g. {sample}" if sample else "")


@dataclass(frozen=True)
class QualityReport:
    suite: str
    rows_checked: int
    expectations: int
    failures: list[FailedExpectation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def message(self) -> str:
        if self.passed:
            return (
                f"{self.suite}: {self.expectations} expectations passed on {self.rows_checked} rows"
            )
        lines = [
            f"{self.suite}: {len(self.failures)} of {self.expectations} expectations failed on {self.rows_checked} rows"
        ]
        lines += [f"- {failure.describe()}" for failure in self.failures]
        return "\n".join(lines)


@dataclass(frozen=True)
class Suite:
    name: str
    table: str  # schema.table in the warehouse
    build: Callable[[Any], list[Any]]  # great_expectations module → expectations
    id_columns: list[str]
    rows_checked: int


def check_raw_events(warehouse: Path) -> QualityReport:
    """The raw extract's new batch: unique ids (across batches too), known types, plausible
    timestamps in the ledger's format, JSON payloads with a JSON number in every numeric field
    the typed models read, no negative money, no redemption taking off more than its order, known
    currencies, no reference to a voucher, campaign or redemption the raw layer never created."""
    with duckdb.connect(str(warehouse)) as db:
        rows = stage_raw_batch(db)
    (report,) = validate(
        warehouse,
        [
            Suite(
                "raw_ledger_events",
                RAW_BATCH,
                raw_expectations,
                id_columns=["seq", "event_id"],
                rows_checked=rows,
            )
        ],
    )
    if report.passed:
        with duckdb.connect(str(warehouse)) as db:
            db.execute(
                f"CREATE OR REPLACE TABLE {CHECKED_DAYS} AS "
                f"SELECT event_day, events, seq_sum, seq_max FROM {PENDING_DAYS}"
            )
    return report


def raw_expectations(gx: Any) -> list[Any]:
    """The raw batch's expectations, each with the rule of the ledger it enforces
    (docs/ledger.md, and what the core checks before it writes an event)."""
    e = gx.expectations
    return [
        e.ExpectColumnValuesToNotBeNull(column="seq", description="every event has a seq"),
        e.ExpectColumnValuesToBeUnique(
            column="seq", description="a seq is never reused (the ledger's AUTOINCREMENT key)"
        ),
        e.ExpectColumnValuesToNotBeNull(column="event_id", description="every event has an id"),
        e.ExpectColumnValuesToBeUnique(
            column="event_id", description="an event id names one event, across the ledger"
        ),
        e.ExpectColumnValuesToBeInSet(
            column="event_type",
            value_set=sorted(member.value for member in EventType),
            description="an event is of one of the types docs/ledger.md lists",
        ),
        e.ExpectColumnValuesToNotBeNull(
            column="occurred", description="every event says when it happened"
        ),
        e.ExpectColumnValuesToNotBeNull(
            column="recorded", description="every event says when the ledger stored it"
        ),
        e.ExpectColumnValuesToBeNull(
            column="timestamp_format_error",
            description="timestamps are UTC ISO 8601 with microseconds, which sort as text",
        ),
        e.ExpectColumnValuesToBeBetween(
            column="occurred",
            min_value=datetime.fromisoformat(EARLIEST_PLAUSIBLE),
            description=f"nothing happened before {EARLIEST_PLAUSIBLE}, the earliest day the "
            "importer accepts",
        ),
        e.ExpectColumnValuesToBeBetween(
            column="seconds_after_recorded",
            max_value=MAX_SECONDS_AFTER_RECORDED,
            description="an event is stored when it happens or later, give or take a day of "
            "clock skew between tills",
        ),
        e.ExpectColumnValuesToBeInSet(
            column="payload_is_json",
            value_set=[True],
            description="every payload is a JSON object",
        ),
        e.ExpectColumnValuesToBeNull(
            column="payload_type_error",
            description="every numeric payload field the marts read is null or a JSON number "
            "(an integer where it is money or a count)",
        ),
        e.ExpectColumnValuesToBeNull(
            column="amount_rule_error",
            description="a redemption's discount and gift amount together are at most its "
            "order's amount",
        ),
        e.ExpectColumnValuesToBeNull(
            column="currency_error",
            description="campaigns, orders and redemptions are in an ISO 4217 currency the "
            "core accepts",
        ),
        e.ExpectColumnValuesToBeNull(
            column="broken_reference",
            description="an event names only vouchers, campaigns and redemptions the ledger "
            "created",
        ),
        *[
            e.ExpectColumnValuesToBeBetween(
                column=column,
                min_value=0,
                description=f"money is never negative ({path})",
            )
            for column, path in AMOUNT_COLUMNS.items()
        ],
    ]


def stage_raw_batch(db: duckdb.DuckDBPyConnection) -> int:
    """Replace `quality.raw_batch` with the checked columns of the raw layer's unchecked rows
    (plus any older rows they duplicate); return how many rows the batch holds.

    The batch: every row past the highest seq of the last passing check, and every row of a day
    whose already-checked part changed (a re-load that brought different events). If a checked
    day lost events, references into it may have broken anywhere: everything is checked again.
    """
    db.execute(f"CREATE SCHEMA IF NOT EXISTS {QUALITY_SCHEMA}")
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {CHECKED_DAYS} "
        "(event_day VARCHAR, events BIGINT, seq_sum HUGEINT, seq_max BIGINT)"
    )
    (checked_up_to,) = db.execute(
        f"SELECT coalesce(max(seq_max), 0) FROM {CHECKED_DAYS}"
    ).fetchone()
    db.execute(
        f"CREATE OR REPLACE TABLE {PENDING_DAYS} AS "
        f"SELECT {_DAY} AS event_day, count(*) AS events, sum(seq) AS seq_sum, max(seq) AS seq_max, "
        "count(*) FILTER (WHERE seq <= $w) AS old_events, "
        "sum(seq) FILTER (WHERE seq <= $w) AS old_seq_sum "
        "FROM raw.ledger_events GROUP BY ALL",
        {"w": checked_up_to},
    )
    changed = db.execute(
        f"SELECT event_day, coalesce(now.old_events, 0) < coalesce(checked.events, 0) AS lost "
        f"FROM (SELECT * FROM {PENDING_DAYS} WHERE old_events > 0) AS now "
        f"FULL JOIN {CHECKED_DAYS} AS checked USING (event_day) "
        "WHERE now.old_events IS DISTINCT FROM checked.events "
        "OR now.old_seq_sum IS DISTINCT FROM checked.seq_sum"
    ).fetchall()
    full = checked_up_to == 0 or any(lost for _, lost in changed)
    if full:
        in_batch, witnesses, scope = "true", "", {}
    else:
        days = ", ".join(_literal(day) for day, _ in changed)
        in_batch = f"seq IS NULL OR seq > {int(checked_up_to)}" + (
            f" OR {_DAY} IN ({days})" if days else ""
        )
        witnesses = WITNESSES.format(in_batch=in_batch)
        # only what the staged events name: a probe of the raw layer, not a set of all its ids
        scope = {
            f"{kind}_scope": f"AND {kind}_id IN (SELECT {kind}_id FROM events)"
            for kind in ("voucher", "campaign", "redemption")
        }
    db.execute(
        RAW_BATCH_QUERY.format(
            raw_batch=RAW_BATCH,
            # a small batch is read several times (witnesses, references): once is enough; the
            # whole layer is read once and must not be held in memory
            materialized="" if full else "MATERIALIZED",
            in_batch=in_batch,
            witnesses=witnesses,
            numeric_structure=_literal(json.dumps(_numeric_structure())),
            currency_error=_currency_error(),
            timestamp_glob=_literal(TIMESTAMP_GLOB),
            payload_type_error=_payload_type_error(),
            # a JSON string ("500") gives NULL here, not 500: payload_type_error names it
            amount_columns=",\n    ".join(
                f"try_cast({_field('fields', *_split(path)[0])}::varchar AS bigint) AS {column}"
                for column, path in AMOUNT_COLUMNS.items()
            ),
            **({"voucher_scope": "", "campaign_scope": "", "redemption_scope": ""} | scope),
        )
    )
    (rows,) = db.execute(f"SELECT count(*) FILTER (WHERE in_batch) FROM {RAW_BATCH}").fetchone()
    return int(rows)


def _split(path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A NUMERIC_PAYLOAD_FIELDS path as the keys to its field, or to its list and then to the
    field in each element: `$.order.amount` -> (order, amount), (); `$.items[*].quantity` ->
    (items,), (quantity,)."""
    keys = path.removeprefix("$.").split(".")
    for at, key in enumerate(keys):
        if key.endswith("[*]"):
            inner = tuple(keys[at + 1 :])
            if any(k.endswith("[*]") for k in inner):
                raise ValueError(f"{path}: a list in a list is not supported")
            return (*keys[:at], key.removesuffix("[*]")), inner
    return tuple(keys), ()


def _numeric_structure() -> dict[str, Any]:
    """The json_transform structure reading every numeric payload field as JSON text, and every
    currency field as text."""
    structure: dict[str, Any] = {}
    for path in {path for paths in CURRENCY_PAYLOAD_FIELDS.values() for path in paths}:
        *outer, name = path.removeprefix("$.").split(".")
        node = structure
        for key in outer:
            node = node.setdefault(key, {})
        node[name] = "VARCHAR"
    for path in NUMERIC_PAYLOAD_FIELDS:
        outer, inner = _split(path)
        node = structure
        for key in outer[:-1]:
            node = node.setdefault(key, {})
        if inner:
            node = node.setdefault(outer[-1], [{}])[0]
            for key in inner[:-1]:
                node = node.setdefault(key, {})
        node[(inner or outer)[-1]] = "JSON"
    return structure


def _payload_type_error() -> str:
    """SQL naming the first numeric payload field of `fields` that holds neither null nor a JSON
    number of its type, e.g. `order.amount is VARCHAR "500"`; NULL when there is none.

    A GLOB per value finds it (a fraction of the cost of json_type on every value); the CASE
    names its type and text only for the rare row that has one."""
    whens, lists = [], {}
    for path, type_ in NUMERIC_PAYLOAD_FIELDS.items():
        outer, inner = _split(path)
        if inner:
            lists.setdefault(outer, []).append((inner, type_))
            continue
        value = _field("fields", *outer)
        whens.append(
            f"WHEN {_wrong(value, type_)} THEN {_names(_literal('.'.join(outer) + ' is '), value)}"
        )
    for outer, fields in lists.items():
        items = _field("fields", *outer)
        wrong = " OR ".join(_wrong(_field("item", *inner), type_) for inner, type_ in fields)
        # JSON path indices: items[0] is the first
        named = " ".join(
            f"WHEN {_wrong(_field('item', *inner), type_)} THEN "
            + _names(
                f"{_literal('.'.join(outer) + '[')} || (i - 1) || {_literal('].' + '.'.join(inner) + ' is ')}",
                _field("item", *inner),
            )
            for inner, type_ in fields
        )
        whens.append(
            f"WHEN list_contains(list_transform({items}, lambda item: {wrong}), true) THEN "
            f"list_filter(list_transform({items}, lambda item, i: CASE {named} END), "
            "lambda said: said IS NOT NULL)[1]"
        )
    return "CASE\n        " + "\n        ".join(whens) + "\n    END"


def _currency_error() -> str:
    """SQL naming the first currency field of `fields` (CURRENCY_PAYLOAD_FIELDS) that is not a
    currency the core accepts, e.g. `order.currency 'XYZ' is not ...`; NULL when there is none."""
    known = ", ".join(_literal(code) for code in sorted(CURRENCY_EXPONENTS))
    whens = []
    for event_type, paths in CURRENCY_PAYLOAD_FIELDS.items():
        for path in paths:
            keys = path.removeprefix("$.").split(".")
            value = _field("fields", *keys)
            whens.append(
                f"WHEN event_type = {_literal(event_type)} AND {value} NOT IN ({known}) THEN "
                f"{_literal('.'.join(keys) + ' ')} || left({value}, {SHOWN_CHARS}) || "
                "' is not an ISO 4217 currency the core accepts'"
            )
    return "CASE\n            " + "\n            ".join(whens) + "\n        END"


def _wrong(value: str, type_: str) -> str:
    glob = NOT_INTEGER_GLOB if type_ in INTEGER_TYPES else NOT_NUMBER_GLOB
    return f"{value} GLOB {_literal(glob)}"


def _names(field_is: str, value: str) -> str:
    return f"{field_is} || json_type({value}) || ' ' || left({value}, {SHOWN_CHARS})"


def _field(root: str, *keys: str) -> str:
    return root + "".join(f'."{key}"' for key in keys)


# Filtering to the events that carry a discount before parsing any JSON: the reconciliation reads
# the whole ledger, but only redemptions and rollbacks have a payload worth opening.
MART_RECONCILIATION_QUERY = """
CREATE OR REPLACE TABLE {table} AS
WITH counts AS (
    SELECT
        count(*) FILTER (WHERE event_type = 'redemption_succeeded') AS redemptions,
        count(*) FILTER (WHERE event_type = 'voucher_published') AS publications,
    FROM raw.ledger_events
),
discounts AS (
    SELECT
        coalesce(sum(CASE WHEN event_type = 'redemption_succeeded' THEN discount ELSE -discount END), 0)
            AS discount_net,
    FROM (
        SELECT
            event_type,
            try_cast(CASE WHEN json_valid(payload) THEN payload ->> 'discount' END AS bigint) AS discount,
        FROM raw.ledger_events
        WHERE event_type IN ('redemption_succeeded', 'redemption_rolled_back')
    )
),
marts AS (
    SELECT
        (SELECT count(*) FROM marts.fct_redemptions) AS redemptions,
        (SELECT coalesce(sum(published), 0) FROM marts.fct_campaign_funnel) AS publications,
        (SELECT coalesce(sum(attributed_discount), 0) FROM marts.fct_campaign_performance) AS discount_net,
)
SELECT 'redemptions' AS figure, cast(counts.redemptions AS bigint) AS ledger_value,
    cast(marts.redemptions AS bigint) AS mart_value
FROM counts, marts
UNION ALL
SELECT 'publications', cast(counts.publications AS bigint), cast(marts.publications AS bigint)
FROM counts, marts
UNION ALL
SELECT 'discount_net', cast(discounts.discount_net AS bigint), cast(marts.discount_net AS bigint)
FROM discounts, marts
"""


# The funnel as the gate checks it: its key, its rates, and redeemed_per_accepted again where the
# campaign requires acceptance (NULL elsewhere), the one place that rate is a share.
FUNNEL_QUERY = """
CREATE OR REPLACE TABLE {table} AS
SELECT
    funnel.campaign_id || '|' || coalesce(funnel.channel, '') || '|'
        || cast(funnel.cohort_date AS varchar) AS funnel_key,
    {rates},
    CASE WHEN campaigns.is_acceptance_required THEN funnel.redeemed_per_accepted END
        AS redeemed_per_accepted_where_required,
FROM marts.fct_campaign_funnel AS funnel
LEFT JOIN marts.dim_campaigns AS campaigns ON campaigns.campaign_id = funnel.campaign_id
"""


def key_mart_expectations(gx: Any) -> list[Any]:
    """The funnel's expectations, each with the rule it enforces. Every rule holds for every
    campaign setting the core allows (tests/test_quality_gates.py builds a ledger with each
    combination): accepted_per_delivered may exceed 1 (the core lets a holder accept a voucher
    whose delivery failed or is still pending) and so may redeemed_per_accepted (acceptance is
    required only where a campaign says so; by default a voucher is redeemed unaccepted)."""
    share = "vouchers {step} are some of the cohort's published vouchers, so the rate is in [0, 1]"
    return [
        gx.expectations.ExpectColumnValuesToBeUnique(
            column="funnel_key",
            description="one funnel row per campaign, channel and cohort day",
        ),
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="delivered_per_published",
            min_value=0,
            max_value=1,
            description=share.format(step="delivered"),
        ),
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="redeemed_per_published",
            min_value=0,
            max_value=1,
            description=share.format(step="redeemed"),
        ),
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="accepted_per_delivered",
            min_value=0,
            description="a ratio of counts is never negative (it may exceed 1: a holder may "
            "accept a voucher whose delivery failed or is pending)",
        ),
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="redeemed_per_accepted",
            min_value=0,
            description="a ratio of counts is never negative (it may exceed 1 where a campaign "
            "does not require acceptance, the default)",
        ),
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="redeemed_per_accepted_where_required",
            min_value=0,
            max_value=1,
            description="where a campaign requires acceptance the core redeems only accepted "
            "vouchers, so redeemed vouchers are some of the accepted ones",
        ),
    ]


def reconciliation_expectations(gx: Any) -> list[Any]:
    return [
        gx.expectations.ExpectColumnPairValuesToBeEqual(
            column_A="ledger_value",
            column_B="mart_value",
            description="the marts count every redemption and publication in the ledger and "
            "the discount net of rollbacks, no more and no less",
        )
    ]


def check_marts(warehouse: Path) -> QualityReport:
    """Key marts against the ledger: counts and money reconcile with the raw events, the
    funnel's rates obey the rules that hold for every campaign setting, keys are unique."""
    with duckdb.connect(str(warehouse)) as db:
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {QUALITY_SCHEMA}")
        db.execute(MART_RECONCILIATION_QUERY.format(table=MART_RECONCILIATION))
        db.execute(
            FUNNEL_QUERY.format(
                table=FUNNEL_KEYS,
                rates=", ".join(f"funnel.{rate}" for rate in FUNNEL_RATES),
            )
        )
        (figures,) = db.execute(f"SELECT count(*) FROM {MART_RECONCILIATION}").fetchone()
        (funnel_rows,) = db.execute(f"SELECT count(*) FROM {FUNNEL_KEYS}").fetchone()
    reports = validate(
        warehouse,
        [
            Suite(
                "marts_reconcile_with_ledger",
                MART_RECONCILIATION,
                reconciliation_expectations,
                id_columns=["figure"],
                rows_checked=int(figures),
            ),
            Suite(
                "campaign_funnel_rates",
                FUNNEL_KEYS,
                key_mart_expectations,
                id_columns=["funnel_key"],
                rows_checked=int(funnel_rows),
            ),
        ],
    )
    return QualityReport(
        suite="key_marts",
        rows_checked=sum(report.rows_checked for report in reports),
        expectations=sum(report.expectations for report in reports),
        failures=[failure for report in reports for failure in report.failures],
    )


def keep_results_open(engine: Any) -> None:
    """Make the SQLAlchemy engine's transaction hooks no-ops.

    Great Expectations (1.24) runs a metric's query in `with engine.connect()` and reads the
    result after the block has ended; SQLAlchemy then rolls the connection back, and DuckDB (whose
    duckdb-engine cursor is the connection itself) drops the pending result set, so every metric
    fails with "list index out of range". The validation connection only reads (it is opened
    read-only) and DuckDB autocommits each statement, so there is nothing to begin, commit or
    roll back. If an upgrade breaks this, the metrics raise and the suites fail (never pass):
    tests/test_quality_gates.py checks both.
    """
    dialect = engine.dialect
    dialect.do_begin = dialect.do_rollback = dialect.do_commit = lambda connection: None


def validate(warehouse: Path, suites: list[Suite]) -> list[QualityReport]:
    """Run each suite on its staged table through one read-only SQL datasource."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # no progress bars in the pipeline's logs
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_sql(
        "warehouse",
        connection_string=f"duckdb:///{warehouse}",
        # GX only reads; read-only also keeps it from holding the warehouse's write lock
        kwargs={"connect_args": {"read_only": True}},
    )
    execution_engine = source.get_execution_engine()
    keep_results_open(execution_engine.engine)
    try:
        return [_run(gx, source, suite) for suite in suites]
    finally:
        # Both engines (the datasource's own, used to test the connection, and the execution
        # engine's) pool a connection that keeps the file open, in a configuration (read-only)
        # that stops this process opening it to write, and the next step (dbt, a publish) must.
        execution_engine.close()
        source.get_engine().dispose()


def _run(gx: Any, source: Any, suite: Suite) -> QualityReport:
    # a query asset: GX 1.24 ignores a table asset's schema_name (deprecated)
    batch = (
        source.add_query_asset(suite.name, query=f"SELECT * FROM {suite.table}")
        .add_batch_definition_whole_table(suite.name)
        .get_batch()
    )
    expectations = gx.ExpectationSuite(name=suite.name, expectations=suite.build(gx))
    # Counting is one query per expectation; naming the offending rows is two more, and the ones
    # for uniqueness group the whole table again. Only a failure needs names, so the suite runs
    # counting first and the expectations that failed run again to name their rows.
    result = batch.validate(expectations, result_format={"result_format": "BOOLEAN_ONLY"})
    outcomes = list(result.results)  # not necessarily in the suite's order: matched by config
    failing = {_key(o.expectation_config) for o in outcomes if o.success is not True}
    if failing:
        again = batch.validate(
            gx.ExpectationSuite(
                name=f"{suite.name}_failures",
                expectations=[e for e in suite.build(gx) if _key(e.configuration) in failing],
            ),
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": suite.id_columns,
                "partial_unexpected_count": SAMPLE_ROWS,
            },
        )
        named = {_key(o.expectation_config): o for o in again.results if o.success is not True}
        # named or not, the first run's verdict stands: a failure stays a failure
        outcomes = [named.get(_key(o.expectation_config), o) for o in outcomes]
    failures = []
    for outcome in outcomes:
        if outcome.success is True:
            continue
        config = outcome.expectation_config
        details = outcome.result or {}
        rows = details.get("partial_unexpected_index_list") or []
        error = _exception_message(outcome.exception_info)
        if error is not None:
            details, rows = {"observed_value": f"error: {error}"}, []
        failures.append(
            FailedExpectation(
                expectation=config.type,
                column=config.kwargs.get("column"),
                unexpected_count=details.get("unexpected_count"),
                rows=[
                    _ordered(row, config.kwargs.get("column"), suite.id_columns)
                    for row in rows[:SAMPLE_ROWS]
                ],
                observed=details.get("observed_value"),
                rule=config.description,
            )
        )
    if len(outcomes) != len(expectations.expectations):
        # an expectation without a result was not checked: that is not a pass
        failures.append(
            FailedExpectation(
                expectation="every expectation has a result",
                column=None,
                unexpected_count=None,
                rows=[],
                observed=f"{len(outcomes)} results for {len(expectations.expectations)}",
            )
        )
    return QualityReport(
        suite=suite.name,
        rows_checked=suite.rows_checked,
        expectations=len(expectations.expectations),
        failures=failures,
    )


# what tells this module's expectations apart (a result's config also carries its batch id)
_KEY_ARGUMENTS = ("column", "column_A", "column_B", "min_value", "max_value", "value_set")


def _key(config: Any) -> str:
    arguments = {name: config.kwargs.get(name) for name in _KEY_ARGUMENTS}
    return config.type + json.dumps(arguments, sort_keys=True, default=str)


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx  # slow to import: only when a suite runs

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return gx


def _exception_message(info: Any) -> str | None:
    """The first raised exception's message in a result's exception_info (flat, or one entry
    per metric), or None."""
    if not info:
        return None
    if isinstance(info, dict) and "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    entries = info.values() if isinstance(info, dict) else [info]
    for entry in entries:
        raised = getattr(entry, "raised_exception", None)
        if raised is None and isinstance(entry, dict):
            raised = entry.get("raised_exception")
        if raised:
            message = getattr(entry, "exception_message", None)
            if message is None and isinstance(entry, dict):
                message = entry.get("exception_message")
            return str(message)
    return None


def _ordered(row: dict[str, Any], column: str | None, id_columns: list[str]) -> dict[str, Any]:
    """An offending row as the message shows it: the checked value first, then the row's ids
    (the SQL datasource lists the ids first)."""
    order = [key for key in [column, *id_columns] if key in row]
    order += [key for key in row if key not in order]
    return {key: _plain(row[key]) for key in order}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
