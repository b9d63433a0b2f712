"""`promo`: the command line over the redemption core.

Exit codes: 0 done (or valid / redeemed), 1 the request was well-formed but rejected by a
rule (validate, redeem, rollback), 2 bad input or a refused command; nothing is written then.
Errors are one line on stderr that names the field and the problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from redemption_core.cli import (
    campaigns,
    customers,
    data,
    distribution,
    keys,
    ledger,
    redemption,
    serve,
)
from redemption_core.cli.common import OneLineParser, Output, clock_for, prepare_inputs
from redemption_core.domain.errors import PromoError
from redemption_core.engine.redemption import RedemptionEngine

# Command groups in the order `promo --help` lists them.
GROUPS = (campaigns, distribution, customers, redemption, data, ledger, keys, serve)


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="promo", description="promoledger redemption core")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for group in GROUPS:
        group.register(commands)
    # Commands from other parts of promoledger (e.g. `promo models` from models_ml), found
    # through entry points so that the core imports none of them.
    for plugin in entry_points(group="promoledger.commands"):
        plugin.load()(commands)
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


def run(args: argparse.Namespace) -> int:
    out = Output(args.json)
    if getattr(args, "plugin_run", None) is not None:
        return int(args.plugin_run(args))
    handler = args.handler
    if not getattr(handler, "needs_engine", False):
        return handler(args, out)
    prepare_inputs(args)  # bad input is refused before the ledger is opened
    clock = clock_for(args)
    with RedemptionEngine.open(**({"clock": clock} if clock else {})) as engine:
        return handler(engine, args, out)


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
