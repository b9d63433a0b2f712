"""Presentation helpers shared by every page: number and date formats, tables with a CSV
download, plain-spoken empty states, and the error boundary that keeps stack traces away from
users.

Money in the warehouse is integer minor units of a currency (cents for EUR); it is shown one
way everywhere, redemption_core's `money_text` ("EUR 1,234.56": the currency, thousands
separators, its decimals), and never summed across currencies. Dates are shown one way too,
with the year: 2026-01-05, and 2026-01-05 14:30 for an instant (UTC), in text, tables and
chart axes alike. A value the warehouse does not have (SQL NULL: a rate with nothing to divide
by, an interval without a control group) is shown as a dash, in headline numbers and table
cells alike, never as "None" or "nan".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import db
from redemption_core import minor_unit_exponent, money_text

log = logging.getLogger("promoledger.console")

PIPELINE_COMMAND = "make pipeline"

MISSING = "—"  # what an empty value (None, NaN, NaT, NA) is shown as


def exponent(currency: str | None) -> int:
    return minor_unit_exponent(currency)


def to_major(amount: float | None, currency: str | None) -> float | None:
    """Minor units → major units (1234 EUR cents → 12.34)."""
    if _missing(amount):
        return None
    return float(amount) / 10 ** exponent(currency)


def money(amount: float | None, currency: str | None) -> str:
    """12345 EUR → 'EUR 123.45', -500 → 'EUR -5.00'; a missing amount → '—'."""
    if _missing(amount):
        return MISSING
    return money_text(float(amount), currency)


def money_totals(frame: pd.DataFrame, column: str, currency_column: str = "currency") -> str:
    """A money column summed per currency, for a headline: 'EUR 1,234.00' or
    'EUR 10.00 · USD 3.00'."""
    if frame.empty:
        return "0"
    if currency_column not in frame:
        return money(frame[column].sum(), None)
    sums = frame.groupby(frame[currency_column].fillna(""), sort=True)[column].sum()
    return " · ".join(money(total, currency or None) for currency, total in sums.items())


DAY_FORMAT = "%Y-%m-%d"
MOMENT_FORMAT = "%Y-%m-%d %H:%M"


def day(value: Any) -> str:
    """A date (or the date of an instant) with its year: '2026-01-05'; missing → '—'."""
    return MISSING if _missing(value) else f"{pd.Timestamp(value):{DAY_FORMAT}}"


def moment(value: Any) -> str:
    """An instant to the minute: '2026-01-05 14:30'; missing → '—'."""
    return MISSING if _missing(value) else f"{pd.Timestamp(value):{MOMENT_FORMAT}}"


def legend(**options: Any) -> alt.Legend:
    """A legend under the chart that wraps onto more lines instead of running off its edge,
    with whole labels (no '…')."""
    return alt.Legend(
        orient="bottom", direction="horizontal", columns=4, labelLimit=0, title=None, **options
    )


def consecutive_runs(frame: pd.DataFrame, day: str, by: Sequence[str] = ()) -> pd.DataFrame:
    """`frame` with a `run` column numbering each stretch of consecutive days (per `by`
    group). A line chart drawn with detail=run joins only neighbouring days: a day without
    sends is a gap, never a line through zero or a slope across days that had nothing."""
    ordered = frame.sort_values([*by, day]).copy()
    days = pd.to_datetime(ordered[day])
    gaps = days.groupby([ordered[column] for column in by]).diff() if by else days.diff()
    ordered["run"] = (gaps.isna() | (gaps > pd.Timedelta(days=1))).cumsum()
    return ordered


def day_axis(title: str | None = None) -> alt.Axis:
    """A chart's date axis labelled like every other date: with the year."""
    return alt.Axis(title=title, format=DAY_FORMAT, labelAngle=-30, labelOverlap=True)


def percent(share: float | None, digits: int = 1) -> str:
    """0.1234 → '12.3 %'; a missing share (nothing to divide by) → '—'."""
    if _missing(share):
        return MISSING
    return f"{100 * float(share):.{digits}f} %"


def count(value: float | None) -> str:
    """1234 → '1,234'; a missing count → '—'."""
    if _missing(value):
        return MISSING
    return f"{int(value):,}"


