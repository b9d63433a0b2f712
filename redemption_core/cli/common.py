"""What every `promo` command group shares: the one-line parser, output, and reading files
and arguments so that bad input names its field (exit 2) before anything is written."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import yaml

from redemption_core.domain import parsing as p
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


# Bounds of every input the CLI reads, checked before the ledger is opened (prepare_inputs).
MAX_JSON_ARGUMENT_BYTES = 1024 * 1024  # --order, inline or @file
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # campaign, customer and segment files
MAX_CSV_BYTES = 512 * 1024 * 1024  # codes to import (10 million codes with their holders)
MAX_DEPTH = 64
MAX_VALUES = 5_000_000
MAX_DIGITS = 19  # every whole number the core takes fits in 64 bits
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")


def whole_number(value: str) -> int:
    """An integer argument as written: ASCII digits and an optional minus, at most 19 of them
    (int() would also take '1_000', ' 12' or other scripts' digits, and tens of thousands of
    digits before failing)."""
    if not WHOLE_NUMBER.fullmatch(value):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise argparse.ArgumentTypeError(
            f"not a whole number of at most {MAX_DIGITS} digits: {shown!r}"
        )
    return int(value)


def positive(value: str) -> int:
    number = whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def bounded(low: int, high: int) -> Callable[[str], int]:
    """A whole number from low to high (a port, a number of processes)."""

    def parse(value: str) -> int:
        number = whole_number(value)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {number}")
        return number

    return parse


def minor_units(value: str) -> int:
    """An amount on the command line: a whole number of minor units (cents), never 32.00."""
    text = value.strip()
    digits = text.removeprefix("-").removeprefix("+")
    if digits.isascii() and digits.isdigit() and len(digits) <= 18:  # the domain checks range
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


def read_text(path: Path, field: str, limit: int) -> str:
    """The file's text, read only if it is at most `limit` bytes (a device or a pipe is read
    up to the limit, never until memory runs out)."""
    try:
        with path.open("rb") as handle:
            if stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                size = os.fstat(handle.fileno()).st_size
                if size > limit:
                    raise InvalidInput(field, f"{path} is larger than {limit} bytes ({size})")
            data = handle.read(limit + 1)
    except OSError as error:
        raise InvalidInput(field, f"cannot read {path}: {error.strerror}") from None
    if len(data) > limit:
        raise InvalidInput(field, f"{path} is larger than {limit} bytes")
    try:
        return data.decode("utf-8-sig")  # -sig: a BOM as spreadsheets write it
    except UnicodeDecodeError as error:
        raise InvalidInput(field, f"{path} is not UTF-8 text (byte {error.start})") from None


def _json_integer(field: str) -> Any:
    def parse(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_DIGITS:
            raise InvalidInput(field, f"a number with more than {MAX_DIGITS} digits")
        return int(digits)

    return parse


def parse_json(text: str, field: str) -> Any:
    """JSON whose numbers fit in 64 bits, at most MAX_DEPTH deep and MAX_VALUES values."""
    try:
        document = json.loads(text, parse_int=_json_integer(field))
    except json.JSONDecodeError as error:
        raise InvalidInput(field, f"not valid JSON ({error.msg} at position {error.pos})") from None
    except RecursionError:
        raise InvalidInput(field, "JSON nested too deeply") from None
    p.bounded_document(document, field, max_depth=MAX_DEPTH, max_nodes=MAX_VALUES, numbers=False)
    return document


def read_json_argument(value: str, field: str) -> Any:
    if len(value) > MAX_JSON_ARGUMENT_BYTES:
        raise InvalidInput(field, f"larger than {MAX_JSON_ARGUMENT_BYTES} bytes")
    text = (
        read_text(Path(value[1:]), field, MAX_JSON_ARGUMENT_BYTES)
        if value.startswith("@")
        else value
    )
    return parse_json(text, field)


def order_from_args(args: argparse.Namespace) -> Order:
    """The command's order, read once (prepare_inputs reads it before the ledger opens)."""
    if "parsed_order" not in vars(args):
        args.parsed_order = _order(args)
    return args.parsed_order


def _order(args: argparse.Namespace) -> Order:
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


def definition_from_args(args: argparse.Namespace) -> Any:
    """The command's YAML/JSON file, read once (before the ledger opens)."""
    if "parsed_file" not in vars(args):
        args.parsed_file = load_definition(args.file)
    return args.parsed_file


def codes_from_args(args: argparse.Namespace) -> list[dict[str, str]]:
    """The command's CSV of codes, read once (before the ledger opens)."""
    if "parsed_file" not in vars(args):
        args.parsed_file = read_csv(args.file)
    return args.parsed_file


def prepare_inputs(args: argparse.Namespace) -> None:
    """Read and check every input of a command before the ledger is opened, so that bad input
    is refused (exit 2) before any file is touched."""
    if "order" in vars(args) and "amount" in vars(args):
        order_from_args(args)
        context_from_args(args)
    reads = getattr(args, "reads", None)
    if reads == "definition":
        definition_from_args(args)
    elif reads == "codes":
        codes_from_args(args)


class _Loader(yaml.SafeLoader):
    """YAML's safe loader with integers bounded like JSON's (PyYAML's int() would fail on
    thousands of digits with an error of its own)."""

    def construct_yaml_int(self, node: yaml.Node) -> int:  # type: ignore[override]
        digits = str(self.construct_scalar(node)).replace("_", "").lstrip("+-")  # type: ignore[arg-type]
        if len(digits) > MAX_DIGITS + 2:  # room for a 0x or 0o prefix
            raise InvalidInput(
                "file",
                f"a number with more than {MAX_DIGITS} digits, line {node.start_mark.line + 1}",
            )
        return super().construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def load_definition(path: Path) -> Any:
    text = read_text(path, "file", MAX_DOCUMENT_BYTES)
    if path.suffix.lower() == ".json":
        return parse_json(text, "file")
    try:
        document = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise InvalidInput("file", f"{path} is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise InvalidInput("file", f"{path} is nested too deeply") from None
    # Aliases are counted as often as they are used: an alias bomb is refused here.
    p.bounded_document(document, "file", max_depth=MAX_DEPTH, max_nodes=MAX_VALUES, numbers=False)
    return document


def read_csv(path: Path) -> list[dict[str, str]]:
    text = read_text(path, "file", MAX_CSV_BYTES)
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


@contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """A file written aside and renamed over `path` only once the block succeeds: a refused
    command leaves an existing file as it was, and nobody reads a half-written one."""
    if path.exists() and not path.is_file():
        raise InvalidInput("--out", f"cannot write {path}: not a regular file")
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        os.chmod(name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
    except OSError as error:
        raise InvalidInput("--out", f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            yield handle
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def reasons_text(reasons: list[dict[str, str]]) -> str:
    return "; ".join(f"{r['code']} ({r['message']})" for r in reasons)


def clock_for(args: argparse.Namespace) -> Callable[[], Any] | None:
    """`autopilot run --now T`: the command runs, and records its events, at T."""
    if getattr(args, "now", None) is None:
        return None
    moment = timestamp(args.now, "--now")
    return lambda: moment
