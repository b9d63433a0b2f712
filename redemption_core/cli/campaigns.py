"""`promo campaign`, `promo codes`, `promo voucher` and `promo accept`."""

from __future__ import annotations

import argparse
import csv
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from redemption_core.cli.common import (
    Output,
    atomic_output,
    codes_from_args,
    definition_from_args,
    engine_command,
    minor_units,
    parse_json,
    whole_number,
)
from redemption_core.domain.errors import InvalidInput, NotFound
from redemption_core.domain.money import format_money
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.reports import stats, voucher_rows

EXPORT_COLUMNS = (
    "code", "voucher_id", "customer_id", "status", "published_at", "accepted_at",
    "redemptions", "gift_balance",
)  # fmt: skip


def register(commands: Any) -> None:
    campaign = commands.add_parser("campaign", help="create and manage campaigns")
    campaign_cmd = campaign.add_subparsers(dest="action", required=True)
    create = campaign_cmd.add_parser("create", help="create campaigns from a YAML or JSON file")
    create.add_argument(
        "file", type=Path, help="a campaign, or a main campaign with campaigns: [...]"
    )
    create.set_defaults(reads="definition")
    campaign_cmd.add_parser("list", help="campaigns with status and counters")
    status = campaign_cmd.add_parser("status", help="activate, pause or finish a campaign")
    status.add_argument("campaign_id", help="the campaign's id")
    status.add_argument(
        "status", choices=["draft", "active", "paused", "finished"], help="the new status"
    )
    campaign.set_defaults(handler=_campaign)

    codes = commands.add_parser("codes", help="generate, import and export voucher codes")
    codes_cmd = codes.add_subparsers(dest="action", required=True)
    generate = codes_cmd.add_parser("generate", help="generate new unique codes")
    generate.add_argument("--campaign", required=True, help="the campaign the codes belong to")
    generate.add_argument("--count", type=whole_number, required=True, help="how many new codes")
    generate.add_argument("--out", type=Path, help="also write the codes to this CSV file")
    imported = codes_cmd.add_parser("import", help="import codes from CSV (column: code)")
    imported.add_argument("--campaign", required=True, help="the campaign the codes belong to")
    imported.add_argument(
        "file", type=Path, help="CSV with columns code[,customer_id][,gift_balance]"
    )
    imported.set_defaults(reads="codes")
    for parser in (generate, imported):
        parser.add_argument(
            "--applies-to",
            metavar="JSON",
            type=_applies_to,
            help="what these vouchers discount, in place of the campaign's: e.g. "
            '\'{"collections": ["coupon-17"]}\' (products, categories, brands, collections)',
        )
    export = codes_cmd.add_parser("export", help="export a campaign's vouchers as CSV")
    export.add_argument("--campaign", required=True, help="the campaign to export")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    codes.set_defaults(handler=_codes)

    # The customer's act in the app, also reachable as `promo voucher accept`.
    accept = commands.add_parser("accept", help="the holder accepts a voucher")
    accept.add_argument("code", help="the voucher code")
    accept.add_argument("--customer", required=True, help="the holder's customer id")
    accept.set_defaults(action="accept", handler=_voucher)

    voucher = commands.add_parser("voucher", help="publish, accept, disable, top up a voucher")
    voucher_cmd = voucher.add_subparsers(dest="action", required=True)
    for name, text in (
        ("publish", "give a unique voucher or gift card to a customer"),
        ("accept", "the holder accepts the voucher (as in the app)"),
    ):
        sub = voucher_cmd.add_parser(name, help=text)
        sub.add_argument("code", help="the voucher code")
        sub.add_argument("--customer", required=True, help="the customer's id")
    for name in ("disable", "enable"):
        voucher_cmd.add_parser(name, help=f"{name} a voucher").add_argument(
            "code", help="the voucher code"
        )
    topup = voucher_cmd.add_parser("topup", help="add to a gift card's balance")
    topup.add_argument("code", help="the gift card's code")
    topup.add_argument(
        "amount", type=minor_units, help="amount to add, in minor units (500 = 5.00)"
    )
    voucher.set_defaults(handler=_voucher)


