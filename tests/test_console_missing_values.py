"""Empty values in the console: a figure the warehouse does not have (SQL NULL: a rate with
nothing to divide by, an interval for a campaign without a control group, a latency nobody
measured, money that does not apply) shows as a dash, never as "None" or "nan", in tables,
headline numbers and text alike; a table column with empty cells stays numeric, so that it
still sorts as numbers; and where it helps, the page says what a dash means.

Pages run from the router in AppTest over the hand-built warehouse of
tests/console_fixtures.py, whose campaigns without a control group, funnel rows with nothing
published and open-ended campaigns already hold NULLs. A table's cells are read as the browser
draws them (`drawn_cells`): an empty cell as the table's placeholder, or Streamlit's "None".
"""

from __future__ import annotations

import re
from pathlib import Path

import console_fixtures as fixtures
import duckdb
import pandas as pd
import pytest
from console_apptest import assert_no_failure, drawn_cells, metrics, open_page, texts
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Dataframe

from app_streamlit import ui
from app_streamlit.streamlit_app import SECTIONS

DASH = "—"
BROKEN = re.compile(r"\b(?:None|nan|NaN|NaT)\b|<NA>")
ALL_PAGES = tuple(
    file.removesuffix(".py") for entries in SECTIONS.values() for file, _, _ in entries
)
LATENCY_COLUMNS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("missing_values_home")
    fixtures.published_warehouse(home, fixtures.RECORD_TABLES)
    return home


