"""`promo keys create | list | revoke`: API keys, each issue and revocation a ledger event.

The key is printed once, when it is created; the ledger keeps only its SHA-256.
"""

from __future__ import annotations

import argparse
from typing import Any

from redemption_core.cli.common import Output, engine_command
from redemption_core.domain.access import KeyKind, Role
from redemption_core.domain.parsing import iso
from redemption_core.engine.redemption import RedemptionEngine


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys for `promo serve`")
    keys_cmd = keys.add_subparsers(dest="action", required=True)
    create = keys_cmd.add_parser("create", help="issue a key (shown once)")
    create.add_argument("--role", choices=[str(role) for role in Role], help="server keys")
    create.add_argument(
        "--client",
        action="store_true",
        help="a client-side key (web page, app): validate and publish-to-self only, no role",
    )
    create.add_argument(
        "--store", action="append", default=[], help="limit a MERCHANT key to a store (repeat)"
    )
    create.add_argument("--name", default="", help="what the key is for")
    keys_cmd.add_parser("list", help="keys with role, stores and status (never the secret)")
    revoke = keys_cmd.add_parser("revoke", help="revoke a key; it stops working at once")
    revoke.add_argument("key_id", help="the key's id (key_…), as `promo keys list` shows it")
    revoke.add_argument("--reason", default="", help="why, for the ledger")
    keys.set_defaults(handler=_keys)


@engine_command
def _keys(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.action == "create":
        kind = KeyKind.CLIENT if args.client else KeyKind.SERVER
        issued = engine.issue_key(args.role, kind=kind, stores=args.store, name=args.name)
        principal = issued.principal
        out.emit(
            {
                "key_id": issued.key_id,
                "key": issued.token,
                "kind": str(principal.kind),
                "role": None if principal.role is None else str(principal.role),
                "stores": sorted(principal.stores),
                "name": principal.name,
            },
            f"{issued.key_id}: {issued.token}\n(shown once: store it now; the ledger keeps "
            "only its hash)",
        )
    elif args.action == "list":
        rows = [
            {
                "key_id": key.key_id,
                "kind": key.kind,
                "role": key.role,
                "stores": list(key.stores),
                "name": key.name,
                "issued_at": iso(key.issued_at),
                "revoked_at": None if key.revoked_at is None else iso(key.revoked_at),
            }
            for key in engine.api_keys()
        ]
        text = "\n".join(
            f"{r['key_id']}  {r['kind']:<6} {r['role'] or '-':<8}"
            f" {'revoked' if r['revoked_at'] else 'active':<7} {','.join(r['stores']) or '*'}"
            f"  {r['name']}"
            for r in rows
        )
        out.emit(rows, text or "no keys yet")
    else:
        engine.revoke_key(args.key_id, reason=args.reason)
        out.emit({"key_id": args.key_id, "revoked": True}, f"revoked {args.key_id}")
    return 0
