"""Real data no one on this project made, end to end: dunnhumby's campaign and coupon tables
imported with `promo import DIR --mapping dunnhumby`, the nightly pipeline, the published
warehouse, and every page of the console over it.

The data has no orders, prices, discounts, deliveries, acceptances or control groups, and its
last weeks hold few redemptions: the marts must still be published and right, the model steps
that cannot run must say why, and no page may fail."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from console_apptest import ROUTER, assert_no_failure, texts
from pipeline_helpers import failure_text, pipeline_env
from shared_data import DUNNHUMBY, require_dunnhumby
from streamlit.testing.v1 import AppTest

from app_streamlit.streamlit_app import SECTIONS
from pipelines.paths import PipelinePaths
from redemption_core import cli


def source_rows(name: str) -> int:
    with (DUNNHUMBY / name).open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def coupon_vouchers() -> int:
    """A targeted household gets a voucher for each coupon of its campaign."""
    with (DUNNHUMBY / "coupon.csv").open(newline="", encoding="utf-8") as handle:
        coupons: dict[str, set[str]] = {}
        for row in csv.DictReader(handle):
            coupons.setdefault(row["campaign"], set()).add(row["coupon_upc"])
    with (DUNNHUMBY / "campaign_table.csv").open(newline="", encoding="utf-8") as handle:
        return sum(len(coupons.get(row["campaign"], ())) for row in csv.DictReader(handle))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder imported with the CLI into a fresh home, and the pipeline run once."""
    from pipelines.run import run_pipeline

    require_dunnhumby()
    home = tmp_path_factory.mktemp("dunnhumby_e2e")
    with pytest.MonkeyPatch.context() as env:
        for key, value in pipeline_env(home).items():
            env.setenv(key, value)
        env.delenv("PROMO_HMAC_KEY", raising=False)
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["import", str(DUNNHUMBY), "--mapping", "dunnhumby"]) == 0
        result = run_pipeline(home, quiet=True)
        assert result.success, failure_text(result)
        yield home


def published(home: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(PipelinePaths(home).published_warehouse), read_only=True) as db:
        return db.execute(sql).fetchall()


def test_the_published_warehouse_holds_every_targeting_and_redemption(home: Path) -> None:
    [(publications, redeemed_vouchers)] = published(
        home, "select sum(published), sum(redeemed) from marts.fct_campaign_funnel"
    )
    [(redemptions, campaigns)] = published(
        home,
        "select (select count(*) from marts.fct_redemptions), "
        "(select count(*) from marts.dim_campaigns)",
    )

    assert publications == coupon_vouchers()
    assert redemptions == source_rows("coupon_redempt.csv")
    assert campaigns == source_rows("campaign_desc.csv")
    assert 0 < redeemed_vouchers <= publications


def test_coupon_redemptions_without_orders_bring_no_attributed_orders(home: Path) -> None:
    [(redemptions, orders, revenue)] = published(
        home,
        "select sum(attributed_redemptions), sum(attributed_orders), sum(attributed_revenue) "
        "from marts.fct_campaign_performance",
    )

    assert redemptions == source_rows("coupon_redempt.csv")
    assert (orders, revenue) == (0, 0)


def test_every_model_step_has_a_status_row(home: Path) -> None:
    steps = dict(published(home, "select step, state from status.pipeline_steps"))

    assert set(steps) == {"fraud_attempt_features", "fraud_review_queue", "next_best_offers"}
    assert set(steps.values()) <= {"succeeded", "skipped"}


def test_every_page_of_the_console_opens(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMO_HOME", str(home))
    app = AppTest.from_file(ROUTER, default_timeout=60).run()

    for entries in SECTIONS.values():
        for file, title, _ in entries:
            app.switch_page(f"app_pages/{file}").run()

            assert_no_failure(app)
            assert "No published warehouse" not in texts(app), title
