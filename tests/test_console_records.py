"""The console's record pages (campaigns, vouchers, orders, redemptions, Customer 360, fraud
review, personalisation), run from the router in Streamlit's AppTest over a hand-built published
warehouse whose numbers are worked out in tests/console_fixtures.py. The marts behind them are
checked against the raw ledger in tests/test_marts_records.py.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import console_fixtures as fixtures
import pytest
from console_apptest import (
    assert_no_failure,
    metrics,
    open_page,
    table_with,
    texts,
)
from streamlit.testing.v1 import AppTest

from app_streamlit.filters import CAMPAIGNS_KEY, DATES_KEY
from models_ml.registry import Registry
from redemption_core.engine.redemption import RedemptionEngine

MY_PAGES = (
    "campaigns",
    "vouchers",
    "orders",
    "redemptions",
    "customers",
    "fraud_review",
    "personalisation",
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("records_home")
    fixtures.published_warehouse(home, fixtures.RECORD_TABLES)
    registry = Registry(home)
    for auc in (0.61, 0.67):
        registry.save("personalisation", {"fitted": True}, model_card(auc))
    registry.promote("personalisation-v2")
    return home


def model_card(auc: float) -> dict[str, Any]:
    return {
        "training_window": {"from": "2026-01-01", "to": "2026-01-20"},
        "features": ["recency_days"],
        "params": {},
        "seed": 0,
        "metrics": {"auc": auc},
        "metrics_window": {"from": "2026-01-15", "to": "2026-01-20", "rows": 400},
        "primary_metric": "auc",
        "data_fingerprint": "fixture",
    }


@pytest.fixture
def home(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMO_HOME", str(warehouse))
    return warehouse


def widget(app: AppTest, kind: str, key: str) -> Any:
    return next(w for w in getattr(app, kind) if w.key == key)


# ---- every page ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", MY_PAGES)
def test_each_record_page_renders_without_an_exception_and_offers_its_tables_as_csv(
    home: Path, page: str
) -> None:
    app = open_page(page)

    assert_no_failure(app)
    assert app.title[0].value
    assert len(app.get("download_button")) >= len(app.dataframe)


@pytest.mark.parametrize("page", MY_PAGES)
def test_without_a_warehouse_each_record_page_says_which_command_publishes_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page(page)

    assert_no_failure(app)
    assert "make pipeline" in texts(app) or "promo models train" in texts(app)


# ---- campaigns -------------------------------------------------------------------------------


def test_the_campaign_list_shows_every_campaign_and_the_status_filter_narrows_it(
    home: Path,
) -> None:
    app = open_page("campaigns")

    listing = table_with(app, "vouchers_published")
    assert sorted(listing["campaign_id"]) == ["flash", "vip", "winback"]
    assert listing.set_index("campaign_id").loc["winback", "discount_net"] == pytest.approx(10.5)

    widget(app, "multiselect", "campaigns_status").set_value(["finished"]).run()

    assert list(table_with(app, "vouchers_published")["campaign_id"]) == ["vip"]


def test_a_campaign_detail_shows_configuration_funnel_redemptions_and_budget(home: Path) -> None:
    app = open_page("campaigns")

    widget(app, "selectbox", "campaigns_detail").set_value("winback").run()

    assert_no_failure(app)
    shown = metrics(app)
    assert shown["Vouchers created"] == "4"
    assert shown["Publications"] == "20"
    assert shown["Publications skipped"] == "2"
    assert shown["Messages delivered"] == "18"
    assert shown["Messages failed"] == "1"
    assert shown["Redemptions made"] == "4"
    assert shown["Rejections"] == "2"
    assert shown["Rollbacks"] == "1"
    assert "10 % off" in texts(app)
    assert "Minimum order: EUR 10.00" in texts(app)
    assert "EUR 10.50 of EUR 500.00 used (2.1 %)" in app.get("progress")[0].proto.text
    assert len(table_with(app, "voucher_code")) == 4


def test_the_date_range_changes_a_campaigns_figures_in_the_range(home: Path) -> None:
    app = open_page("campaigns")
    widget(app, "selectbox", "campaigns_detail").set_value("winback").run()

    app.sidebar.date_input(key=DATES_KEY).set_value((date(2026, 1, 10), date(2026, 1, 11))).run()

    shown = metrics(app)
    assert shown["Redemptions made"] == "1"
    assert shown["Rejections"] == "1"
    assert shown["Rollbacks"] == "0"
    assert shown["Publications"] == "14"
    assert shown["Vouchers created"] == "4"  # all-time


# ---- vouchers --------------------------------------------------------------------------------


def test_vouchers_are_counted_by_status_and_filtered_by_status_code_holder_and_campaign(
    home: Path,
) -> None:
    app = open_page("vouchers")

    assert metrics(app)["Vouchers"] == "7"
    assert metrics(app)["Active"] == "2"
    assert metrics(app)["Redeemed"] == "3"

    widget(app, "multiselect", "vouchers_status").set_value(["redeemed"]).run()
    assert sorted(table_with(app, "voucher_code")["voucher_code"]) == ["VIP-4", "WB-1", "WB-2"]

    widget(app, "multiselect", "vouchers_status").set_value([]).run()
    widget(app, "text_input", "vouchers_holder").set_value("cust_1").run()
    assert list(table_with(app, "voucher_code")["voucher_code"]) == ["WB-1"]

    widget(app, "text_input", "vouchers_holder").set_value("").run()
    app.sidebar.multiselect(key=CAMPAIGNS_KEY).set_value(["winback"]).run()
    assert metrics(app)["Vouchers"] == "4"


def test_a_voucher_opens_by_code_with_its_history_from_the_ledger_timeline(home: Path) -> None:
    app = open_page("vouchers")

    widget(app, "text_input", "vouchers_detail").set_value("wb-1").run()

    assert_no_failure(app)
    assert metrics(app)["Status"] == "redeemed"
    assert metrics(app)["Holder"] == "cust_1"
    history = table_with(app, "detail")
    assert list(history["detail"]) == [
        "published WB-1 by autopilot",
        "delivered via smtp",
        "redeemed: discount EUR 5.00 on order EUR 50.00",
    ]


def test_a_page_filter_survives_a_visit_to_another_page(home: Path) -> None:
    app = open_page("vouchers")
    widget(app, "multiselect", "vouchers_status").set_value(["expired"]).run()

    app.switch_page("app_pages/orders.py").run()
    app.switch_page("app_pages/vouchers.py").run()

    assert widget(app, "multiselect", "vouchers_status").value == ["expired"]
    assert list(table_with(app, "voucher_code")["voucher_code"]) == ["WB-6"]


# ---- orders ----------------------------------------------------------------------------------


def test_orders_show_totals_and_the_filters_change_them(home: Path) -> None:
    app = open_page("orders")

    shown = metrics(app)
    assert shown["Orders"] == "7"
    assert shown["With a standing voucher"] == "4"  # o3's redemption was rolled back
    assert shown["Amount"] == "EUR 195.00"
    assert shown["Discount"] == "EUR 20.50"
    assert shown["Refunded"] == "EUR 3.00"
    assert shown["Net amount"] == "EUR 172.00"

    widget(app, "text_input", "orders_customer").set_value("cust_1").run()
    assert metrics(app)["Orders"] == "2"
    assert metrics(app)["Amount"] == "EUR 75.00"

    widget(app, "text_input", "orders_customer").set_value("").run()
    widget(app, "number_input", "orders_min_amount").set_value(30.0).run()
    assert sorted(table_with(app, "order_id")["order_id"]) == ["o1", "o2", "o4"]

    widget(app, "number_input", "orders_min_amount").set_value(None).run()
    app.sidebar.date_input(key=DATES_KEY).set_value((date(2026, 1, 10), date(2026, 1, 13))).run()
    assert metrics(app)["Orders"] == "4"
    assert metrics(app)["Amount"] == "EUR 140.00"

    app.sidebar.multiselect(key=CAMPAIGNS_KEY).set_value(["vip"]).run()
    assert list(table_with(app, "order_id")["order_id"]) == ["o4"]


def test_orders_filter_by_the_voucher_code_used(home: Path) -> None:
    app = open_page("orders")

    widget(app, "text_input", "orders_code").set_value("vip").run()

    assert list(table_with(app, "order_id")["order_id"]) == ["o4"]


def test_an_order_opens_with_its_vouchers_and_history(home: Path) -> None:
    app = open_page("orders")

    widget(app, "text_input", "orders_detail").set_value("o1").run()

    assert_no_failure(app)
    assert metrics(app)["Vouchers"] == "WB-1"
    history = table_with(app, "detail")
    assert list(history["detail"]) == ["redeemed: discount EUR 5.00 on order EUR 50.00"]


# ---- redemptions -----------------------------------------------------------------------------


def test_redemptions_and_rejections_are_counted_and_filtered_by_campaign_and_reason(
    home: Path,
) -> None:
    app = open_page("redemptions")

    shown = metrics(app)
    assert shown["Redemptions"] == "4"
    assert shown["Rolled back"] == "1"
    assert shown["Rejected attempts"] == "4"
    assert shown["Rejection rate"] == "50.0 %"
    assert shown["Discount given"] == "EUR 20.50"

    app.sidebar.multiselect(key=CAMPAIGNS_KEY).set_value(["winback"]).run()
    shown = metrics(app)
    assert shown["Redemptions"] == "3"
    assert shown["Rejected attempts"] == "2"
    assert shown["Rejection rate"] == "40.0 %"

    widget(app, "multiselect", "redemptions_reasons").set_value(["voucher_expired"]).run()
    rejected = table_with(app, "primary_reason_code")
    assert list(rejected["rejection_id"]) == ["x1"]


def test_rolled_back_redemptions_can_be_listed_alone(home: Path) -> None:
    app = open_page("redemptions")

    widget(app, "radio", "redemptions_outcome").set_value("rolled_back").run()

    assert list(table_with(app, "redemption_id")["redemption_id"]) == ["r3"]


# ---- Customer 360 ----------------------------------------------------------------------------


def test_customer_360_finds_a_customer_and_shows_contact_details_masked_only(home: Path) -> None:
    app = open_page("customers")

    widget(app, "text_input", "customers_search").set_value("cust_1").run()

    assert_no_failure(app)
    shown = metrics(app)
    assert shown["Lifetime value"] == "EUR 75.00"
    assert shown["Orders"] == "2"
    assert shown["RFM segment"] == "champion"
    assert "c***@example.com" in texts(app)
    assert "+49*******12" in texts(app)
    assert sorted(table_with(app, "order_id")["order_id"]) == ["o1", "o5"]


def test_customer_360_shows_the_wallet(home: Path) -> None:
    app = open_page("customers")

    widget(app, "text_input", "customers_search").set_value("cust_3").run()

    assert list(table_with(app, "redemptions_left")["voucher_code"]) == ["WB-3"]


# ---- fraud review ----------------------------------------------------------------------------


@pytest.fixture
def ledger_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of its own (a review writes to its ledger), with the fixture warehouse."""
    fixtures.published_warehouse(tmp_path, fixtures.RECORD_TABLES)
    RedemptionEngine.open(tmp_path).close()
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))
    return tmp_path


