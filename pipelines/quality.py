"""Great Expectations suites that gate the pipeline: one on the raw extract, one on key marts.

DuckDB does the joins (a reference is broken when the voucher, campaign or redemption it names
was never created) and hands Great Expectations one narrow frame per suite; the expectations
then say what must hold, and a failure names the offending rows by `seq` and `event_id`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from redemption_core.events import EventType

# An event may be stamped a little after it is stored (clock skew between tills), never a day.
MAX_SECONDS_AFTER_RECORDED = 86_400
EARLIEST_PLAUSIBLE = "1990-01-01"
AMOUNT_COLUMNS = ("discount", "gift_amount", "order_amount", "amount", "balance", "latency_ms")
SAMPLE_ROWS = 20
# Conversion between funnel steps: shares of a cohort, so never below 0 or above 1.
FUNNEL_RATES = (
    "delivered_per_published",
    "accepted_per_delivered",
    "redeemed_per_accepted",
    "redeemed_per_published",
)

RAW_EVENTS_QUERY = """
with events as (
    -- a payload that is not JSON fails its own expectation instead of stopping the query
    select *, case when json_valid(payload) then payload end as json_payload
    from raw.ledger_events
),
vouchers as (
    select distinct voucher_id from events where event_type = 'voucher_created'
),
campaigns as (
    select distinct campaign_id from events where event_type = 'campaign_created'
),
redemptions as (
    select distinct redemption_id from events where event_type = 'redemption_succeeded'
),
parsed as (
    select
        e.seq,
        e.event_id,
        e.event_type,
        try_cast(replace(e.occurred_at, 'Z', '') as timestamp) as occurred,
        try_cast(replace(e.recorded_at, 'Z', '') as timestamp) as recorded,
        json_valid(e.payload) as payload_is_json,
        try_cast(e.json_payload ->> 'discount' as bigint) as discount,
        try_cast(e.json_payload ->> 'gift_amount' as bigint) as gift_amount,
        try_cast(e.json_payload -> 'order' ->> 'amount' as bigint) as order_amount,
        try_cast(e.json_payload ->> 'amount' as bigint) as amount,
        try_cast(e.json_payload ->> 'balance' as bigint) as balance,
        try_cast(e.json_payload ->> 'latency_ms' as bigint) as latency_ms,
        case
            when e.voucher_id is not null and e.event_type <> 'voucher_created'
                and v.voucher_id is null then 'voucher ' || e.voucher_id || ' was never created'
            when e.campaign_id is not null and e.event_type <> 'campaign_created'
                and c.campaign_id is null then 'campaign ' || e.campaign_id || ' was never created'
            when e.event_type = 'redemption_rolled_back'
                and r.redemption_id is null then 'redemption ' || coalesce(e.redemption_id, '(none)') || ' never succeeded'
        end as broken_reference,
    from events as e
    left join vouchers as v on v.voucher_id = e.voucher_id
    left join campaigns as c on c.campaign_id = e.campaign_id
    left join redemptions as r on r.redemption_id = e.redemption_id
)
select
    *,
    date_diff('second', recorded, occurred) as seconds_after_recorded,
