"""The unsupervised layer: per entity kind (device, IP, payment, customer, code, staff member),
an IsolationForest over the kind's actor-days (one actor on one day, described by what its
attempts did that day), learnt without labels on the merchant's own history.

A forest always ranks someone first, so a high score alone is not a flag. An actor-day is
flagged when both hold:
- its anomaly score is in the top ANOMALY_TOP_SHARE of its kind's actor-days, and
- at least one of its measures is extreme for the kind and for the actor: at least
  EXTREME_TIMES times the kind's EXTREME_QUANTILE quantile and EXTREME_MARGIN above it, and as
  far above the actor's own usual day (what an analyst reads as "what moved": "failures 37,
  where 99.9% of device-days have at most 1").
Both are relative to the merchant's own data, so no threshold is about any one business.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.ensemble import IsolationForest

from models_ml.fraud_rules import ENTITY_COLUMNS

ANOMALY_TOP_SHARE = 0.005
EXTREME_QUANTILE = 0.999
EXTREME_TIMES = 2.0
EXTREME_MARGIN = 2.0
OWN_QUANTILE = 0.9
OWN_MIN_DAYS = 7
OWN_WEEKDAY_QUANTILE = 0.75
OWN_MIN_WEEKDAYS = 4
MIN_ACTOR_DAYS = 100  # a kind with fewer actor-days has too little history to learn "usual"
MIN_ATTEMPTS = 2  # an actor-day of one attempt is too little to call anything about the actor
FOREST = {"n_estimators": 100, "max_samples": 256}
KINDS = ("device", "ip", "payment", "customer", "code", "staff")

# What an actor-day is described by: (name, aggregation over its attempts, words for evidence).
# What an actor-day is described by: (name, the attempts it counts (a 0/1 column; None: all),
# the aggregation, words for the evidence). A flag's attempts are those its extreme measures
# count: a code's day flagged for its refunds holds the refunded redemptions, not the day.
MEASURES: tuple[tuple[str, str | None, pl.Expr, str], ...] = (
    ("attempts", None, pl.len(), "attempts"),
    ("failures", "failed", pl.col("failed").sum(), "failed attempts"),
    ("codes", None, pl.col("code").n_unique(), "distinct codes"),
    ("customers", None, pl.col("customer_id").drop_nulls().n_unique(), "distinct customers"),
    ("devices", None, pl.col("device_hash").drop_nulls().n_unique(), "distinct devices"),
    ("redemptions", "redeemed", pl.col("redeemed").sum(), "redemptions"),
    (
        "non_holder",
        "holder_mismatch",
        pl.col("holder_mismatch").sum(),
        "redemptions of others' codes",
    ),
    ("welcome_takes", "welcome_take", pl.col("welcome_take").sum(), "welcome offers taken"),
    ("quiet_hour", "quiet_hour", pl.col("quiet_hour").sum(), "attempts in quiet hours"),
    (
        "manual",
        "manual_no_customer",
        pl.col("manual_no_customer").sum(),
        "customer-less attempts keyed in",
    ),
    ("rolled_back", "rolled_back", pl.col("rolled_back").sum(), "redemptions rolled back"),
    (
        "refunded_full",
        "refunded_full",
        pl.col("refunded_full").sum(),
        "redemptions refunded in full",
    ),
    ("discount", None, pl.col("discount").sum(), "discount given (minor units)"),
)


@dataclass(frozen=True)
class AnomalyFlag:
    entity_type: str
    entity_id: str
    day: str
    score: float  # the actor-day's share of its kind's actor-days it is more unusual than
    evidence: list[str]
    event_ids: list[str]


def actor_days(attempts: pl.DataFrame, kind: str) -> pl.DataFrame:
    column = ENTITY_COLUMNS[kind]
    return (
        attempts.filter(pl.col(column).is_not_null())
        .group_by(pl.col(column).alias("entity_id"), "event_date")
        .agg(
            *[expr.cast(pl.Float64).alias(name) for name, _, expr, _ in MEASURES],
            event_ids=pl.col("event_id"),
            **{
                f"ids::{name}": pl.col("event_id").filter(pl.col(counted).cast(pl.Float64) > 0)
                for name, counted, _, _ in MEASURES
                if counted is not None
            },
            first_t=pl.col("t").min(),
        )
        .sort("event_date", "entity_id")
    )


def detect_anomalies(attempts: pl.DataFrame, first_day: str, seed: int = 0) -> pl.DataFrame:
    """Flags of actor-days on or after `first_day` (the history before it teaches the forest
    what is usual). `attempts` must carry the derived values of fraud_rules (quiet_hour)."""
    flags: list[dict] = []
    for kind in KINDS:
        flags += _detect_kind(attempts, kind, first_day, seed)
    return pl.DataFrame(
        flags,
        schema={
            "entity_type": pl.String,
            "entity_id": pl.String,
            "day": pl.String,
            "first_t": pl.Int64,
            "score": pl.Float64,
            "evidence": pl.List(pl.String),
            "event_ids": pl.List(pl.String),
        },
    )


def _detect_kind(attempts: pl.DataFrame, kind: str, first_day: str, seed: int) -> list[dict]:
    days = actor_days(attempts, kind)
    if days.height < MIN_ACTOR_DAYS:
        return []
    names = [name for name, _, _, _ in MEASURES]
    matrix = np.log1p(np.clip(days.select(names).to_numpy(), 0, None))
    params = {**FOREST, "max_samples": min(FOREST["max_samples"], len(matrix))}
    forest = IsolationForest(**params, random_state=seed).fit(matrix)
    score = -forest.score_samples(matrix)
    rank = (np.argsort(np.argsort(score, kind="stable"), kind="stable") + 1) / len(score)
    raw = days.select(names).to_numpy()
    extreme = np.quantile(raw, EXTREME_QUANTILE, axis=0, method="higher")
    own = _own_usual(days, names)
    out_of_range = (
        (raw >= EXTREME_TIMES * extreme)
        & (raw >= extreme + EXTREME_MARGIN)
        & (raw >= EXTREME_TIMES * own)
        & (raw >= own + EXTREME_MARGIN)
    )
    chosen = (
        (rank > 1 - ANOMALY_TOP_SHARE)
        & out_of_range.any(axis=1)
        & (raw[:, names.index("attempts")] >= MIN_ATTEMPTS)
        & (days["event_date"] >= first_day).to_numpy()
    )
    words = {name: text for name, _, _, text in MEASURES}
    counted = {name: column for name, column, _, _ in MEASURES}
    flags = []
    for i in np.flatnonzero(chosen):
        row = days.row(int(i), named=True)
        moved = sorted(
            (j for j in range(len(names)) if out_of_range[i, j]),
            key=lambda j: -raw[i, j] / max(extreme[j], 1.0),
        )
        evidence = [
            f"anomaly ({kind}): {words[names[j]]} {raw[i, j]:g} on {row['event_date']}, where "
            f"{EXTREME_QUANTILE:.1%} of {kind}-days have at most {extreme[j]:g}"
            for j in moved
        ]
        flags.append(
            {
                "entity_type": kind,
                "entity_id": row["entity_id"],
                "day": row["event_date"],
                "first_t": row["first_t"],
                "score": float(rank[i]),
                "evidence": evidence,
                "event_ids": _moved_ids(row, [names[j] for j in moved], counted),
            }
        )
    return flags


def _own_usual(days: pl.DataFrame, names: list[str]) -> np.ndarray:
    """Per actor-day and measure, the actor's own usual day: the higher of the OWN_QUANTILE of
    its days and the OWN_WEEKDAY_QUANTILE of its days on the same weekday (weeks have busy days),
    for actors seen on at least OWN_MIN_DAYS days (0 for the others). A shared code that fails a
    dozen times every Friday is busy, not unusual; a bot seen on one day has no usual."""
    weekday = pl.col("event_date").str.to_date().dt.weekday()
    usual = days.with_columns(weekday=weekday).with_columns(
        pl.when(pl.len().over("entity_id") >= OWN_MIN_DAYS)
        .then(
            pl.max_horizontal(
                pl.col(name).quantile(OWN_QUANTILE, "higher").over("entity_id"),
                pl.when(pl.len().over("entity_id", "weekday") >= OWN_MIN_WEEKDAYS)
                .then(
                    pl.col(name)
                    .quantile(OWN_WEEKDAY_QUANTILE, "higher")
                    .over("entity_id", "weekday")
                )
                .otherwise(0.0),
            )
        )
        .otherwise(0.0)
        .alias(name)
        for name in names
    )
    return usual.select(names).to_numpy()


def _moved_ids(row: dict, moved: list[str], counted: dict[str, str | None]) -> list[str]:
    """The attempts behind the extreme measures: all of the day's when one counts them all."""
    if any(counted[name] is None for name in moved):
        return row["event_ids"]
    return sorted({i for name in moved for i in row[f"ids::{name}"]})
