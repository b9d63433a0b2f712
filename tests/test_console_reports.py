"""The console's Reports, Monitoring and calendar pages, and what every page relies on: the
router, the shared filters, read-only parameterised queries, formats, empty states and the
error boundary.

Pages run in Streamlit's AppTest from the router, as an analyst would reach them, against a
published warehouse written by hand (tests/console_fixtures.py) so that the expected numbers
can be worked out on paper; one test runs every page over a warehouse the real pipeline built
from a tiny simulation.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import console_fixtures as fixtures
import duckdb
import pandas as pd
import pytest
from console_apptest import (
    APOLOGY,
    ROUTER,
    assert_no_failure,
    metric_notes,
    metrics,
    open_page,
    table_with,
    texts,
)
from streamlit.testing.v1 import AppTest

from app_streamlit import db, ui
from app_streamlit.filters import CAMPAIGNS_KEY, CHANNELS_KEY, DATES_KEY, Filters
from app_streamlit.streamlit_app import SECTIONS

PAGES_DIR = ROUTER.parent / "app_pages"
MY_PAGES = (
    "overview",
    "engagement",
    "campaign_performance",
    "delivery_performance",
    "system_health",
    "campaign_health",
    "pending_triggers",
    "diagnostics",
    "calendar",
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("console_home")
    fixtures.published_warehouse(home)
    return home


@pytest.fixture
def home(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMO_HOME", str(warehouse))
    return warehouse


# ---- every page ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", MY_PAGES)
def test_each_page_renders_without_an_exception_and_offers_its_tables_as_csv(
    home: Path, page: str
) -> None:
    app = open_page(page)

    assert_no_failure(app)
    assert app.title[0].value
    assert len(app.get("download_button")) >= len(app.dataframe)


def test_the_router_lists_every_page_in_its_sections() -> None:
    listed = {file for entries in SECTIONS.values() for file, _, _ in entries}

    on_disk = {path.name for path in PAGES_DIR.glob("*.py")}

    assert {f"{page}.py" for page in MY_PAGES} <= listed
    assert on_disk <= listed
    assert set(SECTIONS) == {"Reports", "Campaigns", "Customers", "Monitoring"}


def test_every_listed_page_opens_from_the_router(home: Path) -> None:
    app = AppTest.from_file(ROUTER, default_timeout=30).run()

    for entries in SECTIONS.values():
        for file, _, _ in entries:
            app.switch_page(f"app_pages/{file}")  # raises unless the router registered it


@pytest.mark.parametrize("page", MY_PAGES)
def test_without_a_warehouse_each_page_says_which_command_publishes_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page(page)

    assert_no_failure(app)
    assert "No published warehouse yet: run `make pipeline`" in texts(app)


def test_a_page_whose_table_is_missing_names_the_table_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures.published_warehouse(
        tmp_path, [t for t in fixtures.REPORT_TABLES if t is not fixtures.fct_delivery_failures]
    )
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page("delivery_performance")

    assert_no_failure(app)
    assert "fct_delivery_failures" in texts(app)
    assert "make pipeline" in texts(app)


def test_an_unexpected_error_shows_a_short_apology_and_no_stack_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_performance(db: duckdb.DuckDBPyConnection) -> None:
        db.execute("CREATE TABLE marts.fct_campaign_performance AS SELECT 1 AS unexpected")

    tables = [
        broken_performance if t is fixtures.fct_campaign_performance else t
        for t in fixtures.REPORT_TABLES
    ]
    fixtures.published_warehouse(tmp_path, tables)
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page("campaign_performance")

    assert not app.exception
    assert APOLOGY in app.error[0].value
    assert "Traceback" not in texts(app)


def test_a_damaged_warehouse_file_asks_for_a_new_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "warehouse").mkdir()
    (tmp_path / "warehouse" / "published.duckdb").write_text("not a database")
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page("overview")

    assert not app.exception
    assert "could not be opened" in app.warning[0].value
    assert "make pipeline" in app.warning[0].value


# ---- Overview and the shared filters -------------------------------------------------------


def test_overview_shows_the_headline_numbers_of_the_whole_range(home: Path) -> None:
    app = open_page("overview")

    shown = metrics(app)
    assert shown["Redemptions"] == "4"
    assert shown["Discount given"] == "EUR 20.50"
    assert shown["Voucher order amounts"] == "EUR 145.00"
    assert shown["Customers redeeming"] == "3"
    assert shown["Vouchers published"] == "25"
    assert shown["Delivered"] == "23"
    assert shown["Accepted"] == "14"
    assert shown["Redeemed vouchers"] == "10"
    assert len(app.get("vega_lite_chart")) == 3


def test_the_date_range_defaults_to_the_days_the_warehouse_covers(home: Path) -> None:
    app = open_page("overview")

    assert app.sidebar.date_input(key=DATES_KEY).value == (date(2026, 1, 10), date(2026, 1, 21))


def test_overview_numbers_follow_the_date_range(home: Path) -> None:
    app = open_page("overview")

    app.sidebar.date_input(key=DATES_KEY).set_value((date(2026, 1, 10), date(2026, 1, 15))).run()

    shown = metrics(app)
    assert shown["Redemptions"] == "3"
    assert shown["Discount given"] == "EUR 18.00"
    assert shown["Voucher order amounts"] == "EUR 120.00"
    assert shown["Vouchers published"] == "19"
    assert shown["Delivered"] == "17"
    assert shown["Accepted"] == "11"


def test_a_campaign_filter_narrows_the_overview_to_that_campaign(home: Path) -> None:
    app = open_page("overview")

    app.sidebar.multiselect(key=CAMPAIGNS_KEY).set_value(["vip"]).run()

    shown = metrics(app)
    assert shown["Redemptions"] == "1"
    assert shown["Discount given"] == "EUR 10.00"
    assert shown["Voucher order amounts"] == "EUR 40.00"
    assert shown["Vouchers published"] == "5"


def test_a_channel_filter_narrows_vouchers_but_not_redemptions(home: Path) -> None:
    app = open_page("overview")

    app.sidebar.multiselect(key=CHANNELS_KEY).set_value(["email"]).run()

    shown = metrics(app)
    assert shown["Vouchers published"] == "16"
    assert shown["Delivered"] == "14"
    assert shown["Accepted"] == "8"
    assert shown["Redemptions"] == "4"


def test_filters_persist_when_the_analyst_changes_page(home: Path) -> None:
    app = open_page("overview")
    app.sidebar.multiselect(key=CAMPAIGNS_KEY).set_value(["vip"]).run()
    app.sidebar.date_input(key=DATES_KEY).set_value((date(2026, 1, 10), date(2026, 1, 15))).run()

    app.switch_page("app_pages/engagement.py").run()

    assert app.sidebar.multiselect(key=CAMPAIGNS_KEY).value == ["vip"]
    assert app.sidebar.date_input(key=DATES_KEY).value == (date(2026, 1, 10), date(2026, 1, 15))
    assert metrics(app)["Published"] == "5"


def test_a_range_left_at_everything_grows_when_a_new_publish_adds_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures.published_warehouse(tmp_path)
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))
    app = open_page("overview")

    with duckdb.connect(str(tmp_path / "warehouse" / "published.duckdb")) as warehouse:
        warehouse.execute(
            "INSERT INTO marts.fct_redemptions SELECT * REPLACE ('r6' AS redemption_id, "
            "DATE '2026-01-25' AS redeemed_date) FROM marts.fct_redemptions "
            "WHERE redemption_id = 'r5'"
        )
    app.run()

    assert app.sidebar.date_input(key=DATES_KEY).value == (date(2026, 1, 10), date(2026, 1, 25))
    assert metrics(app)["Redemptions"] == "5"


def test_resetting_the_filters_brings_back_every_campaign_and_day(home: Path) -> None:
    app = open_page("overview")
    app.sidebar.multiselect(key=CAMPAIGNS_KEY).set_value(["vip"]).run()

    app.sidebar.button[0].click().run()

    assert app.sidebar.multiselect(key=CAMPAIGNS_KEY).value == []
    assert metrics(app)["Redemptions"] == "4"


# ---- Reports -------------------------------------------------------------------------------


def test_engagement_shows_the_funnel_and_where_each_campaign_loses_people(home: Path) -> None:
    app = open_page("engagement")

    shown = metrics(app)
    assert (shown["Published"], shown["Delivered"], shown["Accepted"], shown["Redeemed"]) == (
        "25",
        "23",
        "14",
        "10",
    )
    assert shown["Conversion"] == "40.0 %"
    assert (shown["Held out"], shown["Skipped"]) == ("3", "2")
    funnel = table_with(app, "biggest_loss").set_index(["campaign", "channel"])
    # Win-back by email: 16 published, 14 delivered, 8 accepted, 5 redeemed.
    assert funnel.loc[("Win-back", "email"), "biggest_loss"] == "acceptance: 6 of 14 lost"
    # VIP does not ask for acceptance: delivered 5, redeemed 4.
    assert funnel.loc[("VIP thank-you", "push"), "biggest_loss"] == "redemption: 1 of 5 lost"
    skips = table_with(app, "no_consent").set_index("campaign")
    assert skips.loc["Win-back", ["held_out", "no_consent", "frequency_cap"]].to_list() == [3, 1, 1]


def test_campaign_performance_sets_attributed_beside_incremental_with_a_verdict(
    home: Path,
) -> None:
    app = open_page("campaign_performance")

    shown = metrics(app)
    assert shown["Attributed revenue"] == "EUR 145.00"
    assert shown["Discount given"] == "EUR 20.50"
    assert shown["Return on discount (attributed)"] == "7.07x"
    assert shown["Incremental profit, 1 campaign"] == "EUR 12.00"
    assert metric_notes(app)["Incremental profit, 1 campaign"] == "95 % CI EUR 3.00 to EUR 21.00"
    assert (shown["Measured"], shown["Pay for themselves"]) == ("1 of 3", "1")
    assert "Incremental profit: 1 of 1 campaign above zero (Win-back)." in app.success[0].value
    table = table_with(app, "verdict").set_index("campaign")
    assert table.loc["Win-back", "verdict"] == "pays for itself"
    assert table.loc[
        "Win-back", ["incremental_profit_ci_low", "incremental_profit_ci_high"]
    ].to_list() == [
        3.0,
        21.0,
    ]
    assert table.loc["VIP thank-you", "verdict"] == "no control group"
    assert len(app.get("vega_lite_chart")) == 1


def test_campaign_performance_sorts_by_the_chosen_measure(home: Path) -> None:
    app = open_page("campaign_performance")

    app.selectbox(key="performance_sort").set_value("Attributed revenue").run()

    order = table_with(app, "verdict")["campaign"].to_list()
    assert order == ["Win-back", "VIP thank-you", "Slow-night filler"]


def test_delivery_performance_shows_success_latency_and_failure_reasons(home: Path) -> None:
    app = open_page("delivery_performance")

    shown = metrics(app)
    assert shown["Messages sent"] == "25"
    assert shown["Messages delivered"] == "24"
    assert shown["Success rate"] == "96.0 %"
    assert shown["Failed"] == "1"
    assert shown["Retries"] == "2"
    assert shown["Blocked before sending"] == "1"
    reasons = table_with(app, "error_reason")
    assert set(reasons["error_reason"]) == {"mailbox full", "consent withdrawn"}
    by_provider = table_with(app, "success_rate").set_index("provider")
    assert by_provider.loc["smtp", "messages_attempted"] == 16
    # The table shows shares as percentages ("93.8 %"); its CSV keeps the fraction.
    assert by_provider.loc["smtp", "success_rate"] == pytest.approx(100 * 15 / 16)


def test_delivery_numbers_follow_the_channel_filter(home: Path) -> None:
    app = open_page("delivery_performance")

    app.sidebar.multiselect(key=CHANNELS_KEY).set_value(["sms"]).run()

    shown = metrics(app)
    assert (shown["Messages sent"], shown["Success rate"]) == ("4", "100.0 %")


def test_system_health_shows_freshness_and_error_rates(home: Path) -> None:
    app = open_page("system_health")

    shown = metrics(app)
    assert shown["Published"] == "2026-01-21 06:05"
    assert shown["Ledger events"] == "1,234"
    assert shown["Lag (events)"] == "0"
    assert shown["Redemptions rejected (7 d)"] == "5.0 %"
    assert shown["Deliveries failed (7 d)"] == "2.0 %"
    banner = app.success[0].value
    assert "**Completeness: ok.** every ledger event up to seq 1,234" in banner
    assert "**Redemption rejections: ok.** rejection rate 5.0 %" in banner
    assert "**Publication: ok.** published 2026-01-21 06:05 UTC; no schedule recorded" in banner


# ---- Monitoring ----------------------------------------------------------------------------


def test_campaign_health_puts_failing_campaigns_first_with_the_reason(home: Path) -> None:
    app = open_page("campaign_health")

    shown = metrics(app)
    assert (shown["Failing"], shown["Warning"], shown["OK"]) == ("1", "1", "1")
    assert "Slow-night filler" in app.error[0].value
    assert "no delivery for 3 days" in app.error[0].value
    assert "1 triggers pending" in app.warning[0].value
    assert table_with(app, "status_reason")["campaign"].to_list()[0] == "Slow-night filler"


def test_pending_triggers_shows_their_ages_oldest_first(home: Path) -> None:
    app = open_page("pending_triggers")

    shown = metrics(app)
    assert shown["Pending triggers"] == "3"
    assert shown["Pending over 24 h"] == "2"
    assert shown["Oldest (hours)"] == "80.0"
    assert table_with(app, "trigger_id")["trigger_id"].to_list() == ["t3", "t1", "t2"]


def test_pending_triggers_follow_the_campaign_filter(home: Path) -> None:
    app = open_page("pending_triggers")

    app.sidebar.multiselect(key=CAMPAIGNS_KEY).set_value(["winback"]).run()

    assert metrics(app)["Pending triggers"] == "2"


def test_diagnostics_explains_why_a_customer_received_no_voucher(home: Path) -> None:
    app = open_page("diagnostics")

    app.text_input(key="diagnostics_customer").input("cust_5").run()

    assert_no_failure(app)
    explanation = texts(app)
    assert "skipped: no_consent" in explanation
    assert "allows none of the campaign's channels" in explanation
    assert "x2" in explanation
    assert "0 vouchers published" in explanation
    timeline = table_with(app, "event_seq")
    assert timeline["event_seq"].to_list() == [2, 3, 6, 11]


def test_diagnostics_shows_a_customer_who_allows_no_channel_is_skipped_by_design(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures.published_warehouse(tmp_path, fixtures.RECORD_TABLES)  # with dim_customers
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))
    app = open_page("diagnostics")

    app.text_input(key="diagnostics_customer").input("cust_5").run()

    assert metrics(app)["Consent"] == "none"
    assert "allows no channel" in app.warning[0].value


def test_diagnostics_shows_a_failed_delivery(home: Path) -> None:
    app = open_page("diagnostics")

    app.text_input(key="diagnostics_customer").input("cust_6").run()

    assert "delivery failed after 3 attempts: mailbox full" in texts(app)


def test_diagnostics_shows_a_campaigns_problems_and_timeline(home: Path) -> None:
    app = open_page("diagnostics")

    app.segmented_control(key="diagnostics_subject").set_value("A campaign").run()
    app.selectbox(key="diagnostics_campaign").set_value("winback").run()

    assert_no_failure(app)
    explanation = texts(app)
    assert "Held out as the control group" in explanation
    assert "A voucher was published but the message never arrived" in explanation
    assert "Health: **warning**" in app.warning[0].value
    assert len(table_with(app, "event_seq")) == 8  # in the date range: from 10 Jan
    app.checkbox(key="diagnostics_campaign_range").uncheck().run()
    assert len(table_with(app, "event_seq")) == 9


def test_diagnostics_says_so_when_the_warehouse_has_no_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures.published_warehouse(
        tmp_path, [t for t in fixtures.REPORT_TABLES if t is not fixtures.fct_ledger_timeline]
    )
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page("diagnostics")

    assert_no_failure(app)
    assert "marts.fct_ledger_timeline" in app.info[0].value


# ---- Campaigns -----------------------------------------------------------------------------


def test_calendar_places_campaigns_by_their_start_and_end(home: Path) -> None:
    app = open_page("calendar")

    shown = metrics(app)
    assert (shown["Campaigns in the range"], shown["Open-ended"]) == ("3", "1")
    table = table_with(app, "starts_at").set_index("campaign")
    assert table.loc["VIP thank-you", "ends_at"] == pd.Timestamp("2026-01-15")
    assert bool(table.loc["Win-back", "open_ended"])
    assert len(app.get("vega_lite_chart")) == 1


def test_calendar_leaves_out_campaigns_outside_the_date_range(home: Path) -> None:
    app = open_page("calendar")

    app.sidebar.date_input(key=DATES_KEY).set_value((date(2026, 1, 16), date(2026, 1, 17))).run()

    table = table_with(app, "starts_at")
    assert table["campaign"].to_list() == ["Win-back"]


# ---- queries, connections, formats ---------------------------------------------------------


def test_filter_values_are_bound_parameters_never_sql(home: Path) -> None:
    hostile = "x'); DROP TABLE marts.fct_redemptions; --"
    chosen = Filters(
        date(2026, 1, 1), date(2026, 12, 31), campaigns=(hostile,), channels=(hostile,)
    )

    sql, params = chosen.where(
        date_column="redeemed_date", campaign_column="campaign_id", channel_column="channel"
    )
    where, bound = chosen.where(date_column="redeemed_date", campaign_column="campaign_id")
    rows = db.query(f"SELECT * FROM marts.fct_redemptions WHERE {where}", bound)

    assert hostile not in sql
    assert (params["campaigns"], params["channels"]) == ([hostile], [hostile])
    assert rows.empty
    assert db.table_exists("marts.fct_redemptions")


def test_a_column_name_that_is_not_an_identifier_is_refused() -> None:
    chosen = Filters(date(2026, 1, 1), date(2026, 1, 2))

    with pytest.raises(ValueError):
        chosen.where(date_column="redeemed_date; DROP TABLE x")


def test_no_connection_is_left_open_after_a_query(home: Path) -> None:
    db.query("SELECT count(*) FROM marts.fct_redemptions")

    # DuckDB refuses a read-write connection to a file this process still has open read-only.
    with duckdb.connect(str(db.warehouse_path())) as writer:
        assert writer.execute("SELECT count(*) FROM marts.fct_redemptions").fetchone() == (5,)


def test_the_warehouse_path_follows_promo_home_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    assert db.warehouse_path() == tmp_path.resolve() / "warehouse" / "published.duckdb"
    with pytest.raises(db.WarehouseMissing):
        db.query("SELECT 1")


def test_money_is_shown_in_major_units_with_its_currency() -> None:
    assert ui.money(123456, "EUR") == "EUR 1,234.56"
    assert ui.money(-500, "EUR") == "EUR -5.00"
    assert ui.money(1500, "JPY") == "JPY 1,500"
    assert ui.money(None, "EUR") == "—"
    frame = pd.DataFrame({"amount": [100, 250, 7], "currency": ["EUR", "EUR", "USD"]})
    assert ui.money_totals(frame, "amount") == "EUR 3.50 · USD 0.07"


def test_shares_and_counts_are_formatted_and_missing_ones_shown_as_a_dash() -> None:
    assert ui.percent(0.1234) == "12.3 %"
    assert ui.percent(None) == "—"
    assert ui.count(1234567) == "1,234,567"
    assert ui.ratio(3, 0) is None


# ---- a warehouse the real pipeline built ---------------------------------------------------


REAL_MARTS = (
    "dim_campaigns",
    "fct_campaign_funnel",
    "fct_redemptions",
    "fct_campaign_performance",
    "fct_delivery_performance",
    "fct_delivery_failures",
    "fct_system_health",
    "fct_campaign_health",
    "fct_pending_triggers",
    "fct_ledger_timeline",
)


@pytest.fixture(scope="module")
def real_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from warehouse_helpers import build_warehouse

    from pipelines.publish import publish_warehouse
    from redemption_core.simulate import SimulationConfig, simulate

    home = tmp_path_factory.mktemp("console_real")
    simulate(home, SimulationConfig(customers=120, days=14, seed=11), progress=None)
    # Only the marts these pages read, and what they are built from, to keep the module quick.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DBT_INDIRECT_SELECTION", "cautious")
        build = build_warehouse(home, select=" ".join(f"+{mart}" for mart in REAL_MARTS))
    publish_warehouse(build, home / "warehouse" / "published.duckdb", {"source": "test"})
    yield home


def test_every_page_renders_over_a_warehouse_the_pipeline_built(
    real_warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMO_HOME", str(real_warehouse))
    app = AppTest.from_file(ROUTER, default_timeout=60).run()

    for page in MY_PAGES:
        app.switch_page(f"app_pages/{page}.py").run()

        assert_no_failure(app)
        assert "No published warehouse" not in texts(app), page
    with duckdb.connect(str(real_warehouse / "warehouse" / "published.duckdb")) as warehouse:
        (redemptions,) = warehouse.execute(
            "SELECT count(*) FROM marts.fct_redemptions WHERE NOT is_rolled_back"
        ).fetchone()
    app.switch_page("app_pages/overview.py").run()
    assert metrics(app)["Redemptions"] == ui.count(redemptions)