def test_the_fraud_queue_is_ranked_by_score_with_its_reasons(ledger_home: Path) -> None:
    app = open_page("fraud_review")

    assert_no_failure(app)
    queue = table_with(app, "flag_id")
    assert list(queue["flag_id"]) == ["redemption:r3", "device:dev-abc", "customer:cust_2"]
    assert queue["reasons"].iloc[0] == "rolled back 5 minutes after redeeming; new device"
    assert metrics(app)["Waiting for review"] == "3"


def test_a_review_writes_a_ledger_event_and_the_item_leaves_the_queue_at_once(
    ledger_home: Path,
) -> None:
    app = open_page("fraud_review")

    widget(app, "text_input", "fraud_reviewer").set_value("ana")
    widget(app, "radio", "fraud_decision").set_value("fraud")
    widget(app, "text_area", "fraud_note").set_value("same device as three others")
    app.button[0].click().run()

    assert_no_failure(app)
    with sqlite3.connect(ledger_home / "ledger.sqlite") as ledger:
        rows = ledger.execute(
            "SELECT redemption_id, customer_id, payload FROM events "
            "WHERE event_type = 'fraud_review_recorded'"
        ).fetchall()
    assert len(rows) == 1
    redemption_id, customer_id, payload = rows[0]
    assert (redemption_id, customer_id) == ("r3", "cust_3")
    assert (
        json.loads(payload).items()
        >= {
            "flag_id": "redemption:r3",
            "entity_type": "redemption",
            "decision": "fraud",
            "reviewer": "ana",
            "note": "same device as three others",
            "model_version": "fraud-v2",
        }.items()
    )
    assert list(table_with(app, "flag_id")["flag_id"]) == ["device:dev-abc", "customer:cust_2"]
    assert metrics(app)["Waiting for review"] == "2"
    assert "Recorded: redemption r3 is fraud." in texts(app)
    # The next item is blank but still signed: the analyst does not retype their name.
    assert widget(app, "text_input", "fraud_reviewer").value == "ana"
    assert widget(app, "radio", "fraud_decision").value is None
    assert widget(app, "text_area", "fraud_note").value == ""


