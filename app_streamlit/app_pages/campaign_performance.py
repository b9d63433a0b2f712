"""Campaign performance: what each campaign caused against what it gave away, the page to act
on. Two kinds of figures, never in the same headline: incremental ones (caused: treated
customers against the held-out control group, with 95 % confidence intervals and a verdict in
words) and attributed ones (whatever was bought with a voucher, caused by it or not)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, page_state, ui
from app_streamlit import queries_reports as q
from redemption_core import (
    NO_INTERVAL,
    PROFIT_VERDICTS,
    Effect,
    Verdict,
    interval_verdict,
    minimum_detectable_effect,
    overall_verdict,
    total,
)

NO_CONTROL_GROUP = "no control group"
TOO_EARLY = "too early: no closed outcome window yet"
VERDICT_COLOURS = {
    PROFIT_VERDICTS[Verdict.ABOVE_ZERO]: "#2e7d32",
    PROFIT_VERDICTS[Verdict.INCLUDES_ZERO]: "#9e9e9e",
    PROFIT_VERDICTS[Verdict.BELOW_ZERO]: "#c62828",
}

ROW_HEIGHT = 32  # pixels per campaign in the interval chart

SORTS = {
    "Incremental profit": ("incremental_profit", False),
    "Attributed revenue": ("attributed_revenue", False),
    "Return on discount (attributed)": ("attributed_return_on_discount", False),
    "Attributed discount": ("attributed_discount", False),
    "Campaign": ("campaign", True),
}


def verdict(row: pd.Series) -> str:
    """What the incremental profit's interval says about a campaign."""
    if not row["has_control_group"]:
        return NO_CONTROL_GROUP
    if pd.isna(row["incremental_profit"]):
        if pd.notna(row.get("outcome_window_closes_at")):
            return f"too early: outcome windows close by {row['outcome_window_closes_at']:%Y-%m-%d}"
        return TOO_EARLY
    if pd.isna(row["incremental_profit_se"]):
        return NO_INTERVAL
    return PROFIT_VERDICTS[
        interval_verdict(row["incremental_profit_ci_low"], row["incremental_profit_ci_high"])
    ]


