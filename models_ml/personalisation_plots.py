"""What a data scientist looks at besides the figures: ROC and precision-recall curves, a
calibration table, feature importance and the Qini curve, as Polars frames a notebook can plot
its own way, and as PNG files beside a model's card (`write_evaluation`).

Every curve function takes a scored frame (`personalisation.evaluate_personalisation`'s: a 0/1
`label` column and one column of scores per ranking) and returns a frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from sklearn.metrics import precision_recall_curve, roc_curve

from models_ml import uplift

PLOTS = ("roc.png", "precision_recall.png", "calibration.png", "feature_importance.png")
QINI_PLOT = "qini.png"
EVALUATION_FILE = "evaluation.json"
MAX_CURVE_POINTS = 400  # a curve of 60,000 thresholds drawn as this many points


def roc_curves(scored: pl.DataFrame, scorers: Sequence[str], label: str = "label") -> pl.DataFrame:
    """Per scorer: false positive rate, true positive rate (columns scorer, fpr, tpr)."""
    y = _labels(scored, label)
    parts = []
    for name in scorers:
        fpr, tpr, _ = roc_curve(y, scored[name].to_numpy())
        keep = _thin(len(fpr))
        parts.append(pl.DataFrame({"scorer": name, "fpr": fpr[keep], "tpr": tpr[keep]}))
    return pl.concat(parts)


def precision_recall_curves(
    scored: pl.DataFrame, scorers: Sequence[str], label: str = "label"
) -> pl.DataFrame:
    """Per scorer: recall and precision at each threshold (columns scorer, recall, precision)."""
    y = _labels(scored, label)
    parts = []
    for name in scorers:
        precision, recall, _ = precision_recall_curve(y, scored[name].to_numpy())
        keep = _thin(len(recall))
        parts.append(
            pl.DataFrame({"scorer": name, "recall": recall[keep], "precision": precision[keep]})
        )
    return pl.concat(parts)


def calibration(
    scored: pl.DataFrame, score: str = "model", label: str = "label", bins: int = 10
) -> pl.DataFrame:
    """Rows in equal-count bins of the score: mean predicted probability and observed rate."""
    _labels(scored, label)
    return (
        scored.select(score, label)
        .with_columns(bin=(pl.col(score).rank("ordinal") - 1) * bins // pl.len())
        .group_by("bin")
        .agg(
            rows=pl.len(),
            mean_predicted=pl.col(score).mean(),
            observed_rate=pl.col(label).mean(),
        )
        .sort("bin")
    )


def feature_importance(booster: Any, top: int | None = None) -> pl.DataFrame:
    """Total gain and number of splits per feature, largest gain first."""
    frame = pl.DataFrame(
        {
            "feature": booster.feature_name(),
            "gain": booster.feature_importance("gain").astype(np.float64),
            "splits": booster.feature_importance("split").astype(np.int64),
        }
    ).sort(["gain", "feature"], descending=[True, False])
    return frame.head(top) if top else frame


def write_evaluation(
    folder: Path,
    metrics: dict[str, float],
    scored: pl.DataFrame,
    arms: pl.DataFrame,
    booster: Any,
    about: dict[str, Any],
) -> list[Path]:
    """The PNGs and `evaluation.json` (metrics and what they were measured on) in `folder`,
    each written whole (a temporary file renamed). Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    scorers = [c for c in scored.columns if c not in ("customer_id", "campaign_id", "voucher_id",
                                                      "label")]  # fmt: skip
    written = [
        _save(folder / "roc.png", _plot_roc(roc_curves(scored, scorers))),
        _save(
            folder / "precision_recall.png",
            _plot_pr(precision_recall_curves(scored, scorers), float(scored["label"].mean())),  # type: ignore[arg-type]
        ),
        _save(folder / "calibration.png", _plot_calibration(calibration(scored))),
        _save(folder / "feature_importance.png", _plot_importance(feature_importance(booster, 25))),
    ]
    qini = folder / QINI_PLOT
    if arms.height and "uplift" in arms.columns and arms["uplift"].null_count() == 0:
        curve = uplift.qini_curve(arms, "uplift", "treated", "converted")
        written.append(_save(qini, _plot_qini(curve, metrics)))
    elif qini.exists():
        qini.unlink()  # from an earlier evaluation that had an uplift model
    document = {"metrics": metrics, **about, "plots": [p.name for p in written]}
    target = folder / EVALUATION_FILE
    staging = target.with_suffix(".tmp")
    staging.write_text(json.dumps(document, indent=2, sort_keys=True))
    staging.replace(target)
    return [*written, target]


