"""The console's shared filters: a date range, campaigns and channels.

The router draws them in the sidebar on every run, so their widgets (and the values in
`st.session_state` under the keys below) live as long as the session and follow the analyst
from page to page. Pages read them with `current()` and turn them into a WHERE clause with
`Filters.where()`: the clause names columns the page chose and binds every value as a
parameter, so a filter value never becomes SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import streamlit as st

from app_streamlit import db

DATES_KEY = "filter_dates"
CAMPAIGNS_KEY = "filter_campaigns"
CHANNELS_KEY = "filter_channels"
SPAN_KEY = "filter_span"  # the warehouse's first and last day, as of the last run

# Held-out and skipped customers never reach a channel; the marts count them under 'none'.
NO_CHANNEL = "none"

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    campaigns: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    def where(
        self,
        *,
        date_column: str | None = None,
        campaign_column: str | None = None,
        channel_column: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A WHERE clause over the given columns and its parameters. An empty campaign or
        channel selection means all of them; the date range includes both ends."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if date_column is not None:
            clauses.append(f"CAST({_checked(date_column)} AS DATE) BETWEEN $start AND $end")
            params |= {"start": self.start, "end": self.end}
        if campaign_column is not None and self.campaigns:
            clauses.append(f"list_contains($campaigns::VARCHAR[], {_checked(campaign_column)})")
            params["campaigns"] = list(self.campaigns)
        if channel_column is not None and self.channels:
            clauses.append(f"list_contains($channels::VARCHAR[], {_checked(channel_column)})")
            params["channels"] = list(self.channels)
        return (" AND ".join(clauses) or "TRUE"), params

    def describe(self, *, dates: bool = True, campaigns: bool = True, channels: bool = True) -> str:
        """What the page is showing, in words, for a caption (which it may start)."""
        parts = []
        if dates:
            parts.append(f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}")
        if campaigns:
            parts.append(
                f"{len(self.campaigns)} campaign(s)" if self.campaigns else "all campaigns"
            )
        if channels:
            parts.append(", ".join(self.channels) if self.channels else "all channels")
        text = " · ".join(parts)
        return text[:1].upper() + text[1:]


def _checked(column: str) -> str:
    # Column names come from page code, never from users; refuse anything else regardless.
    if not _IDENTIFIER.match(column):
        raise ValueError(f"not a column name: {column!r}")
    return column


@dataclass(frozen=True)
class Options:
    first_day: date  # campaign activity: vouchers published, redemptions, deliveries
    last_day: date
    campaigns: dict[str, str]  # campaign_id → label
    channels: tuple[str, ...]
    orders_first_day: date | None = None  # orders reach back before the first campaign
    orders_last_day: date | None = None


def options() -> Options:
    """What the filters can choose from: the warehouse's days, campaigns and channels."""
    days = db.query(
        """
        SELECT min(day) AS first_day, max(day) AS last_day
        FROM (
            SELECT cohort_date AS day FROM marts.fct_campaign_funnel
            UNION ALL SELECT redeemed_date FROM marts.fct_redemptions
            UNION ALL SELECT delivery_date FROM marts.fct_delivery_performance
        )
        """
    )
    first_day, last_day = days["first_day"].iloc[0], days["last_day"].iloc[0]
    if first_day is None or first_day != first_day:  # None or NaT: no activity at all
        as_of = db.query("SELECT max(as_of) AS as_of FROM marts.dim_campaigns")["as_of"].iloc[0]
        last_day = as_of.date() if as_of == as_of and as_of is not None else date.today()
        first_day = last_day
    campaigns = db.query(
        "SELECT campaign_id, coalesce(campaign_name, campaign_id) AS campaign_name "
        "FROM marts.dim_campaigns ORDER BY campaign_name, campaign_id"
    )
    channels = db.query(
        "SELECT DISTINCT channel FROM marts.fct_campaign_funnel "
        "UNION SELECT DISTINCT channel FROM marts.fct_delivery_performance ORDER BY channel"
    )
    orders = (
        db.query(
            "SELECT min(ordered_date) AS first_day, max(ordered_date) AS last_day "
            "FROM marts.fct_orders"
        )
        if db.table_exists("marts.fct_orders")
        else None
    )
    return Options(
        first_day=_as_date(first_day),
        last_day=_as_date(last_day),
        campaigns={
            row.campaign_id: f"{row.campaign_name} ({row.campaign_id})"
            if row.campaign_name != row.campaign_id
            else row.campaign_id
            for row in campaigns.itertuples()
        },
        channels=tuple(channels["channel"]),
        orders_first_day=_day_or_none(orders, "first_day"),
        orders_last_day=_day_or_none(orders, "last_day"),
    )


