"""Abuse nobody wrote a rule for: for each store, staff member, sales channel, campaign and shared
code, the rates that describe its normal use, day by day, compared with its own past and with
its peers, so that a spike or a drift surfaces whatever caused it.

Rates (METRICS): rejections, rollbacks, refunds, customer-less manual entries, attempts in quiet
hours, new accounts, redemptions by non-holders, small baskets, and the share of each sales
channel. Each is a count of attempts over a count of attempts (x of n) per actor per day.

Four tests per actor and rate, each on binomial counts (so a rate of 2 out of 3 weighs less than
200 out of 300), with the actor's own day-to-day dispersion taken out (`_dispersion`):
- spike: one day against the BASELINE_DAYS before it;
- week: the 7 days ending on a day against the BASELINE_DAYS before them;
- drift: the stretch of at least MIN_SEGMENT_DAYS days whose rate differs most from the rest of
  the series (a change-point search: a likelihood ratio over every start and end);
- peers: the last BASELINE_DAYS of the actor against the other actors of its kind then.
A test flags only increases that are large in both senses: significant (z or likelihood ratio)
and big (a multiple of the rate before, and some points above it), with a few events at least.
The evidence names the rate before and after, the days, and a small daily series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

BASELINE_DAYS = 28
DRIFT_HISTORY_DAYS = 84  # how far back a change point is searched (and the look-back it needs)
LOOKBACK_DAYS = DRIFT_HISTORY_DAYS
MIN_SEGMENT_DAYS = 7
MIN_HISTORY_DAYS = 14  # an actor is compared with its own past once it has this much of one
MIN_BASELINE_N = 30  # ... and at least this many attempts in it (the rate's denominator)
PRIOR_WEIGHT = 30.0  # pseudo-attempts at the peers' rate added to an actor's own baseline
Z_SPIKE = 5.0
Z_PEERS = 6.0
LLR_DRIFT = 20.0
MIN_COUNT = {"spike": 4, "week": 5, "drift": 6, "peers": 6}
MIN_RATIO = {"spike": 3.0, "week": 2.0, "drift": 2.0, "peers": 3.0}
MIN_POINTS = 0.05  # the rate must also rise by at least this (5 percentage points)
MIN_ACTOR_ATTEMPTS = 50  # campaigns and codes with fewer attempts are not watched
SERIES_DAYS = 28  # the evidence's daily series
SMALL_BASKET_QUANTILE = 0.1
CHANGE_POINT_GRID = 120

DIMENSIONS = {
    "store": "store_id",
    "staff": "staff_id",
    "sales_channel": "sales_channel",
    "campaign": "campaign_id",
    "code": "code",
}
# A campaign's rejections rise as its vouchers expire and holders keep trying them: the normal
# life of a campaign, not a change in how it is used.
NOT_WATCHED = {"campaign": ("rejection_rate",)}
# Peers are like-for-like actors: stores, staff members. Campaigns, codes and sales channels
# differ by design (rules, minimums, who uses them), so they are compared with their own past.
PEER_DIMENSIONS = ("store", "staff")


@dataclass(frozen=True)
class Metric:
    numerator: pl.Expr
    denominator: pl.Expr
    words: str


def metrics(attempts: pl.DataFrame) -> dict[str, Metric]:
    """The rates watched, with the channel shares of the channels the ledger has."""
    succeeded = pl.col("event_type") == "redemption_succeeded"
    small = (
        attempts.filter(succeeded, pl.col("order_amount") > 0)["order_amount"].quantile(
            SMALL_BASKET_QUANTILE, "lower"
        )
        or 0.0
    )
    table = {
        "rejection_rate": Metric(pl.col("failed") > 0, pl.lit(True), "attempts that failed"),
        "rollback_rate": Metric(pl.col("rolled_back"), succeeded, "redemptions rolled back"),
        "refund_rate": Metric(
            pl.col("refunded") & succeeded, succeeded, "redemptions whose order was refunded"
        ),
        "manual_share": Metric(
            pl.col("manual_no_customer") > 0,
            pl.lit(True),
            "customer-less attempts keyed in by staff",
        ),
        "quiet_hour_share": Metric(pl.col("quiet_hour"), pl.lit(True), "attempts in quiet hours"),
        "new_account_share": Metric(
            (pl.col("account_age_h") >= 0) & (pl.col("account_age_h") < 24),
            pl.col("customer_id").is_not_null(),
            "attempts by accounts under a day old",
        ),
        "non_holder_share": Metric(
            pl.col("holder_mismatch") > 0,
            pl.col("holder_id").is_not_null() & pl.col("customer_id").is_not_null(),
            "redemptions of codes published to someone else",
        ),
        "small_basket_share": Metric(
            succeeded & (pl.col("order_amount") <= small),
            succeeded & (pl.col("order_amount") > 0),
            f"redemptions on orders of at most {small:g} (the smallest tenth)",
        ),
    }
    for channel in sorted(attempts["sales_channel"].drop_nulls().unique().to_list()):
        table[f"channel_share:{channel}"] = Metric(
            pl.col("sales_channel") == channel, pl.lit(True), f"attempts through {channel}"
        )
    return table


def daily_counts(attempts: pl.DataFrame) -> pl.DataFrame:
    """One row per dimension, actor, metric and day with an attempt: x (numerator) and n."""
    table = metrics(attempts)
    flagged = attempts.with_columns(
        *[m.numerator.fill_null(False).alias(f"x::{name}") for name, m in table.items()],
        *[m.denominator.fill_null(False).alias(f"n::{name}") for name, m in table.items()],
    )
    parts = []
    for dimension, column in DIMENSIONS.items():
        names = [n for n in table if n not in NOT_WATCHED.get(dimension, ())]
        if dimension == "sales_channel":
            names = [n for n in names if not n.startswith("channel_share:")]
        watched = flagged.filter(pl.col(column).is_not_null())
        if dimension in ("campaign", "code"):
            busy = watched.group_by(column).len().filter(pl.col("len") >= MIN_ACTOR_ATTEMPTS)
            watched = watched.filter(pl.col(column).is_in(busy[column]))
        if watched.is_empty():
            continue
        per_day = watched.group_by(column, "event_date").agg(
            *[pl.col(f"x::{n}").sum() for n in names], *[pl.col(f"n::{n}").sum() for n in names]
        )
        long = pl.concat(
            [
                per_day.select(
                    pl.lit(dimension).alias("dimension"),
                    pl.col(column).cast(pl.String).alias("actor"),
                    pl.lit(name).alias("metric"),
                    pl.col("event_date"),
                    pl.col(f"x::{name}").cast(pl.Float64).alias("x"),
                    pl.col(f"n::{name}").cast(pl.Float64).alias("n"),
                )
                for name in names
            ]
        )
        parts.append(long.filter(pl.col("n") > 0))
    if not parts:
        return pl.DataFrame(
            schema={
                "dimension": pl.String,
                "actor": pl.String,
                "metric": pl.String,
                "event_date": pl.String,
                "x": pl.Float64,
                "n": pl.Float64,
            }
        )
    return pl.concat(parts)


def _dispersion(x: np.ndarray, n: np.ndarray) -> float:
    """How much more the actor's daily counts vary than binomial counts would (>= 1): the
    median squared Pearson residual over the median of a chi-square with one degree of freedom,
    robust to the few days that are the anomaly itself."""
    used = n > 0
    if used.sum() < MIN_SEGMENT_DAYS:
        return 1.0
    p = x[used].sum() / n[used].sum()
    if p <= 0 or p >= 1:
        return 1.0
    residuals = (x[used] - n[used] * p) / np.sqrt(n[used] * p * (1 - p))
    return max(1.0, float(np.median(residuals**2)) / 0.4549)


def _z(x: float, n: float, p0: float) -> float:
    p0 = min(max(p0, 1e-4), 1 - 1e-4)
    return (x - n * p0) / np.sqrt(n * p0 * (1 - p0))


def _loglik(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    p = np.where(n > 0, x / np.maximum(n, 1e-12), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = x * np.log(np.where(p > 0, p, 1.0)) + (n - x) * np.log(np.where(p < 1, 1 - p, 1.0))
    return np.where(n > 0, value, 0.0)


def _large(kind: str, x: float, rate: float, before: float) -> bool:
    return x >= MIN_COUNT[kind] and rate >= MIN_RATIO[kind] * before and rate >= before + MIN_POINTS


@dataclass(frozen=True)
class Finding:
    test: str
    start: int  # day index, inclusive
    end: int  # day index, inclusive
    before: float
    after: float
    x: float
    n: float
    strength: float  # z, or likelihood ratio


def series_findings(
    x: np.ndarray,
    n: np.ndarray,
    peer_x: np.ndarray,
    peer_n: np.ndarray,
    first: int,
    with_peers: bool = True,
) -> list[Finding]:
    """The tests on one actor's daily series (index 0 = the first day), for findings that end on
    or after day `first`. `peer_x`, `peer_n`: the same counts summed over the actor's peers (the
    other actors of its kind), whose own change over the same days is taken out: when every
    store's refunds rise together, that is the business, not one store."""
    active = np.flatnonzero(n > 0)
    if not len(active):
        return []
    phi = _dispersion(x, n)
    peer_rate = peer_x.sum() / peer_n.sum() if peer_n.sum() else x.sum() / max(n.sum(), 1.0)
    cx, cn = _cumulative(x), _cumulative(n)
    px, pn = _cumulative(peer_x), _cumulative(peer_n)

    def smoothed(xs: np.ndarray, ns: np.ndarray) -> np.ndarray:
        return (xs + PRIOR_WEIGHT * peer_rate) / (ns + PRIOR_WEIGHT)

    found: list[Finding] = []
    with np.errstate(divide="ignore", invalid="ignore"):  # empty stretches are masked out
        for kind, width in (("spike", 1), ("week", 7)):
            found += _rises(kind, width, cx, cn, px, pn, int(active[0]), first, phi, smoothed)
        found += _change_point(cx, cn, px, pn, int(active[0]), first, phi)
    if with_peers:
        found += _against_peers(cx, cn, px, pn, first)
    return found


