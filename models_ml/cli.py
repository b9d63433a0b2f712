"""`promo models ...`: train, evaluate, list, promote and roll back models (see registry.py)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    models = commands.add_parser("models", help="train, evaluate and promote the ML models")
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="model versions with their metrics; the promoted one marked")
    models.set_defaults(plugin_run=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError(args.action)
