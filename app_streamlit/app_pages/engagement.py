"""Customer engagement: published → delivered → (opened → clicked → visited, where the ledger
records them) → accepted → redeemed, per campaign and channel, and where each campaign loses
people."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, ui
from app_streamlit import queries_reports as q

STEP_LABELS = {
    "published": "Published",
    "delivered": "Delivered",
    "opened": "Opened",
    "clicked": "Clicked",
    "visited": "Visited",
    "accepted": "Accepted",
    "redeemed": "Redeemed",
}
# Engagement between delivery and acceptance: shown only where the ledger records it (the
# funnel mart has null, not 0, where it records no event of the kind).
ENGAGEMENT_STEPS = ("opened", "clicked", "visited")


def recorded_steps(totals: pd.Series) -> list[str]:
    """The funnel's steps in order, without the engagement the ledger does not record."""
    return [step for step in STEP_LABELS if step not in ENGAGEMENT_STEPS or pd.notna(totals[step])]


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"{chosen.describe()}. Vouchers count on their publication day, whenever a later step "
        "happened, so recent days are still filling up. Held-out and skipped customers never "
        "reach a channel: they are under channel 'none'."
    )
    funnel = q.funnel_by_campaign_channel(chosen)
    if funnel.empty:
        st.info("No vouchers, hold-outs or skips in this date range for these filters.")
        return

    # min_count: a step no row records stays missing instead of summing to 0
    totals = funnel[[*STEP_LABELS, "held_out", "skipped"]].sum(min_count=1)
    steps = recorded_steps(totals)
    engagement = [
        (
            STEP_LABELS[step],
            ui.count(totals[step]),
            f"{ui.percent(ui.ratio(totals[step], totals['delivered']))} of delivered",
        )
        for step in ENGAGEMENT_STEPS
        if step in steps
    ]
    ui.metrics(
        [
            ("Published", ui.count(totals["published"])),
            (
                "Delivered",
                ui.count(totals["delivered"]),
                f"{ui.percent(ui.ratio(totals['delivered'], totals['published']))} of published",
            ),
            *engagement,
            (
                "Accepted",
                ui.count(totals["accepted"]),
                f"{ui.percent(ui.ratio(totals['accepted'], totals['delivered']))} of delivered",
            ),
            (
                "Redeemed",
                ui.count(totals["redeemed"]),
                f"{ui.percent(ui.ratio(totals['redeemed'], totals['published']))} of published",
            ),
            ("Conversion", ui.percent(ui.ratio(totals["redeemed"], totals["published"]))),
            ("Redeemed per accepted", ui.percent(ui.ratio(totals["redeemed"], totals["accepted"]))),
            ("Held out", ui.count(totals["held_out"]), "Control group: nothing was sent."),
            ("Skipped", ui.count(totals["skipped"]), "Chosen but not sent: see the reasons below."),
        ]
    )

    left, right = st.columns(2)
    with left:
        st.subheader("The funnel")
        st.altair_chart(_funnel_chart(totals, steps), width="stretch")
    with right:
        st.subheader("Accepted vs redeemed")
        st.altair_chart(_accepted_vs_redeemed(funnel), width="stretch")
        st.caption(
            "Many accepted but few redeemed: the offer or its window may be too weak. Redeemed "
            "can exceed accepted where a campaign does not require acceptance."
        )

    st.subheader("Where each campaign loses people")
    ui.table(
        _with_rates(funnel, steps),
        key="engagement_funnel",
        percent=(
            "delivered_per_published",
            "accepted_per_delivered",
            "redeemed_per_accepted",
            "redeemed_per_published",
        ),
        labels={
            "delivered_per_published": "Delivered / published",
            "accepted_per_delivered": "Accepted / delivered",
            "redeemed_per_accepted": "Redeemed / accepted",
            "redeemed_per_published": "Conversion",
            "biggest_loss": "Loses most at",
            "campaign_id": "Campaign id",
        },
        column_config={
            "campaign": st.column_config.TextColumn("Campaign", pinned=True),
            "biggest_loss": st.column_config.TextColumn("Loses most at", width="medium"),
        },
        hidden=("campaign_id",),
        missing="nothing to divide by: no voucher reached the step before (none delivered, "
        "so no acceptance rate).",
    )

    st.subheader("Chosen but never sent")
    st.caption(
        "Customers held out as the control group, and offers skipped, by reason: no consent on "
        "any channel, the frequency cap, no usable channel or contact, an unknown customer."
    )
    ui.table(q.skip_reasons_by_campaign(chosen), key="engagement_skips")

    st.subheader("Conversion by publication day")
    cohorts = q.funnel_by_day(chosen, sent_through_a_channel=True)
    if cohorts.empty:
        st.caption("No vouchers published in this range.")
    else:
        rates = pd.DataFrame(
            {
                "day": cohorts["day"],
                "Delivered / published": cohorts["delivered"] / cohorts["published"],
                "Accepted / delivered": cohorts["accepted"]
                / cohorts["delivered"].where(cohorts["delivered"] > 0),
                "Redeemed / published": cohorts["redeemed"] / cohorts["published"],
            }
        ).melt(id_vars="day", var_name="rate", value_name="share")
        st.altair_chart(
            alt.Chart(ui.consecutive_runs(rates.dropna(), "day", by=["rate"]))
            .mark_line(point=True)
            .encode(
                x=alt.X("day:T", axis=ui.day_axis("Publication day")),
                y=alt.Y("share:Q", title=None, axis=alt.Axis(format="%")),
                color=alt.Color("rate:N", legend=ui.legend()),
                detail="run:N",
                tooltip=[
                    alt.Tooltip("day:T", format="%Y-%m-%d"),
                    "rate:N",
                    alt.Tooltip("share:Q", format=".1%"),
                ],
            ),
            width="stretch",
        )


