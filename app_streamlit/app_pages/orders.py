"""Orders: browse and filter orders by customer, date, amount and voucher used; open one to see
its amounts, the vouchers redeemed on it and its history from the ledger."""

from __future__ import annotations

import altair as alt
import streamlit as st

from app_streamlit import filters, page_state, ui
from app_streamlit import queries_records as q
from app_streamlit import record_format as fmt

CUSTOMER_KEY = "orders_customer"
CODE_KEY = "orders_code"
MIN_KEY = "orders_min_amount"
MAX_KEY = "orders_max_amount"
VOUCHER_ONLY_KEY = "orders_with_voucher"
DETAIL_KEY = "orders_detail"


def render() -> None:
    chosen = filters.current()
    search = _search()
    st.caption(
        f"{chosen.describe(channels=False)} (an order counts on the day it was placed; a "
        "campaign filter keeps orders that carried one of its vouchers). Amounts are before "
        "discount."
    )
    _outside_range(chosen)
    totals = q.order_totals(chosen, search)
    orders = int(totals["orders"].sum()) if not totals.empty else 0
    with_voucher = int(totals["with_voucher"].sum()) if not totals.empty else 0
    all_rolled_back = int(totals["all_rolled_back"].sum()) if not totals.empty else 0
    ui.metrics(
        [
            ("Orders", ui.count(orders)),
            (
                "With a standing voucher",
                ui.count(with_voucher),
                f"{ui.percent(ui.ratio(with_voucher, orders))} of orders carry a redemption "
                f"that stands. {ui.count(all_rolled_back)} more carried redemptions that were "
                "all rolled back (a cancelled order rolls its redemptions back).",
            ),
            ("Amount", ui.money_totals(totals, "amount"), "Before discount and refunds."),
            (
                "Discount",
                ui.money_totals(totals, "discount_net"),
                "Net of rollbacks: a rolled-back redemption's discount was given back.",
            ),
            (
                "Standing redemptions",
                ui.count(totals["standing_redemptions"].sum() if not totals.empty else 0),
                f"Not rolled back; "
                f"{ui.count(totals['rolled_back_redemptions'].sum() if not totals.empty else 0)} "
                "more were rolled back. An order may carry several.",
            ),
            ("Refunded", ui.money_totals(totals, "refunded_amount")),
            (
                "Cancelled",
                ui.count(totals["cancelled"].sum() if not totals.empty else 0),
            ),
            ("Net amount", ui.money_totals(totals, "net_amount"), "Less refunds; cancelled at 0."),
        ]
    )
    if search == q.OrderSearch():
        _reconciliation(chosen)
    else:
        st.caption(
            "Clear the search fields to see how these figures add up to the Redemptions page's."
        )
    by_day = q.orders_by_day(chosen, search)
    if not by_day.empty:
        daily = by_day.groupby("day", as_index=False)[["orders", "with_voucher"]].sum()
        daily = daily.assign(without_voucher=daily["orders"] - daily["with_voucher"])
        steps = daily.melt(
            id_vars="day",
            value_vars=["with_voucher", "without_voucher"],
            var_name="kind",
            value_name="count",
        ).replace(
            {"kind": {"with_voucher": "with a standing voucher", "without_voucher": "without"}}
        )
        st.altair_chart(
            alt.Chart(steps)
            .mark_bar()
            .encode(
                x=alt.X("day:T", axis=ui.day_axis()),
                y=alt.Y("count:Q", title="Orders", stack=True),
                color=alt.Color("kind:N", legend=ui.legend()),
                tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "kind:N", "count:Q"],
            ),
            width="stretch",
        )
    listing = q.orders(chosen, search)
    if len(listing) >= q.ROWS_LIMIT:
        st.caption(f"Showing the newest {q.ROWS_LIMIT:,}; narrow the filters to see the rest.")
    if not listing.empty:
        listing = listing.assign(voucher_codes=listing["voucher_codes"].map(fmt.joined))
    ui.table(
        listing,
        key="orders",
        money=("amount", "refunded_amount", "net_amount", "discount_net"),
        empty="No order matches these filters.",
    )

    page_state.restore(DETAIL_KEY, "", query_param="order")
    st.text_input("Open an order", key=DETAIL_KEY, placeholder="order id")
    wanted = (page_state.keep(DETAIL_KEY) or "").strip()
    if wanted:
        detail(wanted)


def _outside_range(chosen: filters.Filters) -> None:
    outside = q.orders_outside_range(chosen)
    if outside.empty:
        return
    before, after = int(outside["before"].iloc[0]), int(outside["after"].iloc[0])
    if before or after:
        st.caption(
            f"Outside the date range: {ui.count(before)} earlier orders (the first on "
            f"{ui.day(outside['first_day'].iloc[0])}) and {ui.count(after)} later ones; widen "
            "the range in the sidebar to include them."
        )


