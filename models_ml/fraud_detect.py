"""Fraud detection in layers, combined into one review queue of cases.

Layers that need no labels always run: the named rules (fraud_rules), the anomaly forests per
entity kind (fraud_anomaly) and the drift tests per store, staff member, channel, campaign and
code (fraud_drift). The supervised model (fraud.py's LightGBM, trained on reviews or a
simulation's ground truth) joins when one is given; it never replaces the others.

Each layer emits signals: about one actor (an entity), over some attempts, with its evidence.
Signals become cases (`build_cases`): those about the same actor within CASE_GAP_H hours of each
other, and those sharing most of their attempts (a guessing bot's device and IP), are one case,
so the attempts of one burst are one flag. A case is named after its highest-priority signal
(rules, in their order, then drift, anomaly, model): `<entity_type>:<entity_id>@<first day>`.
The previous queue takes part as signals too, so a case that goes on keeps its flag id.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from models_ml.fraud_anomaly import detect_anomalies
from models_ml.fraud_drift import DIMENSIONS, detect_drift
from models_ml.fraud_rules import ENTITY_COLUMNS, RULES, Rule, apply_rules

CASE_GAP_H = 24.0
SHARED_ATTEMPTS = 0.5  # two signals sharing this share of the attempts of each: one case
SERIES_DAYS = 14
MAX_REASONS = 8
LAYER_SCORE = {"rules": 0.9, "drift": 0.75, "anomaly": 0.6}
DRIFT_PRIORITY = {"staff": 50, "code": 51, "store": 52, "campaign": 53, "sales_channel": 54}

SIGNAL_SCHEMA = {
    "layer": pl.String,
    "source": pl.String,
    "priority": pl.Int64,
    "entity_type": pl.String,
    "entity_id": pl.String,
    "flagged_t": pl.Int64,  # when the signal could first have been raised (ns since epoch)
    "score": pl.Float64,
    "evidence": pl.List(pl.String),
    "series": pl.List(pl.Float64),
    "series_label": pl.String,
    "event_ids": pl.List(pl.String),
}
LIST_IDS = {
    "customer_ids": "customer_id",
    "voucher_ids": "voucher_id",
    "redemption_ids": "redemption_id",
    "codes": "code",
    "campaign_ids": "campaign_id",
    "store_ids": "store_id",
    "staff_ids": "staff_id",
    "sales_channels": "sales_channel",
    "device_hashes": "device_hash",
    "ip_hashes": "ip_hash",
    "payment_hashes": "payment_hash",
}
QUEUE_SCHEMA: dict[str, pl.DataType] = {
    "flag_id": pl.String(),
    "entity_type": pl.String(),
    "entity_id": pl.String(),
    "score": pl.Float64(),
    "layers": pl.List(pl.String),
    "sources": pl.List(pl.String),
    "reasons": pl.List(pl.String),
    "series": pl.List(pl.Float64),
    "series_label": pl.String(),
    "attempts": pl.Int64(),
    "event_ids": pl.List(pl.String),
    **{name: pl.List(pl.String) for name in LIST_IDS},
    "customer_id": pl.String(),
    "voucher_id": pl.String(),
    "redemption_id": pl.String(),
    "store_id": pl.String(),
    "staff_id": pl.String(),
    "first_seen": pl.String(),
    "last_seen": pl.String(),
    "first_flagged_at": pl.String(),
}


@dataclass
class Detection:
    queue: pl.DataFrame  # one row per case, QUEUE_SCHEMA, highest score first
    signals: pl.DataFrame  # every layer's signals of this run, SIGNAL_SCHEMA
    thresholds: pl.DataFrame  # the rules' thresholds as set from the merchant's baselines


def empty_queue() -> pl.DataFrame:
    return pl.DataFrame(schema=QUEUE_SCHEMA)


def detect(
    attempts: pl.DataFrame,
    first_day: str,
    *,
    model: object | None = None,
    previous: pl.DataFrame | None = None,
    seed: int = 0,
) -> Detection:
    """Run every layer over `attempts` (fraud_features.build_attempt_features, reaching back
    before `first_day` by the look-back the layers need) and build the queue of the cases that
    have a signal on or after `first_day`, merged with the `previous` queue."""
    if attempts.is_empty():
        carried = previous if previous is not None else empty_queue()
        return Detection(carried, pl.DataFrame(schema=SIGNAL_SCHEMA), pl.DataFrame())
    ruled, thresholds = apply_rules(attempts)
    signals = [
        rule_signals(ruled, first_day),
        anomaly_signals(ruled, first_day, seed),
        drift_signals(ruled, first_day),
    ]
    if model is not None:
        signals.append(model_signals(model, ruled, first_day))
    every = pl.concat(signals)
    queue = build_cases(every, ruled, previous)
    return Detection(queue, every, thresholds)


# -- signals -----------------------------------------------------------------------------------
def _time_of(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("event_id", "t")


def rule_signals(
    ruled: pl.DataFrame, first_day: str, rules: dict[str, Rule] = RULES
) -> pl.DataFrame:
    """One signal per rule, actor and day with a hit on or after `first_day`: the actor's
    attempts from one rule window before its first hit to its last hit."""
    parts = []
    for priority, (name, rule) in enumerate(rules.items()):
        column = ENTITY_COLUMNS[rule.entity_type]
        hits = ruled.filter(
            pl.col(f"rule__{name}"), pl.col(column).is_not_null(), pl.col("event_date") >= first_day
        )
        if hits.is_empty():
            continue
        window_ns = _WINDOW_NS[rule.window]
        grouped = hits.group_by(pl.col(column).alias("entity_id"), "event_date").agg(
            flagged_t=pl.col("t").min(),
            last_t=pl.col("t").max(),
            peak=pl.col(rule.value).max(),
            threshold=pl.col(f"threshold__{name}").max(),
            hit_ids=pl.col("event_id"),
        )
        counted = (
            ruled if rule.counts is None else ruled.filter(pl.col(rule.counts).cast(pl.Float64) > 0)
        )
        members = (
            counted.select("event_id", "t", pl.col(column).alias("entity_id"))
            .join(grouped.select("entity_id", "event_date", "flagged_t", "last_t"), on="entity_id")
            .filter(
                (pl.col("t") > pl.col("flagged_t") - window_ns) & (pl.col("t") <= pl.col("last_t"))
            )
            .group_by("entity_id", "event_date")
            .agg(event_ids=pl.col("event_id"))
        )
        grouped = grouped.join(members, on=["entity_id", "event_date"], how="left")
        parts.append(
            grouped.select(
                layer=pl.lit("rules"),
                source=pl.lit(name),
                priority=pl.lit(priority, pl.Int64),
                entity_type=pl.lit(rule.entity_type),
                entity_id=pl.col("entity_id").cast(pl.String),
                flagged_t=pl.col("flagged_t"),
                score=pl.lit(LAYER_SCORE["rules"]),
                evidence=pl.concat_list(
                    pl.format(
                        f"{name}: {rule.value} reached {{}} on {{}} (threshold {{}}; {rule.why})",
                        pl.col("peak").round(3),
                        pl.col("event_date"),
                        pl.col("threshold").round(3),
                    )
                ),
                series=pl.lit(None, pl.List(pl.Float64)),
                series_label=pl.lit(None, pl.String),
                event_ids=pl.col("event_ids").fill_null(pl.col("hit_ids")),
            )
        )
    return pl.concat(parts) if parts else pl.DataFrame(schema=SIGNAL_SCHEMA)


_WINDOW_NS = {"10m": 600 * 10**9, "1h": 3600 * 10**9, "24h": 86400 * 10**9, "7d": 7 * 86400 * 10**9}


def anomaly_signals(ruled: pl.DataFrame, first_day: str, seed: int) -> pl.DataFrame:
    flags = detect_anomalies(ruled, first_day, seed)
    return flags.select(
        layer=pl.lit("anomaly"),
        source=pl.concat_str(pl.lit("anomaly:"), "entity_type"),
        priority=pl.lit(100, pl.Int64),
        entity_type="entity_type",
        entity_id="entity_id",
        flagged_t="first_t",
        # 0.5 at the edge of the top share, towards 0.9 for the most unusual of all
        score=(0.5 + 0.4 * ((pl.col("score") - 0.99) / 0.01).clip(0.0, 1.0)),
        evidence="evidence",
        series=pl.lit(None, pl.List(pl.Float64)),
        series_label=pl.lit(None, pl.String),
        event_ids="event_ids",
    ).cast(SIGNAL_SCHEMA)  # type: ignore[arg-type]


def drift_signals(ruled: pl.DataFrame, first_day: str) -> pl.DataFrame:
    findings = detect_drift(ruled, first_day)
    if findings.is_empty():
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    times = _time_of(ruled)
    first_t = (
        findings.select("event_ids")
        .with_row_index("i")
        .explode("event_ids")
        .join(times, left_on="event_ids", right_on="event_id", how="left")
        .group_by("i")
        .agg(flagged_t=pl.col("t").max())
    )
    return (
        findings.with_row_index("i")
        .join(first_t, on="i", how="left")
        .select(
            layer=pl.lit("drift"),
            source=pl.concat_str(pl.lit("drift:"), "metric"),
            # the most specific actor names the case: a staff member before their store
            priority=pl.col("entity_type").replace_strict(DRIFT_PRIORITY, return_dtype=pl.Int64),
            entity_type="entity_type",
            entity_id="entity_id",
            # A drift is seen once its days are over: flagged at the last attempt behind it.
            flagged_t="flagged_t",
            score=pl.lit(LAYER_SCORE["drift"]),
            evidence=pl.concat_list("evidence"),
            series="series",
            series_label=pl.format("{} {} per day from {}", "entity_type", "metric", "series_from"),
            event_ids="event_ids",
        )
        .filter(pl.col("event_ids").list.len() > 0)
        .cast(SIGNAL_SCHEMA)  # type: ignore[arg-type]
    )


def model_signals(model: object, ruled: pl.DataFrame, first_day: str) -> pl.DataFrame:
    """Attempts the supervised model scores at or above its threshold, per actor and day."""
    from models_ml.fraud import model_reasons, score_attempts

    window = ruled.filter(pl.col("event_date") >= first_day)
    if window.is_empty():
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    scored = score_attempts(model, window)  # type: ignore[arg-type]
    chosen = scored.filter(pl.col("model_prob") >= model.threshold)  # type: ignore[attr-defined]
    if chosen.is_empty():
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    reasons = model_reasons(model, chosen)  # type: ignore[arg-type]
    grouped = _model_groups(chosen.join(reasons, on="event_id", how="left"))
    return (
        grouped.sort("model_prob", descending=True)
        .group_by("group", maintain_order=True)
        .agg(
            entity_type=pl.col("entity_type").first(),
            entity_id=pl.col("entity_id").first(),
            first_day=pl.col("event_date").min(),
            flagged_t=pl.col("t").min(),
            score=pl.col("model_prob").max(),
            evidence=pl.col("model_reasons").first().fill_null(pl.lit([], pl.List(pl.String))),
            attempts=pl.len(),
            event_ids=pl.col("event_id").sort(),
        )
        .select(
            layer=pl.lit("model"),
            source=pl.lit("model"),
            priority=pl.lit(200, pl.Int64),
            entity_type="entity_type",
            entity_id="entity_id",
            flagged_t="flagged_t",
            score="score",
            evidence=pl.concat_list(
                pl.format(
                    "model: {} attempt(s) from {} scored at least {} (top {})",
                    "attempts",
                    "first_day",
                    pl.lit(round(model.threshold, 3)),  # type: ignore[attr-defined]
                    pl.col("score").round(3),
                ),
                "evidence",
            ),
            series=pl.lit(None, pl.List(pl.Float64)),
            series_label=pl.lit(None, pl.String),
            event_ids="event_ids",
        )
        .cast(SIGNAL_SCHEMA)  # type: ignore[arg-type]
    )


def _model_groups(chosen: pl.DataFrame) -> pl.DataFrame:
    """The model's attempts with `group`: those sharing an actor (MODEL_ACTORS) on the same day
    are one group, so that a burst or a staff member's run the model alone catches is one case;
    and `entity_type`/`entity_id`: the actor most of the group's attempts share."""
    chosen = chosen.with_row_index("i")
    union = _Union([None] * chosen.height)
    for _, column in MODEL_ACTORS:
        shared = (
            chosen.filter(pl.col(column).is_not_null())
            .group_by(column, "event_date")
            .agg(pl.col("i"))
        )
        for members in shared["i"].to_list():
            for other in members[1:]:
                union.join(members[0], other)
    chosen = chosen.with_columns(group=pl.Series([union.find(i) for i in range(chosen.height)]))
    votes = pl.concat(
        [
            chosen.filter(pl.col(column).is_not_null()).select(
                "group",
                entity_type=pl.lit(kind),
                entity_id=pl.col(column).cast(pl.String),
                rank=pl.lit(rank),
            )
            for rank, (kind, column) in enumerate(MODEL_ACTORS)
        ]
        + [
            chosen.select(
                "group", entity_type=pl.lit("attempt"), entity_id="event_id", rank=pl.lit(99)
            )
        ]
    )
    best = (
        votes.group_by("group", "entity_type", "entity_id", "rank")
        .len()
        .sort(["group", "len", "rank"], descending=[False, True, False])
        .unique("group", keep="first")
        .select("group", "entity_type", "entity_id")
    )
    return chosen.join(best, on="group", how="left")