from parsed
"""


@dataclass(frozen=True)
class FailedExpectation:
    expectation: str
    column: str | None
    unexpected_count: int | None
    rows: list[dict[str, Any]]  # up to SAMPLE_ROWS offending rows, by seq and event_id
    observed: Any = None

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        count = (
            f"{self.unexpected_count} rows"
            if self.unexpected_count is not None
            else f"observed {self.observed}"
        )
        sample = "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in self.rows)
        return f"{self.expectation}{where}: {count}" + (f" — e.g. {sample}" if sample else "")


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


def check_raw_events(warehouse: Path) -> QualityReport:
    """The raw extract: unique ids, known types, plausible timestamps, no negative money, no
    reference to a voucher, campaign or redemption the ledger never created."""
    frame = _query(warehouse, RAW_EVENTS_QUERY)
    known_types = sorted(member.value for member in EventType)

    def build(gx: Any) -> list[Any]:
        expectations = [
            gx.expectations.ExpectColumnValuesToNotBeNull(column="seq"),
            gx.expectations.ExpectColumnValuesToBeUnique(column="seq"),
            gx.expectations.ExpectColumnValuesToNotBeNull(column="event_id"),
            gx.expectations.ExpectColumnValuesToBeUnique(column="event_id"),
            gx.expectations.ExpectColumnValuesToBeInSet(column="event_type", value_set=known_types),
            gx.expectations.ExpectColumnValuesToNotBeNull(column="occurred"),
            gx.expectations.ExpectColumnValuesToNotBeNull(column="recorded"),
            gx.expectations.ExpectColumnValuesToBeBetween(
                column="occurred", min_value=pd.Timestamp(EARLIEST_PLAUSIBLE)
            ),
            gx.expectations.ExpectColumnValuesToBeBetween(
                column="seconds_after_recorded", max_value=MAX_SECONDS_AFTER_RECORDED
            ),
            gx.expectations.ExpectColumnValuesToBeInSet(column="payload_is_json", value_set=[True]),
            gx.expectations.ExpectColumnValuesToBeNull(column="broken_reference"),
        ]
        expectations += [
            gx.expectations.ExpectColumnValuesToBeBetween(column=column, min_value=0)
            for column in AMOUNT_COLUMNS
        ]
        return expectations

    return _validate("raw_ledger_events", frame, build, id_columns=["seq", "event_id"])


MART_RECONCILIATION_QUERY = """
with events as (
    select event_type, case when json_valid(payload) then payload end as json_payload
    from raw.ledger_events
),
ledger as (
    select
        count(*) filter (where event_type = 'redemption_succeeded') as redemptions,
        count(*) filter (where event_type = 'voucher_published') as publications,
        coalesce(sum(try_cast(json_payload ->> 'discount' as bigint))
            filter (where event_type = 'redemption_succeeded'), 0) as discount_granted,
        coalesce(sum(try_cast(json_payload ->> 'discount' as bigint))
            filter (where event_type = 'redemption_rolled_back'), 0) as discount_returned,
    from events
),
marts as (
    select
        (select count(*) from marts.fct_redemptions) as redemptions,
        (select coalesce(sum(published), 0) from marts.fct_campaign_funnel) as publications,
        (select coalesce(sum(attributed_discount), 0) from marts.fct_campaign_performance) as discount_net,
)
select
    'redemptions' as figure,
    cast(ledger.redemptions as bigint) as ledger_value,
    cast(marts.redemptions as bigint) as mart_value,
from ledger, marts
union all
select 'publications', cast(ledger.publications as bigint), cast(marts.publications as bigint) from ledger, marts
union all
select
    'discount_net',
    cast(ledger.discount_granted - ledger.discount_returned as bigint),
    cast(marts.discount_net as bigint),
from ledger, marts
"""


def check_marts(warehouse: Path) -> QualityReport:
    """Key marts against the ledger: counts and money reconcile with the raw events, rates are
    rates, keys are unique."""
    reconciliation = _query(warehouse, MART_RECONCILIATION_QUERY)
    funnel = _query(
        warehouse,
        "select campaign_id || '|' || coalesce(channel, '') || '|' || cast(cohort_date as varchar) as funnel_key, "
        + ", ".join(FUNNEL_RATES)
        + " from marts.fct_campaign_funnel",
    )
    reports = [
        _validate(
            "marts_reconcile_with_ledger",
            reconciliation,
            lambda gx: [
                gx.expectations.ExpectColumnPairValuesToBeEqual(
                    column_A="ledger_value", column_B="mart_value"
                )
            ],
            id_columns=["figure"],
        ),
        _validate(
            "campaign_funnel_rates",
            funnel,
            lambda gx: [
                gx.expectations.ExpectColumnValuesToBeUnique(column="funnel_key"),
                *[
                    gx.expectations.ExpectColumnValuesToBeBetween(
                        column=column, min_value=0, max_value=1
                    )
                    for column in FUNNEL_RATES
                ],
            ],
            id_columns=["funnel_key"],
        ),
    ]
    return QualityReport(
        suite="key_marts",
        rows_checked=sum(report.rows_checked for report in reports),
        expectations=sum(report.expectations for report in reports),
        failures=[failure for report in reports for failure in report.failures],
    )


def _query(warehouse: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        return db.execute(sql).df()


def _validate(
    suite_name: str, frame: pd.DataFrame, build: Callable[[Any], list[Any]], id_columns: list[str]
) -> QualityReport:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx  # slow to import: only when a suite runs
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    # no progress bars in the pipeline's logs
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas(suite_name)
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe(suite_name)
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=suite_name, expectations=build(gx))
    result = batch.validate(
        suite,
        result_format={
            "result_format": "SUMMARY",
            "unexpected_index_column_names": id_columns,
            "partial_unexpected_count": SAMPLE_ROWS,
        },
    )
    failures = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        details = outcome.result or {}
        rows = details.get("partial_unexpected_index_list") or []
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            details = {"observed_value": outcome.exception_info.get("exception_message")}
        failures.append(
            FailedExpectation(
                expectation=config.type,
                column=config.kwargs.get("column"),
                unexpected_count=details.get("unexpected_count"),
                rows=[
                    {key: _plain(value) for key, value in row.items()} for row in rows[:SAMPLE_ROWS]
                ],
                observed=details.get("observed_value"),
            )
        )
    return QualityReport(
        suite=suite_name,
        rows_checked=len(frame),
        expectations=len(suite.expectations),
        failures=failures,
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