def test_a_review_without_a_decision_is_not_recorded(ledger_home: Path) -> None:
    app = open_page("fraud_review")

    widget(app, "text_input", "fraud_reviewer").set_value("ana")
    app.button[0].click().run()

    assert "Choose fraud or legitimate" in texts(app)
    assert RedemptionEngine.open(ledger_home).reviews() == {}
    assert len(table_with(app, "flag_id")) == 3


def test_without_a_fraud_queue_the_page_names_the_command_that_produces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures.published_warehouse(tmp_path, fixtures.REPORT_TABLES)
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page("fraud_review")

    assert_no_failure(app)
    assert "make pipeline" in texts(app)
    assert "no model and no labels needed" in texts(app)


def test_a_case_shows_its_evidence_and_cases_set_aside_stay_out_unless_asked_for(
    ledger_home: Path,
) -> None:
    app = open_page("fraud_review")

    assert_no_failure(app)
    assert "store:store_9" not in list(table_with(app, "flag_id")["flag_id"])
    assert metrics(app)["Set aside"] == "1"
    assert "attempts per day from 2026-01-09" in texts(app)
    assert "codes: HAPPY5" in texts(app)
    widget(app, "checkbox", "fraud_set_aside").check().run()
    assert "store:store_9" in list(table_with(app, "flag_id")["flag_id"])