MODEL_ACTORS = (
    ("staff", "staff_id"),
    ("code", "code"),
    ("device", "device_hash"),
    ("ip", "ip_hash"),
    ("payment", "payment_hash"),
    ("customer", "customer_id"),
)


# -- cases -------------------------------------------------------------------------------------
def _carried(previous: pl.DataFrame | None) -> pl.DataFrame:
    """The previous queue's cases as signals, each keeping its flag id."""
    if previous is None or previous.is_empty():
        return pl.DataFrame(schema={**SIGNAL_SCHEMA, "flag_id": pl.String})
    return previous.select(
        layer=pl.lit("carried"),
        source=pl.lit("carried"),
        priority=pl.lit(1000, pl.Int64),
        entity_type="entity_type",
        entity_id="entity_id",
        flagged_t=_parse_t("first_flagged_at"),
        score="score",
        evidence="reasons",
        series="series",
        series_label="series_label",
        event_ids="event_ids",
        flag_id="flag_id",
        carried_layers="layers",
        carried_sources="sources",
    )


def _parse_t(column: str) -> pl.Expr:
    return (
        pl.col(column).str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.fZ").cast(pl.Int64)
        * 1000
    )


def _format_t(column: str) -> pl.Expr:
    return pl.from_epoch(pl.col(column) // 1000, time_unit="us").dt.strftime(
        "%Y-%m-%dT%H:%M:%S.%6fZ"
    )


