"""What every `promo` command group shares: the one-line parser, output, and reading files
and arguments so that bad input names its field (exit 2) before anything is written."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import yaml

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.orders import Order, RequestContext, context_from_dict, order_from_dict
from redemption_core.domain.parsing import timestamp
from redemption_core.engine.redemption import RedemptionEngine

# A command's handler: the parsed arguments and the output in, an exit code out. Handlers
# that need the engine say so with `needs_engine` (main opens it, with the clock asked for).
Handler = Callable[..., int]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem, exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, document: Any, text: str) -> None:
        print(
            json.dumps(document, indent=None if isinstance(document, list) else 2)
            if self.as_json
            else text
        )


def engine_command(handler: Callable[[RedemptionEngine, argparse.Namespace, Output], int]) -> Any:
    """Mark a handler as one that works on the engine (main opens it for the call)."""
    handler.needs_engine = True  # type: ignore[attr-defined]
    return handler


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def minor_units(value: str) -> int:
    """An amount on the command line: a whole number of minor units (cents), never 32.00."""
    text = value.strip()
    digits = text.removeprefix("-").removeprefix("+")
    if digits.isdigit() and len(digits) <= 18:  # the domain checks the range and names the field
        return int(text)
    hint = ""
    whole, dot, cents = text.partition(".")
    if dot and whole.isdigit() and cents.isdigit() and len(cents) <= 3:
        hint = f"; {text} in a currency with 2 decimals is {int(whole) * 100 + int(cents.ljust(2, '0')[:2])}"
    raise argparse.ArgumentTypeError(
        f"amounts are whole minor units (3200 is 32.00 EUR), got {value!r}{hint}"
    )


# The request context a till, web shop or app sends with a validation, redemption or order.
CONTEXT_OPTIONS = {
    "device": "the customer's device id (stored hashed)",
    "ip": "the client's IP address (stored hashed)",
    "payment": "a payment card fingerprint (stored hashed)",
    "store": "the store id",
    "staff": "the staff member who keyed it in",
    "channel": "the sales channel (e.g. app, web, pos)",
}


def order_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--order", help="the order as JSON, or @file.json (amounts in minor units)")
    sub.add_argument(
        "--amount",
        type=minor_units,
        help="order amount in minor units, e.g. 3200 (instead of --order)",
    )
    sub.add_argument(
        "--currency", help="order currency, an ISO 4217 code such as EUR (with --amount)"
    )
    sub.add_argument("--customer", help="the customer's id")
    for name, text in CONTEXT_OPTIONS.items():
        sub.add_argument(f"--{name}", help=text)


def read_text(path: Path, field: str) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")  # -sig: a BOM as spreadsheets write it
    except OSError as error:
        raise InvalidInput(field, f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(field, f"{path} is not UTF-8 text (byte {error.start})") from None


def parse_json(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(field, f"not valid JSON ({error.msg} at position {error.pos})") from None
    except RecursionError:
        raise InvalidInput(field, "JSON nested too deeply") from None


def read_json_argument(value: str, field: str) -> Any:
    text = read_text(Path(value[1:]), field) if value.startswith("@") else value
    return parse_json(text, field)


def order_from_args(args: argparse.Namespace) -> Order:
    if args.order is not None:
        if args.amount is not None or args.currency is not None:
            raise InvalidInput("--order", "give either --order or --amount/--currency")
        return order_from_dict(read_json_argument(args.order, "--order"))
    if args.amount is None:
        raise InvalidInput("--amount", "required (or give --order)")
    if args.currency is None:
        raise InvalidInput("--currency", "required with --amount: an ISO 4217 code such as EUR")
    return order_from_dict({"amount": args.amount, "currency": args.currency})


def context_from_args(args: argparse.Namespace) -> RequestContext:
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


def load_definition(path: Path) -> Any:
    text = read_text(path, "file")
    if path.suffix.lower() == ".json":
        return parse_json(text, "file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise InvalidInput("file", f"{path} is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise InvalidInput("file", f"{path} is nested too deeply") from None


def read_csv(path: Path) -> list[dict[str, str]]:
    text = read_text(path, "file")
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


def open_output(path: Path) -> Any:
    try:
        return path.open("w", newline="", encoding="utf-8")
    except OSError as error:
        raise InvalidInput("--out", f"cannot write {path}: {error.strerror}") from None


def reasons_text(reasons: list[dict[str, str]]) -> str:
    return "; ".join(f"{r['code']} ({r['message']})" for r in reasons)


def clock_for(args: argparse.Namespace) -> Callable[[], Any] | None:
    """`autopilot run --now T`: the command runs, and records its events, at T."""
    if getattr(args, "now", None) is None:
        return None
    moment = timestamp(args.now, "--now")
    return lambda: moment
