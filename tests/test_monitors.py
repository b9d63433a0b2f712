"""What the pipeline's monitoring asset checks find (pipelines/monitors.py): the marts' own
statuses and rules read back, the daily event volume judged against the days before, and the
model outputs scored."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import console_fixtures as fixtures
import duckdb
import pytest

from pipelines import monitors


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return fixtures.published_warehouse(tmp_path, fixtures.RECORD_TABLES)


def days(counts: list[int], start: date = date(2026, 1, 1)) -> list[tuple[date, int]]:
    return [(start + timedelta(days=i), n) for i, n in enumerate(counts) if n]


def test_system_health_reports_the_marts_statuses_with_their_rules(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as db:
        fixtures.fct_system_health_rejections_jump(db)

    finding = monitors.system_health(warehouse)

    assert finding.status == "warning" and not finding.passed
    assert finding.summary == "system health warning: Redemption rejections"
    assert finding.details[1].startswith("Redemption rejections: warning: rejection rate 66.4 %")
    assert finding.figures["completeness_status"] == "ok"


def test_campaign_health_lists_the_campaigns_not_ok_worst_first(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as db:
        fixtures.fct_campaign_health_failure_jump(db)

    finding = monitors.campaign_health(warehouse)

    assert finding.status == "failing"
    assert finding.summary == "2 failing, 0 warning, 1 ok of 3 campaigns"
    assert finding.details[0].startswith("Slow-night filler (flash): failing: no delivery")
    assert "Win-back (winback): failing: delivery failure rate 4.0 %" in finding.details[1]


def test_a_usual_day_is_within_the_range_even_after_a_burst_of_sends() -> None:
    usual = [700] * 27 + [14_000] + [690, 650]  # a promotion day inflates the mean, not the median

    finding = monitors.event_volume(days(usual))

    assert finding.status == "ok", finding.summary
    assert finding.figures["baseline_median"] == 700


def test_a_day_under_half_the_median_and_lower_than_every_day_before_warns() -> None:
    finding = monitors.event_volume(days([700] * 28 + [200, 650]))

    assert finding.status == "warning"
    assert "200 events on 2026-01-29 against a median of 700" in finding.summary


def test_a_day_without_any_event_fails_and_a_quiet_ledger_is_not_judged() -> None:
    silent = [700] * 28 + [0, 650]
    quiet = [3] * 28 + [0, 2]

    assert monitors.event_volume(days(silent)).status == "failing"
    assert "too few a day to judge" in monitors.event_volume(days(quiet)).summary


def test_a_low_day_that_is_not_the_lowest_is_not_flagged() -> None:
    # under half the median, but an earlier day was lower still: the ledger is that uneven
    finding = monitors.event_volume(days([700] * 20 + [100] + [700] * 7 + [300, 650]))

    assert finding.status == "ok"


def test_model_outputs_missing_or_empty_are_warnings_and_an_empty_fraud_queue_is_fine(
    warehouse: Path,
) -> None:
    with duckdb.connect(str(warehouse)) as db:
        db.execute("DELETE FROM ml.fraud_review_queue")
        db.execute("DROP TABLE ml.next_best_offers")

    queue = monitors.ml_output(warehouse, "fraud_review_queue", may_be_empty=True)
    offers = monitors.ml_output(warehouse, "next_best_offers", may_be_empty=False)

    assert queue.status == "ok" and queue.figures["rows"] == 0
    assert offers.status == "warning"
    assert offers.summary == "ml.next_best_offers was not written: no model promoted to score"


def test_daily_counts_read_only_the_days_the_check_needs_and_mark_where_the_ledger_starts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "build.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE SCHEMA raw")
        db.execute(
            "CREATE TABLE raw.ledger_events AS SELECT i AS seq, "
            "strftime(DATE '2026-01-01' + (i // 10)::INT, '%Y-%m-%d') AS event_date "
            "FROM range(400) AS t(i) WHERE i // 10 NOT IN (35, 36)"  # two quiet days
        )
    young = tmp_path / "young.duckdb"
    with duckdb.connect(str(young)) as db:
        db.execute("CREATE SCHEMA raw")
        db.execute(
            "CREATE TABLE raw.ledger_events AS SELECT '2026-03-0' || (1 + i % 3) AS event_date "
            "FROM range(30) AS t(i)"
        )

    counts = monitors.daily_event_counts(path)
    started = monitors.daily_event_counts(young)

    assert counts[0] == (date(2026, 1, 11), 10)  # 40 days held, the last 30 read
    assert counts[-1] == (date(2026, 2, 9), 10)
    assert date(2026, 2, 5) not in dict(counts)  # a quiet day is simply absent
    assert started == [(date(2026, 3, 1), 10), (date(2026, 3, 2), 10), (date(2026, 3, 3), 10)]