@engine_command
def _campaign(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.action == "create":
        ids = engine.create_from_definition(definition_from_args(args))
        out.emit({"created": ids}, f"created campaigns: {', '.join(ids)}")
    elif args.action == "list":
        rows = stats(engine.store)["campaigns"]
        text = "\n".join(
            f"{r['campaign_id']:<32} {r['status']:<9} vouchers={r['vouchers']:<8}"
            f" redemptions={r['redemptions']:<8} discount={format_money(r['discount_given'], r['currency'])}"
            for r in rows
        )
        out.emit(rows, text or "no campaigns yet")
    else:
        engine.set_campaign_status(args.campaign_id, args.status)
        out.emit(
            {"campaign_id": args.campaign_id, "status": args.status},
            f"{args.campaign_id}: {args.status}",
        )
    return 0


@engine_command
def _codes(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.action == "generate":
        # The codes go to a file written aside (a bad --out fails before any code is
        # created) and renamed over --out only once they are in the ledger: a refused
        # command leaves an existing file as it was.
        progress = _Progress(args.count) if args.out and not out.as_json else None
        with atomic_output(args.out) if args.out else nullcontext(None) as handle:
            created = engine.generate_codes(
                args.campaign, args.count, applies_to=args.applies_to, progress=progress
            )
            if handle is not None:
                writer = csv.writer(handle)
                writer.writerow(["code"])
                writer.writerows([code] for code in created)
        if args.out is None:
            out.emit({"campaign_id": args.campaign, "codes": created}, "\n".join(created))
        else:  # the file holds the codes; the terminal gets a summary, not 200,000 lines
            out.emit(
                {"campaign_id": args.campaign, "generated": len(created), "out": str(args.out)},
                f"generated {len(created):,} codes for {args.campaign} into {args.out}",
            )
    elif args.action == "import":
        count = engine.import_codes(
            args.campaign, codes_from_args(args), applies_to=args.applies_to
        )
        out.emit({"campaign_id": args.campaign, "imported": count}, f"imported {count} codes")
    else:
        with engine.store.read() as tx:
            if tx.campaign_state(args.campaign) is None:
                raise NotFound("--campaign", args.campaign)
        rows = voucher_rows(engine.store, args.campaign)  # a page at a time
        with atomic_output(args.out) if args.out else nullcontext(sys.stdout) as handle:
            writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return 0


def _applies_to(text: str) -> Any:
    """--applies-to's JSON, read while the arguments are parsed: refused before the ledger opens."""
    try:
        return parse_json(text, "--applies-to")
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@engine_command
def _voucher(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    action = args.action
    if action == "publish":
        changed = engine.publish(args.code, args.customer)
        out.emit(
            {"code": args.code, "customer_id": args.customer, "changed": changed},
            "published" if changed else "already published to this customer",
        )
    elif action == "accept":
        changed = engine.accept(args.code, args.customer)
        out.emit(
            {"code": args.code, "customer_id": args.customer, "changed": changed},
            "accepted" if changed else "already accepted",
        )
    elif action in ("disable", "enable"):
        engine.set_voucher_enabled(args.code, action == "enable")
        out.emit({"code": args.code, "status": f"{action}d"}, f"{action}d")
    elif action == "topup":
        balance = engine.top_up(args.code, args.amount)
        out.emit({"code": args.code, "gift_balance": balance}, f"balance {balance}")
    return 0


class _Progress:
    """`generated 40,000 of 200,000 codes` on stderr, rewritten in place as codes commit."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, done: int) -> None:
        if not sys.stderr.isatty():  # logs get the summary line only
            return
        end = "\n" if done >= self.total else ""
        print(f"\rgenerated {done:,} of {self.total:,} codes", end=end, file=sys.stderr, flush=True)