def _with_rates(funnel: pd.DataFrame, steps: list[str]) -> pd.DataFrame:
    table = funnel.copy()
    table["delivered_per_published"] = table["delivered"] / table["published"].where(
        table["published"] > 0
    )
    table["accepted_per_delivered"] = table["accepted"] / table["delivered"].where(
        table["delivered"] > 0
    )
    table["redeemed_per_accepted"] = table["redeemed"] / table["accepted"].where(
        table["accepted"] > 0
    )
    table["redeemed_per_published"] = table["redeemed"] / table["published"].where(
        table["published"] > 0
    )
    table["biggest_loss"] = [biggest_loss(row) for row in table.to_dict("records")]
    # Where it loses people and the rates first; the counts behind them after.
    columns = [
        "campaign",
        "channel",
        "biggest_loss",
        "redeemed_per_published",
        "delivered_per_published",
        "accepted_per_delivered",
        "redeemed_per_accepted",
        *steps,
        "held_out",
        "skipped",
        "delivery_failed",
        "delivery_pending",
        "rejected",
        "rolled_back",
        "campaign_id",
    ]
    return table[columns]


def biggest_loss(row: dict) -> str:
    """The step that loses the most vouchers, in words ('delivery: 3 of 10 lost')."""
    if not row["published"]:
        return "not sent (held out or skipped)" if row["held_out"] or row["skipped"] else ""
    steps = [("delivery", row["published"], row["delivered"])]
    required = row.get("acceptance_required")
    if pd.notna(required) and not bool(required):
        steps.append(("redemption", row["delivered"], row["redeemed"]))
    else:
        steps += [
            ("acceptance", row["delivered"], row["accepted"]),
            ("redemption", row["accepted"], row["redeemed"]),
        ]
    name, before, after = max(steps, key=lambda step: step[1] - step[2])
    lost = int(before - after)
    if lost <= 0:
        return "no losses"
    return f"{name}: {lost:,} of {int(before):,} lost"


def _funnel_chart(totals: pd.Series, steps: list[str]) -> alt.Chart:
    published = totals["published"]
    labels = [STEP_LABELS[step] for step in steps]
    frame = pd.DataFrame(
        {
            "step": labels,
            "vouchers": [int(totals[step]) for step in steps],
            "share": [ui.ratio(totals[step], published) for step in steps],
        }
    )
    frame["label"] = [
        f"{vouchers:,} ({ui.percent(share)})"
        for vouchers, share in zip(frame["vouchers"], frame["share"], strict=True)
    ]
    base = alt.Chart(frame).encode(
        y=alt.Y("step:N", sort=labels, title=None),
        x=alt.X("vouchers:Q", title="Vouchers"),
    )
    return base.mark_bar() + base.mark_text(align="left", dx=4).encode(text="label:N")


def _accepted_vs_redeemed(funnel: pd.DataFrame) -> alt.Chart:
    per_campaign = funnel.groupby("campaign", as_index=False)[["accepted", "redeemed"]].sum()
    frame = per_campaign.melt(id_vars="campaign", var_name="step", value_name="vouchers")
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("campaign:N", title=None),
            yOffset="step:N",
            x=alt.X("vouchers:Q", title="Vouchers"),
            color=alt.Color("step:N", legend=ui.legend()),
            tooltip=["campaign:N", "step:N", "vouchers:Q"],
        )
    )


st.title("Customer engagement")
with ui.error_boundary("customer engagement"):
    render()