@pytest.fixture
def home(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMO_HOME", str(warehouse))
    return warehouse


def table(app: AppTest, column: str) -> Dataframe:
    return next(frame for frame in app.dataframe if column in frame.value.columns)


def broken_words(app: AppTest) -> list[str]:
    """Every "None", "nan", "NaT" or "<NA>" the page shows, in a table cell, a headline number
    (value or help) or a text."""
    shown = [cell for frame in app.dataframe for cell in drawn_cells(frame).to_numpy().ravel()]
    shown += [f"{metric.value} {metric.proto.help}" for metric in app.metric]
    shown.append(texts(app))
    return [word for text in shown for word in BROKEN.findall(str(text))]


def without_latencies(channels: tuple[str, ...] | None) -> fixtures.Builder:
    """fct_delivery_performance with no latency recorded for `channels` (None: for any)."""

    def build(db: duckdb.DuckDBPyConnection) -> None:
        fixtures.fct_delivery_performance(db)
        where = "" if channels is None else "WHERE list_contains($channels, channel)"
        columns = ", ".join(f"{column} = NULL" for column in LATENCY_COLUMNS)
        db.execute(
            f"UPDATE marts.fct_delivery_performance SET {columns} {where}",
            {"channels": list(channels)} if channels else None,
        )

    return build


def delivery_warehouse(home: Path, channels: tuple[str, ...] | None) -> None:
    fixtures.published_warehouse(
        home,
        [
            without_latencies(channels) if build is fixtures.fct_delivery_performance else build
            for build in fixtures.REPORT_TABLES
        ],
    )


# ---- every page ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ALL_PAGES)
def test_no_page_shows_none_or_nan_for_an_empty_value(home: Path, page: str) -> None:
    app = open_page(page)

    assert_no_failure(app)
    assert broken_words(app) == []


# ---- Reports ---------------------------------------------------------------------------------


def test_incremental_figures_of_a_campaign_without_a_control_group_are_dashes_that_sort_as_numbers(
    home: Path,
) -> None:
    app = open_page("campaign_performance")

    performance = table(app, "verdict")
    drawn = drawn_cells(performance).set_index("campaign")
    incremental = [
        "incremental_profit",
        "incremental_profit_ci_low",
        "incremental_profit_ci_high",
        "incremental_revenue",
        "incremental_conversion",
        "incremental_treated_customers",
    ]
    assert drawn.loc["VIP thank-you", "verdict"] == "no control group"
    assert drawn.loc["VIP thank-you", incremental].to_list() == [DASH] * len(incremental)
    assert drawn.loc["Win-back", "incremental_profit"] != DASH
    # No gift cards at all: still a money column, of dashes.
    assert set(drawn["attributed_gift_card_liability"]) == {DASH}
    for column in [*incremental, "attributed_gift_card_liability"]:
        assert pd.api.types.is_numeric_dtype(performance.value[column]), column
    assert "need a control group" in texts(app)


def test_engagement_rates_with_nothing_to_divide_by_are_dashes_and_say_why(home: Path) -> None:
    app = open_page("engagement")

    funnel = table(app, "biggest_loss")
    drawn = drawn_cells(funnel).set_index(["campaign", "channel"])

    # Held-out and skipped customers (channel 'none'): nothing was published to them.
    assert drawn.loc[("Win-back", "none"), "delivered_per_published"] == DASH
    assert drawn.loc[("Win-back", "none"), "redeemed_per_published"] == DASH
    assert pd.api.types.is_float_dtype(funnel.value["delivered_per_published"])
    assert "nothing to divide by" in texts(app)


def test_delivery_latency_of_a_channel_without_one_is_a_dash_in_a_numeric_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery_warehouse(tmp_path, channels=("push",))
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page("delivery_performance")

    by_provider = table(app, "latency_p95_ms")
    drawn = drawn_cells(by_provider).set_index("provider")
    assert drawn.loc["fcm", list(LATENCY_COLUMNS)].to_list() == [DASH] * len(LATENCY_COLUMNS)
    assert drawn.loc["smtp", "latency_p95_ms"] != DASH
    assert pd.api.types.is_float_dtype(by_provider.value["latency_p95_ms"])
    assert "no latency was recorded" in texts(app)
    assert broken_words(app) == []


def test_without_any_latency_the_headline_latencies_are_dashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery_warehouse(tmp_path, channels=None)
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page("delivery_performance")

    shown = metrics(app)
    assert (shown["Latency p95 (ms)"], shown["Latency p99 (ms)"]) == (DASH, DASH)
    assert shown["Success rate"] == "96.0 %"
    by_provider = table(app, "latency_p95_ms")
    for column in LATENCY_COLUMNS:
        assert pd.api.types.is_float_dtype(by_provider.value[column]), column
        assert set(drawn_cells(by_provider)[column]) == {DASH}
    assert broken_words(app) == []


# ---- Monitoring and the calendar -------------------------------------------------------------


def test_campaign_health_shows_a_dash_for_a_failure_rate_without_deliveries(home: Path) -> None:
    app = open_page("campaign_health")

    drawn = drawn_cells(table(app, "status_reason")).set_index("campaign")

    assert drawn.loc["Slow-night filler", "failure_rate_7d"] == DASH
    assert drawn.loc["Win-back", "failure_rate_7d"] != DASH
    assert drawn.loc["Win-back", "last_delivered_at"] == DASH
    assert "no delivery to rate" in texts(app)


def test_the_calendar_shows_a_dash_for_an_open_ended_campaigns_end(home: Path) -> None:
    app = open_page("calendar")

    calendar = table(app, "ends_at")
    drawn = drawn_cells(calendar).set_index("campaign")

    assert drawn.loc["Win-back", "ends_at"] == DASH
    assert pd.api.types.is_datetime64_any_dtype(calendar.value["ends_at"])


# ---- record pages ----------------------------------------------------------------------------


def test_a_voucher_list_without_gift_cards_shows_dashes_for_the_gift_balance(home: Path) -> None:
    app = open_page("vouchers")

    vouchers = table(app, "voucher_code")

    assert set(drawn_cells(vouchers)["gift_balance"]) == {DASH}
    assert pd.api.types.is_float_dtype(vouchers.value["gift_balance"])
    assert drawn_cells(vouchers).set_index("voucher_code").loc["SLOW", "customer_id"] == DASH


def test_an_unpublished_voucher_says_what_it_lacks_instead_of_none(home: Path) -> None:
    app = open_page("vouchers")

    next(w for w in app.text_input if w.key == "vouchers_detail").set_value("SLOW").run()

    assert_no_failure(app)
    shown = metrics(app)
    assert shown["Holder"] == f"{DASH} (not published)"
    assert shown["Redemptions left"] == "no limit"
    assert shown["Delivery"] == DASH
    assert broken_words(app) == []


def test_a_campaign_with_no_activity_yet_shows_no_none_or_nan(home: Path) -> None:
    app = open_page("campaigns")

    next(w for w in app.selectbox if w.key == "campaigns_detail").set_value("flash").run()

    assert_no_failure(app)
    assert "Campaign total: no limit" in texts(app)
    assert broken_words(app) == []


# ---- the format helpers ----------------------------------------------------------------------


def test_a_missing_number_of_any_kind_is_a_dash() -> None:
    for missing in (None, float("nan"), pd.NA, pd.NaT):
        assert ui.number(missing) == DASH
        assert ui.money(missing, "EUR") == DASH
        assert ui.percent(missing) == DASH
        assert ui.count(missing) == DASH
    assert ui.number(80.04) == "80.0"
    assert ui.number(1234.5678, 2) == "1,234.57"
    assert ui.number(ui.ratio(10500, 1485), 2, "x") == "7.07x"
    assert ui.number(ui.ratio(10500, 0), 2, "x") == DASH
