"""Overview: the headline numbers of the date range and how they moved day by day."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, ui
from app_streamlit import queries_reports as q


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"{chosen.describe()}. Redemptions count on the day they happened; vouchers on the day "
        "they were published (a cohort keeps filling up as its vouchers are delivered, accepted "
        "and redeemed). Channels filter vouchers only: a redemption has no delivery channel."
    )
    totals = q.redemption_totals(chosen)
    funnel = q.funnel_by_day(chosen)
    if totals.empty and funnel.empty:
        st.info("Nothing happened in this date range for these campaigns and channels.")
        return

    published = int(funnel["published"].sum()) if not funnel.empty else 0
    delivered = int(funnel["delivered"].sum()) if not funnel.empty else 0
    accepted = int(funnel["accepted"].sum()) if not funnel.empty else 0
    redemptions = int(totals["redemptions"].sum()) if not totals.empty else 0
    rolled_back = int(totals["rolled_back"].sum()) if not totals.empty else 0
    ui.metrics(
        [
            (
                "Redemptions",
                ui.count(redemptions),
                f"Standing redemptions (not rolled back); {ui.count(rolled_back)} rolled back.",
            ),
            (
                "Discount given",
                ui.money_totals(totals, "discount"),
                "Discount of the redemptions, net of rollbacks.",
            ),
            (
                "Voucher order amounts",
                ui.money_totals(totals, "revenue"),
                "Amounts of the orders in this date range that carried a standing redemption, "
                "each order once, before discount and before refunds. Not the same figure as "
                "Campaign performance's attributed revenue, which is per campaign over its whole "
                "life and less refunds.",
            ),
            (
                "Customers redeeming",
                ui.count(totals["customers"].sum() if not totals.empty else 0),
            ),
            ("Vouchers published", ui.count(published)),
            (
                "Delivered",
                ui.count(delivered),
                f"{ui.percent(ui.ratio(delivered, published))} of published.",
            ),
            (
                "Accepted",
                ui.count(accepted),
                f"{ui.percent(ui.ratio(accepted, delivered))} of delivered.",
            ),
            (
                "Redeemed vouchers",
                ui.count(funnel["redeemed"].sum() if not funnel.empty else 0),
                "Vouchers published in the range with a standing redemption (at any time).",
            ),
        ]
    )

    by_day = q.redemptions_by_day(chosen)
    left, right = st.columns(2)
    with left:
        st.subheader("Redemptions per day")
        if by_day.empty:
            st.caption("No redemptions in this range.")
        else:
            daily = by_day.groupby("day", as_index=False)["redemptions"].sum()
            st.altair_chart(
                alt.Chart(daily)
                .mark_bar()
                .encode(
                    x=alt.X("day:T", axis=ui.day_axis()),
                    y=alt.Y("redemptions:Q", title="Redemptions"),
                    tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "redemptions:Q"],
                ),
                width="stretch",
            )
    with right:
        st.subheader("Discount and voucher order amounts per day")
        if by_day.empty:
            st.caption("No redemptions in this range.")
        else:
            st.altair_chart(_money_lines(by_day), width="stretch")

    st.subheader("Vouchers per publication day")
    sent = funnel[funnel["published"] > 0] if not funnel.empty else funnel
    if sent.empty:
        st.caption("No vouchers published in this range.")
    else:
        # Only days something was sent: a day of hold-outs and skips alone is no cohort.
        steps = ui.consecutive_runs(
            sent.melt(
                id_vars="day",
                value_vars=list(q.FUNNEL_STEPS),
                var_name="step",
                value_name="vouchers",
            ),
            "day",
            by=["step"],
        )
        st.altair_chart(
            alt.Chart(steps)
            .mark_line(point=True)
            .encode(
                x=alt.X("day:T", axis=ui.day_axis("Publication day")),
                y=alt.Y("vouchers:Q", title="Vouchers"),
                color=alt.Color("step:N", sort=list(q.FUNNEL_STEPS), legend=ui.legend()),
                detail="run:N",
                tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "step:N", "vouchers:Q"],
            ),
            width="stretch",
        )
        st.caption("Lines join consecutive days with sends; a gap is a day nothing was sent.")

    st.subheader("Campaigns in this range")
    ui.table(
        q.campaigns_in_range(chosen),
        key="overview_campaigns",
        money=("discount", "revenue"),
        labels={"revenue": "Voucher order amounts", "campaign_id": "Campaign id"},
    )


def _money_lines(by_day: pd.DataFrame) -> alt.Chart:
    rows = []
    for row in by_day.itertuples():
        for measure, label in (("discount", "Discount"), ("revenue", "Order amounts")):
            rows.append(
                {
                    "day": row.day,
                    "series": f"{label} ({row.currency})",
                    "amount": ui.to_major(getattr(row, measure), row.currency),
                }
            )
    frame = ui.consecutive_runs(pd.DataFrame(rows), "day", by=["series"])
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", axis=ui.day_axis()),
            y=alt.Y("amount:Q", title="Amount"),
            color=alt.Color("series:N", legend=ui.legend()),
            detail="run:N",
            tooltip=[
                alt.Tooltip("day:T", format="%Y-%m-%d"),
                "series:N",
                alt.Tooltip("amount:Q", format=",.2f"),
            ],
        )
    )


st.title("Overview")
with ui.error_boundary("the overview"):
    render()
