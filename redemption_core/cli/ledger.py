"""`promo ledger tail | verify | stats`: read the ledger without writing to it.
`promo ledger migrate --to postgresql://...`: copy the home's SQLite ledger into PostgreSQL
and verify the copy; `promo ledger init`: create the PostgreSQL ledger's tables as their
owner and grant the application's role what it may do."""

from __future__ import annotations

import argparse
import json
from itertools import zip_longest
from typing import Any

from redemption_core.cli.common import Output, positive
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.money import format_money
from redemption_core.ledger.home import ledger_exists, ledger_location, ledger_path, open_store
from redemption_core.ledger.reports import event_to_dict, stats, tail
from redemption_core.ledger.rows import SELECT_EVENT
from redemption_core.ledger.sqlite import SqliteLedgerStore
from redemption_core.ledger.store import LedgerStore
from redemption_core.ledger.verify import VerifyReport, verify_ledger


def register(commands: Any) -> None:
    ledger = commands.add_parser("ledger", help="inspect and verify the ledger")
    ledger_cmd = ledger.add_subparsers(dest="action", required=True)
    tail_cmd = ledger_cmd.add_parser("tail", help="the last events")
    tail_cmd.add_argument("-n", type=positive, default=20, help="how many events (>= 1)")
    ledger_cmd.add_parser(
        "verify", help="check every event's invariants, rebuild the projection, report both"
    )
    ledger_cmd.add_parser("stats", help="headline numbers")
    migrate = ledger_cmd.add_parser(
        "migrate", help="copy PROMO_HOME's SQLite ledger into an empty PostgreSQL ledger"
    )
    migrate.add_argument("--to", required=True, help="postgresql://user@host:port/database")
    init = ledger_cmd.add_parser(
        "init", help="create the PostgreSQL ledger's tables (run as the database's owner)"
    )
    init.add_argument("--url", required=True, help="the owner's postgresql:// URL")
    init.add_argument("--app-role", help="the role the application connects as")
    ledger.set_defaults(handler=_ledger)


def _postgres_url(value: str, field: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise InvalidInput(field, "must be a postgresql:// URL")
    return value


def _ledger(args: argparse.Namespace, out: Output) -> int:
    if args.action == "init":
        from redemption_core.ledger.postgres import init_ledger

        init_ledger(_postgres_url(args.url, "--url"), args.app_role)
        out.emit({"initialised": True}, "the ledger's tables are there")
        return 0
    if args.action == "migrate":
        if not ledger_path().exists():
            raise InvalidInput("PROMO_HOME", f"no SQLite ledger at {ledger_path()} to migrate")
        return _migrate(_postgres_url(args.to, "--to"), out)
    if not ledger_exists():
        raise InvalidInput(
            "PROMO_HOME", f"no ledger at {ledger_location()} (create a campaign first)"
        )
    if args.action == "verify":
        return _emit_report(verify_ledger(), out)
    store = open_store(read_only=True)
    try:
        if args.action == "tail":
            _print_tail([event_to_dict(event) for event in tail(store, args.n)], out)
        else:
            summary = stats(store)
            out.emit(summary, _stats_text(summary))
    finally:
        store.close()
    return 0


def _migrate(url: str, out: Output) -> int:
    """Copy, then check the copy: the same events byte for byte, and a projection that the
    copied events explain."""
    from redemption_core.ledger.postgres import PostgresLedgerStore, copy_ledger, redacted

    source = SqliteLedgerStore(ledger_path(), read_only=True)
    try:
        copied = copy_ledger(source, url)
        target = PostgresLedgerStore(url, read_only=True)
        try:
            mismatch = _first_difference(source, target)
        finally:
            target.close()
    finally:
        source.close()
    if mismatch is not None:
        out.emit({"copied": copied, "clean": False, "differences": [mismatch]}, mismatch)
        return 1
    report = verify_ledger(url)
    if not report.clean:
        return _emit_report(report, out)
    out.emit(
        {"copied": copied, "clean": True, "to": redacted(url)},
        f"copied {copied} events to {redacted(url)}; verify: clean",
    )
    return 0


def _first_difference(source: LedgerStore, target: LedgerStore) -> str | None:
    """The first event row (every column, as stored) that differs between the two ledgers."""
    after = 0
    while True:
        pages = []
        for store in (source, target):
            with store.read() as tx:
                pages.append(
                    tx.query(f"{SELECT_EVENT} WHERE seq > ? ORDER BY seq LIMIT 10000", (after,))
                )
        for mine, theirs in zip_longest(*pages):
            if mine is None or theirs is None or tuple(mine) != tuple(theirs):
                seq = (mine or theirs)[0]
                return f"event seq {seq}: the copy differs from the SQLite ledger"
        if not pages[0]:
            return None
        after = pages[0][-1][0]


def _emit_report(report: VerifyReport, out: Output) -> int:
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
