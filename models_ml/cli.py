"""`promo models ...`: train, evaluate, list, promote and roll back models (see registry.py).

    promo models train fraud|personalisation [--from DATE] [--to DATE] [--seed N]
                       [--tolerance X] [--min-cases N]
    promo models evaluate VERSION|KIND [--from DATE] [--to DATE]   (KIND fraud: the whole queue)
    promo models list [--kind KIND]
    promo models promote VERSION [--force] [--tolerance X] [--min-cases N]
    promo models rollback KIND

Training reads the lake under $PROMO_HOME/lake (default window: its last DEFAULT_DAYS days),
holds out the later part of the window for the metrics on the card (which states that window),
decides the promotion gate against the promoted version (promotion_gate.py) and saves a new
version (not promoted). `evaluate VERSION` measures on the card's window unless told otherwise,
and says when the window, its rows or its labels differ from the card's. `evaluate fraud` needs
no model: it runs every fraud layer over the lake (default: all of it) and reports flags per
layer and source, and where labels exist (ground truth, reviews) precision, recall and time to
first flag per pattern. Plain text by default, JSON with --json. Errors: one line on stderr,
exit 2.
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

from models_ml.promotion_gate import DEFAULT_MIN_CASES, DEFAULT_TOLERANCE, GateSettings
from models_ml.registry import KINDS, ModelCard, Registry, RegistryError
from models_ml.training import DEFAULT_DAYS, train_and_register


def register(commands: Any) -> None:
    models = commands.add_parser("models", help="train, evaluate and promote the ML models")
    actions = models.add_subparsers(dest="action", required=True)

    train = actions.add_parser("train", help="train a new version on the lake (not promoted)")
    train.add_argument("kind", choices=KINDS, help="which model")
    _window_arguments(train)
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _gate_arguments(train)

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
    promote.add_argument(
        "--force", action="store_true", help="promote whatever the promotion gate decides"
    )
    _gate_arguments(promote)

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


def _gate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="promote when the lower end of the 95%% interval of (candidate - promoted) on the "
        f"primary metric is above -TOLERANCE (default {DEFAULT_TOLERANCE})",
    )
    parser.add_argument(
        "--min-cases",
        type=int,
        default=DEFAULT_MIN_CASES,
        help="below this many positive cases (fraud cases, customers who redeemed) in the "
        f"held-out rows the gate is undecided (default {DEFAULT_MIN_CASES})",
    )


def _gate_settings(args: argparse.Namespace) -> GateSettings:
    return GateSettings(tolerance=args.tolerance, min_cases=args.min_cases)


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
    card = train_and_register(
        home, args.kind, args.first, args.last, args.seed, gate=_gate_settings(args)
    )
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
    labels = None
    if card.kind == "fraud":
        from models_ml.evaluate import (
            evaluate_fraud_frame,
            labels_fingerprint,
            load_evaluation_frame,
        )

        labelled, cases = load_evaluation_frame(home, first, last)
        metrics = evaluate_fraud_frame(model, labelled, cases, first)
        rows, labels = labelled.height, labels_fingerprint(labelled)
    else:
        events = load_events(home / "lake", None, last)
        metrics = _personalisation().evaluate_personalisation(model, events, first, last)
        rows = int(metrics.get("test_offers", 0))
    window = {"from": first.isoformat(), "to": last.isoformat(), "rows": rows}
    notes = _window_notes(card, window, labels)
    if card.params.get("refit") and getattr(model, "holdout_model", None) is None:
        notes.append(
            "the model was refitted on every offer of its window, the held-out ones included, "
            "and the card's figures come from its fit without them: these are in-sample and "
            "flatter it"
        )
    document = {
        "version": card.version,
        "window": window,
        "card_window": card.metrics_window or None,
        "same_as_card": not notes,
        "notes": notes,
        "primary_metric": card.primary_metric,
        "metrics": metrics,
    }
    lines = [f"{card.version} on {first} .. {last} ({rows} rows)"]
    lines += [f"  note: {note}" for note in notes] or [
        "  the card's window, rows and labels: these figures are the card's"
    ]
    lines += [f"  {name:<44} {value:.4f}" for name, value in sorted(metrics.items())]
    return document, "\n".join(lines)


def _window_notes(card: ModelCard, window: dict[str, Any], labels: str | None) -> list[str]:
    """What makes an evaluation's figures differ from the card's, in words (none: the same)."""
    stated = card.metrics_window
    if not stated:
        return [f"{card.version}'s card states no metrics window (an older card): not comparable"]
    notes = []
    if (window["from"], window["to"]) != (stated["from"], stated["to"]):
        notes.append(
            f"this window differs from the card's ({stated['from']} .. {stated['to']}, "
            f"{stated['rows']} rows): the figures are not comparable with the card's"
        )
    elif window["rows"] != stated["rows"]:
        notes.append(
            f"the card's metrics were measured on {stated['rows']} rows of this window, this "
            f"evaluation on {window['rows']}: the figures are not comparable with the card's"
        )
    elif labels is not None and stated.get("labels") not in (None, labels):
        notes.append(
            "the window's labels changed since training (review decisions recorded since): "
            "the figures are not comparable with the card's"
        )
    fitted = card.extra.get("fit_window")
    if fitted and window["from"] <= fitted["to"] and fitted["from"] <= window["to"]:
        notes.append(
            f"the model was fitted on {fitted['from']} .. {fitted['to']}, which this window "
            "overlaps: on those days the figures are in-sample and flatter it"
        )
    return notes


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
    """--from/--to, else the window the card's metrics were measured on (older cards: the
    version's held-out days, else the days after its training window, else the training window
    itself)."""
    held = card.metrics_window or card.extra.get("holdout_window")
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
    from models_ml.promotion import gate_for_version

    registry = Registry(home)
    card = registry.card(args.version)
    current = registry.promoted(card.kind)
    gate = None
    if current is not None and current.version != card.version and not args.force:
        gate = gate_for_version(home, card, _gate_settings(args))
    card = registry.promote(args.version, force=args.force, gate=gate)
    value = card.metrics[card.primary_metric]
    how = "forced, gate skipped" if args.force and current is not None else "gate: promote"
    lines = [f"promoted {card.version} ({card.primary_metric} {value:.4f}; {how})"]
    if gate is not None:
        lines += _gate_lines(gate)
    return {**_card_document(card), "decided_gate": gate}, "\n".join(lines)


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


def _gate_lines(gate: dict[str, Any]) -> list[str]:
    """The promotion gate's decision, its figures and its reason."""
    lines = [f"  promotion   {gate['decision'].upper()} against {gate['against'] or 'nothing'}"]
    if gate.get("interval"):
        low, high = gate["interval"]
        lines.append(
            f"              {gate['metric']} {gate['candidate']:.4f} vs {gate['promoted']:.4f}: "
            f"difference {gate['difference']:+.4f}, {gate['confidence']:.0%} interval "
            f"[{low:+.4f}, {high:+.4f}], tolerance {gate['tolerance']:g}"
        )
    if "cases" in gate:
        lines.append(
            f"              {gate['cases']} {gate['unit']}, {gate['other_cases']} "
            f"{gate['other_unit']}, {gate['rows']} rows (cases resampled, not rows)"
        )
    compared = gate.get("window")
    if compared:
        lines.append(
            f"              compared on {compared['from']} .. {compared['to']}"
            + (f"; left out: {compared['left_out']}" if compared.get("left_out") else "")
        )
    lines.append(f"              {gate['reason']}")
    return lines


def _card_text(card: ModelCard, headline: str) -> str:
    window = card.training_window
    stated = card.metrics_window
    lines = [
        headline,
        f"  window      {window['from']} .. {window['to']}",
        "  metrics on  "
        + (
            f"{stated['from']} .. {stated['to']}, {stated['rows']} rows"
            + (f", {stated['cases']} cases" if "cases" in stated else "")
            + " (held out)"
            if stated
            else "an unstated window (an older card)"
        ),
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
    if card.promotion_gate:
        lines += _gate_lines(card.promotion_gate)
    return "\n".join(lines)