def effects(performance: pd.DataFrame) -> list[Effect]:
    """The campaigns whose incremental profit was measured with a standard error (one customer
    in an arm gives an estimate without one), as estimates with their error."""
    measured = performance[
        performance["incremental_profit_se"].notna() & performance["incremental_profit"].notna()
    ]
    return [
        Effect(
            name=row.campaign,
            currency=row.currency,
            estimate=float(row.incremental_profit),
            low=float(row.incremental_profit_ci_low),
            high=float(row.incremental_profit_ci_high),
            standard_error=float(row.incremental_profit_se),
        )
        for row in measured.itertuples()
    ]


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"{chosen.describe(dates=False, channels=False)}, over each campaign's whole life (the "
        "date range and channels do not apply)."
    )
    performance = q.campaign_performance(chosen)
    if performance.empty:
        st.info("No campaigns for these filters.")
        return
    performance["verdict"] = performance.apply(verdict, axis=1)
    _open_windows(performance)
    measured = effects(performance)
    performance["detectable_effect"] = [
        minimum_detectable_effect(float(se)) if pd.notna(se) else None
        for se in performance["incremental_profit_se"]
    ]

    _incremental_headline(performance, measured)

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
        st.markdown("**Incremental profit per campaign, 95 % confidence interval**")
        if not measured:
            st.caption(
                "No campaign has a control group with closed outcome windows yet, so nothing "
                "can be said about incremental profit."
            )
        else:
            st.altair_chart(
                profit_chart(performance[performance["incremental_profit_se"].notna()]),
                width="stretch",
            )

    _attributed_headline(performance)

    st.subheader("Per campaign: incremental and attributed")
    ui.table(
        performance[
            [
                "campaign",
                "verdict",
                "incremental_profit",
                "incremental_profit_ci_low",
                "incremental_profit_ci_high",
                "detectable_effect",
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
            "detectable_effect",
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
            "attributed_redemptions": "Attributed redemptions",
            "attributed_revenue": "Attributed revenue",
            "attributed_discount": "Attributed discount",
            "attributed_net_revenue": "Attributed net revenue",
            "attributed_return_on_discount": "Return on discount (attributed)",
            "detectable_effect": "Detectable effect (80 % power)",
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
                "Return on discount (attributed)", format="%.2fx"
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
        "customers received; its interval scales the revenue interval the same way. Detectable "
        "effect: the smallest incremental profit this control group would show as different "
        "from zero with 80 % power (2.8 standard errors). Conversion lift is in percentage "
        "points. Attributed columns count every order that carried a voucher, caused by it or "
        "not."
    )


def _incremental_headline(performance: pd.DataFrame, measured: list[Effect]) -> None:
    """What the campaigns caused: the verdict in words, the sum only with its interval."""
    st.subheader("Caused by the campaigns (incremental)")
    st.caption(
        "Treated customers against the held-out control group over the outcome window after "
        "assignment, with 95 % confidence intervals; only campaigns with a control group and "
        "closed outcome windows are measured."
    )
    with_control = performance[performance["has_control_group"]]
    counts = performance["verdict"].value_counts()
    currencies = {effect.currency for effect in measured}
    summed = total(measured) if measured and len(currencies) == 1 else None
    ui.metrics(
        [
            (
                f"Incremental profit, {len(measured)} together"
                if len(measured) != 1
                else "Incremental profit, 1 campaign",
                ui.money(summed.estimate, summed.currency) if summed else ui.MISSING,
                "The sum of the measured campaigns' estimates, never shown without the interval "
                "of the sum under it: the standard errors add in quadrature, since each "
                f"campaign draws its own control group. {ui.MISSING}: nothing measured yet, or "
                "campaigns in several currencies (the verdict below sums each currency).",
                f"95 % CI {ui.money(summed.low, summed.currency)} to "
                f"{ui.money(summed.high, summed.currency)}"
                if summed
                else None,
            ),
            (
                "Measured",
                f"{len(measured)} of {len(performance)}",
                f"Campaigns with a control group: {len(with_control)}; measured once some "
                "treated and held-out customers' outcome windows have closed.",
            ),
        ],
        columns=2,
    )
    ui.metrics(
        [
            (
                "Pay for themselves",
                ui.count(counts.get(PROFIT_VERDICTS[Verdict.ABOVE_ZERO], 0)),
                "Incremental profit's 95 % interval entirely above zero.",
            ),
            (
                "Lose money",
                ui.count(counts.get(PROFIT_VERDICTS[Verdict.BELOW_ZERO], 0)),
                "Incremental profit's 95 % interval entirely below zero.",
            ),
            (
                "Indistinguishable from zero",
                ui.count(counts.get(PROFIT_VERDICTS[Verdict.INCLUDES_ZERO], 0)),
                "Incremental profit's 95 % interval includes zero: the data cannot tell "
                "the campaign's effect from none.",
            ),
        ],
        columns=3,
    )
    without_interval = performance.loc[performance["verdict"] == NO_INTERVAL, "campaign"]
    sentences = overall_verdict(measured, without_interval=list(without_interval))
    if any(effect.verdict is Verdict.BELOW_ZERO for effect in measured):
        box = st.warning
    elif measured and all(effect.verdict is Verdict.ABOVE_ZERO for effect in measured):
        box = st.success
    else:
        box = st.info
    box("\n\n".join(sentences), icon=":material/balance:")


def _attributed_headline(performance: pd.DataFrame) -> None:
    """What was bought with vouchers: not what the vouchers caused, and said so."""
    st.subheader("Attributed to vouchers (not necessarily caused)")
    st.caption(
        "Every order that carried a standing redemption, per campaign over its whole life, "
        "less refunds: customers who would have bought anyway count too, so these figures "
        "cannot say whether a campaign paid for itself; the incremental ones above can."
    )
    revenue = performance["attributed_revenue"].sum()
    discount = performance["attributed_discount"].sum()
    ui.metrics(
        [
            (
                "Attributed revenue",
                ui.money_totals(performance, "attributed_revenue"),
                "Orders that carried a standing redemption, less refunds. The Overview's voucher "
                "order amounts follow the date range and are before refunds.",
            ),
            (
                "Discount given",
                ui.money_totals(performance, "attributed_discount"),
                "Net of rollbacks.",
            ),
            (
                "Return on discount (attributed)",
                ui.number(ui.ratio(revenue, discount), 2, "x"),
                "Attributed revenue per unit of discount (all currencies together); not a "
                f"return the discount caused. {ui.MISSING} while no discount was given.",
            ),
        ],
        columns=3,
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
        legend=ui.legend(),
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
