"""`promo` subcommands for customers, orders, segments, promotions, autopilot and deliveries.

Delivery configuration: $PROMO_HOME/delivery.yaml when present (see delivery_config.py), else
every channel writes to a JSON-lines file under $PROMO_HOME/outbox. Contacts: the merchant's
export $PROMO_HOME/contacts.jsonl when present; made-up addresses only for file outboxes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redemption_core.config import promo_home
from redemption_core.delivery import FileSinkChannel
from redemption_core.delivery_config import default_channels, load_channels_from_file
from redemption_core.distribution import (
    ContactBook,
    Distributor,
    MappingContactBook,
    SyntheticContactBook,
)
from redemption_core.engine import RedemptionEngine
from redemption_core.errors import InvalidInput
from redemption_core.parsing import iso, timestamp

COMMANDS = ("customer", "order", "segment", "promotion", "autopilot", "deliveries", "settings")


def add_parsers(commands: Any, order_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    customer = commands.add_parser("customer", help="customer profiles and consent")
    customer_cmd = customer.add_subparsers(dest="action", required=True)
    customer_cmd.add_parser("add", help="add customers from a YAML/JSON file").add_argument(
        "file", type=Path
    )
    customer_cmd.add_parser("show", help="a customer's profile (contacts masked)").add_argument(
        "customer_id"
    )
    consent = customer_cmd.add_parser("consent", help="grant or withdraw a channel's consent")
    consent.add_argument("customer_id")
    consent.add_argument("channel", choices=["email", "sms", "push"])
    consent.add_argument("decision", choices=["grant", "withdraw"])
    consent.add_argument("--source", default="cli")

    order = commands.add_parser("order", help="record, refund and cancel orders")
    order_cmd = order.add_subparsers(dest="action", required=True)
    record = order_cmd.add_parser("record", help="record an order, with or without a voucher")
    order_arguments(record)
    refund = order_cmd.add_parser("refund", help="refund part or all of an order")
    refund.add_argument("order_id")
    refund.add_argument("amount", type=int, help="minor units")
    refund.add_argument("--reason", default="")
    cancel = order_cmd.add_parser("cancel", help="cancel an order (rolls back its redemptions)")
    cancel.add_argument("order_id")
    cancel.add_argument("--reason", default="")

    segment = commands.add_parser("segment", help="define and preview segments")
    segment_cmd = segment.add_subparsers(dest="action", required=True)
    for name in ("add", "remove"):
        member = segment_cmd.add_parser(name, help=f"{name} a listed member")
        member.add_argument("segment_id")
        member.add_argument("customer_id")
    segment_cmd.add_parser("define", help="define a segment from a YAML/JSON file").add_argument(
        "file", type=Path
    )
    preview = segment_cmd.add_parser("preview", help="size and first members of a segment")
    preview.add_argument("segment_id")
    preview.add_argument("--at", help="evaluate at this past instant (ISO 8601)")
    preview.add_argument("--limit", type=int, default=20)

    promotion = commands.add_parser("promotion", help="send a promotion to its segment")
    promotion_cmd = promotion.add_subparsers(dest="action", required=True)
    promotion_cmd.add_parser("send", help="publish and deliver (resumable)").add_argument(
        "campaign_id"
    )

    autopilot = commands.add_parser("autopilot", help="always-on campaigns")
    autopilot_cmd = autopilot.add_subparsers(dest="action", required=True)
    autopilot_cmd.add_parser("list", help="autopilot campaigns and their triggers")
    tick = autopilot_cmd.add_parser("run", help="one tick: match triggers, complete them")
    tick.add_argument("--now", help="the tick's instant (ISO 8601; default: now)")
    tick.add_argument("--campaign", action="append", help="only these campaigns")
    autopilot_cmd.add_parser("pending", help="triggers matched but not completed")

    deliveries = commands.add_parser("deliveries", help="delivery maintenance")
    deliveries_cmd = deliveries.add_subparsers(dest="action", required=True)
    deliveries_cmd.add_parser("retry", help="re-send failed deliveries").add_argument("--campaign")

    settings = commands.add_parser("settings", help="platform settings")
    settings_cmd = settings.add_subparsers(dest="action", required=True)
    cap = settings_cmd.add_parser("frequency-cap", help="at most N offers per M days")
    cap.add_argument("max_offers", type=int)
    cap.add_argument("days", type=int)


def clock_for(args: argparse.Namespace) -> Callable[[], Any] | None:
    """`autopilot run --now T`: the tick runs, and records its events, at T."""
    if getattr(args, "now", None) is None:
        return None
    moment = timestamp(args.now, "--now")
    return lambda: moment


def distributor(engine: RedemptionEngine) -> Distributor:
    home = promo_home()
    config = home / "delivery.yaml"
    channels = (
        load_channels_from_file(config) if config.exists() else default_channels(home / "outbox")
    )
    contacts_file = home / "contacts.jsonl"
    contacts: ContactBook
    if contacts_file.exists():
        contacts = MappingContactBook.from_file(contacts_file)
    elif all(isinstance(channel, FileSinkChannel) for channel in channels.values()):
        contacts = SyntheticContactBook()
    else:
        raise InvalidInput("contacts", f"real channels need the contact export {contacts_file}")
    return Distributor(engine, channels, contacts)


def dispatch(
    engine: RedemptionEngine,
    args: argparse.Namespace,
    emit: Callable[[Any, str], None],
    load: Callable[[Path], Any],
    order_of: Callable[[argparse.Namespace], Any],
    context_of: Callable[[argparse.Namespace], Any],
) -> int:
    command, action = args.command, args.action
    if command == "customer":
        if action == "add":
            document = load(args.file)
            profiles = document if isinstance(document, list) else [document]
            added = engine.add_customers(profiles)
            emit({"added": added}, f"added {added} customers")
        elif action == "show":
            customer = engine.customer(args.customer_id)
            document = {
                "customer_id": customer.customer_id,
                "signup_at": iso(customer.signup_at),
                "birthday": customer.birthday,
                "anniversary": customer.anniversary,
                "attributes": customer.attributes,
                "email": customer.email_masked,
                "phone": customer.phone_masked,
                "consent": customer.consent,
                "orders": customer.orders,
                "spend": customer.spend,
                "last_order_at": iso(customer.last_order_at) if customer.last_order_at else None,
            }
            emit(document, "\n".join(f"{k:<14} {v}" for k, v in document.items()))
        else:
            changed = engine.set_consent(
                args.customer_id, args.channel, args.decision == "grant", source=args.source
            )
            emit({"changed": changed}, "recorded" if changed else "unchanged")
    elif command == "order":
        if action == "record":
            order = order_of(args)
            engine.record_order(order, customer_id=args.customer, context=context_of(args))
            emit({"order_id": order.id}, f"recorded {order.id}")
        elif action == "refund":
            left = engine.refund_order(args.order_id, args.amount, reason=args.reason)
            emit({"order_id": args.order_id, "refundable_left": left}, f"refunded; {left} left")
        else:
            rolled = engine.cancel_order(args.order_id, reason=args.reason)
            emit(
                {"order_id": args.order_id, "rolled_back": rolled},
                f"cancelled; rolled back {len(rolled)} redemptions",
            )
    elif command == "segment":
        if action in ("add", "remove"):
            engine.set_segment_membership(args.segment_id, args.customer_id, action == "add")
            emit(
                {"segment_id": args.segment_id, "customer_id": args.customer_id, "action": action},
                "done",
            )
        elif action == "define":
            document = load(args.file)
            engine.define_segment(document)
            emit({"defined": document.get("id")}, f"defined {document.get('id')}")
        else:
            at = None if args.at is None else timestamp(args.at, "--at")
            members = engine.segment_members(args.segment_id, at=at)
            shown = members[: max(args.limit, 0)]
            emit(
                {"segment_id": args.segment_id, "size": len(members), "members": shown},
                f"{args.segment_id}: {len(members)} customers" + "".join(f"\n  {m}" for m in shown),
            )
    elif command == "settings":
        distributor(engine).set_frequency_cap(args.max_offers, args.days)
        emit({"max_offers": args.max_offers, "days": args.days}, "frequency cap set")
    elif command == "autopilot" and action == "list":
        rows = distributor(engine).autopilots()
        emit(
            rows,
            "\n".join(
                f"{r['campaign_id']:<28} {r['status']:<9} {r['trigger']['type']}" for r in rows
            )
            or "no autopilots",
        )
    elif command == "autopilot" and action == "pending":
        rows = distributor(engine).pending_triggers()
        emit(
            rows,
            "\n".join(
                f"{r['trigger_id']} {r['campaign_id']} {r['customer_id']} age {r['age_s']:.0f}s"
                for r in rows
            )
            or "no pending triggers",
        )
    else:
        dist = distributor(engine)
        try:
            if command == "promotion":
                reports = [dist.send_promotion(args.campaign_id)]
            elif command == "autopilot":
                reports = dist.run_autopilot(args.campaign)
            else:
                reports = dist.retry_deliveries(args.campaign)
        finally:
            for channel in dist.channels.values():
                channel.close()
        documents = [report.to_dict() for report in reports]
        emit(documents, "\n".join(_report_line(d) for d in documents) or "nothing to do")
    return 0


def _report_line(document: dict[str, Any]) -> str:
    skipped = ", ".join(f"{k} {v}" for k, v in document["skipped"].items()) or "none"
    return (
        f"{document['campaign_id']}: matched {document['matched']}, published"
        f" {document['published']}, held out {document['held_out']}, skipped ({skipped}),"
        f" delivered {document['delivered']}, failed {document['failed']}"
    )