def test_each_source_shows_its_precision_in_the_reviews(ledger_home: Path) -> None:
    with RedemptionEngine.open(ledger_home) as engine:
        engine.record_review("device:dev-abc", "device", "dev-abc", "legitimate", reviewer="ana")
        engine.record_review("redemption:r3", "redemption", "r3", "fraud", reviewer="ana")

    app = open_page("fraud_review")

    assert_no_failure(app)
    table = table_with(app, "source").set_index("source")
    assert table.loc["new_accounts_on_device", "reviewed"] == 1
    assert table.loc["new_accounts_on_device", "precision"] == 0.0
    assert table.loc["code_velocity", "precision"] == 100.0  # shown as a percentage
    assert table.index[0] == "new_accounts_on_device"  # the noisiest first


# ---- personalisation -------------------------------------------------------------------------


def test_next_best_offers_are_listed_per_customer_and_the_promoted_model_is_marked(
    home: Path,
) -> None:
    app = open_page("personalisation")

    widget(app, "text_input", "personalisation_customer").set_value("cust_1").run()

    assert_no_failure(app)
    offers = table_with(app, "propensity")
    assert list(offers["campaign_id"]) == ["winback", "vip"]
    assert list(offers["rank"]) == [1, 2]
    models = table_with(app, "version")
    assert list(models["version"]) == ["personalisation-v2", "personalisation-v1"]
    assert list(models["promoted"]) == ["★ promoted", ""]
    assert models["metric_auc"].iloc[0] == pytest.approx(0.67)


def test_without_next_best_offers_the_page_names_the_commands_that_produce_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures.published_warehouse(tmp_path, fixtures.REPORT_TABLES)
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))

    app = open_page("personalisation")

    assert_no_failure(app)
    assert "promo models train personalisation" in texts(app)
