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
CHANGE_POINT_GRID = 60
CHANGE_POINT_CHUNK = 64  # series whose change points are searched at once (memory)

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
            watched = watched.filter(pl.col(column).is_in(busy[column].implode()))
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


def _dispersion(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per series (rows), how much more its daily counts vary than binomial counts would
    (>= 1): the median squared Pearson residual over the median of a chi-square with one degree
    of freedom, robust to the few days that are the anomaly itself."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x.sum(axis=1, keepdims=True) / n.sum(axis=1, keepdims=True)
        residuals = (x - n * p) / np.sqrt(n * p * (1 - p))
    residuals = np.where((n > 0) & (p > 0) & (p < 1), residuals, np.nan)
    enough = np.isfinite(residuals).sum(axis=1) >= MIN_SEGMENT_DAYS
    phi = np.ones(len(x))
    if enough.any():
        phi[enough] = np.nanmedian(residuals[enough] ** 2, axis=1) / 0.4549
    return np.maximum(1.0, np.nan_to_num(phi, nan=1.0))


def _loglik(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / np.maximum(n, 1e-12), 0.0)
        value = x * np.log(np.where(p > 0, p, 1.0)) + (n - x) * np.log(np.where(p < 1, 1 - p, 1.0))
    return np.where(n > 0, value, 0.0)


@dataclass(frozen=True)
class Finding:
    series: int  # the row of the series it was found on
    test: str
    start: int  # day index, inclusive
    end: int  # day index, inclusive
    before: float
    after: float
    x: float
    n: float
    strength: float  # z, or likelihood ratio


def _cumulative(values: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((len(values), 1)), np.cumsum(values, axis=1)], axis=1)


