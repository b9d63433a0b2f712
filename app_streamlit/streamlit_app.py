"""The console's entry point: page navigation by section, and the shared sidebar filters.

`make console` runs this file. Pages live in `app_pages/`; the filters are drawn here, before
the page runs, so that they are on every page and keep their values from one page to the next.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from app_streamlit import db, filters, ui

log = logging.getLogger("promoledger.console")

HERE = Path(__file__).parent

# (file in app_pages/, title, Material icon); the first page of the first section opens first.
SECTIONS: dict[str, list[tuple[str, str, str]]] = {
    "Reports": [
        ("overview.py", "Overview", "dashboard"),
        ("engagement.py", "Customer engagement", "filter_alt"),
        ("campaign_performance.py", "Campaign performance", "trending_up"),
        ("delivery_performance.py", "Delivery performance", "send"),
        ("system_health.py", "System health", "monitor_heart"),
    ],
    "Campaigns": [
        ("campaigns.py", "Campaigns", "campaign"),
        ("calendar.py", "Campaign calendar", "calendar_month"),
        ("vouchers.py", "Vouchers", "confirmation_number"),
        ("redemptions.py", "Redemptions", "receipt_long"),
        ("orders.py", "Orders", "shopping_cart"),
    ],
    "Customers": [
        ("customers.py", "Customer 360", "person"),
        ("personalisation.py", "Personalisation", "recommend"),
    ],
    "Monitoring": [
        ("campaign_health.py", "Campaign health", "health_and_safety"),
        ("pending_triggers.py", "Pending triggers", "pending_actions"),
        ("diagnostics.py", "Diagnostics", "troubleshoot"),
        ("fraud_review.py", "Fraud review", "policy"),
    ],
}


def page(file: str, title: str, icon: str, *, default: bool = False) -> st.Page:
    path = HERE / "app_pages" / file
    if path.exists():
        return st.Page(path, title=title, icon=f":material/{icon}:", default=default)
    # A page another change has not delivered yet: say so instead of breaking the console.
    return st.Page(
        lambda: ui.empty_state(f"The {title} page is not part of this build yet", None),
        title=title,
        icon=f":material/{icon}:",
        url_path=path.stem,
        default=default,
    )


def main() -> None:
    st.set_page_config(page_title="promoledger console", page_icon=":material/sell:", layout="wide")
    navigation = st.navigation(
        {
            section: [
                page(file, title, icon, default=(section, index) == ("Reports", 0))
                for index, (file, title, icon) in enumerate(entries)
            ]
            for section, entries in SECTIONS.items()
        },
        expanded=True,  # every page listed: no "View N more" hiding Monitoring
    )
    try:
        filters.sidebar()
    except (db.WarehouseMissing, db.WarehouseUnreadable):
        pass  # no filters to offer; the page itself says what is missing
    except db.TableMissing as missing:
        st.sidebar.caption(f"No filters: the warehouse has no table `{missing.table}`.")
    except Exception:
        log.exception("console filters failed")
        st.sidebar.warning("The filters are unavailable; pages show everything.")
    with st.sidebar:
        ui.published_caption()
    navigation.run()


if __name__ == "__main__":  # Streamlit runs this file as __main__; tests import SECTIONS
    main()
