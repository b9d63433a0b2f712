"""Models rebuilt per entity (see dbt_project/macros/incremental_entities.sql) against a build
from scratch, on a hand-made increment that reaches back into history: a refund and a
cancellation of old orders, a rollback of an old redemption, a redemption of a voucher
published days before and a new delivery run of an old voucher. A simulated day rarely has
them all, so the pipeline's day-by-day test may not go down these paths."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
from warehouse_helpers import build_warehouse, run_dbt_build

from redemption_core.simulate import SimulationConfig, simulate

# describes the run (timings, the extract's batches), not the ledger
RUN_DESCRIBING = {"marts.fct_system_health"}


def table_digests(warehouse: Path) -> dict[str, str]:
    """A digest of every intermediate and mart table: its columns and its rows, in order."""
    digests = {}
    with duckdb.connect(str(warehouse), read_only=True) as db:
        tables = db.execute(
            "select schema_name || '.' || table_name from duckdb_tables() "
            "where schema_name in ('intermediate', 'marts') order by 1"
        ).fetchall()
        for (table,) in tables:
            if table in RUN_DESCRIBING:
                continue
            columns = [row[0] for row in db.execute(f"describe {table}").fetchall()]
            rows = db.execute(f"select * from {table} order by all").fetchall()
            digests[table] = hashlib.sha256(repr((columns, rows)).encode()).hexdigest()
    return digests


def append_copy(db: duckdb.DuckDBPyConnection, event_id: str, **changes: str) -> None:
    """Append a copy of the raw event `event_id` as the ledger's newest event, an hour after the
    latest one, with `changes` to its columns."""
    replaced = ", ".join(f"$${value}$$ as {column}" for column, value in changes.items())
    db.execute(
        f"""
        insert into raw.ledger_events
        select * replace (
            (select max(seq) + 1 from raw.ledger_events) as seq,
            'late-' || event_id || '-' || (select max(seq) + 1 from raw.ledger_events)
                as event_id,
            (select strftime(max(occurred_at::timestamp) + interval 1 hour, '%Y-%m-%dT%H:%M:%S')
                from raw.ledger_events) as occurred_at,
            (select strftime(max(occurred_at::timestamp) + interval 1 hour, '%Y-%m-%dT%H:%M:%S')
                from raw.ledger_events) as recorded_at,
            (select strftime(max(occurred_at::timestamp) + interval 1 hour, '%Y-%m-%d')
                from raw.ledger_events) as event_date,
            {replaced}
        )
        from raw.ledger_events
        where event_id = ?
        """,
        [event_id],
    )


def append_late_events(db: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The hand-made increment; returns the entities it touches."""

    def first(sql: str) -> tuple:
        row = db.execute(sql).fetchone()
        assert row is not None, sql
        return row

    untouched_order = (
        "select orders.order_id, events.event_id "
        "from intermediate.int_orders_recorded as orders "
        "inner join raw.ledger_events as events "
        "on events.order_id = orders.order_id and events.event_type = 'order_recorded' "
        "where orders.refunds = 0 and not orders.is_cancelled {} order by orders.ordered_at limit 1"
    )
    refunded, refunded_event = first(untouched_order.format(""))
    cancelled, cancelled_event = first(
        untouched_order.format(
            "and orders.order_id in (select order_id from intermediate.int_redemptions_enriched "
            f"where is_succeeded and not is_rolled_back) and orders.order_id != '{refunded}'"
        )
    )
    # a refund and a cancellation are their order's event with another type and payload
    append_copy(
        db, refunded_event, event_type="order_refunded", payload='{"amount": 100, "reason": "late"}'
    )
    append_copy(db, cancelled_event, event_type="order_cancelled", payload='{"reason": "late"}')

    # a rollback is its redemption's success event with another type and payload
    redemption, success_event, discount = first(
        "select redemption_id, attempt_event_id, discount "
        "from intermediate.int_redemptions_enriched "
        "where is_succeeded and not is_rolled_back and gift_amount = 0 "
        f"and order_id not in ('{refunded}', '{cancelled}') "
        "order by attempted_at limit 1"
    )
    append_copy(
        db,
        success_event,
        event_type="redemption_rolled_back",
        payload=f'{{"reason": "late", "rollback_id": "rb_late", "discount": {discount}, '
        '"gift_amount": 0}',
    )

    # a voucher published days ago, unused, that may be redeemed without acceptance; the
    # redemption copies one of its campaign's, on one of its holder's orders
    redeemed, redeemed_campaign, holder, success_event, holder_order = first(
        """
        select published.voucher_id, published.campaign_id, published.customer_id,
            success.attempt_event_id, orders.order_id,
        from intermediate.int_vouchers_published as published
        inner join intermediate.int_campaigns_defined as campaigns using (campaign_id)
        inner join intermediate.int_redemptions_enriched as success
            on success.campaign_id = published.campaign_id and success.is_succeeded
        inner join intermediate.int_orders_recorded as orders
            on orders.customer_id = published.customer_id
        where published.redemptions = 0
            and not published.is_disabled
            and (published.accepted_at is not null or not campaigns.is_acceptance_required)
            and campaigns.voucher_kind = 'unique'
        order by published.published_at, success.attempted_at, orders.ordered_at
        limit 1
        """
    )
    append_copy(
        db,
        success_event,
        voucher_id=redeemed,
        campaign_id=redeemed_campaign,
        customer_id=holder,
        order_id=holder_order,
        redemption_id="late-redemption",
        idempotency_key="late-redemption",
    )

    # a new delivery run (attempt 1 again) of the first voucher ever sent
    (attempt_event, resent) = first(
        "select event_id, voucher_id from raw.ledger_events "
        "where event_type = 'delivery_attempted' order by seq limit 1"
    )
    append_copy(db, attempt_event)
    return {
        "refunded": refunded,
        "cancelled": cancelled,
        "rolled_back": redemption,
        "redeemed": redeemed,
        "resent": resent,
    }


def test_an_increment_reaching_back_into_history_builds_what_a_full_refresh_builds(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    simulate(home, SimulationConfig(customers=150, days=25, seed=23), progress=None)
    warehouse = build_warehouse(home)
    with duckdb.connect(str(warehouse)) as db:
        touched = append_late_events(db)

    run_dbt_build(home, warehouse)
    incremental = table_digests(warehouse)
    refreshed = shutil.copy(warehouse, tmp_path / "refreshed.duckdb")
    run_dbt_build(home, Path(refreshed), "--full-refresh")
    full_refresh = table_digests(Path(refreshed))

    with duckdb.connect(str(warehouse), read_only=True) as db:
        assert db.execute(
            "select refunds, is_cancelled from marts.fct_orders where order_id = ?",
            [touched["refunded"]],
        ).fetchone() == (1, False)
        assert db.execute(
            "select is_cancelled from marts.fct_orders where order_id = ?", [touched["cancelled"]]
        ).fetchone() == (True,)
        assert db.execute(
            "select is_rolled_back from intermediate.int_redemptions_enriched "
            "where redemption_id = ? and is_succeeded",
            [touched["rolled_back"]],
        ).fetchone() == (True,)
        assert db.execute(
            "select redemptions_succeeded from marts.dim_vouchers where voucher_id = ?",
            [touched["redeemed"]],
        ).fetchone() == (1,)
    assert set(incremental) == set(full_refresh)
    assert [t for t in full_refresh if incremental[t] != full_refresh[t]] == []
