"""Engagement: a customer opened or clicked a message, or visited the merchant's site or app.

Real campaign data has these between a message's delivery and a redemption (an e-mail
experiment may have nothing else), so the ledger records them, attributed to a campaign (and
to the voucher its message carried) or to none: a visit nobody can trace to a message is still
an outcome a control group can be compared on. They change no state the rules read.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.customers import check_channel
from redemption_core.domain.errors import Conflict, InvalidInput, NotFound
from redemption_core.domain.events import Event, EventType
from redemption_core.ledger.store import LedgerStore, LedgerTransaction

ENGAGEMENTS = {
    "opened": EventType.MESSAGE_OPENED,
    "clicked": EventType.MESSAGE_CLICKED,
    "visited": EventType.SITE_VISITED,
}
SURFACES = ("web", "app")
MAX_URL_LENGTH = 2000


class EngagementOperations:
    """Requires of its host: store, now(), _transaction()."""

    store: LedgerStore
    now: Callable[[], datetime]
    _transaction: Callable[[], AbstractContextManager[LedgerTransaction]]

    def record_engagement(
        self,
        kind: str,
        customer_id: str,
        *,
        campaign_id: str | None = None,
        voucher_id: str | None = None,
        channel: str | None = None,
        surface: str | None = None,
        url: str | None = None,
    ) -> str:
        """Record that the customer `kind` ("opened" or "clicked" a message, "visited" the site
        or app); returns the event id. A message's engagement names its channel and may name the
        campaign and the voucher it carried (the voucher's campaign when only the voucher is
        given); a visit names its surface (web or app) and a campaign only when it came from one.
        The customer must have a profile; a named voucher must be published to the customer."""
        if kind not in ENGAGEMENTS:
            raise InvalidInput("kind", f"must be one of {', '.join(ENGAGEMENTS)}")
        event_type = ENGAGEMENTS[kind]
        customer_id = p.identifier(customer_id, "customer_id")
        campaign_id = p.optional_identifier(campaign_id, "campaign_id")
        voucher_id = p.optional_identifier(voucher_id, "voucher_id")
        payload: dict[str, Any] = {}
        if event_type is EventType.SITE_VISITED:
            if surface not in SURFACES:
                raise InvalidInput("surface", f"must be one of {', '.join(SURFACES)}")
            if channel is not None:
                raise InvalidInput("channel", "a visit has a surface, not a channel")
            payload["surface"] = surface
        else:
            if surface is not None:
                raise InvalidInput("surface", "only a visit has a surface")
            channel = check_channel(channel, "channel")
        if url is not None:
            payload["url"] = p.text(url, "url", max_length=MAX_URL_LENGTH)
        with self._transaction() as tx:
            if tx.customer(customer_id) is None:
                raise NotFound("customer_id", customer_id)
            if voucher_id is not None:
                rows = tx.query(
                    "SELECT campaign_id, holder_id FROM vouchers WHERE voucher_id = :voucher_id",
                    {"voucher_id": voucher_id},
                )
                if not rows:
                    raise NotFound("voucher_id", voucher_id)
                voucher_campaign, holder = rows[0]
                if campaign_id is not None and campaign_id != voucher_campaign:
                    raise Conflict(
                        "voucher_id", f"{voucher_id!r} belongs to campaign {voucher_campaign!r}"
                    )
                if holder != customer_id:
                    raise Conflict("voucher_id", f"{voucher_id!r} is not published to the customer")
                campaign_id = voucher_campaign
            if campaign_id is not None and tx.campaign_state(campaign_id) is None:
                raise NotFound("campaign_id", campaign_id)
            event = Event(
                event_type,
                self.now(),
                payload=payload,
                customer_id=customer_id,
                campaign_id=campaign_id,
                voucher_id=voucher_id,
                channel=channel,
            )
            tx.append(event)
        return event.event_id
