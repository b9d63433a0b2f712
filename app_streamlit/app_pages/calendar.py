"""Campaign calendar: every campaign on a timeline from its start to its end, coloured by status,
to see what runs when and which campaigns overlap."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, ui
from app_streamlit import queries_reports as q

STATUS_COLOURS = {
    "active": "#2e7d32",
    "paused": "#ef6c00",
    "draft": "#90a4ae",
    "finished": "#5c6bc0",
}


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"Campaigns running at any time in {chosen.describe(channels=False)}, drawn whole; "
        "the shaded band is the date range. A campaign without an end date runs on (drawn to "
        "the end of the range, marked open-ended); one without a start date starts when it "
        "was created. The dashed line is the latest ledger event."
    )
    campaigns = q.campaign_calendar(chosen)
    if campaigns.empty:
        st.info("No campaigns for these filters.")
        return
    window_start = datetime.combine(chosen.start, time.min)
    window_end = datetime.combine(chosen.end + timedelta(days=1), time.min)
    campaigns = campaigns.assign(drawn_until=campaigns["ends_at"].fillna(pd.Timestamp(window_end)))
    running = campaigns[
        (campaigns["starts_at"] < window_end) & (campaigns["drawn_until"] >= window_start)
    ]
    as_of = campaigns["as_of"].max()
    ui.metrics(
        [
            ("Campaigns in the range", ui.count(len(running))),
            ("Active", ui.count((running["status"] == "active").sum())),
            ("Open-ended", ui.count(running["open_ended"].sum())),
            ("Data as of", ui.day(as_of)),
        ]
    )
    if running.empty:
        st.info("No campaign runs in this date range.")
    else:
        st.altair_chart(timeline_chart(running, window_start, window_end, as_of), width="stretch")

    st.subheader("Campaigns")
    ui.table(
        running.drop(columns=["drawn_until", "as_of"]),
        key="campaign_calendar",
        money=("discount_net",),
        labels={
            "starts_at": "Starts",
            "ends_at": "Ends",
            "discount_net": "Discount given",
            "starts_at_creation": "Start = creation",
        },
        missing="not set: no end date (the campaign runs on), no distribution mode (a flyer, "
        "an in-store offer) or no main campaign.",
    )


def timeline_chart(
    running: pd.DataFrame, window_start: datetime, window_end: datetime, as_of: pd.Timestamp
) -> alt.LayerChart:
    frame = running.assign(
        label=[
            f"{name} (open-ended)" if open_ended else name
            for name, open_ended in zip(running["campaign"], running["open_ended"], strict=True)
        ],
        ends=["open-ended" if pd.isna(end) else ui.day(end) for end in running["ends_at"]],
    )
    order = frame.sort_values(["starts_at", "campaign"])["label"].to_list()
    bars = (
        alt.Chart(frame.drop(columns=["as_of"], errors="ignore"))
        .mark_bar(cornerRadius=3)
        .encode(
            y=alt.Y("label:N", sort=order, title=None),
            x=alt.X("starts_at:T", axis=ui.day_axis()),
            x2="drawn_until:T",
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())),
                legend=ui.legend(),
            ),
            tooltip=[
                "campaign:N",
                "status:N",
                "distribution_mode:N",
                alt.Tooltip("starts_at:T", title="Starts", format="%Y-%m-%d"),
                alt.Tooltip("ends:N", title="Ends"),
                "vouchers_published:Q",
                "redemptions:Q",
            ],
        )
    )
    band = (
        alt.Chart(
            pd.DataFrame({"start": [window_start.isoformat()], "end": [window_end.isoformat()]})
        )
        .mark_rect(opacity=0.08, color="#1565c0")
        .encode(x="start:T", x2="end:T")
    )
    layers = [band, bars]
    if not pd.isna(as_of):
        layers.append(
            alt.Chart(pd.DataFrame({"as_of": [as_of.isoformat()]}))
            .mark_rule(strokeDash=[4, 4], color="black")
            .encode(x="as_of:T", tooltip=[alt.Tooltip("as_of:T", title="Data as of")])
        )
    return alt.layer(*layers).properties(height=max(140, 28 * len(frame)))


st.title("Campaign calendar")
with ui.error_boundary("the campaign calendar"):
    render()
