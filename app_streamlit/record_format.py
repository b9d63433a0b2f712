"""Small formatting helpers for the record pages (campaigns, vouchers, orders, customers,
fraud review): missing values from DuckDB arrive as None, NaN, NaT or pd.NA, and a detail view
shows each as '—'."""

from __future__ import annotations

from typing import Any

import pandas as pd

from app_streamlit.ui import DAY_FORMAT, MOMENT_FORMAT  # the console's one date format


def has(value: Any) -> bool:
    """Whether a scalar from a DataFrame is present (not None/NaN/NaT/NA)."""
    if value is None:
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array: present
        return True


def text(value: Any, default: str = "—") -> str:
    """The value as text; `default` (a dash, or what its absence means) when it is missing."""
    return str(value) if has(value) else default


def when(value: Any) -> str:
    return f"{pd.Timestamp(value):{MOMENT_FORMAT}}" if has(value) else "—"


def day(value: Any) -> str:
    return f"{pd.Timestamp(value):{DAY_FORMAT}}" if has(value) else "—"


def listed(value: Any) -> list[str]:
    """A list column (or a ';'-separated text) as a list of strings."""
    if not has(value):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    return [str(part) for part in value]


def joined(value: Any, separator: str = ", ") -> str:
    return separator.join(listed(value))
