"""Delivery performance: how reliably and how fast each channel and provider delivers, and why
deliveries fail."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, page_state, ui
from app_streamlit import queries_reports as q

PROVIDERS_KEY = "delivery_providers"
PERCENTILE_KEY = "delivery_latency_percentile"
LATENCY_COLUMNS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms")
NO_LATENCY = "no latency was recorded for these attempts."


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"{chosen.describe(campaigns=False)} (delivery figures are per channel and provider, "
        "not per campaign). A message is one send of a voucher with its retries; it counts on "
        "the day its first attempt was made. Latency is per attempt."
    )
    days = q.delivery_by_day(chosen)
    failures = q.delivery_failures(chosen)
    if days.empty and failures.empty:
        st.info("No deliveries in this date range for these channels.")
        return

    providers = sorted(set(days["provider"]) | set(failures["provider"]))
    page_state.restore(PROVIDERS_KEY, [])
    st.session_state[PROVIDERS_KEY] = [p for p in st.session_state[PROVIDERS_KEY] if p in providers]
    st.multiselect("Providers", providers, key=PROVIDERS_KEY, placeholder="All providers")
    picked = page_state.keep(PROVIDERS_KEY)
    if picked:
        days = days[days["provider"].isin(picked)]
        failures = failures[failures["provider"].isin(picked)]

    messages = days["messages_attempted"].sum()
    blocked = failures.loc[failures["provider"] == "not_sent", "failed_messages"].sum()
    ui.metrics(
        [
            ("Messages sent", ui.count(messages)),
            (
                "Messages delivered",
                ui.count(days["delivered"].sum()),
                "Messages, by the day of their first attempt: not the Overview's delivered "
                "vouchers, which count by publication day.",
            ),
            (
                "Success rate",
                ui.percent(ui.ratio(days["delivered"].sum(), messages)),
                "Messages whose last attempt delivered, of messages sent.",
            ),
            (
                "Failed",
                ui.count(days["failed"].sum()),
                "Messages whose last attempt failed (permanent failure, or retries exhausted).",
            ),
            (
                "Retries",
                ui.count(days["retries"].sum()),
                "Attempts beyond the first of each message.",
            ),
            (
                "Blocked before sending",
                ui.count(blocked),
                "Deliveries stopped before any provider was called: consent withdrawn, channel "
                "not configured.",
            ),
            (
                "Latency p95 (ms)",
                ui.number(_weighted_value(days, "latency_p95_ms")),
                f"Daily 95th percentiles averaged, weighted by attempts. {ui.MISSING}: "
                f"{NO_LATENCY}",
            ),
            (
                "Latency p99 (ms)",
                ui.number(_weighted_value(days, "latency_p99_ms")),
                f"Daily 99th percentiles averaged, weighted by attempts. {ui.MISSING}: "
                f"{NO_LATENCY}",
            ),
        ]
    )

    if not days.empty:
        days = days.assign(route=days["channel"] + " · " + days["provider"])
        left, right = st.columns(2)
        with left:
            st.subheader("Success rate per day")
            st.altair_chart(_success_chart(days), width="stretch")
        with right:
            st.subheader("Latency per day")
            page_state.restore(PERCENTILE_KEY, "p95")
            st.segmented_control("Percentile", list(PERCENTILES), key=PERCENTILE_KEY)
            percentile = page_state.keep(PERCENTILE_KEY) or "p95"
            chart = latency_chart(days, percentile)
            if isinstance(chart, alt.FacetChart):
                st.altair_chart(chart)  # small multiples keep their own width
            else:
                st.altair_chart(chart, width="stretch")

    st.subheader("Per channel and provider")
    ui.table(
        summary(days) if not days.empty else days,
        key="delivery_by_provider",
        percent=("success_rate",),
        column_config={
            column: st.column_config.NumberColumn(label, format="%,.1f")
            for column, label in (
                ("latency_p50_ms", "p50 ms"),
                ("latency_p95_ms", "p95 ms"),
                ("latency_p99_ms", "p99 ms"),
                ("latency_max_ms", "Max ms"),
            )
        },
        empty="No messages sent in this range.",
        missing=NO_LATENCY,
    )

    st.subheader("Failures and their reasons")
    if failures.empty:
        st.caption("No failures in this range.")
    else:
        st.altair_chart(_failure_chart(failures), width="stretch")
        reasons = (
            failures.groupby(["channel", "provider", "error_reason"], as_index=False)[
                ["failed_messages", "failed_attempts", "transient_failures", "permanent_failures"]
            ]
            .sum()
            .sort_values("failed_messages", ascending=False)
        )
        ui.table(reasons, key="delivery_failure_reasons")

    with st.expander("Daily figures"):
        ui.table(
            days.drop(columns=["route"], errors="ignore"),
            key="delivery_daily",
            percent=("success_rate",),
            missing=NO_LATENCY,
        )


def summary(days: pd.DataFrame) -> pd.DataFrame:
    """Per channel and provider over the range: counts summed, rates recomputed, daily latency
    percentiles averaged with the day's attempts as weights (percentiles do not add up)."""
    rows = []
    for (channel, provider), group in days.groupby(["channel", "provider"]):
        messages = group["messages_attempted"].sum()
        rows.append(
            {
                "channel": channel,
                "provider": provider,
                "messages_attempted": int(messages),
                "delivered": int(group["delivered"].sum()),
                "failed": int(group["failed"].sum()),
                "success_rate": ui.ratio(group["delivered"].sum(), messages),
                "attempts": int(group["attempts"].sum()),
                "retries": int(group["retries"].sum()),
                "latency_p50_ms": _weighted_value(group, "latency_p50_ms"),
                "latency_p95_ms": _weighted_value(group, "latency_p95_ms"),
                "latency_p99_ms": _weighted_value(group, "latency_p99_ms"),
                "latency_max_ms": group["latency_max_ms"].max(),
            }
        )
    # Numbers even where no latency was recorded at all, so that the column sorts as numbers.
    return pd.DataFrame(rows).astype({column: "float64" for column in LATENCY_COLUMNS})