class _Union:
    """Union-find over signals. Two groups that each hold a case of the previous queue stay
    apart: those were two cases, and their flag ids (and reviews) must both live on."""

    def __init__(self, flag_ids: list[str | None]) -> None:
        self.parent = list(range(len(flag_ids)))
        self.flag = list(flag_ids)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a == b or (self.flag[a] is not None and self.flag[b] is not None):
            return
        low, high = min(a, b), max(a, b)
        self.parent[high] = low
        self.flag[low] = self.flag[low] if self.flag[low] is not None else self.flag[high]


def build_cases(
    signals: pl.DataFrame, attempts: pl.DataFrame, previous: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Group signals (and the previous queue's cases) into cases: one row each, QUEUE_SCHEMA.

    Signals about attempts (rules, anomaly, model, the previous cases) join when they are about
    the same actor within CASE_GAP_H hours, or when SHARED_ATTEMPTS of the attempts of each are
    the other's (a guessing bot's device and IP). Drift signals cover many attempts of a busy actor, so they join each other the
    same way, and join a case of the others only when most of their own attempts are in it
    (the drift is that case seen from its store or staff member); else they are a case."""
    carried = _carried(previous)
    nodes = pl.concat(
        [
            signals.with_columns(
                flag_id=pl.lit(None, pl.String),
                carried_layers=pl.lit(None, pl.List(pl.String)),
                carried_sources=pl.lit(None, pl.List(pl.String)),
            ),
            carried,
        ],
        how="diagonal_relaxed",
    ).with_row_index("node")
    if nodes.is_empty():
        return empty_queue()
    spans = (
        nodes.select("node", "event_ids")
        .explode("event_ids")
        .join(
            attempts.select("event_id", "t"), left_on="event_ids", right_on="event_id", how="left"
        )
        .group_by("node")
        .agg(start_t=pl.col("t").min(), end_t=pl.col("t").max())
    )
    nodes = (
        nodes.join(spans, on="node", how="left")
        .sort("node")
        .with_columns(
            start_t=pl.coalesce("start_t", "flagged_t"),
            end_t=pl.coalesce("end_t", "flagged_t"),
            drift=pl.col("layer") == "drift",
        )
    )
    union = _Union(nodes["flag_id"].to_list())
    _join_same_actor(nodes, union)
    pairs = nodes.select("node", "drift", "event_ids").explode("event_ids").drop_nulls().unique()
    sizes = dict(nodes.select("node", pl.col("event_ids").list.len()).iter_rows())
    shared = (
        pairs.join(pairs, on="event_ids", suffix="_other")
        .filter(pl.col("node") < pl.col("node_other"), pl.col("drift") == pl.col("drift_other"))
        .group_by("node", "node_other")
        .len()
    )
    model = set(nodes.filter(pl.col("layer") == "model")["node"].to_list())
    for a, b, count in shared.iter_rows():
        # Most of both: a customer's two attempts inside a code's busy day are not its story.
        # The model's attempts join the case that holds most of them: it confirms that case.
        both = count >= SHARED_ATTEMPTS * max(1, sizes[a], sizes[b])
        contained = (a in model or b in model) and count >= SHARED_ATTEMPTS * min(
            sizes[a], sizes[b]
        )
        if both or contained:
            union.join(a, b)
    # A drift group joins the precise case that holds most of its attempts, if one does.
    groups = pl.DataFrame(
        {"node": range(nodes.height), "group": [union.find(i) for i in range(nodes.height)]},
        schema={"node": pl.UInt32, "group": pl.Int64},
    )
    member_groups = pairs.join(groups, on="node").select("event_ids", "drift", "group").unique()
    drift_ids = member_groups.filter(pl.col("drift"))
    precise_ids = member_groups.filter(~pl.col("drift"))
    drift_sizes = drift_ids.group_by("group").agg(size=pl.len())
    overlap = (
        drift_ids.join(precise_ids, on="event_ids", suffix="_case")
        .group_by("group", "group_case")
        .len()
        .join(drift_sizes, on="group")
        .filter(pl.col("len") >= SHARED_ATTEMPTS * pl.col("size"))
        .sort("group", "len", descending=[False, True])
        .unique("group", keep="first")
    )
    for drift_group, case_group, *_ in overlap.iter_rows():
        union.join(drift_group, case_group)
    roots = pl.Series("case", [union.find(i) for i in range(nodes.height)])
    return _cases(nodes.with_columns(case=roots), attempts)


def _join_same_actor(nodes: pl.DataFrame, union: _Union) -> None:
    """Join signals of one kind (drift or not) about the same actor within CASE_GAP_H hours."""
    gap = int(CASE_GAP_H * 3600 * 10**9)
    # A drift is about one rate: two rates of one busy actor are two stories unless they share
    # their attempts (joined below).
    topic = pl.when(pl.col("drift")).then(pl.col("source")).otherwise(pl.lit(""))
    ordered = nodes.select(
        "node", topic.alias("topic"), "entity_type", "entity_id", "start_t", "end_t"
    ).sort("topic", "entity_type", "entity_id", "start_t")
    last: tuple | None = None
    reach = 0
    for node, topic_, kind, entity, start, end in ordered.iter_rows():
        if last is not None and last[1:] == (topic_, kind, entity) and start <= reach + gap:
            union.join(last[0], node)
            reach = max(reach, end)
        else:
            reach = end
        last = (node, topic_, kind, entity)


def _cases(nodes: pl.DataFrame, attempts: pl.DataFrame) -> pl.DataFrame:
    ranked = nodes.sort("case", "priority", pl.col("score"), descending=[False, False, True])
    heads = ranked.group_by("case", maintain_order=True).agg(
        entity_type=pl.col("entity_type").first(),
        entity_id=pl.col("entity_id").first(),
        head_source=pl.col("source").first(),
        flag_id=pl.col("flag_id").drop_nulls().sort().first(),
        score=1 - (1 - pl.col("score").clip(0.0, 0.999)).product(),
        layers=pl.concat_list(pl.col("layer").filter(pl.col("layer") != "carried"))
        .explode()
        .append(pl.col("carried_layers").explode().drop_nulls())
        .unique()
        .sort(),
        sources=pl.col("source")
        .filter(pl.col("source") != "carried")
        .append(pl.col("carried_sources").explode().drop_nulls())
        .unique()
        .sort(),
        reasons=pl.col("evidence")
        .explode()
        .drop_nulls()
        .unique(maintain_order=True)
        .head(MAX_REASONS),
        drift_series=pl.col("series").filter(pl.col("series").is_not_null()).first(),
        drift_label=pl.col("series_label").drop_nulls().first(),
        event_ids=pl.col("event_ids").explode().drop_nulls().unique().sort(),
        flagged_t=pl.col("flagged_t").min(),
    )
    members = (
        heads.select("case", "event_ids")
        .explode("event_ids")
        .join(
            attempts.select("event_id", "t", "occurred_at", *LIST_IDS.values()),
            left_on="event_ids",
            right_on="event_id",
        )
        .group_by("case")
        .agg(
            first_seen=pl.col("occurred_at").min(),
            last_seen=pl.col("occurred_at").max(),
            **{
                name: pl.col(column).drop_nulls().cast(pl.String).unique().sort()
                for name, column in LIST_IDS.items()
            },
        )
    )
    cases = heads.join(members, on="case", how="left")
    cases = cases.with_columns(
        first_seen=pl.coalesce("first_seen", _format_t("flagged_t")),
        last_seen=pl.coalesce("last_seen", _format_t("flagged_t")),
        first_flagged_at=_format_t("flagged_t"),
        attempts=pl.col("event_ids").list.len().cast(pl.Int64),
    ).with_columns(
        # Two drifts of one actor are two cases: the rate is part of their name.
        flag_id=pl.coalesce(
            "flag_id",
            pl.concat_str(
                "entity_type",
                pl.lit(":"),
                "entity_id",
                pl.lit("@"),
                pl.col("first_seen").str.slice(0, 10),
                pl.when(pl.col("head_source").str.starts_with("drift:"))
                .then(pl.concat_str(pl.lit("/"), pl.col("head_source").str.slice(6)))
                .otherwise(pl.lit("")),
            ),
        ),
        **{
            single: pl.col(f"{single}s").list.first()
            for single in ("customer_id", "voucher_id", "redemption_id", "store_id", "staff_id")
        },
    )
    cases = _with_series(cases, attempts)
    return (
        cases.select(list(QUEUE_SCHEMA))
        .cast(QUEUE_SCHEMA)  # type: ignore[arg-type]
        .with_columns(_numbered_duplicates())
        .sort("score", "first_seen", "flag_id", descending=[True, False, False])
    )


def _numbered_duplicates() -> pl.Expr:
    """Flag ids stay unique: a second case of the same name gets `#2`, and so on."""
    number = pl.int_range(pl.len()).over("flag_id")
    return (
        pl.when(number == 0)
        .then(pl.col("flag_id"))
        .otherwise(pl.concat_str("flag_id", pl.lit("#"), (number + 1).cast(pl.String)))
        .alias("flag_id")
    )


def _with_series(cases: pl.DataFrame, attempts: pl.DataFrame) -> pl.DataFrame:
    """A small time series per case: a drift's daily rate, or else the daily attempts of the
    case's actor over the SERIES_DAYS days up to its last day."""
    columns = {
        kind: column for kind, column in ENTITY_COLUMNS.items() if column in attempts.columns
    }
    columns |= {kind: column for kind, column in DIMENSIONS.items() if column in attempts.columns}
    numbered = cases.with_row_index("case_row").with_columns(
        end_day=pl.col("last_seen").str.slice(0, 10).str.to_date()
    )
    parts = []
    for kind in numbered["entity_type"].unique().to_list():
        column = columns.get(kind)
        if column is None:
            continue
        mine = numbered.filter(pl.col("entity_type") == kind, pl.col("drift_series").is_null())
        if mine.is_empty():
            continue
        daily = (
            attempts.filter(pl.col(column).cast(pl.String).is_in(mine["entity_id"].implode()))
            .group_by(pl.col(column).cast(pl.String).alias("entity_id"), "event_date")
            .len()
            .with_columns(day=pl.col("event_date").str.to_date())
        )
        offsets = pl.DataFrame({"offset": list(range(SERIES_DAYS))})
        grid = (
            mine.select("case_row", "entity_id", "end_day")
            .join(offsets, how="cross")
            .with_columns(
                day=pl.col("end_day")
                - pl.duration(days=SERIES_DAYS - 1)
                + pl.duration(days=pl.col("offset"))
            )
        )
        parts.append(
            grid.join(daily.select("entity_id", "day", "len"), on=["entity_id", "day"], how="left")
            .sort("case_row", "offset")
            .group_by("case_row", maintain_order=True)
            .agg(
                counted=pl.col("len").fill_null(0).cast(pl.Float64),
                counted_label=pl.format(
                    f"{kind} attempts per day from {{}}", pl.col("day").first().dt.to_string()
                ),
            )
        )
    schema = {"case_row": pl.UInt32, "counted": pl.List(pl.Float64), "counted_label": pl.String}
    counted = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    return (
        numbered.join(counted, on="case_row", how="left")
        .sort("case_row")
        .with_columns(
            series=pl.coalesce("drift_series", "counted", pl.lit([], pl.List(pl.Float64))),
            series_label=pl.coalesce("drift_label", "counted_label"),
        )
        .drop("case_row", "end_day", "counted", "counted_label")
    )
