"""`promo ledger tail | verify | stats`: read the ledger without writing to it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from redemption_core.cli.common import Output, positive
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.money import format_money
from redemption_core.ledger.home import ledger_path
from redemption_core.ledger.reports import event_to_dict, stats, tail
from redemption_core.ledger.sqlite import SqliteLedgerStore
from redemption_core.ledger.verify import verify_ledger


def register(commands: Any) -> None:
    ledger = commands.add_parser("ledger", help="inspect and verify the ledger")
    ledger_cmd = ledger.add_subparsers(dest="action", required=True)
    tail_cmd = ledger_cmd.add_parser("tail", help="the last events")
    tail_cmd.add_argument("-n", type=positive, default=20, help="how many events (>= 1)")
    ledger_cmd.add_parser(
        "verify", help="check every event's invariants, rebuild the projection, report both"
    )
    ledger_cmd.add_parser("stats", help="headline numbers")
    ledger.set_defaults(handler=_ledger)


def _ledger(args: argparse.Namespace, out: Output) -> int:
    path = ledger_path()
    if not path.exists():
        raise InvalidInput("PROMO_HOME", f"no ledger at {path} (create a campaign first)")
    if args.action == "verify":
        report = verify_ledger(path)
        doc = {
            "events": report.events,
            "clean": report.clean,
            "differences": [str(d) for d in report.differences],
        }
        text = (
            f"clean: {report.events} events break no invariant and the projection matches them"
            if report.clean
            else "\n".join(str(d) for d in report.differences)
            + f"\n{len(report.differences)} differences over {report.events} events"
        )
        out.emit(doc, text)
        return 0 if report.clean else 1
    store = SqliteLedgerStore(path, read_only=True)
    try:
        if args.action == "tail":
            _print_tail([event_to_dict(event) for event in tail(store.connection, args.n)], out)
        else:
            summary = stats(store.connection)
            out.emit(summary, _stats_text(summary))
    finally:
        store.close()
    return 0


def _print_tail(events: list[dict[str, Any]], out: Output) -> None:
    for event in events:
        if out.as_json:
            print(json.dumps(event))
            continue
        ids = " ".join(
            f"{k}={event[k]}"
            for k in ("campaign_id", "voucher_id", "customer_id", "redemption_id")
            if k in event
        )
        print(f"{event['seq']:>8} {event['occurred_at']} {event['event_type']:<24} {ids}")


def _stats_text(summary: dict[str, Any]) -> str:
    lines = [
        f"ledger: {summary['events']} events, last seq {summary['last_seq']}"
        f" ({summary['first_event_at']} .. {summary['last_event_at']})",
    ]
    lines += [f"  {name:<26} {count:>10}" for name, count in summary["events_by_type"].items()]
    lines.append(f"redemptions: {summary['redemptions']} ({summary['rolled_back']} rolled back)")
    if summary["rejections_by_reason"]:
        lines.append("rejections by reason:")
        lines += [
            f"  {code:<32} {count:>8}" for code, count in summary["rejections_by_reason"].items()
        ]
    lines.append("campaigns:")
    for row in summary["campaigns"]:
        lines.append(
            f"  {row['campaign_id']:<32} {row['status']:<9} vouchers {row['vouchers']:>7}"
            f"  redeemed {row['redemptions']:>6}  discount {format_money(row['discount_given'], row['currency'])}"
        )
    return "\n".join(lines)
