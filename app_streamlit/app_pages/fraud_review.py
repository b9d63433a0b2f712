"""Fraud review: the cases the fraud layers raised (rules, anomaly forests, drift tests, and the
model once there is one), highest score first, each with its evidence: what moved and from what
to what, a small daily series, the ids involved. An analyst marks a case fraud or legitimate
with a note; the decision is a ledger event (through redemption_core, the console's only write)
and the case leaves the queue at once. Below the queue, each source's precision in the reviews,
so that a noisy rule shows."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import streamlit as st

from app_streamlit import db, page_state, pipeline_status, review_actions, ui
from app_streamlit import queries_ml as q
from app_streamlit import record_format as fmt
from redemption_core import InvalidInput

TYPES_KEY = "fraud_entity_types"
MIN_SCORE_KEY = "fraud_min_score"
ITEM_KEY = "fraud_item"
REVIEWER_KEY = "fraud_reviewer"
DECISION_KEY = "fraud_decision"
NOTE_KEY = "fraud_note"
RESULT_KEY = "fraud_last_result"
log = logging.getLogger("promoledger.console")
SET_ASIDE_KEY = "fraud_set_aside"
PIPELINE_COMMAND = "`make pipeline` (no model and no labels needed)"
IDS = (
    ("customer_ids", "customers"),
    ("codes", "codes"),
    ("redemption_ids", "redemptions"),
    ("device_hashes", "devices"),
    ("ip_hashes", "IP addresses"),
    ("payment_hashes", "cards/wallets"),
)


def render() -> None:
    if not db.table_exists(q.FRAUD_QUEUE):
        pipeline_status.explain_missing(
            pipeline_status.FRAUD_QUEUE_STEP,
            "fraud review queue",
            f"The nightly pipeline publishes it with no model and no labels: run {PIPELINE_COMMAND}.",
        )
        return
    try:
        reviewed = review_actions.reviewed_flags()
    except review_actions.NoLedger as missing:
        st.warning(
            f"No ledger at {missing}: reviews are recorded in the ledger, so the queue cannot "
            "be worked from this console. Point PROMO_HOME at the platform's home."
        )
        return

    _show_last_result()
    summary = q.fraud_queue_summary(reviewed)
    waiting = int(summary["waiting"].sum()) if not summary.empty else 0
    by_type = [
        (str(row.entity_type), ui.count(row.waiting), f"Top score {ui.number(row.top_score, 3)}.")
        for row in summary.itertuples()
        if row.waiting
    ]
    set_aside = int(summary["set_aside"].sum()) if not summary.empty else 0
    ui.metrics(
        [
            ("Waiting for review", ui.count(waiting)),
            ("Reviewed", ui.count(len(reviewed)), "All-time decisions in the ledger."),
            (
                "Set aside",
                ui.count(set_aside),
                "Cases that repeat what a review called legitimate, or whose every source "
                "reviews keep finding wrong (docs/fraud-rules.md).",
            ),
            *by_type[:5],
        ]
    )

    search = _search(sorted(summary["entity_type"]) if not summary.empty else [])
    queue = q.fraud_queue(search, reviewed)
    if queue.empty:
        st.success("Nothing waiting for review with these filters.", icon=":material/task_alt:")
    else:
        _queue_table(queue)
        _review_form(queue)
    _source_precision({flag: decision for flag, (decision, _) in reviewed.items()})


def _queue_table(queue: pd.DataFrame) -> None:
    shown = queue.assign(
        layers=queue["layers"].map(_semicolons),
        sources=queue["sources"].map(_semicolons),
        reasons=queue["reasons"].map(_semicolons),
    )
    st.caption(
        f"{len(queue)} case(s) shown, highest score first (at most {q.QUEUE_LIMIT}); scored "
        f"{fmt.when(queue['scored_at'].max())} by {fmt.text(queue['model_version'].iloc[0])}."
    )
    ui.table(
        shown[
            [
                "score",
                "entity_type",
                "entity_id",
                "reasons",
                "series",
                "attempts",
                "first_seen",
                "last_seen",
                "layers",
                "sources",
                "customer_id",
                "voucher_id",
                "redemption_id",
                "store_id",
                "staff_id",
                "flag_id",
            ]
        ],
        key="fraud_queue",
        column_config={
            "score": st.column_config.ProgressColumn(
                "Score", min_value=0.0, max_value=1.0, format="%.3f", width="small"
            ),
            "entity_id": st.column_config.TextColumn("Entity id", width="small"),
            "reasons": st.column_config.TextColumn("Reasons", width="large"),
            "series": st.column_config.LineChartColumn("Per day", width="small"),
        },
    )


def _source_precision(decisions: dict[str, str]) -> None:
    st.subheader("Precision of each source in the reviews")
    table = q.source_precision(decisions)
    st.caption(
        "Per rule, anomaly forest, drift rate or model: how many cases it raised and how many "
        "of those reviewed were fraud. Noisy sources first; a source with no review yet is last."
    )
    ui.table(
        table,
        key="fraud_source_precision",
        percent=["precision"],
        empty="No cases yet.",
        missing="not reviewed yet",
    )


def _search(entity_types: list[str]) -> q.QueueSearch:
    page_state.restore(TYPES_KEY, [])
    page_state.restore(MIN_SCORE_KEY, 0.0)
    st.session_state[TYPES_KEY] = [t for t in st.session_state[TYPES_KEY] if t in entity_types]
    page_state.restore(SET_ASIDE_KEY, False)
    kind, floor, aside = st.columns([3, 2, 2])
    kind.multiselect("Entity type", entity_types, key=TYPES_KEY, placeholder="All types")
    floor.slider("Minimum score", 0.0, 1.0, step=0.05, key=MIN_SCORE_KEY)
    aside.checkbox("Show cases set aside", key=SET_ASIDE_KEY)
    return q.QueueSearch(
        entity_types=tuple(page_state.keep(TYPES_KEY) or ()),
        min_score=float(page_state.keep(MIN_SCORE_KEY) or 0.0),
        set_aside=bool(page_state.keep(SET_ASIDE_KEY)),
    )


def _review_form(queue: pd.DataFrame) -> None:
    st.subheader("Review")
    flags = list(queue["flag_id"])
    labels = {
        row.flag_id: f"{ui.number(row.score, 3)} · {row.entity_type} {row.entity_id}"
        for row in queue.itertuples()
    }
    # The reviewed item has left the queue: move on to the next one at the top.
    if st.session_state.get(ITEM_KEY) not in flags:
        st.session_state[ITEM_KEY] = flags[0]
    st.selectbox("Item", flags, format_func=labels.get, key=ITEM_KEY)
    item = queue[queue["flag_id"] == st.session_state[ITEM_KEY]].iloc[0]
    _evidence(item)
    page_state.restore(REVIEWER_KEY, "")
    # Not clear_on_submit: that would blank the reviewer's name after every decision. `_record`
    # clears the decision and the note itself once a decision is recorded.
    with st.form("fraud_review_form"):
        st.text_input("Reviewer", key=REVIEWER_KEY, help="Your name, recorded with the decision.")
        st.radio(
            "Decision",
            ["fraud", "legitimate"],
            key=DECISION_KEY,
            horizontal=True,
            index=None,
        )
        st.text_area("Note", key=NOTE_KEY, placeholder="What you checked and why you decided so")
        st.form_submit_button(
            "Record decision", type="primary", on_click=_record, args=(_flag(item),)
        )


def _evidence(item: pd.Series) -> None:
    """What an analyst needs to decide in a minute: what moved (the reasons), when, a small
    daily series, and the ids involved."""
    st.markdown(
        f"**{item['entity_type']} `{item['entity_id']}`** · score {ui.number(item['score'], 3)}"
        f" · {ui.count(item['attempts'])} attempt(s) seen {fmt.when(item['first_seen'])} → "
        f"{fmt.when(item['last_seen'])} · first flagged {fmt.when(item['first_flagged_at'])}\n\n"
        + "\n".join(f"- {reason}" for reason in fmt.listed(item["reasons"]))
    )
    series = [float(value) for value in fmt.listed(item["series"])]
    if series:
        st.caption(fmt.text(item["series_label"]))
        st.bar_chart(pd.Series(series, name="per day"), height=160)
    ids = [
        f"{label}: {', '.join(map(str, values[:5]))}"
        + (f" (+{len(values) - 5})" if len(values) > 5 else "")
        for column, label in IDS
        if (values := list(fmt.listed(item[column])))
    ]
    if ids:
        st.markdown("\n".join(f"- {line}" for line in ids))
    if fmt.has(item["suppressed_by"]):
        st.info(f"Set aside: {item['suppressed_by']}")


def _record(flag: review_actions.Flag) -> None:
    """Runs before the page reruns, so the queue drawn next already leaves the item out."""
    state = st.session_state
    reviewer = (state.get(REVIEWER_KEY) or "").strip()
    decision = state.get(DECISION_KEY)
    state["_kept_" + REVIEWER_KEY] = reviewer
    if decision is None:
        state[RESULT_KEY] = ("warning", "Choose fraud or legitimate before recording.")
        return
    if not reviewer:
        state[RESULT_KEY] = ("warning", "Say who you are in Reviewer: decisions are signed.")
        return
    try:
        review_actions.record(flag, decision, reviewer=reviewer, note=state.get(NOTE_KEY) or "")
    except InvalidInput as refused:
        state[RESULT_KEY] = ("warning", f"Not recorded: {refused}")
        return
    except Exception:
        log.exception("recording a fraud review failed")
        state[RESULT_KEY] = ("error", "The decision could not be recorded; try again.")
        return
    state[RESULT_KEY] = (
        "success",
        f"Recorded: {flag.entity_type} {flag.entity_id} is {decision}.",
    )
    # The next item starts blank, but signed by the same reviewer.
    state[DECISION_KEY] = None
    state[NOTE_KEY] = ""


def _show_last_result() -> None:
    result = st.session_state.pop(RESULT_KEY, None)
    if result is None:
        return
    kind, text = result
    {"success": st.success, "warning": st.warning, "error": st.error}[kind](text)


def _flag(item: pd.Series) -> review_actions.Flag:
    score = item["score"]
    return review_actions.Flag(
        flag_id=str(item["flag_id"]),
        entity_type=str(item["entity_type"]),
        entity_id=str(item["entity_id"]),
        # the ledger takes a probability; a score outside [0, 1] is left out, not clipped
        score=float(score) if fmt.has(score) and 0 <= float(score) <= 1 else None,
        model_version=_optional(item["model_version"]),
        customer_id=_optional(item["customer_id"]),
        voucher_id=_optional(item["voucher_id"]),
        redemption_id=_optional(item["redemption_id"]),
    )


def _semicolons(value: Any) -> str:
    return fmt.joined(value, "; ")


def _optional(value: Any) -> str | None:
    return str(value) if fmt.has(value) and str(value) else None


st.title("Fraud review")
with ui.error_boundary("the fraud review queue"):
    render()
