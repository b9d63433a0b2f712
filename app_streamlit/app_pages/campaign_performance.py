"""Campaign performance: what each campaign generated against what it gave away, attributed and
incremental side by side, with 95 % confidence intervals: the page to act on."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, page_state, ui
from app_streamlit import queries_reports as q

VERDICT_COLOURS = {
    "pays for itself": "#2e7d32",
    "inconclusive": "#9e9e9e",
    "loses money": "#c62828",
}

ROW_HEIGHT = 32  # pixels per campaign in the interval chart

SORTS = {
    "Incremental profit": ("incremental_profit", False),
    "Attributed revenue": ("attributed_revenue", False),
    "Return on discount": ("attributed_return_on_discount", False),
    "Attributed discount": ("attributed_discount", False),
    "Campaign": ("campaign", True),
}


def verdict(row: pd.Series) -> str:
    """What the incremental profit's interval says about a campaign."""
    if not row["has_control_group"]:
        return "no control group"
    if pd.isna(row["incremental_profit"]):
        if pd.notna(row.get("outcome_window_closes_at")):
            return f"too early: outcome windows close by {row['outcome_window_closes_at']:%Y-%m-%d}"
        return "too early: no closed outcome window yet"
    if row["incremental_profit_ci_low"] > 0:
        return "pays for itself"
    if row["incremental_profit_ci_high"] < 0:
        return "loses money"
    return "inconclusive"


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"{chosen.describe(dates=False, channels=False)}, over each campaign's whole life (the "
        "date range and channels do not apply). **Attributed**: orders that carried a "
        "standing redemption, caused by the voucher or not. **Incremental**: treated customers "
        "against the held-out control group over the outcome window after assignment, with "
        "95 % confidence intervals; only campaigns with a control group have it."
    )
    performance = q.campaign_performance(chosen)
    if performance.empty:
        st.info("No campaigns for these filters.")
        return
    performance["verdict"] = performance.apply(verdict, axis=1)
    _open_windows(performance)

    with_control = performance[performance["has_control_group"]]
    measured = with_control[with_control["incremental_profit"].notna()]
    revenue = performance["attributed_revenue"].sum()
    discount = performance["attributed_discount"].sum()
    ui.metrics(
        [
            (
                "Attributed revenue",
                ui.money_totals(performance, "attributed_revenue"),
                "Orders that carried a standing redemption, per campaign over its whole life, "
                "less refunds. The Overview's voucher order amounts follow the date range and "
                "are before refunds.",
            ),
            ("Discount given", ui.money_totals(performance, "attributed_discount")),
            (
                "Return on discount",
                ui.number(ui.ratio(revenue, discount), 2, "x"),
                "Attributed revenue per unit of discount (all currencies together); "
                f"{ui.MISSING} while no discount was given.",
            ),
            (
                "Incremental profit",
                ui.money_totals(measured, "incremental_profit") if len(measured) else ui.MISSING,
                "Sum of the point estimates of the campaigns with a control group; "
                f"{ui.MISSING} while none has a control group with a closed outcome window.",
            ),
            ("Campaigns", ui.count(len(performance))),
            ("With a control group", ui.count(len(with_control))),
            (
                "Pay for themselves",
                ui.count((performance["verdict"] == "pays for itself").sum()),
                "Incremental profit's 95 % interval above zero.",
            ),
            (
                "Lose money",
                ui.count((performance["verdict"] == "loses money").sum()),
                "Incremental profit's 95 % interval below zero.",
            ),
        ]
    )

    left, right = st.columns([3, 1])
    with right:
        page_state.restore("performance_sort", next(iter(SORTS)))
        page_state.restore("performance_descending", True)
        st.selectbox("Sort by", list(SORTS), key="performance_sort")
        st.toggle("Largest first", key="performance_descending")
        sort_label = page_state.keep("performance_sort")
        descending = page_state.keep("performance_descending")
    column, ascending_by_default = SORTS[sort_label]
    ascending = ascending_by_default if column == "campaign" else not descending
    performance = performance.sort_values(column, ascending=ascending, na_position="last")

    with left:
        st.subheader("Incremental profit, 95 % confidence interval")
        if measured.empty:
            st.caption(
                "No campaign has a control group with closed outcome windows yet, so nothing "
                "can be said about incremental profit."
            )
        else:
            st.altair_chart(
                profit_chart(performance[performance["incremental_profit"].notna()]),
                width="stretch",
            )

    st.subheader("Attributed and incremental, per campaign")
    ui.table(
        performance[
            [
                "campaign",
                "verdict",
                "incremental_profit",
                "incremental_profit_ci_low",
                "incremental_profit_ci_high",
                "attributed_revenue",
                "attributed_discount",
                "attributed_return_on_discount",
                "attributed_redemptions",
                "incremental_revenue",
                "incremental_conversion",
                "incremental_visit_rate",
                "incremental_treated_customers",
                "incremental_control_customers",
                "incremental_open_window_customers",
                "outcome_window_closes_at",
                "incremental_treated_discount",
                "attributed_net_revenue",
                "attributed_gift_card_liability",
                "incremental_revenue_ci_low",
                "incremental_revenue_ci_high",
                "incremental_conversion_ci_low",
                "incremental_conversion_ci_high",
                "incremental_visit_rate_ci_low",
                "incremental_visit_rate_ci_high",
                "currency",
                "campaign_id",
            ]
        ],
        key="campaign_performance",
        money=(
            "attributed_revenue",
            "attributed_discount",
            "attributed_net_revenue",
            "incremental_revenue",
            "incremental_revenue_ci_low",
            "incremental_revenue_ci_high",
            "incremental_profit",
            "incremental_profit_ci_low",
            "incremental_profit_ci_high",
            "incremental_treated_discount",
            "attributed_gift_card_liability",
        ),
        percent=(
            "incremental_conversion",
            "incremental_conversion_ci_low",
            "incremental_conversion_ci_high",
            "incremental_visit_rate",
            "incremental_visit_rate_ci_low",
            "incremental_visit_rate_ci_high",
        ),
        labels={
            "attributed_redemptions": "Redemptions",
            "attributed_revenue": "Attributed revenue",
            "attributed_discount": "Discount",
            "attributed_net_revenue": "Net revenue",
            "attributed_return_on_discount": "Return on discount",
            "incremental_revenue": "Incremental revenue",
            "incremental_revenue_ci_low": "Revenue 95 % low",
            "incremental_revenue_ci_high": "Revenue 95 % high",
            "incremental_profit": "Incremental profit",
            "incremental_profit_ci_low": "Profit 95 % low",
            "incremental_profit_ci_high": "Profit 95 % high",
            "incremental_conversion": "Conversion lift",
            "incremental_conversion_ci_low": "Lift 95 % low",
            "incremental_conversion_ci_high": "Lift 95 % high",
            "incremental_visit_rate": "Visit-rate lift",
            "incremental_visit_rate_ci_low": "Visit lift 95 % low",
            "incremental_visit_rate_ci_high": "Visit lift 95 % high",
            "incremental_treated_customers": "Treated (n)",
            "incremental_control_customers": "Held out (n)",
            "incremental_open_window_customers": "Window still open (n)",
            "outcome_window_closes_at": "Last window closes",
            "incremental_treated_discount": "Treated discount",
            "attributed_gift_card_liability": "Gift card liability",
            "campaign_id": "Campaign id",
        },
        column_config={
            "campaign": st.column_config.TextColumn("Campaign", pinned=True),
            "attributed_return_on_discount": st.column_config.NumberColumn(
                "Return on discount", format="%.2fx"
            ),
        },
        # In the CSV, not on screen: the revenue and lift intervals, net revenue (revenue less
        # discount, both shown) and the id.
        hidden=(
            "incremental_revenue_ci_low",
            "incremental_revenue_ci_high",
            "incremental_conversion_ci_low",
            "incremental_conversion_ci_high",
            "incremental_visit_rate_ci_low",
            "incremental_visit_rate_ci_high",
            "attributed_net_revenue",
            "campaign_id",
        ),
        missing=(
            "not applicable. The incremental figures need a control group and a closed "
            "outcome window (the verdict says which is lacking); the visit-rate lift, visits "
            "recorded in the ledger; return on discount needs a discount given; gift card "
            "liability, gift cards; the last window's close, a window still open."
        ),
    )
    st.caption(
        "Incremental profit = incremental revenue x gross margin - the discount the treated "
        "customers received; its interval scales the revenue interval the same way. Conversion "
        "lift is in percentage points."
    )


