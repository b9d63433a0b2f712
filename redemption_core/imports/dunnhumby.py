"""`promo import --mapping dunnhumby DIR`: a real retailer's campaign tables as ledger events.

Source: dunnhumby "The Complete Journey" (partial): campaign_desc, campaign_table (households
targeted), coupon (products per coupon), coupon_redempt (redemptions), hh_demographic.

Mapping:
- one main campaign `dunnhumby`; each campaign a sub-campaign `dh-<n>` (unique codes, USD,
  active from its start day to the end of its end day, then finished) whose discount applies to
  its coupons: `applies_to: {collections: [coupon UPCs]}`; its coupon and product counts in
  metadata;
- the product catalogue: every product of any coupon a `product_upserted` whose collections are
  the coupons it is redeemable with (the data has no names, categories, brands or prices);
- every household in any table a customer `hh-<key>`, demographics as attributes, declared
  categorical once (`customer_attributes_declared`: they are bands such as `35-49K`, `5+`);
- each coupon a targeted household received (every coupon of each campaign that targeted it) a
  voucher `DH<campaign>-H<household>-<coupon UPC>` with its own contents, `applies_to:
  {collections: [UPC]}`, created and published to the household on the campaign's start day:
  targeting becomes publication, at the grain the household redeems (one coupon);
- each coupon redemption a `redemption_succeeded` of that voucher at noon of its day, with the
  coupon UPC in the payload.

Gaps in the data, kept visible rather than filled in: days are day numbers, not dates (day 1 is
mapped to 2017-01-01, an arbitrary epoch); there are no orders, prices or discount amounts, so
campaigns have an `unspecified` discount and redemptions carry amount 0 with
`amounts_known: false`; signup dates and consents are unknown; there is no delivery or
acceptance step. Event ids are derived from the source rows, so importing the folder again
adds nothing.

The events go through the generic import (ledger_schema.py): checked like any other file.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import Event, EventType

EPOCH = datetime(2017, 1, 1, tzinfo=UTC)  # day 1; the data set publishes day numbers only
FILES = (
    "campaign_desc.csv",
    "campaign_table.csv",
    "coupon.csv",
    "coupon_redempt.csv",
    "hh_demographic.csv",
)
DEMOGRAPHICS = ("age_desc", "marital_status_code", "income_desc", "homeowner_desc", "hh_comp_desc",
                "household_size_desc", "kid_category_desc")  # fmt: skip


def day(number: int, *, hours: int = 0) -> datetime:
    return EPOCH + timedelta(days=number - 1, hours=hours)


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    path = folder / name
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except OSError as error:
        raise InvalidInput("--mapping dunnhumby", f"cannot read {path}: {error.strerror}") from None


def _int(row: dict[str, str], name: str, where: str) -> int:
    try:
        return int(row[name])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{where}.{name}", f"not a whole number: {row.get(name)!r}") from None


def _id(row: dict[str, str], name: str, where: str) -> str:
    value = row.get(name)
    if not value or not value.strip().isdigit():
        raise InvalidInput(f"{where}.{name}", f"not a numeric id: {value!r}")
    return value.strip()


def dunnhumby_events(folder: Path) -> list[Event]:
    tables = {name: _rows(folder, name) for name in FILES}
    campaigns = {}
    for i, row in enumerate(tables["campaign_desc.csv"], start=1):
        where = f"campaign_desc.csv row {i}"
        campaigns[_int(row, "campaign", where)] = (
            row["description"],
            _int(row, "start_day", where),
            _int(row, "end_day", where),
        )
    coupons: dict[int, set[str]] = defaultdict(set)
    products_of: dict[str, set[str]] = defaultdict(set)
    coupons_of: dict[str, set[str]] = defaultdict(set)
    for i, row in enumerate(tables["coupon.csv"], start=1):
        where = f"coupon.csv row {i}"
        upc, product = _id(row, "coupon_upc", where), _id(row, "product_id", where)
        coupons[_int(row, "campaign", where)].add(upc)
        products_of[upc].add(product)
        coupons_of[product].add(upc)
    targeted = [(int(r["campaign"]), int(r["household_key"])) for r in tables["campaign_table.csv"]]
    redeemed = tables["coupon_redempt.csv"]
    # A household may redeem a coupon more than once: its voucher allows as many uses.
    uses = Counter((int(r["campaign"]), int(r["household_key"]), r["coupon_upc"]) for r in redeemed)
    most_uses = defaultdict(lambda: 1)
    for (number, _, _), count in uses.items():
        most_uses[number] = max(most_uses[number], count)
    demographics = {int(r["household_key"]): r for r in tables["hh_demographic.csv"]}
    households = sorted(
        {h for _, h in targeted} | {int(r["household_key"]) for r in redeemed} | set(demographics)
    )

    first_day = min(start for _, start, _ in campaigns.values())
    before = day(min(first_day, 1)) - timedelta(days=1)
    events = [
        Event(
            EventType.MAIN_CAMPAIGN_CREATED,
            before,
            payload={
                "definition": {
                    "id": "dunnhumby",
                    "name": "dunnhumby The Complete Journey",
                    "description": "imported",
                }
            },
            event_id="dh-main",
        ),
        Event(
            EventType.CUSTOMER_ATTRIBUTES_DECLARED,
            before,
            payload={"attributes": dict.fromkeys(DEMOGRAPHICS, "categorical")},
            event_id="dh-attributes",
        ),
    ]
    for product in sorted(coupons_of):
        events.append(
            Event(
                EventType.PRODUCT_UPSERTED,
                before,
                payload={"product": {"id": product, "collections": sorted(coupons_of[product])}},
                event_id=f"dh-product-{product}",
            )
        )
    for household in households:
        profile = demographics.get(household, {})
        attributes = {name: profile[name] for name in DEMOGRAPHICS if profile.get(name)}
        events.append(
            Event(
                EventType.CUSTOMER_CREATED,
                before,
                payload={
                    "signup_at": before.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "attributes": attributes,
                    "metadata": {"source": "dunnhumby", "household_key": household},
                    "consent": {},
                },
                customer_id=f"hh-{household}",
                event_id=f"dh-customer-{household}",
            )
        )
    for number, (kind, start, end) in sorted(campaigns.items()):
        campaign_id = f"dh-{number}"
        products = {p for upc in coupons[number] for p in products_of[upc]}
        discount: dict[str, Any] = {"type": "unspecified"}
        if coupons[number]:
            discount["applies_to"] = {"collections": sorted(coupons[number])}
        definition = {
            "id": campaign_id,
            "name": f"{kind} campaign {number}",
            "main_campaign": "dunnhumby",
            "currency": "USD",
            "status": "active",
            "active_from": day(start).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "active_until": day(end + 1).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "voucher": {"kind": "unique"},
            "discount": discount,
            "limits": {"per_voucher": most_uses[number]},
            "metadata": {
                "source": "dunnhumby",
                "type": kind,
                "campaign": number,
                "coupons": len(coupons[number]),
                "products": len(products),
            },
        }
        events.append(
            Event(
                EventType.CAMPAIGN_CREATED,
                day(start),
                payload={"definition": definition},
                campaign_id=campaign_id,
                event_id=f"dh-campaign-{number}",
            )
        )
        events.append(
            Event(
                EventType.CAMPAIGN_STATUS_CHANGED,
                day(end + 1),
                payload={"status": "finished", "previous": "active"},
                campaign_id=campaign_id,
                event_id=f"dh-campaign-{number}-finished",
            )
        )
    for number, household in targeted:
        if number not in campaigns:
            raise InvalidInput("campaign_table.csv", f"campaign {number} is not in campaign_desc")
        _, start, _ = campaigns[number]
        for upc in sorted(coupons[number]):
            ids: dict[str, Any] = {
                "campaign_id": f"dh-{number}",
                "voucher_id": voucher_id(number, household, upc),
            }
            code = f"DH{number}-H{household}-{upc}"
            events.append(
                Event(
                    EventType.VOUCHER_CREATED,
                    day(start),
                    payload={
                        "code": code,
                        "kind": "unique",
                        "source": "import",
                        "applies_to": {"collections": [upc]},
                    },
                    event_id=f"dh-voucher-{number}-{household}-{upc}",
                    **ids,
                )
            )
            events.append(
                Event(
                    EventType.VOUCHER_PUBLISHED,
                    day(start),
                    payload={"code": code, "source": "import"},
                    customer_id=f"hh-{household}",
                    event_id=f"dh-published-{number}-{household}-{upc}",
                    **ids,
                )
            )
    for i, row in enumerate(redeemed, start=1):
        where = f"coupon_redempt.csv row {i}"
        number, household = _int(row, "campaign", where), _int(row, "household_key", where)
        upc = _id(row, "coupon_upc", where)
        events.append(
            Event(
                EventType.REDEMPTION_SUCCEEDED,
                day(_int(row, "day", where), hours=12),
                payload={
                    "code": f"DH{number}-H{household}-{upc}",
                    "order": {"id": None, "amount": 0, "currency": "USD", "items": []},
                    "discount": 0,
                    "gift_amount": 0,
                    "currency": "USD",
                    "amounts_known": False,
                    "coupon_upc": upc,
                },
                campaign_id=f"dh-{number}",
                voucher_id=voucher_id(number, household, upc),
                customer_id=f"hh-{household}",
                redemption_id=f"r-dh-{i}",
                event_id=f"dh-redemption-{i}",
            )
        )
    return events


def voucher_id(campaign: int, household: int, upc: str) -> str:
    return f"v-dh-{campaign}-{household}-{upc}"
