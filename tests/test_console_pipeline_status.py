"""What the console says about a warehouse published without everything: model steps that had
nothing to work with or failed (status.pipeline_steps), engagement steps the ledger does not
record, and outcome windows still open. Pages run in AppTest over the hand-built warehouse of
tests/console_fixtures.py, changed in the one respect each test is about."""

from __future__ import annotations

from pathlib import Path

import console_fixtures as fixtures
import duckdb
import pytest
from console_apptest import assert_no_failure, metrics, open_page, table_with, texts

from app_streamlit import pipeline_status
from pipelines.defs import ml as ml_steps
from pipelines.step_status import COLUMNS, STEPS_TABLE

SKIPPED_FRAUD = (
    "no attempt features to score: no redemption attempts (validations or redemptions) in "
    "the events"
)


def warehouse(home: Path, *statements: str) -> Path:
    """The fixtures' published warehouse, changed by `statements`."""
    path = fixtures.published_warehouse(home)
    with duckdb.connect(str(path)) as db:
        for statement in statements:
            db.execute(statement)
    return path


def with_steps(*rows: str) -> list[str]:
    return [
        "CREATE SCHEMA status",
        f"CREATE TABLE {STEPS_TABLE} ({COLUMNS})",
        *(f"INSERT INTO {STEPS_TABLE} VALUES {row}" for row in rows),
    ]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))
    return tmp_path


def test_the_consoles_step_names_are_the_pipelines() -> None:
    assert (
        pipeline_status.FRAUD_FEATURES_STEP,
        pipeline_status.FRAUD_QUEUE_STEP,
        pipeline_status.NEXT_BEST_OFFERS_STEP,
    ) == (ml_steps.FRAUD_FEATURES_STEP, ml_steps.FRAUD_QUEUE_STEP, ml_steps.NEXT_BEST_OFFERS_STEP)


def test_system_health_lists_each_step_and_says_why_one_made_nothing(home: Path) -> None:
    warehouse(
        home,
        *with_steps(
            f"('fraud_review_queue', 'skipped', '{SKIPPED_FRAUD}', NULL, 'run-2', "
            "TIMESTAMP '2026-01-21 06:00:00', TIMESTAMP '2026-01-07 06:00:00', 'run-1')",
            "('next_best_offers', 'succeeded', '30 offers for 10 customers scored by "
            "personalisation-v1', 30, 'run-2', TIMESTAMP '2026-01-21 06:00:00', "
            "TIMESTAMP '2026-01-21 06:00:00', 'run-2')",
        ),
    )

    app = open_page("system_health")

    assert_no_failure(app)
    said = texts(app)
    assert (
        f"fraud_review_queue skipped in the run that published this warehouse: {SKIPPED_FRAUD}"
        in (said)
    )
    assert "last made 2026-01-07 06:00 UTC" in said
    steps = table_with(app, "last_succeeded_at").set_index("step")
    assert steps.loc["next_best_offers", "state"] == "succeeded"
    assert steps.loc["fraud_review_queue", "state"] == "skipped"


def test_a_failed_step_is_an_error_on_system_health(home: Path) -> None:
    warehouse(
        home,
        *with_steps(
            "('next_best_offers', 'failed', 'ValueError: boom', NULL, 'run-2', "
            "TIMESTAMP '2026-01-21 06:00:00', NULL, NULL)"
        ),
    )

    app = open_page("system_health")

    assert_no_failure(app)
    assert any("next_best_offers failed" in e.value for e in app.error)
    assert "never made on this ledger yet" in texts(app)


def test_without_a_fraud_queue_the_page_shows_why_the_pipeline_made_none(home: Path) -> None:
    warehouse(
        home,
        *with_steps(
            f"('fraud_review_queue', 'skipped', '{SKIPPED_FRAUD}', NULL, 'run-2', "
            "TIMESTAMP '2026-01-21 06:00:00', NULL, NULL)"
        ),
    )

    app = open_page("fraud_review")

    assert_no_failure(app)
    said = texts(app)
    assert f"No fraud review queue in this warehouse: {SKIPPED_FRAUD}" in said
    assert "never made on this ledger yet" in said


def test_without_next_best_offers_the_page_shows_the_steps_failure(home: Path) -> None:
    warehouse(
        home,
        *with_steps(
            "('next_best_offers', 'failed', 'KeyError: campaign_id', NULL, 'run-2', "
            "TIMESTAMP '2026-01-21 06:00:00', TIMESTAMP '2026-01-20 06:00:00', 'run-1')"
        ),
    )

    app = open_page("personalisation")

    assert_no_failure(app)
    [error] = app.error
    assert "The next best offers step failed in the run of 2026-01-21 06:00 UTC" in error.value
    assert "KeyError: campaign_id" in error.value
    assert "last made 2026-01-20 06:00 UTC" in error.value


def test_the_funnel_leaves_out_engagement_the_ledger_does_not_record(home: Path) -> None:
    warehouse(home)

    app = open_page("engagement")

    assert_no_failure(app)
    assert not {"Opened", "Clicked", "Visited"} & set(metrics(app))
    assert "opened" not in table_with(app, "biggest_loss").columns


def test_the_funnel_shows_engagement_between_delivered_and_accepted_where_recorded(
    home: Path,
) -> None:
    # winback by email on the 10th: 10 published, 8 delivered, 6 opened, 3 clicked; no visits
    warehouse(
        home,
        "UPDATE marts.fct_campaign_funnel SET opened = 0, clicked = 0",
        "UPDATE marts.fct_campaign_funnel SET opened = 6, clicked = 3 "
        "WHERE campaign_id = 'winback' AND channel = 'email' AND cohort_date = '2026-01-10'",
    )

    app = open_page("engagement")

    assert_no_failure(app)
    shown = metrics(app)
    assert (shown["Opened"], shown["Clicked"]) == ("6", "3")
    assert "Visited" not in shown
    labels = list(shown)
    assert labels.index("Delivered") < labels.index("Opened") < labels.index("Accepted")
    funnel = table_with(app, "biggest_loss")
    columns = list(funnel.columns)
    assert columns.index("delivered") < columns.index("opened") < columns.index("accepted")
    assert "visited" not in columns


def test_campaign_performance_says_when_open_outcome_windows_close(home: Path) -> None:
    # Win-back's customers all still inside their window: no lift yet, and the page says why
    warehouse(
        home,
        "UPDATE marts.fct_campaign_performance SET incremental_treated_customers = 0, "
        "incremental_control_customers = 0, incremental_profit = NULL, "
        "incremental_profit_ci_low = NULL, incremental_profit_ci_high = NULL, "
        "incremental_open_window_customers = 50, "
        "outcome_window_closes_at = TIMESTAMP '2026-01-24 18:00:00' "
        "WHERE campaign_id = 'winback'",
    )

    app = open_page("campaign_performance")

    assert_no_failure(app)
    assert (
        "**Win-back**: 50 customers' windows are still open; the last closes 2026-01-24 18:00"
        in (texts(app))
    )
    table = table_with(app, "verdict").set_index("campaign")
    assert table.loc["Win-back", "verdict"] == "too early: outcome windows close by 2026-01-24"
    assert table.loc["Win-back", "incremental_open_window_customers"] == 50
