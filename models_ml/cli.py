"""`promo models ...`: train, evaluate, list, promote and roll back models (see registry.py).

    promo models train fraud|personalisation [--from DATE] [--to DATE] [--seed N]
                       [--split auto|campaign|time]
    promo models evaluate VERSION|KIND [--from DATE] [--to DATE]
    promo models list [--kind KIND]
    promo models promote VERSION [--force]
    promo models rollback KIND

Training reads the lake under $PROMO_HOME/lake (default window: its last DEFAULT_DAYS days;
personalisation's, PERSONALISATION_DEFAULT_DAYS), holds out the later part of the window (the
latest campaigns, or the later offers) for the metrics on the card, and saves a new version
(not promoted). Evaluating a personalisation version also writes its ROC, precision-recall,
calibration, feature-importance and (with an uplift model) Qini plots, and evaluation.json,
in the version's `evaluation/` folder beside its card. Plain text by default, JSON with
--json. Errors: one line on stderr, exit 2.
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
    train.add_argument(
        "--split",
        choices=("auto", "campaign", "time"),
        default="auto",
        help="personalisation: hold out the latest campaigns whole (one-shot campaigns) or the "
        "later offers (continuous autopilots); auto picks by how the campaigns were sent",
    )

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
    card = train_and_register(
        home, args.kind, args.first, args.last, args.seed, split=getattr(args, "split", "auto")
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
    from models_ml.data import lake_days

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
        metrics, plots = _evaluate_personalisation(args, registry, model, card, first, last, home)
    document = {
        "version": card.version,
        "window": {"from": first.isoformat(), "to": last.isoformat()},
        "primary_metric": card.primary_metric,
        "metrics": metrics,
    }
    if card.kind == "personalisation":
        document["plots"] = [str(path) for path in plots]
    lines = [f"{card.version} on {first} .. {last}", *metric_lines(metrics)]
    if card.kind == "personalisation":
        lines.append(f"plots and evaluation.json in {plots[0].parent}" if plots else "no plots")
    return document, "\n".join(lines)


def _evaluate_personalisation(
    args: argparse.Namespace,
    registry: Registry,
    model: Any,
    card: ModelCard,
    first: date,
    last: date,
    home: Path,
) -> tuple[dict[str, float], list[Path]]:
    """Metrics on the window, and the plots beside the card. Without --from/--to the window is
    the version's own held-out part, scored by its fit without that part."""
    from models_ml.data import load_events
    from models_ml.personalisation_plots import write_evaluation

    holdout = card.extra.get("holdout") if args.first is None and args.last is None else None
    events = load_events(home / "lake", None, last)
    metrics, scored, arms = _personalisation().evaluate_personalisation(
        model, events, first, last, holdout=holdout
    )
    scorer = model.holdout_model if holdout is not None else model
    about = {
        "version": card.version,
        "window": {"from": first.isoformat(), "to": last.isoformat()},
        "held_out_part": holdout,
        "scored_by": "the fit without the held-out part" if holdout else "the model",
    }
    written = write_evaluation(
        registry.folder(card.version) / "evaluation", metrics, scored, arms, scorer.propensity,
        about,
    )  # fmt: skip
    return metrics, [path for path in written if path.suffix == ".png"]


def _evaluation_window(
    args: argparse.Namespace, card: ModelCard, lake_last: date
) -> tuple[date, date]:
    """--from/--to, else the version's held-out days, else the days after its training window,
    else the training window itself (in-sample: say so by passing a window)."""
    held = card.extra.get("holdout_window")
    holdout = card.extra.get("holdout")  # personalisation: its held-out campaigns or offers
    trained_to = date.fromisoformat(card.training_window["to"])
    if held:
        default = date.fromisoformat(held["from"]), date.fromisoformat(held["to"])
    elif isinstance(holdout, dict):
        default = date.fromisoformat(card.training_window["from"]), trained_to
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
    lines += metric_lines({k: v for k, v in card.metrics.items() if k != card.primary_metric})
    ranking = card.extra.get("ranking")
    if ranking and ranking.get("ranked_by") != "model":
        lines.append(
            f"  next best offers ranked by the {ranking['ranked_by']} baseline: the model's "
            f"{ranking['metric']} is not above {', '.join(ranking['beaten_by'])}'s"
        )
    return "\n".join(lines)


def metric_lines(metrics: dict[str, float]) -> list[str]:
    """One line per metric, its 95% interval beside it when it has one; a lift over a baseline
    is shown by its interval alone."""
    lines = []
    for name, value in sorted(metrics.items()):
        if "_lift_over_" in name:
            if name.endswith("_ci95_low"):
                base = name.removesuffix("_ci95_low")
                high = metrics.get(f"{base}_ci95_high", float("nan"))
                lines.append(f"  {base:<44} [{value:.4f}, {high:.4f}]")
            continue
        if name.endswith(("_ci95_low", "_ci95_high")):
            continue
        low, high = metrics.get(f"{name}_ci95_low"), metrics.get(f"{name}_ci95_high")
        interval = f"  [{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""
        lines.append(f"  {name:<44} {value:.4f}{interval}")
    return lines
