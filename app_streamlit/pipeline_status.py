"""What the pipeline's model steps did in the run that published this warehouse
(`status.pipeline_steps`, written by pipelines/step_status.py): System health lists every step,
and a page whose table a model step makes says why the table is not there instead of showing an
empty page."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_streamlit import db, ui
from app_streamlit import record_format as fmt

PIPELINE_STEPS = "status.pipeline_steps"
# The model steps' names in the status table (pipelines/defs/ml.py, which a test compares).
FRAUD_FEATURES_STEP = "fraud_attempt_features"
FRAUD_QUEUE_STEP = "fraud_review_queue"
NEXT_BEST_OFFERS_STEP = "next_best_offers"


def steps() -> pd.DataFrame:
    """Every step's row, those that did not succeed first; empty for a warehouse published
    before steps were recorded."""
    if not db.table_exists(PIPELINE_STEPS):
        return pd.DataFrame()
    return db.query(
        f"""
        SELECT step, state, detail, rows, attempted_at, last_succeeded_at, run_id,
        FROM {PIPELINE_STEPS}
        ORDER BY state = 'succeeded', step
        """
    )


def step(name: str) -> pd.Series | None:
    found = steps()
    if found.empty:
        return None
    rows = found[found["step"] == name]
    return None if rows.empty else rows.iloc[0]


def last_made(status: pd.Series) -> str:
    if fmt.has(status["last_succeeded_at"]):
        return f"last made {fmt.when(status['last_succeeded_at'])} UTC"
    return "never made on this ledger yet"


def explain_missing(name: str, what: str, remedy: str) -> None:
    """Say why the table of model step `name` (the `what` of a page) is not published: what the
    step recorded, when it last succeeded, and `remedy`, the commands that can help."""
    status = step(name)
    if status is None:
        ui.empty_state(f"No {what} yet: the pipeline has not made one. {remedy}", None)
        return
    when = fmt.when(status["attempted_at"])
    if status["state"] == "failed":
        st.error(
            f"The {what} step failed in the run of {when} UTC that published this warehouse: "
            f"{status['detail']}. The marts were published without it; {last_made(status)}.",
            icon=":material/error:",
        )
        return
    st.info(
        f"No {what} in this warehouse: {status['detail']} (run of {when} UTC; "
        f"{last_made(status)}). {remedy}",
        icon=":material/info:",
    )
