"""The nightly pipeline over another system's history (tests/foreign_ledgers.py): a ledger that
starts in 2007, a coupon history with several coupons per customer and no orders, a 2008 e-mail
experiment whose two treatments share one control group, a quiet last month, a customer added
with only an e-mail address. One run, shared by the module: it must publish true marts, with a
status row for each model step that had nothing to work with, and the console must show them."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from console_apptest import assert_no_failure, open_page, texts
from foreign_ledgers import (
    CLICKED,
    COUPONS_EACH,
    HOUSEHOLDS,
    OPENED,
    REDEEMED,
    TREATED,
    VISITED,
    WALK_IN,
    ForeignHistory,
    expected_lifts,
    foreign_history,
)
from pipeline_helpers import failure_text, pipeline_env

from pipelines.paths import PipelinePaths


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForeignHistory]:
    from pipelines.run import run_pipeline

    home = tmp_path_factory.mktemp("foreign")
    history = foreign_history(home)
    with pytest.MonkeyPatch.context() as env:
        for key, value in pipeline_env(home).items():
            env.setenv(key, value)
        result = run_pipeline(home, quiet=True)
        assert result.success, failure_text(result)
        yield history


def query(history: ForeignHistory, sql: str) -> list[dict]:
    with duckdb.connect(str(PipelinePaths(history.home).published_warehouse), read_only=True) as db:
        result = db.sql(sql)
        return [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]


def by_campaign(history: ForeignHistory, source: str) -> dict[str, dict]:
    return {row["campaign_id"]: row for row in query(history, f"select * from {source}")}


def funnel(history: ForeignHistory) -> dict[str, dict]:
    return by_campaign(
        history,
        "(select campaign_id, sum(published) as published, sum(delivered) as delivered, "
        "sum(opened) as opened, sum(clicked) as clicked, sum(visited) as visited, "
        "sum(accepted) as accepted, sum(redeemed) as redeemed, sum(held_out) as held_out "
        "from marts.fct_campaign_funnel group by campaign_id)",
    )


def test_a_history_that_starts_in_2007_is_published_whole(history: ForeignHistory) -> None:
    [row] = query(
        history,
        "select count(*) as campaigns, min(created_at) as first from marts.dim_campaigns",
    )

    assert row["campaigns"] == 4
    assert row["first"].year == 2007


@pytest.mark.parametrize("campaign_id", list(TREATED))
def test_an_email_experiment_sharing_one_control_group_is_measured_though_its_data_stop_early(
    history: ForeignHistory, campaign_id: str
) -> None:
    """The history stops 13.9 days after the send, but it was imported today: what the ledger
    knows runs up to today, so every 14-day window is closed and both arms are measured."""
    expected = expected_lifts(campaign_id)

    row = by_campaign(history, "marts.fct_campaign_performance")[campaign_id]

    assert (row["incremental_treated_customers"], row["incremental_control_customers"]) == (20, 20)
    assert row["incremental_open_window_customers"] == 0
    assert row["outcome_window_closes_at"] is None
    for measure, column in [
        ("conversion", "incremental_conversion"),
        ("visit_rate", "incremental_visit_rate"),
    ]:
        lift = expected[measure]
        assert row[column] == pytest.approx(lift.difference, abs=1e-6), measure
        assert row[f"{column}_ci_low"] == pytest.approx(lift.low, abs=1e-6), measure
        assert row[f"{column}_ci_high"] == pytest.approx(lift.high, abs=1e-6), measure
    revenue = expected["revenue_per_customer"]
    assert row["incremental_revenue_per_customer"] == pytest.approx(revenue.difference, abs=0.01)
    assert row["incremental_revenue_per_customer_ci_low"] == pytest.approx(revenue.low, abs=0.01)
    assert row["attributed_redemptions"] == row["attributed_orders"] == 0


def test_the_funnel_counts_opens_clicks_and_visits_of_each_treatment(
    history: ForeignHistory,
) -> None:
    rows = funnel(history)

    for campaign_id in TREATED:
        row = rows[campaign_id]
        assert (row["published"], row["delivered"], row["held_out"]) == (20, 20, 20), campaign_id
        assert row["opened"] == len(OPENED[campaign_id]), campaign_id
        assert row["clicked"] == len(CLICKED[campaign_id]), campaign_id
        assert row["visited"] == len(VISITED[campaign_id]), campaign_id
        assert (row["accepted"], row["redeemed"]) == (0, 0), campaign_id


def test_coupon_redemptions_without_an_order_are_redemptions_not_orders(
    history: ForeignHistory,
) -> None:
    performance = by_campaign(history, "marts.fct_campaign_performance")
    rows = funnel(history)

    for campaign_id, each in COUPONS_EACH.items():
        assert rows[campaign_id]["published"] == each * len(HOUSEHOLDS), campaign_id
        assert rows[campaign_id]["redeemed"] == REDEEMED[campaign_id], campaign_id
        row = performance[campaign_id]
        assert row["attributed_redemptions"] == REDEEMED[campaign_id], campaign_id
        assert (row["attributed_orders"], row["attributed_revenue"]) == (0, 0), campaign_id
        assert row["incremental_treated_customers"] is None, campaign_id  # no control group


def test_a_customer_added_with_only_an_email_consents_to_nothing(history: ForeignHistory) -> None:
    [row] = query(
        history,
        "select has_email_consent, has_sms_consent, has_push_consent from marts.dim_customers "
        f"where customer_id = '{WALK_IN}'",
    )

    assert row == {"has_email_consent": False, "has_sms_consent": False, "has_push_consent": False}


def test_the_model_steps_work_on_another_systems_history_and_leave_status_rows(
    history: ForeignHistory,
) -> None:
    """No labels, no model, redemptions years old: the label-free fraud layers still score the
    whole ledger on this first run and publish a queue (possibly empty); every model step leaves
    a status row, and the marts are published whatever the steps did."""
    steps = {row["step"]: row for row in query(history, "select * from status.pipeline_steps")}
    tables = {
        row["name"]
        for row in query(
            history, "select schema_name || '.' || table_name as name from duckdb_tables()"
        )
    }

    assert steps["fraud_attempt_features"]["state"] == "succeeded"
    assert steps["fraud_review_queue"]["state"] == "succeeded"
    assert "scored by label-free" in steps["fraud_review_queue"]["detail"]
    assert "ml.fraud_review_queue" in tables
    assert steps["next_best_offers"]["state"] in {"succeeded", "skipped"}
    assert {"marts.fct_campaign_performance", "marts.fct_campaign_funnel"} <= tables


def test_the_console_shows_the_history_and_its_fraud_queue(
    history: ForeignHistory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMO_HOME", str(history.home))

    for page in ("system_health", "campaign_performance", "engagement", "personalisation"):
        assert_no_failure(open_page(page))
    fraud = open_page("fraud_review")

    assert_no_failure(fraud)
    assert "No fraud review queue" not in texts(fraud)
