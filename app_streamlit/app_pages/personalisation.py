"""Personalisation: the next best offers for each customer, what ranked them (expected
incremental value, propensity, or the baseline that beat the model) and the campaigns never
recommended because they lose money with confidence; and the model versions in the registry
with their metrics (the promoted one marked)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import db, filters, page_state, pipeline_status, ui
from app_streamlit import queries_ml as q
from app_streamlit import record_format as fmt
from models_ml.registry import ModelCard, RegistryError

CUSTOMER_KEY = "personalisation_customer"
VERSION_KEY = "personalisation_version"
TRAIN_COMMANDS = (
    "`promo models train personalisation`, then `promo models promote personalisation-vN` "
    "with the version it printed, then `make pipeline`"
)
RANKED_BY = {
    "incremental_value": (
        "Ranked by expected incremental value: uplift (the chance of an order the offer adds) x "
        "gross margin x the customer's mean order, less the chance they redeem it x its "
        "discount, in the campaign's currency. Offers whose value is unknown come after, by "
        "propensity."
    ),
    "propensity": (
        "Ranked by propensity (the chance the customer redeems the offer): the model has no "
        "uplift estimate, since no campaign in its training window had a control group."
    ),
}


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
    version = fmt.text(scored["model_version"])
    card = _card(version)
    st.caption(
        f"{ui.count(scored['customers'])} customers, {ui.count(scored['offers'])} offers, "
        f"scored by {version} at {fmt.when(scored['scored_at'])}. "
        f"{chosen.describe(dates=False, channels=False)} (the campaign filter applies)."
    )
    _ranking(fmt.text(scored["ranked_by"]), version, card)
    _never_recommended(card)
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
            money=("mean_incremental_value",),
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
        money=("incremental_value",),
        percent=("propensity", "uplift"),
        empty="No offers for this customer and these campaigns.",
        missing="no uplift estimate, or the discount or the customer's orders are unknown",
    )


def _card(version: str) -> ModelCard | None:
    try:
        return q.model_card(version)
    except RegistryError:  # the version left the registry
        return None


def _ranking(ranked_by: str, version: str, card: ModelCard | None) -> None:
    """What ranked the offers; where a baseline did, that the model lost to it, with the
    held-out figures that say so."""
    if ranked_by in RANKED_BY:
        st.caption(RANKED_BY[ranked_by])
        return
    decided = (card.extra.get("ranking") if card else None) or {}
    metric = decided.get("metric", "")
    figures = ""
    if card and metric:
        beaten = decided.get("beaten_by") or [ranked_by]
        against = ", ".join(
            f"{name} {q.with_interval(card.metrics, f'{metric}_{name}')}" for name in beaten
        )
        figures = (
            f" On its held-out part, {q.METRIC_NAMES.get(metric, metric)} of the model is "
            f"{q.with_interval(card.metrics, metric)}, against {against} (95 % intervals)."
        )
    st.warning(
        f"{version} does not beat the simple baselines, so the offers are ranked by the best "
        f"of them, {ranked_by}, not by the model.{figures} Train a better model or add what it "
        f"lacks to learn from (see the Model versions tab)."
    )


def _never_recommended(card: ModelCard | None) -> None:
    """The campaigns next best offers leave out, each with the estimate that put it there."""
    rows = []
    for effect in (card.extra.get("campaign_effects") or []) if card else []:
        if effect.get("high") is not None and effect["high"] < 0:
            rows.append(
                {
                    "campaign_id": effect["campaign_id"],
                    "measured_by": f"the model ({card.version}'s training window)",
                    "measure": "incremental profit per treated customer",
                    "estimate": effect["effect"],
                    "ci_low": effect["low"],
                    "ci_high": effect["high"],
                    "currency": effect.get("currency"),
                }
            )
    for losing in q.campaigns_losing_money().itertuples():
        rows.append(
            {
                "campaign_id": losing.campaign_id,
                "measured_by": "Campaign performance",
                "measure": "incremental profit",
                "estimate": losing.incremental_profit,
                "ci_low": losing.incremental_profit_ci_low,
                "ci_high": losing.incremental_profit_ci_high,
                "currency": losing.currency,
            }
        )
    if not rows:
        st.caption("No campaign loses money with confidence, so none is held back.")
        return
    st.markdown(
        "**Never recommended**: these campaigns lose money with confidence (the whole 95 % "
        "interval of their effect against the control group is below zero)."
    )
    ui.table(pd.DataFrame(rows), key="nbo_never", money=("estimate", "ci_low", "ci_high"))


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
    _evaluation(list(versions["version"]))


def _evaluation(versions: list[str]) -> None:
    """A version's held-out figures against the baselines and against the promoted version, and
    the plots `promo models evaluate` drew for both."""
    st.subheader("Evaluation")
    chosen = q.model_card(st.selectbox("Version", versions, key=VERSION_KEY))
    promoted = q.promoted_card("personalisation")
    holdout = chosen.extra.get("holdout") or {}
    st.caption(
        f"Measured on the held-out part of {chosen.version}'s window: {holdout.get('test', 'n/a')}"
        f" ({holdout.get('kind', 'time')} split), each figure with a bootstrap 95% interval "
        "(customers resampled); lift: the interval of the model minus that ranking."
    )
    baselines = q.against_baselines(chosen)
    if baselines.empty:
        st.info(f"{chosen.version}'s card has no ranking metrics to compare.")
    else:
        ui.table(baselines, key="personalisation_baselines")
    ui.table(q.against_promoted(chosen, promoted), key="personalisation_against_promoted")
    shown = [card for card in (chosen, promoted) if card is not None]
    shown = list({card.version: card for card in shown}.values())
    for column, card in zip(st.columns(len(shown)), shown, strict=True):
        with column:
            label = "promoted" if promoted and card.version == promoted.version else "chosen"
            st.markdown(f"**{card.version}** ({label})")
            plots = q.evaluation_plots(card)
            if not plots:
                st.caption(f"No plots yet: run `promo models evaluate {card.version}`.")
            for path in plots:
                st.image(str(path), caption=path.stem.replace("_", " "))


st.title("Personalisation")
with ui.error_boundary("personalisation"):
    render()
