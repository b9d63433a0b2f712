"""Every figure the console shows on two pages agrees between them, on a warehouse the real
pipeline built: one test per pair of pages. Where two pages count differently on purpose (the
Orders page cannot show a redemption whose order was never recorded, and neither counts a
rolled-back one), the test checks the page's own reconciliation adds up.

The ledger is a small simulation plus the cases that made pages disagree: a redemption naming
an order the ledger never recorded (an orphan reference) and cancelled orders whose
redemptions were rolled back.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from console_apptest import assert_no_failure, metrics, open_page, table_with
from streamlit.testing.v1 import AppTest
from warehouse_helpers import build_warehouse

from pipelines.publish import publish_warehouse
from redemption_core import Order, RedeemRequest, RedemptionEngine, SettableClock
from redemption_core.simulate import SimulationConfig, simulate

MARTS = (
    "dim_campaigns",
    "fct_campaign_funnel",
    "fct_redemptions",
    "fct_redemption_rejections",
    "fct_orders",
    "fct_campaign_performance",
    "fct_campaign_budget",
    "fct_delivery_performance",
    "fct_delivery_failures",
    "fct_system_health",
)
PAGES = ("overview", "engagement", "redemptions", "orders", "campaign_performance", "campaigns")
ORPHAN_ORDER = "o-never-recorded"


def add_an_orphan_redemption(home: Path) -> None:
    """A till redeems HAPPY5 on an order id no order_recorded event ever carries."""
    with sqlite3.connect(home / "ledger.sqlite") as ledger:
        (last,) = ledger.execute("SELECT max(occurred_at) FROM events").fetchone()
    clock = SettableClock(datetime.fromisoformat(last) + timedelta(minutes=1))
    with RedemptionEngine.open(home, clock=clock) as engine:
        result = engine.redeem(
            RedeemRequest("HAPPY5", Order(2500, "EUR", id=ORPHAN_ORDER), customer_id="c-orphan")
        )
    assert result.ok, result


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, AppTest]]:
    """Each page as an analyst opens it, over the whole data range."""
    home = tmp_path_factory.mktemp("reconciliation")
    simulate(home, SimulationConfig(customers=150, days=21, seed=5), progress=None)
    add_an_orphan_redemption(home)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DBT_INDIRECT_SELECTION", "cautious")
        build = build_warehouse(home, select=" ".join(f"+{mart}" for mart in MARTS))
        publish_warehouse(build, home / "warehouse" / "published.duckdb", {"source": "test"})
        env.setenv("PROMO_HOME", str(home))
        pages = {page: open_page(page) for page in PAGES}
        for app in pages.values():
            assert_no_failure(app)
        yield pages


def money(text: str) -> float:
    """'EUR 1,234.56' → 1234.56."""
    (amount,) = re.findall(r"-?[\d,]+\.\d{2}", text)
    return float(amount.replace(",", ""))


def number(text: str) -> int:
    return int(text.replace(",", ""))


def table_sum(app: AppTest, column: str) -> float:
    return float(pd.to_numeric(table_with(app, column)[column]).sum())


def reconciliation(app: AppTest) -> dict[str, float]:
    """The Orders page's sentence on how its figures add up to the Redemptions page's."""
    (sentence,) = [
        info.value for info in app.info if info.value.startswith("The Redemptions page's")
    ]
    found = re.match(
        r"The Redemptions page's ([\d,]+) standing redemptions \(EUR ([\d,.]+) of discount\) "
        r"are ([\d,]+) on recorded orders \(EUR ([\d,.]+)\) plus ([\d,]+) naming an order the "
        r"ledger never recorded \(EUR ([\d,.]+)\)",
        sentence,
    )
    assert found, sentence
    values = [float(group.replace(",", "")) for group in found.groups()]
    keys = ("standing", "discount", "on_orders", "discount_on_orders", "orphans", "orphan_discount")
    return dict(zip(keys, values, strict=True))


# ---- standing redemptions ------------------------------------------------------------------


def test_overview_and_redemptions_show_the_same_standing_redemptions(shown) -> None:
    assert metrics(shown["overview"])["Redemptions"] == metrics(shown["redemptions"])["Redemptions"]


def test_redemptions_and_orders_reconcile_standing_redemptions_with_the_orphan_shown(shown) -> None:
    on_redemptions = number(metrics(shown["redemptions"])["Redemptions"])
    orders = reconciliation(shown["orders"])

    assert orders["standing"] == on_redemptions
    assert orders["on_orders"] + orders["orphans"] == on_redemptions
    assert orders["orphans"] == number(metrics(shown["redemptions"])["Order never recorded"]) >= 1
    assert orders["on_orders"] == number(metrics(shown["orders"])["Standing redemptions"])
    orphans = table_with(shown["orders"], "redemption_id")  # under "never recorded"
    assert ORPHAN_ORDER in set(orphans["order_id"])


def test_orders_with_a_standing_voucher_leave_out_orders_whose_redemptions_were_rolled_back(
    shown,
) -> None:
    orders = metrics(shown["orders"])
    help_text = next(m.help for m in shown["orders"].metric if m.label == "With a standing voucher")

    assert number(orders["With a standing voucher"]) <= number(orders["Standing redemptions"])
    assert "were all rolled back" in help_text


def test_campaigns_and_campaign_performance_show_the_same_redemptions_per_campaign(shown) -> None:
    listed = table_with(shown["campaigns"], "redemptions").set_index("campaign_id")["redemptions"]
    performance = table_with(shown["campaign_performance"], "attributed_redemptions").set_index(
        "campaign_id"
    )["attributed_redemptions"]

    assert listed.sort_index().to_dict() == performance.sort_index().to_dict()


def test_overview_and_campaigns_show_the_same_standing_redemptions_over_the_whole_range(
    shown,
) -> None:
    assert number(metrics(shown["overview"])["Redemptions"]) == table_sum(
        shown["campaigns"], "redemptions"
    )


# ---- discount given ----------------------------------------------------------------------


def test_overview_and_redemptions_show_the_same_discount(shown) -> None:
    assert (
        metrics(shown["overview"])["Discount given"]
        == metrics(shown["redemptions"])["Discount given"]
    )


def test_orders_discount_plus_the_orphans_is_the_redemptions_pages_discount(shown) -> None:
    on_redemptions = money(metrics(shown["redemptions"])["Discount given"])
    on_orders = money(metrics(shown["orders"])["Discount"])
    orders = reconciliation(shown["orders"])

    assert orders["discount"] == pytest.approx(on_redemptions)
    assert orders["discount_on_orders"] == pytest.approx(on_orders)
    assert on_orders + orders["orphan_discount"] == pytest.approx(on_redemptions)
    assert orders["orphan_discount"] > 0


def test_overview_and_campaign_performance_show_the_same_discount_over_the_whole_range(
    shown,
) -> None:
    assert (
        metrics(shown["overview"])["Discount given"]
        == metrics(shown["campaign_performance"])["Discount given"]
    )


def test_campaigns_and_campaign_performance_show_the_same_discount_per_campaign(shown) -> None:
    listed = table_with(shown["campaigns"], "discount_net").set_index("campaign_id")
    performance = table_with(shown["campaign_performance"], "attributed_discount").set_index(
        "campaign_id"
    )

    joined = listed[["discount_net"]].join(performance[["attributed_discount"]], how="outer")
    assert (joined["discount_net"] == joined["attributed_discount"]).all(), joined


# ---- the funnel --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overview_label", "engagement_label"),
    [
        ("Vouchers published", "Published"),
        ("Delivered", "Delivered"),
        ("Accepted", "Accepted"),
        ("Redeemed vouchers", "Redeemed"),
    ],
)
def test_overview_and_engagement_show_the_same_funnel(
    shown, overview_label: str, engagement_label: str
) -> None:
    assert (
        metrics(shown["overview"])[overview_label] == metrics(shown["engagement"])[engagement_label]
    )


def test_overview_and_campaigns_show_the_same_vouchers_published_over_the_whole_range(
    shown,
) -> None:
    assert number(metrics(shown["overview"])["Vouchers published"]) == table_sum(
        shown["campaigns"], "vouchers_published"
    )