def _open_windows(performance: pd.DataFrame) -> None:
    """Say which campaigns still have customers whose outcome window is open: they are in
    neither arm yet, so the lift shown is over fewer customers than were assigned (or none)."""
    waiting = performance[performance["incremental_open_window_customers"].fillna(0) > 0]
    if waiting.empty:
        return
    lines = [
        f"- **{row.campaign}**: {ui.count(row.incremental_open_window_customers)} customers' "
        f"windows are still open; the last closes {row.outcome_window_closes_at:%Y-%m-%d %H:%M} "
        "UTC."
        for row in waiting.itertuples()
    ]
    st.info(
        "Outcome windows still open: a customer counts in the lift only once the ledger "
        "knows the whole window after assignment (up to when the ledger was last written).\n"
        + "\n".join(lines),
        icon=":material/hourglass_top:",
    )


def profit_chart(performance: pd.DataFrame) -> alt.LayerChart:
    """Each campaign's incremental profit as a point on its 95 % interval, zero marked."""
    several_currencies = performance["currency"].nunique() > 1
    frame = pd.DataFrame(
        {
            "campaign": [
                f"{name} ({currency})" if several_currencies else name
                for name, currency in zip(
                    performance["campaign"], performance["currency"], strict=True
                )
            ],
            "profit": [
                ui.to_major(v, c)
                for v, c in zip(
                    performance["incremental_profit"], performance["currency"], strict=True
                )
            ],
            "low": [
                ui.to_major(v, c)
                for v, c in zip(
                    performance["incremental_profit_ci_low"], performance["currency"], strict=True
                )
            ],
            "high": [
                ui.to_major(v, c)
                for v, c in zip(
                    performance["incremental_profit_ci_high"], performance["currency"], strict=True
                )
            ],
            "verdict": performance["verdict"].to_list(),
            "currency": performance["currency"].to_list(),
        }
    )
    order = frame["campaign"].to_list()
    currency = "" if several_currencies else f" ({frame['currency'].iloc[0]})"
    # Every interval and zero inside the axis, with a little room either side.
    lowest = min(0.0, frame[["low", "profit"]].min().min())
    highest = max(0.0, frame[["high", "profit"]].max().max())
    margin = 0.05 * (highest - lowest) or 1.0
    x_scale = alt.Scale(domain=[lowest - margin, highest + margin], nice=False)
    y = alt.Y("campaign:N", sort=order, title=None, axis=alt.Axis(labelLimit=240))
    colour = alt.Color(
        "verdict:N",
        title=None,
        scale=alt.Scale(domain=list(VERDICT_COLOURS), range=list(VERDICT_COLOURS.values())),
        legend=alt.Legend(orient="bottom"),
    )
    tooltip = [
        alt.Tooltip("campaign:N", title="Campaign"),
        alt.Tooltip("profit:Q", title="Incremental profit", format=",.2f"),
        alt.Tooltip("low:Q", title="95 % low", format=",.2f"),
        alt.Tooltip("high:Q", title="95 % high", format=",.2f"),
        alt.Tooltip("verdict:N", title="Verdict"),
    ]
    base = alt.Chart(frame)
    bars = base.mark_rule(strokeWidth=4).encode(
        y=y,
        x=alt.X(
            "low:Q",
            title=f"Incremental profit{currency}",
            scale=x_scale,
            axis=alt.Axis(format=",.0f"),
        ),
        x2="high:Q",
        color=colour,
        tooltip=tooltip,
    )
    points = base.mark_point(filled=True, size=120, opacity=1).encode(
        y=y, x=alt.X("profit:Q", scale=x_scale), color=colour, tooltip=tooltip
    )
    zero = (
        alt.Chart(pd.DataFrame({"x": [0.0]}))
        .mark_rule(color="black", strokeDash=[4, 4], strokeWidth=1.5)
        .encode(x=alt.X("x:Q", scale=x_scale))
    )
    # fit-x: `height` is the plot itself, not the plot squeezed in beside axes and legend.
    return (zero + bars + points).properties(
        height=ROW_HEIGHT * len(frame), autosize=alt.AutoSizeParams(type="fit-x")
    )


st.title("Campaign performance")
with ui.error_boundary("campaign performance"):
    render()