# -- drawing -----------------------------------------------------------------------------------


def _plot_roc(curves: pl.DataFrame) -> plt.Figure:
    figure, axes = plt.subplots(figsize=(6, 5))
    for (name,), part in curves.group_by("scorer", maintain_order=True):
        axes.plot(part["fpr"], part["tpr"], label=name, linewidth=2 if name == "model" else 1)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curves")
    axes.legend(loc="lower right", fontsize=8)
    return figure


def _plot_pr(curves: pl.DataFrame, rate: float) -> plt.Figure:
    figure, axes = plt.subplots(figsize=(6, 5))
    for (name,), part in curves.group_by("scorer", maintain_order=True):
        axes.plot(part["recall"], part["precision"], label=name,
                  linewidth=2 if name == "model" else 1)  # fmt: skip
    axes.axhline(rate, color="grey", linestyle=":", linewidth=1)
    axes.set(xlabel="recall", ylabel="precision", title="Precision-recall curves")
    axes.legend(loc="upper right", fontsize=8)
    return figure


def _plot_calibration(table: pl.DataFrame) -> plt.Figure:
    figure, axes = plt.subplots(figsize=(6, 5))
    top = max(float(table["mean_predicted"].max() or 0), float(table["observed_rate"].max() or 0))
    axes.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1)
    axes.plot(table["mean_predicted"], table["observed_rate"], marker="o")
    axes.set(
        xlabel="mean predicted propensity (tenths of the rows)",
        ylabel="observed redemption rate",
        title="Calibration",
    )
    return figure


def _plot_importance(table: pl.DataFrame) -> plt.Figure:
    figure, axes = plt.subplots(figsize=(7, 7))
    ordered = table.reverse()
    axes.barh(ordered["feature"], ordered["gain"])
    axes.set(xlabel="total gain", title="Feature importance (top 25)")
    axes.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    return figure


def _plot_qini(curve: pl.DataFrame, metrics: dict[str, float]) -> plt.Figure:
    figure, axes = plt.subplots(figsize=(6, 5))
    axes.plot(curve["share_targeted"], curve["model"], label="uplift model", linewidth=2)
    axes.plot(curve["share_targeted"], curve["perfect"], label="perfect", linestyle="--")
    axes.plot(curve["share_targeted"], curve["random"], label="random", color="grey")
    value = metrics.get("qini")
    band = (metrics.get("qini_random_ci95_low"), metrics.get("qini_random_ci95_high"))
    title = "Qini curve"
    if value is not None and None not in band:
        title += f": {value:.3f} (random rankings {band[0]:.3f} .. {band[1]:.3f})"
    axes.set(xlabel="share of assignments targeted", ylabel="incremental conversions",
             title=title)  # fmt: skip
    axes.legend(loc="upper left", fontsize=8)
    return figure


def _save(path: Path, figure: plt.Figure) -> Path:
    staging = path.with_name(f".{path.name}.tmp")
    figure.savefig(staging, dpi=100, format="png")
    plt.close(figure)
    staging.replace(path)
    return path


def _labels(scored: pl.DataFrame, label: str) -> np.ndarray:
    if label not in scored.columns:
        raise ValueError(f"the scored frame lacks the label column {label!r}")
    y = scored[label].to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError(f"the scored frame's {label!r} holds a single class: no curve to draw")
    return y


def _thin(size: int) -> np.ndarray:
    if size <= MAX_CURVE_POINTS:
        return np.arange(size)
    return np.unique(np.linspace(0, size - 1, MAX_CURVE_POINTS).round().astype(int))