def _weighted_value(days: pd.DataFrame, column: str) -> float | None:
    known = days[days[column].notna()]
    weights = known["attempts"].sum()
    if not weights:
        return None
    return round(float((known[column] * known["attempts"]).sum() / weights), 1)


def _success_chart(days: pd.DataFrame) -> alt.Chart:
    daily = days.groupby(["delivery_date", "route"], as_index=False)[
        ["delivered", "messages_attempted"]
    ].sum()
    daily["success_rate"] = daily["delivered"] / daily["messages_attempted"]
    return (
        alt.Chart(ui.consecutive_runs(daily, "delivery_date", by=["route"]))
        .mark_line(point=True)
        .encode(
            x=alt.X("delivery_date:T", axis=ui.day_axis()),
            y=alt.Y("success_rate:Q", title=None, axis=alt.Axis(format="%")),
            color=alt.Color("route:N", legend=ui.legend()),
            detail="run:N",
            tooltip=[
                alt.Tooltip("delivery_date:T", format="%Y-%m-%d"),
                "route:N",
                alt.Tooltip("success_rate:Q", format=".1%"),
                "messages_attempted:Q",
            ],
        )
    )


PERCENTILES = {"p50": "latency_p50_ms", "p95": "latency_p95_ms", "p99": "latency_p99_ms"}
ROUTES_IN_ONE_CHART = 4  # more routes than this: one small chart each, on a shared scale


def latency_chart(days: pd.DataFrame, percentile: str) -> alt.Chart | alt.FacetChart:
    """One latency percentile per day and route. A few routes share one chart, told apart by
    colour; many get a small chart each (same axes), so no line hides another."""
    frame = ui.consecutive_runs(
        days[["delivery_date", "route", PERCENTILES[percentile]]]
        .rename(columns={PERCENTILES[percentile]: "ms"})
        .dropna(subset=["ms"]),
        "delivery_date",
        by=["route"],
    )
    routes = frame["route"].nunique()
    encoding = {
        "x": alt.X("delivery_date:T", axis=ui.day_axis()),
        "y": alt.Y("ms:Q", title=f"{percentile} ms"),
        "detail": "run:N",
        "tooltip": [
            alt.Tooltip("delivery_date:T", format="%Y-%m-%d"),
            "route:N",
            alt.Tooltip("ms:Q", title=f"{percentile} ms", format=",.1f"),
        ],
    }
    if routes <= ROUTES_IN_ONE_CHART:
        return (
            alt.Chart(frame)
            .mark_line(point=True)
            .encode(color=alt.Color("route:N", legend=ui.legend()), **encoding)
        )
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(**encoding)
        .properties(height=120, width=220)
        .facet(facet=alt.Facet("route:N", title=None), columns=3)
    )


def _failure_chart(failures: pd.DataFrame) -> alt.Chart:
    daily = failures.groupby(["delivery_date", "error_reason"], as_index=False)[
        "failed_messages"
    ].sum()
    return (
        alt.Chart(daily)
        .mark_bar()
        .encode(
            x=alt.X("delivery_date:T", axis=ui.day_axis()),
            y=alt.Y("failed_messages:Q", title="Failed messages"),
            color=alt.Color("error_reason:N", legend=ui.legend()),
            tooltip=[
                alt.Tooltip("delivery_date:T", format="%Y-%m-%d"),
                "error_reason:N",
                "failed_messages:Q",
            ],
        )
    )


st.title("Delivery performance")
with ui.error_boundary("delivery performance"):
    render()
