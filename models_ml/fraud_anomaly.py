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
MIN_ACTOR_DAYS = 100
REFERENCE_SAMPLE = 20_000  # actor-days the forest is fitted on and ranks candidates against  # a kind with fewer actor-days has too little history to learn "usual"
MIN_ATTEMPTS = 2  # an actor-day of one attempt is too little to call anything about the actor
FOREST = {"n_estimators": 100, "max_samples": 256}
KINDS = ("device", "ip", "payment", "customer", "code", "voucher", "staff")

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


def actor_days(attempts: pl.DataFrame, kind: str) -> pl.DataFrame:
    column = ENTITY_COLUMNS[kind]
    return (
        attempts.filter(pl.col(column).is_not_null())
        .group_by(pl.col(column).alias("entity_id"), "event_date")
        .agg(
            *[expr.cast(pl.Float64).alias(name) for name, _, expr, _ in MEASURES],
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
    frame = pl.DataFrame(flags, schema=_FLAG_SCHEMA)
    return _with_event_ids(attempts, frame)


_FLAG_SCHEMA = {
    "entity_type": pl.String,
    "entity_id": pl.String,
    "day": pl.String,
    "first_t": pl.Int64,
    "score": pl.Float64,
    "evidence": pl.List(pl.String),
    "moved": pl.List(pl.String),
}


def _detect_kind(attempts: pl.DataFrame, kind: str, first_day: str, seed: int) -> list[dict]:
    """The forest is fitted on every actor-day of the kind but scores only those that could be
    flagged (extreme for the kind, enough attempts, in the window) and a seeded sample that
    places them among the rest: the kind's other actor-days are most of the work and none of
    the flags."""
    days = actor_days(attempts, kind)
    if days.height < MIN_ACTOR_DAYS:
        return []
    names = [name for name, _, _, _ in MEASURES]
    raw = days.select(names).to_numpy()
    extreme = np.quantile(raw, EXTREME_QUANTILE, axis=0, method="higher")
    wild = (raw >= EXTREME_TIMES * extreme) & (raw >= extreme + EXTREME_MARGIN)
    candidates = np.flatnonzero(
        wild.any(axis=1)
        & (raw[:, names.index("attempts")] >= MIN_ATTEMPTS)
        & (days["event_date"] >= first_day).to_numpy()
    )
    if not len(candidates):
        return []
    own = _own_usual(days, names, candidates)
    out_of_range = (
        wild[candidates]
        & (raw[candidates] >= EXTREME_TIMES * own)
        & (raw[candidates] >= own + EXTREME_MARGIN)
    )
    keep = out_of_range.any(axis=1)
    candidates, out_of_range = candidates[keep], out_of_range[keep]
    if not len(candidates):
        return []
    matrix = np.log1p(np.clip(raw, 0, None))
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(matrix), min(len(matrix), REFERENCE_SAMPLE), replace=False)
    params = {**FOREST, "max_samples": min(FOREST["max_samples"], len(matrix))}
    forest = IsolationForest(**params, random_state=seed).fit(matrix[sample])
    reference = np.sort(-forest.score_samples(matrix[sample]))
    score = -forest.score_samples(matrix[candidates])
    rank = np.searchsorted(reference, score, side="right") / len(reference)
    chosen = rank > 1 - ANOMALY_TOP_SHARE
    words = {name: text for name, _, _, text in MEASURES}
    flags = []
    for k in np.flatnonzero(chosen):
        i = int(candidates[k])
        row = days.row(i, named=True)
        moved = sorted(
            (j for j in range(len(names)) if out_of_range[k, j]),
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
                "score": float(rank[k]),
                "evidence": evidence,
                "moved": [names[j] for j in moved],
            }
        )
    return flags


def _own_usual(days: pl.DataFrame, names: list[str], rows: np.ndarray) -> np.ndarray:
    """For the actor-days `rows`, per measure, the actor's own usual day: the higher of the
    OWN_QUANTILE of its days and the OWN_WEEKDAY_QUANTILE of its days on the same weekday (weeks
    have busy days), for actors seen on at least OWN_MIN_DAYS days (0 for the others). A shared
    code that fails a dozen times every Friday is busy, not unusual; a bot seen on one day has
    no usual."""
    wanted = days[rows.tolist()].select("entity_id", "event_date").with_row_index("k")
    mine = days.join(wanted.select("entity_id").unique(), on="entity_id")
    weekday = pl.col("event_date").str.to_date().dt.weekday()
    usual = mine.with_columns(weekday=weekday).with_columns(
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
    return (
        wanted.join(usual, on=["entity_id", "event_date"], how="left")
        .sort("k")
        .select(names)
        .to_numpy()
    )


def _with_event_ids(attempts: pl.DataFrame, flags: pl.DataFrame) -> pl.DataFrame:
    """Each flag's attempts: those its moved measures count, or the whole actor-day when one of
    them counts every attempt (a code's day flagged for its refunds holds the refunded
    redemptions, not the day)."""
    if flags.is_empty():
        return flags.drop("moved").with_columns(event_ids=pl.lit([], pl.List(pl.String)))
    counted = {name: column for name, column, _, _ in MEASURES}
    parts = []
    for kind in flags["entity_type"].unique().to_list():
        column = ENTITY_COLUMNS[kind]
        mine = flags.filter(pl.col("entity_type") == kind).with_row_index("flag")
        rows = attempts.select(
            "event_id",
            "event_date",
            pl.col(column).alias("entity_id"),
            *[pl.col(c).cast(pl.Float64).alias(c) for c in {v for v in counted.values() if v}],
        ).join(
            mine.select("flag", "entity_id", pl.col("day").alias("event_date"), "moved"),
            on=["entity_id", "event_date"],
        )
        every = (
            pl.col("moved")
            .list.eval(pl.element().is_in([n for n, c in counted.items() if c is None]))
            .list.any()
        )
        counts = pl.any_horizontal(
            pl.col("moved").list.contains(name) & (pl.col(column_) > 0)
            for name, column_ in counted.items()
            if column_ is not None
        )
        ids = rows.filter(every | counts).group_by("flag").agg(event_ids=pl.col("event_id").sort())
        parts.append(mine.join(ids, on="flag", how="left").drop("flag"))
    return (
        pl.concat(parts)
        .drop("moved")
        .with_columns(pl.col("event_ids").fill_null(pl.lit([], pl.List(pl.String))))
    )
