"""`promo customer`, `promo order` and `promo segment`: who the customers are, what they
bought, and the groups they fall into."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from redemption_core.cli.common import (
    Output,
    context_from_args,
    definition_from_args,
    engine_command,
    minor_units,
    order_arguments,
    order_from_args,
    whole_number,
)
from redemption_core.domain.parsing import iso, timestamp
from redemption_core.engine.redemption import RedemptionEngine


def register(commands: Any) -> None:
    customer = commands.add_parser("customer", help="customer profiles and consent")
    customer_cmd = customer.add_subparsers(dest="action", required=True)
    add = customer_cmd.add_parser("add", help="add customers from a YAML/JSON file")
    add.add_argument("file", type=Path, help="one profile or a list (YAML or JSON)")
    add.set_defaults(reads="definition")
    customer_cmd.add_parser("show", help="a customer's profile (contacts masked)").add_argument(
        "customer_id", help="the customer's id"
    )
    consent = customer_cmd.add_parser("consent", help="grant or withdraw a channel's consent")
    consent.add_argument("customer_id", help="the customer's id")
    consent.add_argument("channel", choices=["email", "sms", "push"], help="the channel")
    consent.add_argument("decision", choices=["grant", "withdraw"], help="the decision")
    consent.add_argument("--source", default="cli", help="where the decision came from")
    customer.set_defaults(handler=_customer)

    order = commands.add_parser("order", help="record, refund and cancel orders")
    order_cmd = order.add_subparsers(dest="action", required=True)
    record = order_cmd.add_parser("record", help="record an order, with or without a voucher")
    order_arguments(record)
    refund = order_cmd.add_parser("refund", help="refund part or all of an order")
    refund.add_argument("order_id", help="the order's id")
    refund.add_argument("amount", type=minor_units, help="amount to refund, in minor units")
    refund.add_argument("--reason", default="", help="why (kept in the ledger)")
    cancel = order_cmd.add_parser("cancel", help="cancel an order (rolls back its redemptions)")
    cancel.add_argument("order_id", help="the order's id")
    cancel.add_argument("--reason", default="", help="why (kept in the ledger)")
    order.set_defaults(handler=_order)

    segment = commands.add_parser("segment", help="define and preview segments")
    segment_cmd = segment.add_subparsers(dest="action", required=True)
    for name in ("add", "remove"):
        member = segment_cmd.add_parser(name, help=f"{name} a listed member")
        member.add_argument("segment_id", help="the segment's id")
        member.add_argument("customer_id", help="the customer's id")
    define = segment_cmd.add_parser("define", help="define a segment from a YAML/JSON file")
    define.add_argument("file", type=Path, help="the segment definition (id, match, rules)")
    define.set_defaults(reads="definition")
    preview = segment_cmd.add_parser("preview", help="size and first members of a segment")
    preview.add_argument("segment_id", help="the segment's id")
    preview.add_argument("--at", help="evaluate at this past instant (ISO 8601)")
    preview.add_argument("--limit", type=whole_number, default=20, help="how many members to list")
    segment.set_defaults(handler=_segment)


@engine_command
def _customer(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.action == "add":
        document = definition_from_args(args)
        profiles = document if isinstance(document, list) else [document]
        added = engine.add_customers(profiles)
        out.emit({"added": added}, f"added {added} customers")
    elif args.action == "show":
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
        out.emit(document, "\n".join(f"{k:<14} {v}" for k, v in document.items()))
    else:
        changed = engine.set_consent(
            args.customer_id, args.channel, args.decision == "grant", source=args.source
        )
        out.emit({"changed": changed}, "recorded" if changed else "unchanged")
    return 0


@engine_command
def _order(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.action == "record":
        order = order_from_args(args)
        engine.record_order(order, customer_id=args.customer, context=context_from_args(args))
        out.emit({"order_id": order.id}, f"recorded {order.id}")
    elif args.action == "refund":
        left = engine.refund_order(args.order_id, args.amount, reason=args.reason)
        out.emit({"order_id": args.order_id, "refundable_left": left}, f"refunded; {left} left")
    else:
        rolled = engine.cancel_order(args.order_id, reason=args.reason)
        out.emit(
            {"order_id": args.order_id, "rolled_back": rolled},
            f"cancelled; rolled back {len(rolled)} redemptions",
        )
    return 0


@engine_command
def _segment(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.action in ("add", "remove"):
        engine.set_segment_membership(args.segment_id, args.customer_id, args.action == "add")
        out.emit(
            {"segment_id": args.segment_id, "customer_id": args.customer_id, "action": args.action},
            "done",
        )
    elif args.action == "define":
        document = definition_from_args(args)
        engine.define_segment(document)
        out.emit({"defined": document.get("id")}, f"defined {document.get('id')}")
    else:
        at = None if args.at is None else timestamp(args.at, "--at")
        members = engine.segment_members(args.segment_id, at=at)
        shown = members[: max(args.limit, 0)]
        out.emit(
            {"segment_id": args.segment_id, "size": len(members), "members": shown},
            f"{args.segment_id}: {len(members)} customers" + "".join(f"\n  {m}" for m in shown),
        )
    return 0
