"""Page-local choices (a search box, a status filter, the record a detail view shows) that
outlive a visit to another page.

Streamlit forgets a widget's state on a run where the widget is not drawn, and a page's
widgets are not drawn while the analyst is on another page. So each choice is copied to a
key of its own after every run and put back into the widget's key before the widget is drawn.
A `?campaign=…`-style query parameter, when present, wins once: it is how one page links to a
record on another.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

_SHADOW = "_kept_"


def restore(key: str, default: Any, *, query_param: str | None = None) -> None:
    """Seed the widget `key` before it is drawn: from a link, else from the last visit."""
    state = st.session_state
    linked = st.query_params.get(query_param) if query_param else None
    if linked is not None and state.get(_SHADOW + "link_" + key) != linked:
        state[_SHADOW + "link_" + key] = linked
        state[key] = linked
    elif key not in state:
        state[key] = state.get(_SHADOW + key, default)


def keep(key: str) -> Any:
    """Remember the widget's value for the next visit, and return it."""
    value = st.session_state.get(key)
    st.session_state[_SHADOW + key] = value
    return value