def _rises(
    kind: str,
    width: int,
    cx: np.ndarray,
    cn: np.ndarray,
    px: np.ndarray,
    pn: np.ndarray,
    active: int,
    first: int,
    phi: float,
    smoothed: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> list[Finding]:
    """`width` days (1: a spike, 7: a week) above the BASELINE_DAYS before them, their rate
    scaled by how much the peers' rate rose meanwhile."""
    days = len(cx) - 1
    ends = np.arange(max(first, width - 1), days)
    starts = ends - width + 1
    lows = np.maximum(0, starts - BASELINE_DAYS)
    sx, sn = cx[ends + 1] - cx[starts], cn[ends + 1] - cn[starts]
    bx, bn = cx[starts] - cx[lows], cn[starts] - cn[lows]
    trend = np.maximum(
        1.0,
        smoothed(px[ends + 1] - px[starts], pn[ends + 1] - pn[starts])
        / smoothed(px[starts] - px[lows], pn[starts] - pn[lows]),
    )
    trend = np.where(np.isfinite(trend), trend, 1.0)
    p0 = np.clip(smoothed(bx, bn) * trend, 1e-4, 0.99)
    rate = np.where(sn > 0, sx / np.maximum(sn, 1e-12), 0.0)
    z = (sx - sn * p0) / np.sqrt(np.maximum(sn * p0 * (1 - p0), 1e-12)) / np.sqrt(phi)
    hit = (
        (sn > 0)
        & (bn >= MIN_BASELINE_N)
        & (starts - active >= MIN_HISTORY_DAYS)
        & (z >= Z_SPIKE)
        & (sx >= MIN_COUNT[kind])
        & (rate >= MIN_RATIO[kind] * p0)
        & (rate >= p0 + MIN_POINTS)
    )
    return [
        Finding(
            kind, int(starts[i]), int(ends[i]), float(p0[i]), float(rate[i]),
            float(sx[i]), float(sn[i]), float(z[i]),
        )
        for i in np.flatnonzero(hit)
    ]  # fmt: skip


def _against_peers(
    cx: np.ndarray, cn: np.ndarray, px: np.ndarray, pn: np.ndarray, first: int
) -> list[Finding]:
    """Each BASELINE_DAYS block ending on the last day (back to `first`) against the peers'
    rate over the same days: an actor that has always been unlike its peers has no change."""
    found = []
    end = len(cx) - 2
    while end >= first:
        start = max(0, end - BASELINE_DAYS + 1)
        sx, sn = cx[end + 1] - cx[start], cn[end + 1] - cn[start]
        qx, qn = px[end + 1] - px[start], pn[end + 1] - pn[start]
        if sn > 0 and qn > 0:
            p0 = qx / qn
            z = _z(sx, sn, p0)
            if z >= Z_PEERS and _large("peers", sx, sx / sn, p0):
                found.append(Finding("peers", start, end, p0, sx / sn, sx, sn, float(z)))
        end -= BASELINE_DAYS
    return found


def _cumulative(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(values)])


