"""`promo models ...`: train, evaluate, list, promote and roll back models (see registry.py).

    promo models train fraud|personalisation [--from DATE] [--to DATE] [--seed N]
    promo models evaluate VERSION|KIND [--from DATE] [--to DATE]   (KIND fraud: the whole queue)
    promo models list [--kind KIND]
    promo models promote VERSION [--force]
    promo models rollback KIND

Training reads the lake under $PROMO_HOME/lake (default window: its last DEFAULT_DAYS days),
holds out the later part of the window for the metrics on the card, and saves a new version
(not promoted). `evaluate fraud` needs no model: it runs every fraud layer over the lake
(default: all of it) and reports flags per layer and source, and where labels exist (ground
truth, reviews) precision, recall and time to first flag per pattern. Plain text by default, JSON with --json. Errors: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from models_ml.registry import KINDS, ModelCard, Registry, RegistryError
from models_ml.training import DEFAULT_DAYS, train_and_register


def register(commands: Any) -> None:
    models = commands.add_parser("models", help="train, evaluate and promote the ML models")
    actions = models.add_subparsers(dest="action", required=True)

    train = actions.add_parser("train", help="train a new version on the lake (not promoted)")
    train.add_argument("kind", choices=KINDS, help="which model")
    _window_arguments(train)
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    evaluate = actions.add_parser(
        "evaluate", help="metrics of a version (or a kind's promoted one) on a window"
    )
    evaluate.add_argument(
        "target", metavar="VERSION|KIND", help="a version, or a kind for its promoted version"
    )
    _window_arguments(evaluate, "default: the version's held-out days")

    listing = actions.add_parser("list", help="model versions with their metrics; promoted marked")
    listing.add_argument("--kind", choices=KINDS, help="only this kind")

    promote = actions.add_parser("promote", help="make a version the one scoring uses")
    promote.add_argument("version", help="the version to promote")
    promote.add_argument("--force", action="store_true", help="promote even if it regresses")

    rollback = actions.add_parser("rollback", help="go back to the previously promoted version")
    rollback.add_argument("kind", choices=KINDS, help="which model goes back a version")
    models.set_defaults(plugin_run=run)


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _window_arguments(parser: argparse.ArgumentParser, default: str = "") -> None:
    help_from = default or f"first day (default: {DEFAULT_DAYS} days before --to)"
    parser.add_argument("--from", dest="first", type=_iso_date, metavar="DATE", help=help_from)
    help_to = default or "last day, inclusive (default: the lake's last day)"
    parser.add_argument("--to", dest="last", type=_iso_date, metavar="DATE", help=help_to)


def _home() -> Path:
    return Path(os.environ.get("PROMO_HOME") or "data").resolve()


def run(args: argparse.Namespace) -> int:
    try:
        document, text = _ACTIONS[args.action](args, _home())
    except (RegistryError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2) if args.json else text)
    return 0


# -- actions -----------------------------------------------------------------------------------
def _train(args: argparse.Namespace, home: Path) -> tuple[Any, str]:
    card = train_and_register(home, args.kind, args.first, args.last, args.seed)
    return _card_document(card), _card_text(card, f"trained {card.version} (not promoted)")


def _personalisation() -> Any:
    # Imported when asked for, so `promo models` works for fraud whatever state it is in.
    try:
        from models_ml import personalisation
    except ImportError as error:
        raise ValueError(f"the personalisation model is not available: {error}") from None
    return personalisation


def _evaluate(args: argparse.Namespace, home: Path) -> tuple[Any, str]:
    from models_ml.data import lake_days, load_events

    if args.target == "fraud":
        return _evaluate_fraud_queue(args, home)
    registry = Registry(home)
    if args.target in KINDS:
        model, card = registry.load(args.target)
    else:
        model, card = registry.load("", args.target)
    first, last = _evaluation_window(args, card, lake_days(home / "lake")[1])
    if card.kind == "fraud":
        from models_ml.data import load_ground_truth, load_review_labels
        from models_ml.evaluate import evaluate_fraud
        from models_ml.fraud_features import load_fraud_events

        lake = home / "lake"
        metrics = evaluate_fraud(
            model,
            load_fraud_events(lake, first, last),
            first,
            last,
            load_ground_truth(home / "simulation" / "ground_truth.jsonl"),
            load_review_labels(lake),
        )
    else:
        events = load_events(home / "lake", None, last)
        metrics = _personalisation().evaluate_personalisation(model, events, first, last)
    document = {
        "version": card.version,
        "window": {"from": first.isoformat(), "to": last.isoformat()},
        "primary_metric": card.primary_metric,
        "metrics": metrics,
    }
    lines = [f"{card.version} on {first} .. {last}"] + [
        f"  {name:<44} {value:.4f}" for name, value in sorted(metrics.items())
    ]
    return document, "\n".join(lines)


def _evaluate_fraud_queue(args: argparse.Namespace, home: Path) -> tuple[Any, str]:
    """`promo models evaluate fraud`: the queue every layer makes on the ledger, no model
    needed (the promoted one joins when it fits)."""
    from models_ml.fraud_evaluation import evaluate_ledger

    metrics, first, last = evaluate_ledger(home, args.first, args.last)
    document = {
        "version": "label-free" + ("+promoted" if metrics["supervised_model"] else ""),
        "window": {"from": first.isoformat(), "to": last.isoformat()},
        "metrics": metrics,
    }
    lines = [f"fraud review queue on {first} .. {last} ({document['version']})"] + [
        f"  {name:<60} {value:.4f}" for name, value in metrics.items()
    ]
    if "queue_precision" not in metrics:
        lines.append("  (no labels: no ground truth and no reviews, so flag counts only)")
    return document, "\n".join(lines)


def _evaluation_window(
    args: argparse.Namespace, card: ModelCard, lake_last: date
) -> tuple[date, date]:
    """--from/--to, else the version's held-out days, else the days after its training window,
    else the training window itself (in-sample: say so by passing a window)."""
    held = card.extra.get("holdout_window")
    split_at = card.params.get("split_at")  # personalisation: the held-out part's start
    trained_to = date.fromisoformat(card.training_window["to"])
    if held:
        default = date.fromisoformat(held["from"]), date.fromisoformat(held["to"])
    elif isinstance(split_at, str):
        default = date.fromisoformat(split_at[:10]), trained_to
    elif trained_to < lake_last:
        default = trained_to + timedelta(days=1), lake_last
    else:
        default = date.fromisoformat(card.training_window["from"]), trained_to
    first, last = args.first or default[0], args.last or default[1]
    if first > last:
        raise ValueError(f"empty window: --from {first} is after --to {last}")
    return first, last


def _list(args: argparse.Namespace, home: Path) -> tuple[Any, str]:
    registry = Registry(home)
    cards = registry.list(args.kind)
    promoted = {kind: registry.promoted(kind) for kind in ([args.kind] if args.kind else KINDS)}
    live = {card.version for card in promoted.values() if card is not None}
    document = [{**_card_document(card), "promoted": card.version in live} for card in cards]
    if not cards:
        return document, "no model versions yet: run `promo models train fraud`"
    lines = [
        f"{'*' if card.version in live else ' '} {card.version:<22} {card.created_at}  "
        f"{card.training_window['from']}..{card.training_window['to']}  "
        f"{card.primary_metric}={card.metrics[card.primary_metric]:.4f}"
        for card in cards
    ]
    return document, "\n".join([*lines, "(* promoted)"])


def _promote(args: argparse.Namespace, home: Path) -> tuple[Any, str]:
    card = Registry(home).promote(args.version, force=args.force)
    value = card.metrics[card.primary_metric]
    return _card_document(card), f"promoted {card.version} ({card.primary_metric} {value:.4f})"


def _rollback(args: argparse.Namespace, home: Path) -> tuple[Any, str]:
    card = Registry(home).rollback(args.kind)
    return _card_document(card), f"{args.kind} rolled back: {card.version} is promoted again"


_ACTIONS = {
    "train": _train,
    "evaluate": _evaluate,
    "list": _list,
    "promote": _promote,
    "rollback": _rollback,
}


def _card_document(card: ModelCard) -> dict[str, Any]:
    return asdict(card)


def _card_text(card: ModelCard, headline: str) -> str:
    window = card.training_window
    extra = card.extra.get("holdout_window")
    lines = [
        headline,
        f"  window      {window['from']} .. {window['to']}"
        + (f"  (metrics on {extra['from']} .. {extra['to']}, held out)" if extra else ""),
        f"  seed        {card.seed}",
        f"  features    {len(card.features)}",
        f"  fingerprint {card.data_fingerprint[:16]}…",
        f"  {card.primary_metric:<11} {card.metrics[card.primary_metric]:.4f}  (primary)",
    ]
    lines += [
        f"  {name:<44} {value:.4f}"
        for name, value in sorted(card.metrics.items())
        if name != card.primary_metric
    ]
    return "\n".join(lines)
