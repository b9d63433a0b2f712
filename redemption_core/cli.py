"""`promo`: the command line over the redemption core.

Exit codes: 0 done (or valid / redeemed), 1 the request was well-formed but rejected by a
rule (validate, redeem, rollback), 2 bad input or a refused command; nothing is written then.
Errors are one line on stderr that names the field and the problem.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

import yaml

from redemption_core import cli_distribution
from redemption_core.config import ledger_path, promo_home
from redemption_core.engine import RedeemRequest, RedemptionEngine
from redemption_core.errors import InvalidInput, NotFound, PromoError
from redemption_core.import_dunnhumby import dunnhumby_events
from redemption_core.importer import ImportRefused, events_to_rows, import_events, read_rows
from redemption_core.ledger_reports import event_to_dict, stats, tail, voucher_rows
from redemption_core.money import format_money
from redemption_core.orders import Order, context_from_dict, order_from_dict
from redemption_core.parsing import timestamp
from redemption_core.simulator import SimulationConfig, simulate
from redemption_core.sqlite_store import SqliteLedgerStore
from redemption_core.verify import verify_ledger

EXPORT_COLUMNS = (
    "code", "voucher_id", "customer_id", "status", "published_at", "accepted_at",
    "redemptions", "gift_balance",
)  # fmt: skip


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem, exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="promo", description="promoledger redemption core")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    campaign = commands.add_parser("campaign", help="create and manage campaigns")
    campaign_cmd = campaign.add_subparsers(dest="action", required=True)
    create = campaign_cmd.add_parser("create", help="create campaigns from a YAML or JSON file")
    create.add_argument("file", type=Path)
    campaign_cmd.add_parser("list", help="campaigns with status and counters")
    status = campaign_cmd.add_parser("status", help="activate, pause or finish a campaign")
    status.add_argument("campaign_id")
    status.add_argument("status", choices=["draft", "active", "paused", "finished"])

    codes = commands.add_parser("codes", help="generate, import and export voucher codes")
    codes_cmd = codes.add_subparsers(dest="action", required=True)
    generate = codes_cmd.add_parser("generate", help="generate new unique codes")
    generate.add_argument("--campaign", required=True)
    generate.add_argument("--count", type=int, required=True)
    generate.add_argument("--out", type=Path, help="also write the codes to this CSV file")
    imported = codes_cmd.add_parser("import", help="import codes from CSV (column: code)")
    imported.add_argument("--campaign", required=True)
    imported.add_argument("file", type=Path)
    export = codes_cmd.add_parser("export", help="export a campaign's vouchers as CSV")
    export.add_argument("--campaign", required=True)
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")

    # The customer's act in the app, also reachable as `promo voucher accept`.
    accept = commands.add_parser("accept", help="the holder accepts a voucher")
    accept.add_argument("code")
    accept.add_argument("--customer", required=True)
    accept.set_defaults(action="accept")

    voucher = commands.add_parser("voucher", help="publish, accept, disable, top up a voucher")
    voucher_cmd = voucher.add_subparsers(dest="action", required=True)
    for name in ("publish", "accept"):
        sub = voucher_cmd.add_parser(name)
        sub.add_argument("code")
        sub.add_argument("--customer", required=True)
    for name in ("disable", "enable"):
        voucher_cmd.add_parser(name).add_argument("code")
    topup = voucher_cmd.add_parser("topup", help="add to a gift card's balance")
    topup.add_argument("code")
    topup.add_argument("amount", type=int, help="minor units")

    cli_distribution.add_parsers(commands, _order_arguments)
    # Commands from other parts of promoledger (e.g. `promo models` from models_ml), found
    # through entry points so that the core imports none of them.
    for plugin in entry_points(group="promoledger.commands"):
        plugin.load()(commands)

    for name in ("validate", "redeem"):
        sub = commands.add_parser(name, help=f"{name} a code against an order")
        sub.add_argument("code")
        _order_arguments(sub)
        if name == "validate":
            sub.add_argument("--hold", type=int, metavar="SECONDS", help="reserve one use")
        else:
            sub.add_argument("--idempotency-key")
            sub.add_argument("--session", help="session id of a validation hold")
            sub.add_argument("--gift-amount", type=int, help="gift card amount to use")

    rollback = commands.add_parser("rollback", help="roll back a redemption")
    rollback.add_argument("redemption_id")
    rollback.add_argument("--reason", default="")
    rollback.add_argument("--idempotency-key")

    imported = commands.add_parser(
        "import", help="import events (ledger schema, .parquet or .csv) or another system's tables"
    )
    imported.add_argument("path", type=Path, help="a file of events, or the folder of a mapping")
    imported.add_argument("--mapping", choices=["dunnhumby"], help="the source system's tables")

    simulated = commands.add_parser(
        "simulate", help="run a simulated restaurant through the core into an empty PROMO_HOME"
    )
    simulated.add_argument("--customers", type=int, default=2000)
    simulated.add_argument("--days", type=int, default=90)
    simulated.add_argument("--start", default="2026-01-05T00:00:00Z", help="first day (ISO 8601)")
    simulated.add_argument("--seed", type=int, default=1)
    simulated.add_argument("--fraud-scale", type=float, default=1.0, help="0 for no fraud")

    ledger = commands.add_parser("ledger", help="inspect and verify the ledger")
    ledger_cmd = ledger.add_subparsers(dest="action", required=True)
    tail_cmd = ledger_cmd.add_parser("tail", help="the last events")
    tail_cmd.add_argument("-n", type=_positive, default=20, help="how many events (>= 1)")
    ledger_cmd.add_parser("verify", help="rebuild the projection and report differences")
    ledger_cmd.add_parser("stats", help="headline numbers")
    _accept_json_anywhere(parser)
    return parser


def _accept_json_anywhere(parser: argparse.ArgumentParser) -> None:
    """`promo --json ledger tail` and `promo ledger tail --json` both work."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                sub.add_argument(
                    "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output"
                )
                _accept_json_anywhere(sub)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _order_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--order", help="the order as JSON, or @file.json")
    sub.add_argument("--amount", type=int, help="order amount in minor units (instead of --order)")
    sub.add_argument("--currency", help="order currency (with --amount)")
    sub.add_argument("--customer")
    for name in ("device", "ip", "payment", "store", "staff", "channel"):
        sub.add_argument(f"--{name}")