def _change_point(
    cx: np.ndarray,
    cn: np.ndarray,
    px: np.ndarray,
    pn: np.ndarray,
    active: int,
    first: int,
    phi: float,
) -> list[Finding]:
    """The stretch [a, b] (at least MIN_SEGMENT_DAYS long, after MIN_HISTORY_DAYS of the actor's
    history, ending on or after `first`) whose rate rises most above the rest, by likelihood
    ratio, and by more than the peers' rate rose over the same stretch. On a long history starts
    and ends are tried on a grid of about CHANGE_POINT_GRID points."""
    days = len(cx) - 1
    step = max(1, days // CHANGE_POINT_GRID)
    starts = np.arange(active + MIN_HISTORY_DAYS, days, step)
    ends = np.unique(np.concatenate([np.arange(0, days, step), [days - 1]]))
    if not len(starts):
        return []
    a, b = np.meshgrid(starts, ends, indexing="ij")
    inside_x, inside_n = cx[b + 1] - cx[a], cn[b + 1] - cn[a]
    out_x, out_n = cx[-1] - inside_x, cn[-1] - inside_n
    rate_in = inside_x / np.maximum(inside_n, 1e-12)
    rate_out = out_x / np.maximum(out_n, 1e-12)
    peer_in = (px[b + 1] - px[a] + 1.0) / (pn[b + 1] - pn[a] + 1.0)
    peer_out = (px[-1] - (px[b + 1] - px[a]) + 1.0) / (pn[-1] - (pn[b + 1] - pn[a]) + 1.0)
    peer_rise = np.maximum(1.0, peer_in / peer_out)
    candidate = (
        (b - a + 1 >= MIN_SEGMENT_DAYS)
        & (b >= first)
        & (out_n >= MIN_BASELINE_N)
        & (inside_n > 0)
        & (inside_x >= MIN_COUNT["drift"])
        & (rate_in >= MIN_RATIO["drift"] * rate_out * peer_rise)
        & (rate_in >= rate_out + MIN_POINTS)
    )
    if not candidate.any():
        return []
    total = _loglik(np.array([cx[-1]]), np.array([cn[-1]]))[0]
    llr = (_loglik(inside_x, inside_n) + _loglik(out_x, out_n) - total) / phi
    scores = np.where(candidate, llr, -np.inf)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    if scores[i, j] < LLR_DRIFT:
        return []
    return [
        Finding(
            "drift", int(a[i, j]), int(b[i, j]), float(rate_out[i, j]), float(rate_in[i, j]),
            float(inside_x[i, j]), float(inside_n[i, j]), float(scores[i, j]),
        )
    ]  # fmt: skip


def detect_drift(attempts: pl.DataFrame, first_day: str) -> pl.DataFrame:
    """Findings of the four tests for every actor and rate, that end on or after `first_day`,
    one row each with its evidence, daily series and the attempts behind the rise."""
    schema = {
        "entity_type": pl.String,
        "entity_id": pl.String,
        "metric": pl.String,
        "test": pl.String,
        "start_day": pl.String,
        "end_day": pl.String,
        "strength": pl.Float64,
        "evidence": pl.String,
        "series": pl.List(pl.Float64),
        "series_from": pl.String,
        "event_ids": pl.List(pl.String),
    }
    counts = daily_counts(attempts)
    if counts.is_empty():
        return pl.DataFrame(schema=schema)
    day0 = date.fromisoformat(counts["event_date"].min())
    days = (date.fromisoformat(counts["event_date"].max()) - day0).days + 1
    first = max(0, (date.fromisoformat(first_day) - day0).days)
    if first >= days:
        return pl.DataFrame(schema=schema)
    counts = counts.with_columns(
        day=(pl.col("event_date").str.to_date() - pl.lit(day0)).dt.total_days().cast(pl.Int64)
    )
    totals = counts.group_by("dimension", "metric", "day").agg(
        tx=pl.col("x").sum(), tn=pl.col("n").sum()
    )
    peer_totals: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for (dimension, metric), part in totals.group_by("dimension", "metric"):
        tx, tn = np.zeros(days), np.zeros(days)
        tx[part["day"].to_numpy()] = part["tx"].to_numpy()
        tn[part["day"].to_numpy()] = part["tn"].to_numpy()
        peer_totals[(str(dimension), str(metric))] = (tx, tn)

    table = metrics(attempts)
    rows = []
    for (dimension, actor, metric), part in counts.group_by("dimension", "actor", "metric"):
        x, n = np.zeros(days), np.zeros(days)
        x[part["day"].to_numpy()] = part["x"].to_numpy()
        n[part["day"].to_numpy()] = part["n"].to_numpy()
        tx, tn = peer_totals[(str(dimension), str(metric))]
        peers = str(dimension) in PEER_DIMENSIONS
        for finding in series_findings(x, n, tx - x, tn - n, first, peers):
            rows.append(
                _row(
                    str(dimension), str(actor), str(metric), table[str(metric)], finding, x, n, day0
                )
            )
    findings = pl.DataFrame(rows, schema={k: v for k, v in schema.items() if k != "event_ids"})
    return _with_event_ids(attempts, findings, table).select(list(schema))


def _row(
    dimension: str,
    actor: str,
    metric: str,
    definition: Metric,
    finding: Finding,
    x: np.ndarray,
    n: np.ndarray,
    day0: date,
) -> dict:
    start = (day0 + timedelta(days=finding.start)).isoformat()
    end = (day0 + timedelta(days=finding.end)).isoformat()
    compared = {
        "spike": f"the {BASELINE_DAYS} days before",
        "week": f"the {BASELINE_DAYS} days before",
        "drift": "the rest of its history",
        "peers": f"other {dimension} actors over the same days",
    }[finding.test]
    span = start if start == end else f"{start}..{end}"
    evidence = (
        f"{finding.test} ({dimension} {metric}): {definition.words} rose from "
        f"{finding.before:.1%} ({compared}) to {finding.after:.1%} on {span} "
        f"({finding.x:g} of {finding.n:g})"
    )
    lo = max(0, finding.end - SERIES_DAYS + 1)
    rate = np.where(
        n[lo : finding.end + 1] > 0,
        x[lo : finding.end + 1] / np.maximum(n[lo : finding.end + 1], 1),
        0.0,
    )
    return {
        "entity_type": dimension,
        "entity_id": actor,
        "metric": metric,
        "test": finding.test,
        "start_day": start,
        "end_day": end,
        "strength": finding.strength,
        "evidence": evidence,
        "series": [round(float(v), 4) for v in rate],
        "series_from": (day0 + timedelta(days=lo)).isoformat(),
    }


def _with_event_ids(
    attempts: pl.DataFrame, findings: pl.DataFrame, table: dict[str, Metric]
) -> pl.DataFrame:
    """Each finding's attempts: those of its actor in its days that count in the numerator."""
    if findings.is_empty():
        return findings.with_columns(event_ids=pl.lit([], pl.List(pl.String)))
    ids = []
    for row in findings.iter_rows(named=True):
        column = DIMENSIONS[row["entity_type"]]
        chosen = attempts.filter(
            pl.col(column).cast(pl.String) == row["entity_id"],
            pl.col("event_date").is_between(pl.lit(row["start_day"]), pl.lit(row["end_day"])),
            table[row["metric"]].numerator.fill_null(False),
        )
        ids.append(chosen["event_id"].to_list())
    return findings.with_columns(event_ids=pl.Series(ids, dtype=pl.List(pl.String)))
