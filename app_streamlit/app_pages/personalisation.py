"""Personalisation: the next best offers the promoted model ranked for each customer, which
campaigns it favours, and the model versions in the registry with their metrics (the promoted
one marked)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from app_streamlit import db, filters, page_state, pipeline_status, ui
from app_streamlit import queries_ml as q
from app_streamlit import record_format as fmt

CUSTOMER_KEY = "personalisation_customer"
TRAIN_COMMANDS = (
    "`promo models train personalisation`, then `promo models promote personalisation-vN` "
    "with the version it printed, then `make pipeline`"
)


def render() -> None:
    chosen = filters.current()
    offers_tab, models_tab = st.tabs(["Next best offers", "Model versions"])
    with offers_tab:
        _offers(chosen)
    with models_tab:
        _models()


def _offers(chosen: filters.Filters) -> None:
    if not db.table_exists(q.NEXT_BEST_OFFERS):
        pipeline_status.explain_missing(
            pipeline_status.NEXT_BEST_OFFERS_STEP,
            "next best offers",
            f"To train and promote a personalisation model: {TRAIN_COMMANDS}.",
        )
        return
    scored = q.offers_scored().iloc[0]
    st.caption(
        f"{ui.count(scored['customers'])} customers, {ui.count(scored['offers'])} offers, "
        f"scored by {fmt.text(scored['model_version'])} at {fmt.when(scored['scored_at'])}. "
        f"{chosen.describe(dates=False, channels=False)} (the campaign filter applies). "
        "Score ranks the offers; propensity is the chance the customer redeems it, uplift "
        "how much the offer raises the chance of an order."
    )
    by_campaign = q.offers_by_campaign(chosen.campaigns)
    if not by_campaign.empty:
        st.altair_chart(
            alt.Chart(by_campaign)
            .mark_bar()
            .encode(
                x=alt.X("best_offer_for:Q", title="Customers for whom it is the best offer"),
                y=alt.Y("campaign_name:N", sort="-x", title=None),
                tooltip=[
                    "campaign_id:N",
                    "best_offer_for:Q",
                    "offered_to:Q",
                    alt.Tooltip("mean_propensity:Q", format=".1%"),
                    alt.Tooltip("mean_uplift:Q", format=".1%"),
                ],
            ),
            width="stretch",
        )
        ui.table(
            by_campaign,
            key="nbo_by_campaign",
            percent=("mean_propensity", "mean_uplift"),
        )

    page_state.restore(CUSTOMER_KEY, "", query_param="customer")
    st.text_input("Customer id contains", key=CUSTOMER_KEY, placeholder="e.g. c0000123")
    customer = page_state.keep(CUSTOMER_KEY) or ""
    offers = q.next_best_offers(customer, chosen.campaigns)
    if len(offers) >= 2000:
        st.caption("Showing the first 2,000 offers; type a customer id to narrow them.")
    ui.table(
        offers,
        key="next_best_offers",
        percent=("propensity", "uplift"),
        empty="No offers for this customer and these campaigns.",
    )


def _models() -> None:
    versions = q.model_versions("personalisation")
    if versions.empty:
        ui.empty_state(f"No personalisation model trained yet. Run {TRAIN_COMMANDS}", None)
        return
    promoted = versions[versions["promoted"]]
    if promoted.empty:
        st.warning(
            "No version is promoted, so nothing is scored: run `promo models promote "
            "personalisation-vN` with one of the versions below."
        )
    else:
        st.caption(f"{promoted['version'].iloc[0]} is promoted: scoring uses it.")
    ui.table(
        versions.assign(promoted=versions["promoted"].map({True: "★ promoted", False: ""})),
        key="personalisation_models",
    )


st.title("Personalisation")
with ui.error_boundary("personalisation"):
    render()
