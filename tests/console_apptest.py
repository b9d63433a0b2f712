"""Helpers for driving the console's pages with Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Dataframe

ROUTER = Path(__file__).resolve().parent.parent / "app_streamlit" / "streamlit_app.py"
APOLOGY = "Something went wrong"  # what the console's error boundary shows instead of a trace
STREAMLIT_PLACEHOLDER = "None"  # what st.dataframe draws in an empty cell unless told otherwise


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(ROUTER, default_timeout=30).run()
    return app.switch_page(f"app_pages/{page}.py").run()


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def metric_notes(app: AppTest) -> dict[str, str]:
    """What is printed small under a headline number (an estimate's interval)."""
    return {metric.label: metric.delta for metric in app.metric if metric.delta}


def texts(app: AppTest) -> str:
    elements = [*app.info, *app.warning, *app.error, *app.success, *app.markdown, *app.caption]
    return "\n".join(str(element.value) for element in elements)


def assert_no_failure(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert APOLOGY not in texts(app)


def table_with(app: AppTest, column: str) -> pd.DataFrame:
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def drawn_cells(table: Dataframe) -> pd.DataFrame:
    """The table's cells as text, an empty one (None, NaN, NaT, NA) as the browser draws it:
    the table's placeholder, or Streamlit's own "None" when it sets none."""
    frame = table.value
    placeholder = (
        table.proto.placeholder if table.proto.HasField("placeholder") else STREAMLIT_PLACEHOLDER
    )
    return frame.astype(object).where(frame.notna(), placeholder).astype(str)