def _reconciliation(chosen: filters.Filters) -> None:
    """How the Redemptions page's figures (same dates and campaigns) add up to this page's:
    standing redemptions on recorded orders, plus those naming an order the ledger never
    recorded; rolled-back ones count on neither page."""
    split = q.redemptions_by_order_state(chosen)
    if split.empty:
        return
    lines = []
    for row in split.itertuples():
        money = lambda minor, currency=row.currency: ui.money(minor, currency)  # noqa: E731
        standing = row.on_orders + row.orphans
        lines.append(
            f"The Redemptions page's {ui.count(standing)} standing redemptions "
            f"({money(row.discount_on_orders + row.discount_orphans)} of discount) are "
            f"{ui.count(row.on_orders)} on recorded orders ({money(row.discount_on_orders)}) "
            f"plus {ui.count(row.orphans)} naming an order the ledger never recorded "
            f"({money(row.discount_orphans)}): those are not on this page. "
            f"{ui.count(row.rolled_back)} more were rolled back "
            f"({money(row.discount_rolled_back)} given back) and count as discount on neither "
            "page."
        )
    st.info("  \n".join(lines), icon=":material/balance:")
    orphans = q.orphan_redemptions(chosen)
    if not orphans.empty:
        with st.expander(f"Redemptions whose order was never recorded ({len(orphans):,})"):
            st.caption(
                "Orphan references: the till redeemed a voucher on an order id that no "
                "order_recorded event ever carried (a lost order message, or an id typed by "
                "hand). Look them up with `promo ledger tail` or on the Redemptions page."
            )
            ui.table(
                orphans,
                key="orders_orphan_redemptions",
                money=("order_amount", "net_discount"),
                hidden=("campaign_id",),
            )


def _search() -> q.OrderSearch:
    for key, default in (
        (CUSTOMER_KEY, ""),
        (CODE_KEY, ""),
        (MIN_KEY, None),
        (MAX_KEY, None),
        (VOUCHER_ONLY_KEY, False),
    ):
        page_state.restore(key, default)
    customer, code, low, high, only = st.columns([2, 2, 1, 1, 1])
    customer.text_input("Customer id contains", key=CUSTOMER_KEY)
    code.text_input("Voucher code contains", key=CODE_KEY)
    low.number_input("Amount from", min_value=0.0, step=1.0, key=MIN_KEY, format="%.2f")
    high.number_input("Amount to", min_value=0.0, step=1.0, key=MAX_KEY, format="%.2f")
    only.checkbox("With a voucher", key=VOUCHER_ONLY_KEY)
    # Amounts are typed in major units; the warehouse holds minor units (2 decimals: the
    # filter cannot know each order's currency, and the ledger's are all 2-decimal or noted).
    low_value, high_value = page_state.keep(MIN_KEY), page_state.keep(MAX_KEY)
    return q.OrderSearch(
        customer=page_state.keep(CUSTOMER_KEY) or "",
        voucher_code=page_state.keep(CODE_KEY) or "",
        min_amount=None if low_value is None else round(low_value * 100),
        max_amount=None if high_value is None else round(high_value * 100),
        with_voucher_only=bool(page_state.keep(VOUCHER_ONLY_KEY)),
    )


def detail(order_id: str) -> None:
    found = q.order(order_id)
    if found.empty:
        st.warning(f"No order {order_id} in the published warehouse.")
        return
    o = found.iloc[0]
    currency = o["currency"]
    st.header(f"Order {order_id}")
    st.caption(
        f"Customer {fmt.text(o['customer_id'])} · {fmt.when(o['ordered_at'])} · "
        f"store {fmt.text(o['store_id'])} · {ui.count(o['lines'])} line(s)"
    )
    ui.metrics(
        [
            ("Amount", ui.money(o["amount"], currency), "Before discount."),
            ("Discount", ui.money(o["discount_net"], currency), "Net of rollbacks."),
            ("Refunded", ui.money(o["refunded_amount"], currency)),
            (
                "Status",
                "cancelled" if o["is_cancelled"] else "placed",
                f"Cancelled {fmt.when(o['cancelled_at'])}" if o["is_cancelled"] else None,
            ),
            ("Vouchers", fmt.joined(o["voucher_codes"]) or "none"),
            ("Redemptions", ui.count(o["redemptions"]), "Successful, rolled back or not."),
            ("Rejected attempts", ui.count(o["redemptions_rejected"])),
            ("Net amount", ui.money(o["net_amount"], currency)),
        ]
    )
    st.subheader("History")
    ui.table(
        q.history(order_id=order_id),
        key=f"order_{order_id}_history",
        empty="No ledger events for this order.",
    )


st.title("Orders")
with ui.error_boundary("the orders"):
    render()