def series_findings(
    x: np.ndarray,
    n: np.ndarray,
    peer_x: np.ndarray,
    peer_n: np.ndarray,
    first: int,
    with_peers: np.ndarray,
) -> list[Finding]:
    """The tests on many actors' daily series at once (rows: series, columns: days from 0), for
    findings that end on or after day `first`. `peer_x`, `peer_n`: per series, the same counts
    summed over the actor's peers (the other actors of its kind), whose own change over the same
    days is taken out: when every store's refunds rise together, that is the business, not one
    store. `with_peers`: per series, whether it is also compared with its peers."""
    active_any = n > 0
    live = active_any.any(axis=1)
    active = np.where(live, active_any.argmax(axis=1), n.shape[1])
    phi = _dispersion(x, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        peer_rate = np.where(
            peer_n.sum(axis=1) > 0,
            peer_x.sum(axis=1) / peer_n.sum(axis=1),
            x.sum(axis=1) / np.maximum(n.sum(axis=1), 1.0),
        )
    cx, cn, px, pn = _cumulative(x), _cumulative(n), _cumulative(peer_x), _cumulative(peer_n)
    found: list[Finding] = []
    with np.errstate(divide="ignore", invalid="ignore"):  # empty stretches are masked out
        for kind, width in (("spike", 1), ("week", 7)):
            found += _rises(kind, width, cx, cn, px, pn, active, first, phi, peer_rate)
        # only series with enough events for a drift are searched (most are quiet)
        searched = np.flatnonzero(cx[:, -1] >= MIN_COUNT["drift"])
        for lo in range(0, len(searched), CHANGE_POINT_CHUNK):
            part = searched[lo : lo + CHANGE_POINT_CHUNK]
            found += _change_point(
                cx[part], cn[part], px[part], pn[part], active[part], first, phi[part], part
            )
    return found + _against_peers(cx, cn, px, pn, first, with_peers)


def _rises(
    kind: str,
    width: int,
    cx: np.ndarray,
    cn: np.ndarray,
    px: np.ndarray,
    pn: np.ndarray,
    active: np.ndarray,
    first: int,
    phi: np.ndarray,
    peer_rate: np.ndarray,
) -> list[Finding]:
    """`width` days (1: a spike, 7: a week) above the BASELINE_DAYS before them, the baseline
    scaled by how much the peers' rate rose meanwhile."""
    days = cx.shape[1] - 1
    ends = np.arange(max(first, width - 1), days)
    if not len(ends):
        return []
    starts = ends - width + 1
    lows = np.maximum(0, starts - BASELINE_DAYS)
    prior = PRIOR_WEIGHT * peer_rate[:, None]

    def smoothed(xs: np.ndarray, ns: np.ndarray) -> np.ndarray:
        return (xs + prior) / (ns + PRIOR_WEIGHT)

    sx, sn = cx[:, ends + 1] - cx[:, starts], cn[:, ends + 1] - cn[:, starts]
    bx, bn = cx[:, starts] - cx[:, lows], cn[:, starts] - cn[:, lows]
    trend = smoothed(px[:, ends + 1] - px[:, starts], pn[:, ends + 1] - pn[:, starts]) / smoothed(
        px[:, starts] - px[:, lows], pn[:, starts] - pn[:, lows]
    )
    trend = np.where(np.isfinite(trend), np.maximum(1.0, trend), 1.0)
    p0 = np.clip(smoothed(bx, bn) * trend, 1e-4, 0.99)
    rate = np.where(sn > 0, sx / np.maximum(sn, 1e-12), 0.0)
    z = (sx - sn * p0) / np.sqrt(np.maximum(sn * p0 * (1 - p0), 1e-12)) / np.sqrt(phi[:, None])
    hit = (
        (sn > 0)
        & (bn >= MIN_BASELINE_N)
        & (starts[None, :] - active[:, None] >= MIN_HISTORY_DAYS)
        & (z >= Z_SPIKE)
        & (sx >= MIN_COUNT[kind])
        & (rate >= MIN_RATIO[kind] * p0)
        & (rate >= p0 + MIN_POINTS)
    )
    return [
        Finding(
            int(i), kind, int(starts[j]), int(ends[j]), float(p0[i, j]), float(rate[i, j]),
            float(sx[i, j]), float(sn[i, j]), float(z[i, j]),
        )
        for i, j in zip(*np.nonzero(hit), strict=True)
    ]  # fmt: skip


def _against_peers(
    cx: np.ndarray,
    cn: np.ndarray,
    px: np.ndarray,
    pn: np.ndarray,
    first: int,
    with_peers: np.ndarray,
) -> list[Finding]:
    """Each BASELINE_DAYS block ending on the last day (back to `first`) against the peers'
    rate over the same days: an actor that has always been unlike its peers has no change."""
    found = []
    end = cx.shape[1] - 2
    while end >= first:
        start = max(0, end - BASELINE_DAYS + 1)
        sx, sn = cx[:, end + 1] - cx[:, start], cn[:, end + 1] - cn[:, start]
        qx, qn = px[:, end + 1] - px[:, start], pn[:, end + 1] - pn[:, start]
        with np.errstate(divide="ignore", invalid="ignore"):
            p0 = np.clip(qx / qn, 1e-4, 1 - 1e-4)
            rate = sx / sn
            z = (sx - sn * p0) / np.sqrt(sn * p0 * (1 - p0))
        hit = (
            with_peers
            & (sn > 0)
            & (qn > 0)
            & (z >= Z_PEERS)
            & (sx >= MIN_COUNT["peers"])
            & (rate >= MIN_RATIO["peers"] * p0)
            & (rate >= p0 + MIN_POINTS)
        )
        found += [
            Finding(int(i), "peers", start, end, float(p0[i]), float(rate[i]), float(sx[i]),
                    float(sn[i]), float(z[i]))
            for i in np.flatnonzero(hit)
        ]  # fmt: skip
        end -= BASELINE_DAYS
    return found


def _change_point(
    cx: np.ndarray,
    cn: np.ndarray,
    px: np.ndarray,
    pn: np.ndarray,
    active: np.ndarray,
    first: int,
    phi: np.ndarray,
    series: np.ndarray,  # the rows' indices among all series
) -> list[Finding]:
    """Per series, the stretch [a, b] (at least MIN_SEGMENT_DAYS long, after MIN_HISTORY_DAYS of
    the actor's history, ending on or after `first`) whose rate rises most above the rest, by
    likelihood ratio, and by more than the peers' rate rose over the same stretch. On a long
    history starts and ends are tried on a grid of about CHANGE_POINT_GRID points."""
    days = cx.shape[1] - 1
    step = max(1, days // CHANGE_POINT_GRID)
    starts = np.arange(0, days, step)
    ends = np.unique(np.concatenate([np.arange(0, days, step), [days - 1]]))
    a, b = np.meshgrid(starts, ends, indexing="ij")
    a, b = a.ravel(), b.ravel()
    shape_ok = (b - a + 1 >= MIN_SEGMENT_DAYS) & (b >= first)
    a, b = a[shape_ok], b[shape_ok]
    if not len(a):
        return []
    total_x, total_n = cx[:, -1:], cn[:, -1:]
    inside_x, inside_n = cx[:, b + 1] - cx[:, a], cn[:, b + 1] - cn[:, a]
    out_x, out_n = total_x - inside_x, total_n - inside_n
    rate_in = inside_x / np.maximum(inside_n, 1e-12)
    rate_out = out_x / np.maximum(out_n, 1e-12)
    peer_in_x, peer_in_n = px[:, b + 1] - px[:, a], pn[:, b + 1] - pn[:, a]
    peer_in = (peer_in_x + 1.0) / (peer_in_n + 1.0)
    peer_out = (px[:, -1:] - peer_in_x + 1.0) / (pn[:, -1:] - peer_in_n + 1.0)
    peer_rise = np.maximum(1.0, peer_in / peer_out)
    candidate = (
        (a[None, :] >= active[:, None] + MIN_HISTORY_DAYS)
        & (out_n >= MIN_BASELINE_N)
        & (inside_n > 0)
        & (inside_x >= MIN_COUNT["drift"])
        & (rate_in >= MIN_RATIO["drift"] * rate_out * peer_rise)
        & (rate_in >= rate_out + MIN_POINTS)
    )
    rows = np.flatnonzero(candidate.any(axis=1))
    if not len(rows):
        return []
    total = _loglik(total_x[rows], total_n[rows])
    llr = (
        _loglik(inside_x[rows], inside_n[rows]) + _loglik(out_x[rows], out_n[rows]) - total
    ) / phi[rows, None]
    scores = np.where(candidate[rows], llr, -np.inf)
    best = scores.argmax(axis=1)
    found = []
    for r, i in enumerate(rows):
        j = best[r]
        if scores[r, j] >= LLR_DRIFT:
            found.append(
                Finding(
                    int(series[i]), "drift", int(a[j]), int(b[j]), float(rate_out[i, j]),
                    float(rate_in[i, j]), float(inside_x[i, j]), float(inside_n[i, j]),
                    float(scores[r, j]),
                )
            )  # fmt: skip
    return found


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
    # Every actor's series as rows of two dense matrices, built at once rather than per group.
    keys = counts.select("dimension", "actor", "metric").unique(maintain_order=True)
    keys = keys.sort("dimension", "metric", "actor").with_row_index("series_row")
    indexed = counts.join(keys, on=["dimension", "actor", "metric"])
    rows_at = indexed["series_row"].to_numpy().astype(np.int64)
    day_at = indexed["day"].to_numpy()
    xs, ns = np.zeros((keys.height, days)), np.zeros((keys.height, days))
    xs[rows_at, day_at] = indexed["x"].to_numpy()
    ns[rows_at, day_at] = indexed["n"].to_numpy()
    tx = np.zeros((keys.height, days))
    tn = np.zeros((keys.height, days))
    for (dimension, metric), rows_of in keys.group_by("dimension", "metric"):
        totals_x, totals_n = peer_totals[(str(dimension), str(metric))]
        at = rows_of["series_row"].to_numpy().astype(np.int64)
        tx[at], tn[at] = totals_x, totals_n
    with_peers = keys["dimension"].is_in(list(PEER_DIMENSIONS)).to_numpy()
    found = series_findings(xs, ns, tx - xs, tn - ns, first, with_peers)
    names = keys.select("dimension", "actor", "metric").rows()
    rows = []
    by_series: dict[int, list[Finding]] = {}
    for finding in found:
        by_series.setdefault(finding.series, []).append(finding)
    for i, findings in sorted(by_series.items()):
        dimension, actor, metric = names[i]
        for finding in _merged(findings):
            rows.append(_row(dimension, actor, metric, table[metric], finding, xs[i], ns[i], day0))
    findings_frame = pl.DataFrame(
        rows, schema={k: v for k, v in schema.items() if k != "event_ids"}
    )
    return _with_event_ids(attempts, findings_frame, table).select(list(schema))


def _merged(findings: list[Finding]) -> list[Finding]:
    """Overlapping or adjacent findings of one test on one series are one: a week that stays
    high is found on each of its days. The strongest speaks for the run, over its whole span."""
    out: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.test, f.start, f.end)):
        last = out[-1] if out else None
        if last is not None and last.test == finding.test and finding.start <= last.end + 1:
            strongest = max(last, finding, key=lambda f: f.strength)
            out[-1] = Finding(
                strongest.series,
                strongest.test,
                min(last.start, finding.start),
                max(last.end, finding.end),
                strongest.before,
                strongest.after,
                strongest.x,
                strongest.n,
                strongest.strength,
            )
        else:
            out.append(finding)
    return out


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
    """Each finding's attempts: those of its actor in its days that count in the numerator.
    One join per dimension and rate, not a scan of the attempts per finding."""
    if findings.is_empty():
        return findings.with_columns(event_ids=pl.lit([], pl.List(pl.String)))
    numbered = findings.with_row_index("finding")
    parts = []
    for (dimension, metric), part in numbered.group_by("entity_type", "metric"):
        column = DIMENSIONS[str(dimension)]
        counted = attempts.filter(table[str(metric)].numerator.fill_null(False)).select(
            "event_id", "event_date", entity_id=pl.col(column).cast(pl.String)
        )
        parts.append(
            counted.join(
                part.select("finding", "entity_id", "start_day", "end_day"), on="entity_id"
            )
            .filter(pl.col("event_date").is_between(pl.col("start_day"), pl.col("end_day")))
            .group_by("finding")
            .agg(event_ids=pl.col("event_id").sort())
        )
    ids = pl.concat(parts)
    return (
        numbered.join(ids, on="finding", how="left")
        .sort("finding")
        .drop("finding")
        .with_columns(pl.col("event_ids").fill_null(pl.lit([], pl.List(pl.String))))
    )
