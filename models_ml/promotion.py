"""The promotion gate on data: the candidate and the promoted model score the same held-out rows
(the rows the candidate's card measured its metrics on, less any the promoted model was fitted
on), and promotion_gate.decide says whether the candidate may replace it.

Cases, the unit the bootstrap resamples, per kind:
- fraud: a ground-truth case's attempts are one case; any other attempt belongs to its actor
  (its customer, else its device, else itself): a fraud attempt labelled by a review makes its
  actor a fraud case, the attempts of an honest customer are one legitimate case;
- personalisation: a customer's offers; but see `_personalisation_rows`.

`promo models train` and the weekly retrain decide the gate when a version is trained (it is
written on its card); `promo models promote` decides it again when the promoted version has
changed since, or when other settings are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from models_ml.data import DataError
from models_ml.promotion_gate import PROMOTE, UNDECIDED, GateSettings, decide
from models_ml.registry import ModelCard, Registry


@dataclass(frozen=True)
class PairedRows:
    """Held-out rows scored by both models, each row's case, and what was left out."""

    y: np.ndarray
    candidate: np.ndarray
    promoted: np.ndarray
    cases: np.ndarray
    unit: str
    other_unit: str
    window: dict[str, Any]  # the days compared and the days left out, with why


def gate_against_promoted(
    home: Path,
    kind: str,
    model: Any,
    metrics_window: dict[str, Any],
    primary_metric: str,
    settings: GateSettings | None = None,
) -> dict[str, Any]:
    """The gate's decision for a candidate `model` of `kind` whose metrics were measured on
    `metrics_window`, against the version promoted now (the card's `promotion_gate` field)."""
    settings = settings or GateSettings()
    registry = Registry(home)
    current = registry.promoted(kind)
    if current is None:
        return {
            "decision": PROMOTE,
            "reason": f"no {kind} model is promoted: the first one needs no comparison",
            "against": None,
        }
    promoted_model, _ = registry.load(kind, current.version)
    rows_of = _fraud_rows if kind == "fraud" else _personalisation_rows
    try:
        rows = rows_of(home, model, promoted_model, current, metrics_window)
    except _PromotedCannotScore as why:
        return {"decision": PROMOTE, "reason": str(why), "against": current.version}
    except _CannotCompare as why:
        return {
            "decision": UNDECIDED,
            "reason": str(why),
            "against": current.version,
            "metric": primary_metric,
            "tolerance": settings.tolerance,
            "min_cases": settings.min_cases,
        }
    decision = decide(
        primary_metric,
        rows.y,
        rows.candidate,
        rows.promoted,
        rows.cases,
        settings,
        unit=rows.unit,
        other_unit=rows.other_unit,
    )
    return {
        **decision.as_dict(),
        "against": current.version,
        "window": rows.window,
        "seed": settings.seed,
    }


def gate_for_version(
    home: Path, card: ModelCard, settings: GateSettings | None = None
) -> dict[str, Any]:
    """The gate's decision for a saved version: the one on its card when it was decided against
    the version promoted now with the same settings, else decided again on the lake."""
    settings = settings or GateSettings()
    registry = Registry(home)
    current = registry.promoted(card.kind)
    recorded = card.promotion_gate
    if recorded is not None and recorded.get("against") == (current and current.version):
        # a setting the decision did not depend on is not recorded with it
        same = current is None or all(
            recorded.get(name, getattr(settings, name)) == getattr(settings, name)
            for name in ("tolerance", "min_cases", "confidence", "resamples", "seed")
        )
        if same:
            return recorded
    if not card.metrics_window:
        raise DataError(
            f"{card.version}'s card states no metrics window (trained before cards did): "
            "retrain it, or promote it with --force"
        )
    model, _ = registry.load(card.kind, card.version)
    return gate_against_promoted(
        home, card.kind, model, card.metrics_window, card.primary_metric, settings
    )


class _CannotCompare(Exception):
    """The two models cannot be compared on these rows; the message says why."""


class _PromotedCannotScore(Exception):
    """The promoted model cannot score today's rows (trained on other features): scoring cannot
    use it either, so any candidate that can is better; the message says why."""


# -- fraud -------------------------------------------------------------------------------------
def _fraud_rows(
    home: Path,
    candidate: Any,
    promoted: Any,
    promoted_card: ModelCard,
    window: dict[str, Any],
) -> PairedRows:
    from models_ml.evaluate import load_evaluation_frame
    from models_ml.fraud import score_attempts

    first, last = date.fromisoformat(window["from"]), date.fromisoformat(window["to"])
    labelled, _ = load_evaluation_frame(home, first, last)
    try:
        by_promoted = score_attempts(promoted, labelled)["score"]
    except Exception as error:  # whatever stops it: a model pickled by older code, other features
        raise _PromotedCannotScore(
            f"the promoted {promoted_card.version} cannot score today's attempts "
            f"({type(error).__name__}: {error}), so scoring cannot use it either: the candidate, "
            "which can, replaces it without a comparison"
        ) from None
    # Days the promoted model was fitted on would flatter it: leave them out.
    fitted = promoted_card.extra.get("fit_window") or promoted_card.training_window
    unseen = labelled.with_columns(by_promoted=by_promoted).filter(
        ~pl.col("event_date").is_between(pl.lit(fitted["from"]), pl.lit(fitted["to"]))
    )
    compared = {"from": first.isoformat(), "to": last.isoformat(), "rows": unseen.height}
    if unseen.height < labelled.height:
        compared["left_out"] = (
            f"{labelled.height - unseen.height} attempts on days {promoted_card.version} was "
            f"fitted on ({fitted['from']} .. {fitted['to']})"
        )
    if unseen.is_empty():
        raise _CannotCompare(
            f"every held-out attempt of {first} .. {last} falls on days {promoted_card.version} "
            f"was fitted on ({fitted['from']} .. {fitted['to']}): no fair comparison"
        )
    actor = pl.coalesce(
        pl.when(pl.col(name) != "").then(pl.concat_str(pl.lit(f"{name}:"), pl.col(name)))
        for name in ("customer_id", "device_hash")
    )
    cases = unseen.select(
        pl.coalesce(
            pl.concat_str(pl.lit("case:"), "case_id"),
            actor,
            pl.concat_str(pl.lit("attempt:"), "event_id"),
        )
    ).to_series()
    return PairedRows(
        y=unseen["label"].to_numpy(),
        candidate=score_attempts(candidate, unseen)["score"].to_numpy(),
        promoted=unseen["by_promoted"].to_numpy(),
        cases=cases.to_numpy(),
        unit="fraud cases",
        other_unit="legitimate customers",
        window=compared,
    )


# -- personalisation ---------------------------------------------------------------------------
def _personalisation_rows(
    home: Path,
    candidate: Any,
    promoted: Any,
    promoted_card: ModelCard,
    window: dict[str, Any],
) -> PairedRows:
    """A personalisation candidate is refitted on every offer of its window, the held-out ones
    included, and keeps no fit without them: scored by it, its held-out offers are in-sample,
    so the two models cannot be compared fairly on them (a customer's offers would be one
    case)."""
    raise _CannotCompare(
        "the personalisation candidate was refitted on its held-out offers too and keeps no fit "
        "without them, so no held-out offer is unseen by it: no fair comparison; check its card "
        "against the promoted one's and promote it with --force"
    )