def number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    """1234.56 → '1,234.6' (hours, milliseconds, scores, ratios); a missing value → '—'.
    `suffix` follows a present value only: number(7.071, 2, 'x') → '7.07x'."""
    if _missing(value):
        return MISSING
    return f"{float(value):,.{digits}f}{suffix}"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, None when there is nothing to divide by."""
    if _missing(numerator) or _missing(denominator) or not denominator:
        return None
    return float(numerator) / float(denominator)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return math.isnan(value)
    except TypeError:
        return False


def empty_state(what: str, command: str | None = PIPELINE_COMMAND) -> None:
    """Say plainly what is missing and which command produces it."""
    st.info(f"{what}: run `{command}`" if command else what, icon=":material/info:")


def table(
    frame: pd.DataFrame,
    *,
    key: str,
    money: Sequence[str] = (),
    percent: Sequence[str] = (),
    currency_column: str = "currency",
    labels: dict[str, str] | None = None,
    column_config: dict[str, Any] | None = None,
    empty: str = "Nothing to show for these filters.",
    height: int | str = "auto",
    hidden: Sequence[str] = (),
    missing: str | None = None,
) -> None:
    """Show a table with money in major units and shares as percentages, and offer it as CSV.

    `frame` holds raw warehouse values (money in minor units, shares as fractions); the CSV
    carries what the table shows: money in major units beside its currency, shares as
    fractions, so that a spreadsheet can compute with them. `hidden` columns are left off the
    screen (to keep the important ones in view) but kept in the CSV.

    An empty cell (SQL NULL) shows a dash and stays empty in the CSV; its column keeps its
    type, so that it still sorts as numbers or dates. `missing` says under the table what a
    dash in it means ('no control group'), when the table has one."""
    if frame.empty:
        st.caption(empty)
        return
    exported = frame.copy()
    config: dict[str, Any] = {}
    currencies = (
        sorted(exported[currency_column].dropna().unique()) if currency_column in exported else []
    )
    digits = exponent(currencies[0]) if len(currencies) == 1 else 2
    row_currencies = (
        exported[currency_column] if currency_column in exported else [None] * len(exported)
    )
    for column in money:
        # float, not object: a column with no amount at all (money not applicable) is still a
        # number column, shown as dashes rather than as text.
        exported[column] = pd.Series(
            [
                to_major(amount, currency)
                for amount, currency in zip(exported[column], row_currencies, strict=True)
            ],
            index=exported.index,
            dtype="float64",
        )
        suffix = f" ({currencies[0]})" if len(currencies) == 1 else ""
        config[column] = st.column_config.NumberColumn(
            _label(column, labels) + suffix, format=f"%,.{digits}f"
        )
    shown = exported.copy()
    for column in percent:
        # Shown as `percent()` writes them ("12.3 %"); the CSV keeps the fractions.
        shown[column] = pd.to_numeric(shown[column], errors="coerce") * 100
        config[column] = st.column_config.NumberColumn(
            _label(column, labels), format=PERCENT_COLUMN
        )
    for column in shown.columns:
        if column in config:
            continue
        if pd.api.types.is_integer_dtype(shown[column]) and not _is_identifier(column):
            config[column] = st.column_config.NumberColumn(_label(column, labels), format="%,d")
        elif pd.api.types.is_datetime64_any_dtype(shown[column]):
            config[column] = st.column_config.DatetimeColumn(
                _label(column, labels), format="YYYY-MM-DD HH:mm"
            )
        elif _is_dates(shown[column]):
            config[column] = st.column_config.DateColumn(
                _label(column, labels), format="YYYY-MM-DD"
            )
        else:
            config[column] = _label(column, labels)
    config.update(column_config or {})
    if len(currencies) == 1:
        hidden = (*hidden, currency_column)  # already in the money columns' headers
    config.update(dict.fromkeys(hidden))
    # The placeholder draws every empty cell, of any type, as a dash; Streamlit's own is "None".
    st.dataframe(
        shown,
        hide_index=True,
        column_config=config,
        width="stretch",
        height=height,
        placeholder=MISSING,
    )
    if missing and shown.drop(columns=list(hidden), errors="ignore").isna().to_numpy().any():
        st.caption(f"{MISSING}: {missing}")
    download(exported, key=key)


PERCENT_COLUMN = "%.1f %%"  # a column of percentages (values x 100), as `percent()` writes them


def _is_dates(values: pd.Series) -> bool:
    """A column of datetime.date values (DuckDB DATE arrives so, as objects)."""
    present = values.dropna()
    return (
        values.dtype == object
        and not present.empty
        and all(isinstance(v, date) and not isinstance(v, datetime) for v in present)
    )


def _is_identifier(column: str) -> bool:
    return column == "id" or column.endswith(("_id", "_seq")) or column in {"seq", "year"}


def _label(column: str, labels: dict[str, str] | None) -> str:
    if labels and column in labels:
        return labels[column]
    text = column.replace("_", " ")
    return text[:1].upper() + text[1:]


def download(frame: pd.DataFrame, *, key: str, label: str = "Download CSV") -> None:
    """A download button for `frame` as CSV, named after the table."""
    st.download_button(
        label,
        data=frame.to_csv(index=False).encode("utf-8"),
        file_name=f"{_slug(key)}.csv",
        mime="text/csv",
        key=f"download_{key}",
        icon=":material/download:",
        on_click="ignore",
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "table"


def metrics(
    items: Iterable[
        tuple[str, str] | tuple[str, str, str | None] | tuple[str, str, str | None, str]
    ],
    columns: int = 4,
) -> None:
    """A row (or rows) of headline numbers: (label, value), (label, value, help) or (label,
    value, help, note); at most four to a row, so that a money amount or a timestamp is not cut
    short. A note is printed small under the value, in grey, without an arrow: what must be
    read with the number (an estimate's interval), not a change."""
    items = list(items)
    columns = min(columns, fitting_columns(max((len(item[1]) for item in items), default=0)))
    for offset in range(0, len(items), columns):
        row = items[offset : offset + columns]
        for column, item in zip(st.columns(columns), row, strict=False):
            label, value, *extra = item
            help_text = extra[0] if extra else None
            note = extra[1] if len(extra) > 1 else None
            column.metric(
                label, value, delta=note, delta_color="off", delta_arrow="off", help=help_text
            )


# How many headline numbers of a given length fit side by side in the wide layout before
# Streamlit cuts them with '…' (measured on a 1400-pixel window): money of 100,000 and up with
# its currency and two decimals, or a date with its year and time, takes three.
_CHARACTERS_PER_COLUMN = {4: 13, 3: 18, 2: 28}


def fitting_columns(longest: int) -> int:
    """The most columns a row of headline numbers may have when its longest value has
    `longest` characters."""
    for columns, fits in _CHARACTERS_PER_COLUMN.items():
        if longest <= fits:
            return columns
    return 1


@contextmanager
def error_boundary(page: str) -> Iterator[None]:
    """Run a page's body; turn a missing warehouse or table into an empty state and anything
    else into a short apology, logging the detail for whoever runs the console."""
    # st.stop, st.rerun and st.switch_page raise BaseExceptions, which pass through untouched.
    try:
        yield
    except db.WarehouseMissing:
        empty_state("No published warehouse yet")
    except db.TableMissing as missing:
        empty_state(
            f"The published warehouse has no table `{missing.table}` yet: it is built by a newer "
            "pipeline than the one that published this warehouse"
        )
    except db.WarehouseUnreadable:
        log.exception("console page %s could not open the warehouse", page)
        st.warning(
            "The published warehouse could not be opened. It may be damaged: run "
            f"`{PIPELINE_COMMAND}` to publish it again.",
            icon=":material/warning:",
        )
    except Exception:
        log.exception("console page %s failed", page)
        st.error(
            f"Something went wrong while showing {page}. The details are in the console's "
            "log; try another filter, or reload the page.",
            icon=":material/error:",
        )


def published_caption() -> None:
    """When the warehouse on screen was published, and the last ledger event it holds."""
    try:
        published = db.query("SELECT max(published_at) AS published_at FROM main.published")
    except (db.WarehouseMissing, db.TableMissing, db.WarehouseUnreadable):
        return
    when = published["published_at"].iloc[0]
    if not _missing(when):
        st.caption(f"Warehouse published {moment(when)} UTC")
