"""`promo promotion`, `promo autopilot`, `promo deliveries` and `promo settings`.

Delivery configuration: $PROMO_HOME/delivery.yaml when present (see delivery_config.py), else
every channel writes to a JSON-lines file under $PROMO_HOME/outbox. Contacts: the merchant's
export $PROMO_HOME/contacts.jsonl when present; made-up addresses only for file outboxes.
"""

from __future__ import annotations

import argparse
from typing import Any

from redemption_core.cli.common import Output, engine_command, whole_number
from redemption_core.distribution.channels import FileSinkChannel
from redemption_core.distribution.delivery_config import default_channels, load_channels_from_file
from redemption_core.distribution.distributor import (
    ContactBook,
    Distributor,
    MappingContactBook,
    SyntheticContactBook,
)
from redemption_core.domain.errors import InvalidInput
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.home import promo_home


def register(commands: Any) -> None:
    promotion = commands.add_parser("promotion", help="send a promotion to its segment")
    promotion_cmd = promotion.add_subparsers(dest="action", required=True)
    promotion_cmd.add_parser("send", help="publish and deliver (resumable)").add_argument(
        "campaign_id", help="the promotion campaign's id"
    )
    promotion.set_defaults(handler=_send)

    autopilot = commands.add_parser("autopilot", help="always-on campaigns")
    autopilot_cmd = autopilot.add_subparsers(dest="action", required=True)
    autopilot_cmd.add_parser("list", help="autopilot campaigns and their triggers")
    tick = autopilot_cmd.add_parser("run", help="one tick: match triggers, complete them")
    tick.add_argument("--now", help="the tick's instant (ISO 8601; default: now)")
    tick.add_argument("--campaign", action="append", help="only these campaigns")
    autopilot_cmd.add_parser("pending", help="triggers matched but not completed")
    autopilot.set_defaults(handler=_autopilot)

    deliveries = commands.add_parser("deliveries", help="delivery maintenance")
    deliveries_cmd = deliveries.add_subparsers(dest="action", required=True)
    deliveries_cmd.add_parser("retry", help="re-send failed deliveries").add_argument(
        "--campaign", help="only this campaign's (default: all)"
    )
    deliveries.set_defaults(handler=_send)

    settings = commands.add_parser("settings", help="platform settings")
    settings_cmd = settings.add_subparsers(dest="action", required=True)
    cap = settings_cmd.add_parser("frequency-cap", help="at most N offers per M days")
    cap.add_argument("max_offers", type=whole_number, help="at most this many offers per customer")
    cap.add_argument("days", type=whole_number, help="within this many days")
    settings.set_defaults(handler=_settings)


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


@engine_command
def _settings(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    distributor(engine).set_frequency_cap(args.max_offers, args.days)
    out.emit({"max_offers": args.max_offers, "days": args.days}, "frequency cap set")
    return 0


@engine_command
def _autopilot(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.action == "list":
        rows = distributor(engine).autopilots()
        out.emit(
            rows,
            "\n".join(
                f"{r['campaign_id']:<28} {r['status']:<9} {r['trigger']['type']}" for r in rows
            )
            or "no autopilots",
        )
        return 0
    if args.action == "pending":
        rows = distributor(engine).pending_triggers()
        out.emit(
            rows,
            "\n".join(
                f"{r['trigger_id']} {r['campaign_id']} {r['customer_id']} age {r['age_s']:.0f}s"
                for r in rows
            )
            or "no pending triggers",
        )
        return 0
    return _send(engine, args, out)


@engine_command
def _send(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    """A promotion send, an autopilot tick or a delivery retry: reports per campaign."""
    dist = distributor(engine)
    try:
        if args.command == "promotion":
            reports = [dist.send_promotion(args.campaign_id)]
        elif args.command == "autopilot":
            reports = dist.run_autopilot(args.campaign)
        else:
            reports = dist.retry_deliveries(args.campaign)
    finally:
        for channel in dist.channels.values():
            channel.close()
    documents = [report.to_dict() for report in reports]
    out.emit(documents, "\n".join(_report_line(d) for d in documents) or "nothing to do")
    return 0


def _report_line(document: dict[str, Any]) -> str:
    skipped = ", ".join(f"{k} {v}" for k, v in document["skipped"].items()) or "none"
    return (
        f"{document['campaign_id']}: matched {document['matched']}, published"
        f" {document['published']}, held out {document['held_out']}, skipped ({skipped}),"
        f" delivered {document['delivered']}, failed {document['failed']}"
    )