def _day_or_none(frame: Any, column: str) -> date | None:
    if frame is None or frame.empty:
        return None
    value = frame[column].iloc[0]
    return None if value is None or value != value else _as_date(value)


def _as_date(value: Any) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value


def sidebar() -> Filters:
    """Draw the filters in the sidebar and return what they say. Called by the router on every
    run, before the page, so the widgets keep their values as the analyst changes page."""
    choices = options()
    state = st.session_state
    # Seed the state once; afterwards it is the widgets' own (and the analyst's choice). A
    # range left at "everything" grows with the warehouse when a new publish adds days.
    span = (choices.first_day, choices.last_day)
    if DATES_KEY not in state or tuple(state[DATES_KEY]) == state.get(SPAN_KEY, span):
        state[DATES_KEY] = span
    state[SPAN_KEY] = span
    state[CAMPAIGNS_KEY] = [c for c in state.get(CAMPAIGNS_KEY, []) if c in choices.campaigns]
    state[CHANNELS_KEY] = [c for c in state.get(CHANNELS_KEY, []) if c in choices.channels]

    with st.sidebar:
        st.subheader("Filters")
        st.date_input("Date range", key=DATES_KEY, format="YYYY-MM-DD")
        st.multiselect(
            "Campaigns",
            options=list(choices.campaigns),
            format_func=choices.campaigns.get,
            key=CAMPAIGNS_KEY,
            placeholder="All campaigns",
        )
        st.multiselect(
            "Channels",
            options=list(choices.channels),
            format_func=_channel_label,
            key=CHANNELS_KEY,
            placeholder="All channels",
        )
        st.button(
            "Reset filters",
            on_click=_reset,
            args=(choices.first_day, choices.last_day),
            width="stretch",
        )
        st.caption(data_range(choices))
    return current()


def data_range(choices: Options) -> str:
    """What the warehouse's dates cover, per kind of record: the default range is campaign
    activity, and orders (customers' history) may reach further back."""
    text = (
        f"Campaign activity (vouchers published, redemptions, deliveries): "
        f"{choices.first_day:%Y-%m-%d} to {choices.last_day:%Y-%m-%d}, the default date range."
    )
    if choices.orders_first_day is not None and choices.orders_last_day is not None:
        text += (
            f" Orders: {choices.orders_first_day:%Y-%m-%d} to {choices.orders_last_day:%Y-%m-%d}"
        )
        if choices.orders_first_day < choices.first_day:
            text += " (customers' history before the first campaign: widen the range to see it)"
        text += "."
    return text + " Each page says which of its dates the range filters; some pages ignore it."


def _channel_label(channel: str) -> str:
    return "none (held out or skipped)" if channel == NO_CHANNEL else channel


def _reset(first_day: date, last_day: date) -> None:
    st.session_state[DATES_KEY] = (first_day, last_day)
    st.session_state[CAMPAIGNS_KEY] = []
    st.session_state[CHANNELS_KEY] = []


def current() -> Filters:
    """The filters as the analyst left them; a page opened on its own gets everything."""
    state = st.session_state
    picked = tuple(state.get(DATES_KEY) or ())
    if len(picked) == 2:
        start, end = picked
    elif len(picked) == 1:  # the second date is not picked yet: up to the last day
        start, end = picked[0], state.get(SPAN_KEY, picked * 2)[1]
    else:
        start, end = date(1970, 1, 1), date(9999, 12, 31)
    if start > end:
        start, end = end, start
    return Filters(
        start=start,
        end=end,
        campaigns=tuple(state.get(CAMPAIGNS_KEY) or ()),
        channels=tuple(state.get(CHANNELS_KEY) or ()),
    )
