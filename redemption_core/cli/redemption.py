"""`promo validate`, `promo redeem` and `promo rollback`: exit 1 when a rule refuses."""

from __future__ import annotations

import argparse
from typing import Any

from redemption_core.cli.common import (
    Output,
    context_from_args,
    engine_command,
    minor_units,
    order_arguments,
    order_from_args,
    reasons_text,
    whole_number,
)
from redemption_core.domain.money import format_money
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine


def register(commands: Any) -> None:
    for name in ("validate", "redeem"):
        sub = commands.add_parser(name, help=f"{name} a code against an order")
        sub.add_argument("code", help="the voucher code as typed or scanned")
        order_arguments(sub)
        if name == "validate":
            sub.add_argument("--hold", type=whole_number, metavar="SECONDS", help="reserve one use")
            sub.set_defaults(handler=_validate)
        else:
            sub.add_argument(
                "--idempotency-key", help="a retry with the same key gets the first answer"
            )
            sub.add_argument("--session", help="session id of a validation hold")
            sub.add_argument(
                "--gift-amount", type=minor_units, help="gift card amount to use, in minor units"
            )
            sub.set_defaults(handler=_redeem)

    rollback = commands.add_parser("rollback", help="roll back a redemption")
    rollback.add_argument("redemption_id", help="the redemption's id (r_...)")
    rollback.add_argument("--reason", default="", help="why (kept in the ledger)")
    rollback.add_argument(
        "--idempotency-key", help="a retry with the same key gets the first answer"
    )
    rollback.set_defaults(handler=_rollback)


@engine_command
def _validate(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    result = engine.validate(
        args.code,
        order_from_args(args),
        customer_id=args.customer,
        context=context_from_args(args),
        hold_seconds=args.hold,
    )
    doc = result.to_dict()
    text = (
        f"valid: discount {format_money(result.discount, result.currency)},"
        f" gift {format_money(result.gift_amount, result.currency)},"
        f" to pay {format_money(result.amount_to_pay, result.currency)}"
        + (f", hold {result.session_id}" if result.session_id else "")
        if result.valid
        else f"invalid: {reasons_text(doc['reasons'])}"
    )
    out.emit(doc, text)
    return 0 if result.valid else 1


@engine_command
def _redeem(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    request = RedeemRequest(
        code=args.code,
        order=order_from_args(args),
        customer_id=args.customer,
        context=context_from_args(args),
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
        else f"rejected: {reasons_text(doc['reasons'])}"
    )
    out.emit(doc, text)
    return 0 if outcome.ok else 1


@engine_command
def _rollback(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    rolled = engine.rollback(
        args.redemption_id, reason=args.reason, idempotency_key=args.idempotency_key
    )
    doc = rolled.to_dict()
    text = (
        f"rolled back {rolled.redemption_id} ({rolled.rollback_id})"
        if rolled.ok
        else f"refused: {reasons_text(doc['reasons'])}"
    )
    out.emit(doc, text)
    return 0 if rolled.ok else 1