def _read_text(path: Path, field: str) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")  # -sig: a BOM as spreadsheets write it
    except OSError as error:
        raise InvalidInput(field, f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(field, f"{path} is not UTF-8 text (byte {error.start})") from None


def _parse_json(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(field, f"not valid JSON ({error.msg} at position {error.pos})") from None
    except RecursionError:
        raise InvalidInput(field, "JSON nested too deeply") from None


def _read_json_argument(value: str, field: str) -> Any:
    text = _read_text(Path(value[1:]), field) if value.startswith("@") else value
    return _parse_json(text, field)


def _order(args: argparse.Namespace) -> Order:
    if args.order is not None:
        if args.amount is not None or args.currency is not None:
            raise InvalidInput("--order", "give either --order or --amount/--currency")
        return order_from_dict(_read_json_argument(args.order, "--order"))
    if args.amount is None:
        raise InvalidInput("--amount", "required (or give --order)")
    return order_from_dict({"amount": args.amount, "currency": args.currency})


def _context(args: argparse.Namespace) -> Any:
    return context_from_dict(
        {
            "device_id": args.device,
            "ip": args.ip,
            "payment_fingerprint": args.payment,
            "store_id": args.store,
            "staff_id": args.staff,
            "sales_channel": args.channel,
        }
    )


def _load_definition(path: Path) -> Any:
    text = _read_text(path, "file")
    if path.suffix.lower() == ".json":
        return _parse_json(text, "file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise InvalidInput("file", f"{path} is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise InvalidInput("file", f"{path} is nested too deeply") from None


def _read_csv(path: Path) -> list[dict[str, str]]:
    text = _read_text(path, "file")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or "code" not in reader.fieldnames:
            raise InvalidInput("file", f"{path} needs a header row with a 'code' column")
        rows = []
        for number, row in enumerate(reader, start=1):
            if None in row:
                raise InvalidInput(f"row {number}", "has more cells than the header")
            rows.append(row)
        return rows
    except csv.Error as error:
        raise InvalidInput("file", f"{path} is not valid CSV: {error}") from None


def _open_output(path: Path) -> Any:
    try:
        return path.open("w", newline="", encoding="utf-8")
    except OSError as error:
        raise InvalidInput("--out", f"cannot write {path}: {error.strerror}") from None


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, document: Any, text: str) -> None:
        print(
            json.dumps(document, indent=None if isinstance(document, list) else 2)
            if self.as_json
            else text
        )


def _reasons_text(reasons: list[dict[str, str]]) -> str:
    return "; ".join(f"{r['code']} ({r['message']})" for r in reasons)


def run(args: argparse.Namespace) -> int:
    out = Output(args.json)
    if getattr(args, "plugin_run", None) is not None:
        return int(args.plugin_run(args))
    if args.command == "ledger":
        return _ledger(args, out)
    if args.command == "simulate":
        config = SimulationConfig(
            customers=args.customers,
            days=args.days,
            start=timestamp(args.start, "--start"),
            seed=args.seed,
            fraud_scale=args.fraud_scale,
        )
        report = simulate(promo_home(), config, progress=None if args.json else sys.stderr)
        document = report.to_dict()
        out.emit(
            document, "\n".join(f"{k:<14} {v}" for k, v in document.items() if k != "outcomes")
        )
        return 0
    clock = cli_distribution.clock_for(args)
    with RedemptionEngine.open(**({"clock": clock} if clock else {})) as engine:
        return _dispatch(engine, args, out)


def _dispatch(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    command, action = args.command, getattr(args, "action", None)
    if command == "campaign" and action == "create":
        ids = engine.create_from_definition(_load_definition(args.file))
        out.emit({"created": ids}, f"created campaigns: {', '.join(ids)}")
    elif command == "campaign" and action == "list":
        rows = stats(engine.store.connection)["campaigns"]  # type: ignore[attr-defined]
        text = "\n".join(
            f"{r['campaign_id']:<32} {r['status']:<9} vouchers={r['vouchers']:<8}"
            f" redemptions={r['redemptions']:<8} discount={format_money(r['discount_given'], r['currency'])}"
            for r in rows
        )
        out.emit(rows, text or "no campaigns yet")
    elif command == "campaign" and action == "status":
        engine.set_campaign_status(args.campaign_id, args.status)
        out.emit(
            {"campaign_id": args.campaign_id, "status": args.status},
            f"{args.campaign_id}: {args.status}",
        )
    elif command == "codes" and action == "generate":
        # Open the output first: a bad --out must fail before any code is created.
        handle = _open_output(args.out) if args.out else None
        try:
            created = engine.generate_codes(args.campaign, args.count)
            if handle is not None:
                writer = csv.writer(handle)
                writer.writerow(["code"])
                writer.writerows([code] for code in created)
        finally:
            if handle is not None:
                handle.close()
        out.emit({"campaign_id": args.campaign, "codes": created}, "\n".join(created))
    elif command == "codes" and action == "import":
        count = engine.import_codes(args.campaign, _read_csv(args.file))
        out.emit({"campaign_id": args.campaign, "imported": count}, f"imported {count} codes")
    elif command == "codes" and action == "export":
        with engine.store.read() as tx:
            if tx.campaign_state(args.campaign) is None:
                raise NotFound("--campaign", args.campaign)
            rows = list(voucher_rows(engine.store.connection, args.campaign))  # type: ignore[attr-defined]
        handle = _open_output(args.out) if args.out else sys.stdout
        try:
            writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        finally:
            if args.out:
                handle.close()
    elif command in ("voucher", "accept"):
        return _voucher(engine, args, out)
    elif command == "import":
        if args.mapping == "dunnhumby":
            rows = events_to_rows(dunnhumby_events(args.path))
        else:
            rows = read_rows(args.path)
        try:
            report = import_events(engine, rows)
        except ImportRefused as refused:
            if out.as_json:
                print(
                    json.dumps(
                        {
                            "refused": True,
                            "bad_rows": refused.total,
                            "errors": [vars(e) for e in refused.errors],
                        }
                    )
                )
            else:
                print("\n".join(str(error) for error in refused.errors))
            print(
                f"error: import refused, nothing written: {refused.total} bad rows; first: {refused}",
                file=sys.stderr,
            )
            return 2
        document = report.to_dict()
        out.emit(
            document,
            f"imported {report.imported} of {report.rows} rows ({report.already_present} already in the ledger)",
        )
    elif command in cli_distribution.COMMANDS:
        return cli_distribution.dispatch(engine, args, out.emit, _load_definition, _order, _context)
    elif command == "validate":
        result = engine.validate(
            args.code,
            _order(args),
            customer_id=args.customer,
            context=_context(args),
            hold_seconds=args.hold,
        )
        doc = result.to_dict()
        text = (
            f"valid: discount {format_money(result.discount, result.currency)},"
            f" gift {format_money(result.gift_amount, result.currency)},"
            f" to pay {format_money(result.amount_to_pay, result.currency)}"
            + (f", hold {result.session_id}" if result.session_id else "")
            if result.valid
            else f"invalid: {_reasons_text(doc['reasons'])}"
        )
        out.emit(doc, text)
        return 0 if result.valid else 1
    elif command == "redeem":
        request = RedeemRequest(
            code=args.code,
            order=_order(args),
            customer_id=args.customer,
            context=_context(args),
            idempotency_key=args.idempotency_key,
            session_id=args.session,
            gift_amount=args.gift_amount,
        )
        outcome = engine.redeem(request)
        doc = outcome.to_dict()
        text = (
            f"redeemed {outcome.redemption_id}: discount {format_money(outcome.discount, outcome.currency)},"
            f" gift {format_money(outcome.gift_amount, outcome.currency)},"
            f" to pay {format_money(outcome.amount_to_pay, outcome.currency)}"
            + (" (replayed)" if outcome.replayed else "")
            if outcome.ok
            else f"rejected: {_reasons_text(doc['reasons'])}"
        )
        out.emit(doc, text)
        return 0 if outcome.ok else 1
    elif command == "rollback":
        rolled = engine.rollback(
            args.redemption_id, reason=args.reason, idempotency_key=args.idempotency_key
        )
        doc = rolled.to_dict()
        text = (
            f"rolled back {rolled.redemption_id} ({rolled.rollback_id})"
            if rolled.ok
            else f"refused: {_reasons_text(doc['reasons'])}"
        )
        out.emit(doc, text)
        return 0 if rolled.ok else 1
    return 0


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
            f"clean: the projection matches {report.events} events"
            if report.clean
            else "\n".join(str(d) for d in report.differences)
            + f"\n{len(report.differences)} differences over {report.events} events"
        )
        out.emit(doc, text)
        return 0 if report.clean else 1
    store = SqliteLedgerStore(path, read_only=True)
    try:
        if args.action == "tail":
            events = [event_to_dict(event) for event in tail(store.connection, args.n)]
            if args.json:
                for event in events:
                    print(json.dumps(event))
            else:
                for event in events:
                    ids = " ".join(
                        f"{k}={event[k]}"
                        for k in ("campaign_id", "voucher_id", "customer_id", "redemption_id")
                        if k in event
                    )
                    print(
                        f"{event['seq']:>8} {event['occurred_at']} {event['event_type']:<24} {ids}"
                    )
        else:
            summary = stats(store.connection)
            out.emit(summary, _stats_text(summary))
    finally:
        store.close()
    return 0


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except PromoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
