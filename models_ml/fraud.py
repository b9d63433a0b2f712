"""Fraud detection in three layers, combined into one review queue.

1. Rules (RULES): named, explainable thresholds on features, each about an actor (a device that
   keeps failing, a code redeemed by people who do not hold it, a staff member redeeming at
   night). A rule hit puts the attempt in the queue on its own: its score is at least RULE_SCORE.
2. Anomaly (IsolationForest, fixed seed): how unusual an attempt is among all attempts, learnt
   without labels. Reported as a percentile of the training attempts; it fires at or above
   ANOMALY_FIRE_PCT and is also a feature of the supervised model.
3. Supervised (LightGBM): trained on labels from analysts' review decisions and, where present,
   the simulator's ground truth (label mapping in `attempt_labels`).

An attempt's score is the model probability, or, when a rule fired, RULE_SCORE + (1 -
RULE_SCORE) x probability: a rule hit is in the queue whatever the model says, and the model
still orders rule hits among themselves. It is flagged at or above the operating threshold. Flagged attempts are grouped into flags: an attempt whose actor
set off a rule that day joins that actor's flag (`device:<hash>@<day>`), any other flagged
attempt is its own flag (`attempt:<event_id>`). Each flag carries its layers, reasons (rule
values against thresholds, the features that drove the model score) and the ids a reviewer needs.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.ensemble import IsolationForest

from models_ml.data import DataError, check_columns
from models_ml.fraud_features import FEATURES, build_attempt_features


@dataclass(frozen=True)
class Rule:
    feature: str
    threshold: float
    entity_type: str  # the actor the rule is about: its flag groups that actor's attempts
    why: str


# Every rule fires when `feature >= threshold`. In priority order: an attempt that sets off
# several rules joins the flag of the first.
RULES: dict[str, Rule] = {
    "staff_off_hours_redemptions": Rule(
        "staff_off_hours_manual_24h", 3, "staff",
        "customer-less redemptions keyed in by one staff member at night (23:00-06:00 UTC), 24 h",
    ),
    "device_failed_attempts": Rule(
        "device_failures_1h", 10, "device", "failed validations/redemptions from one device, 1 h"
    ),
    "device_codes_tried": Rule(
        "device_codes_1h", 8, "device", "distinct codes tried from one device, 1 h"
    ),
    "ip_failed_attempts": Rule(
        "ip_failures_1h", 20, "ip", "failed validations/redemptions from one IP address, 1 h"
    ),
    "accounts_per_device": Rule(
        "device_customers_7d", 3, "device", "distinct customer accounts on one device, 7 d"
    ),
    "accounts_per_payment": Rule(
        "payment_customers_7d", 3, "payment",
        "distinct customer accounts paying with one card/wallet, 7 d",
    ),
    "code_used_by_non_holders": Rule(
        "code_nonholders_7d", 2, "code",
        "distinct customers redeeming a code published to someone else, 7 d",
    ),
    "code_velocity": Rule(
        "code_attempts_10m", 15, "code", "attempts on one code, 10 min"
    ),
    "customer_refunds": Rule(
        "customer_refunds_7d", 2, "customer", "refunds to one customer before this attempt, 7 d"
    ),
}  # fmt: skip
RULE_SCORE = 0.9
OPERATING_THRESHOLD = 0.5
ANOMALY_FIRE_PCT = 0.99
ANOMALY_FEATURE = "anomaly_score"
MODEL_FEATURES = (*FEATURES, ANOMALY_FEATURE)
LGB_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
    # Same data + seed → same model bytes: one thread (also keeps training time steady on a busy
    # machine), deterministic mode, no timing-based choice of row- or column-wise histograms.
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}
NUM_BOOST_ROUND = 100
FOREST_PARAMS: dict[str, Any] = {"n_estimators": 50, "max_samples": 256}
BATCH_THREADS = 2  # batch scoring only: results are the same on any number of threads
_CHUNK = 65_536
HOLDOUT_SHARE = 0.25  # the later part of a training window held out for the card's metrics
ENTITY_COLUMNS = {
    "attempt": "event_id",
    "redemption": "redemption_id",
    "customer": "customer_id",
    "device": "device_hash",
    "ip": "ip_hash",
    "payment": "payment_hash",
    "code": "code",
    "voucher": "voucher_id",
    "staff": "staff_id",
    "store": "store_id",
    "sales_channel": "sales_channel",
    "campaign": "campaign_id",
}


# -- labels ------------------------------------------------------------------------------------
# Ground-truth ids that name attempts outright, and actor ids that name the attempts made by that
# actor between the case's start and end.
_EXPLICIT_KEYS = {
    "event_ids": "event_id",
    "redemption_ids": "redemption_id",
    "order_ids": "order_id",
}
_ACTOR_KEYS = {
    "device_hash": "device_hash",
    "ip_hash": "ip_hash",
    "payment_hash": "payment_hash",
    "staff_id": "staff_id",
}


def truth_labels(attempts: pl.DataFrame, cases: list[dict]) -> pl.DataFrame:
    """event_id → (case_id, pattern) for every attempt a ground-truth case names.

    An attempt belongs to a case when the case lists its event, redemption or order id, or when
    it was made between the case's start and end by the case's device, IP, payment fingerprint or
    staff member, or with one of the case's codes by one of its customers (a velocity burst lists
    the successful redemptions only; the rejected tries of the crowd belong to it too)."""
    empty = pl.DataFrame(schema={"event_id": pl.String, "case_id": pl.String, "pattern": pl.String})
    if not cases or attempts.is_empty():
        return empty
    keys: list[dict[str, Any]] = []
    for case in cases:
        base = {
            "case_id": case["case_id"],
            "pattern": case["pattern"],
            "started_at": case["started_at"],
            "ended_at": case["ended_at"],
        }
        for name, column in {**_EXPLICIT_KEYS, **_ACTOR_KEYS}.items():
            values = case.get(name)
            values = values if isinstance(values, list) else [values] if values else []
            keys += [
                {**base, "column": column, "value": v, "windowed": name in _ACTOR_KEYS}
                for v in values
            ]
        for code in case.get("codes") or []:
            for customer in case.get("customer_ids") or []:
                keys.append(
                    {
                        **base,
                        "column": "code+customer",
                        "value": f"{code.upper()}|{customer}",
                        "windowed": True,
                    }
                )
    key_frame = pl.DataFrame(keys, schema_overrides={"value": pl.String})
    key_columns = dict.fromkeys(["event_id", *_EXPLICIT_KEYS.values(), *_ACTOR_KEYS.values()])
    frame = attempts.select(
        "occurred_at",
        *key_columns,
        code_customer=pl.concat_str(["code", "customer_id"], separator="|"),
    )
    parts = []
    for column in (*_EXPLICIT_KEYS.values(), *_ACTOR_KEYS.values(), "code+customer"):
        source = "code_customer" if column == "code+customer" else column
        matched = frame.join(
            key_frame.filter(pl.col("column") == column), left_on=source, right_on="value"
        ).filter(
            ~pl.col("windowed")
            | (
                (pl.col("occurred_at") >= pl.col("started_at"))
                & (pl.col("occurred_at") <= pl.col("ended_at"))
            )
        )
        parts.append(matched.select("event_id", "case_id", "pattern"))
    return (
        pl.concat(parts)
        .sort("event_id", "case_id")
        .unique("event_id", keep="first", maintain_order=True)
    )


def review_attempt_labels(attempts: pl.DataFrame, reviews: pl.DataFrame) -> pl.DataFrame:
    """event_id → review label (1 fraud, 0 legitimate) from the latest decision per flag.

    A flag about one attempt or redemption labels that attempt; a flag about an actor labels the
    actor's attempts on the flag's day (`device:<hash>@2026-01-14`), or all of them when the flag
    names no day. When several decisions cover an attempt, the most specific wins (attempt over
    actor), then the latest."""
    empty = pl.DataFrame(schema={"event_id": pl.String, "review_label": pl.Int32})
    if reviews.is_empty() or attempts.is_empty():
        return empty
    reviews = reviews.filter(pl.col("decision").is_in(["fraud", "legitimate"])).with_columns(
        day=pl.col("flag_id").str.extract(r"@(\d{4}-\d{2}-\d{2})"),
        review_label=(pl.col("decision") == "fraud").cast(pl.Int32),
        specific=pl.col("entity_type").is_in(["attempt", "redemption"]),
    )
    parts = []
    for entity_type, column in ENTITY_COLUMNS.items():
        chosen = reviews.filter(pl.col("entity_type") == entity_type)
        if chosen.is_empty():
            continue
        matched = attempts.select(*dict.fromkeys(["event_id", "event_date", column])).join(
            chosen, left_on=column, right_on="entity_id"
        )
        matched = matched.filter(pl.col("day").is_null() | (pl.col("day") == pl.col("event_date")))
        parts.append(matched.select("event_id", "review_label", "specific", "reviewed_at"))
    if not parts:
        return empty
    return (
        pl.concat(parts)
        .sort("event_id", "specific", "reviewed_at", descending=[False, True, True])
        .unique("event_id", keep="first", maintain_order=True)
        .select("event_id", "review_label")
    )


def attempt_labels(
    attempts: pl.DataFrame, cases: list[dict], reviews: pl.DataFrame | None
) -> pl.DataFrame:
    """The attempts with `label` (1 fraud, 0 legitimate), `case_id`, `pattern`, `label_source`.

    A review decision overrides the ground truth (the analyst has the last word); attempts
    neither names are taken as legitimate."""
    truth = truth_labels(attempts, cases)
    reviewed = review_attempt_labels(attempts, reviews if reviews is not None else pl.DataFrame())
    return (
        attempts.join(truth, on="event_id", how="left", maintain_order="left")
        .join(reviewed, on="event_id", how="left", maintain_order="left")
        .with_columns(
            label=pl.coalesce(
                "review_label", pl.when(pl.col("case_id").is_not_null()).then(1).otherwise(0)
            ).cast(pl.Int32),
            label_source=pl.when(pl.col("review_label").is_not_null())
            .then(pl.lit("review"))
            .when(pl.col("case_id").is_not_null())
            .then(pl.lit("ground_truth"))
            .otherwise(pl.lit("unlabelled")),
        )
        .drop("review_label")
    )


# -- the model ---------------------------------------------------------------------------------
@dataclass
class FastForest:
    """The fitted IsolationForest as padded arrays, to score one row in a few numpy steps
    (sklearn's own path costs milliseconds per call). Gives the same score_samples."""

    feature: np.ndarray  # (trees, nodes) global feature index; leaves point at 0
    threshold: np.ndarray  # leaves +inf, so a leaf always "goes left" to itself
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray  # depth + average path length of the leaf's samples - 1
    depth: int
    denominator: float

    @classmethod
    def from_forest(cls, forest: IsolationForest) -> FastForest:
        from sklearn.ensemble._iforest import _average_path_length

        trees = [e.tree_ for e in forest.estimators_]
        width = max(t.node_count for t in trees)
        shape = (len(trees), width)
        feature = np.zeros(shape, np.int64)
        threshold = np.full(shape, np.inf)
        left = np.tile(np.arange(width), (len(trees), 1))
        right = left.copy()
        leaf_value = np.zeros(shape)
        for i, (tree, columns) in enumerate(zip(trees, forest.estimators_features_, strict=True)):
            n = tree.node_count
            inner = tree.children_left >= 0
            feature[i, :n][inner] = np.asarray(columns)[tree.feature[inner]]
            threshold[i, :n][inner] = tree.threshold[inner]
            left[i, :n][inner] = tree.children_left[inner]
            right[i, :n][inner] = tree.children_right[inner]
            leaf_value[i, :n] = (
                forest._decision_path_lengths[i] + forest._average_path_length_per_tree[i] - 1.0
            )
        denominator = len(trees) * float(_average_path_length([forest._max_samples])[0])
        return cls(
            feature,
            threshold,
            left,
            right,
            leaf_value,
            int(forest.estimators_[0].max_depth or 0) + 1,
            denominator,
        )

    def score_one(self, x: np.ndarray) -> float:
        """sklearn's score_samples for one row (lower = more abnormal)."""
        x = x.astype(np.float32).astype(np.float64)  # sklearn trees compare in float32
        trees = np.arange(self.feature.shape[0])
        node = np.zeros(self.feature.shape[0], np.int64)
        for _ in range(self.depth):
            go_left = x[self.feature[trees, node]] <= self.threshold[trees, node]
            node = np.where(go_left, self.left[trees, node], self.right[trees, node])
        return -float(2.0 ** (-self.leaf_value[trees, node].sum() / self.denominator))


@dataclass
class FraudModel:
    booster: lgb.Booster
    forest: IsolationForest
    fast_forest: FastForest
    forest_reference: np.ndarray  # sorted training anomaly scores, for percentiles
    features: tuple[str, ...] = MODEL_FEATURES
    rules: dict[str, Rule] = field(default_factory=lambda: dict(RULES))
    threshold: float = OPERATING_THRESHOLD
    seed: int = 0

    def anomaly(self, matrix: np.ndarray) -> np.ndarray:
        """Anomaly score (higher = more unusual; sklearn's -score_samples) of rows of FEATURES.

        Row chunks are scored on BATCH_THREADS threads (tree traversal releases the GIL); each
        chunk sums its trees in a fixed order, so the result does not depend on the threads."""
        rows = np.ascontiguousarray(matrix, dtype=np.float32)
        fast = self.fast_forest
        trees = [
            (estimator.tree_, np.asarray(columns), fast.leaf_value[i])
            for i, (estimator, columns) in enumerate(
                zip(self.forest.estimators_, self.forest.estimators_features_, strict=True)
            )
        ]
        identity = np.arange(rows.shape[1])

        def chunk(start: int) -> np.ndarray:
            part = rows[start : start + _CHUNK]
            depth = np.zeros(len(part))
            for tree, columns, leaf_value in trees:
                same = len(columns) == len(identity) and (columns == identity).all()
                x = part if same else np.ascontiguousarray(part[:, columns])
                depth += leaf_value[tree.apply(x)]
            return 2.0 ** (-depth / fast.denominator)

        with ThreadPoolExecutor(BATCH_THREADS) as pool:
            parts = list(pool.map(chunk, range(0, len(rows), _CHUNK)))
        return np.concatenate(parts) if parts else np.zeros(0)

    def anomaly_pct(self, scores: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.forest_reference, scores, side="right") / len(
            self.forest_reference
        )


def feature_matrix(features: pl.DataFrame) -> np.ndarray:
    check_columns(features, FEATURES, "the feature frame")
    return features.select(FEATURES).to_numpy().astype(np.float64)


def fit_fraud(labelled: pl.DataFrame, seed: int) -> FraudModel:
    """Fit the anomaly forest on every attempt and LightGBM on the labels."""
    check_columns(labelled, [*FEATURES, "label"], "the training frame")
    if labelled.is_empty():
        raise DataError("the training frame is empty: no redemption attempts in the window")
    counts = labelled["label"].value_counts()
    if counts.height < 2:
        only = "fraud" if labelled["label"][0] == 1 else "legitimate"
        raise DataError(
            f"the training labels have a single class ({labelled.height} attempts, all {only}): "
            "need fraud cases in the ground truth or review decisions of both kinds"
        )
    matrix = feature_matrix(labelled)
    forest = IsolationForest(**FOREST_PARAMS, random_state=seed).fit(matrix)
    model = FraudModel(
        booster=None,  # type: ignore[arg-type]
        forest=forest,
        fast_forest=FastForest.from_forest(forest),
        forest_reference=np.zeros(1),
        seed=seed,
    )
    anomaly = model.anomaly(matrix)
    data = lgb.Dataset(
        np.column_stack([matrix, anomaly]),
        label=labelled["label"].to_numpy(),
        feature_name=list(MODEL_FEATURES),
        free_raw_data=True,
    )
    model.booster = lgb.train({**LGB_PARAMS, "seed": seed}, data, num_boost_round=NUM_BOOST_ROUND)
    model.forest_reference = np.sort(anomaly)
    return model


# -- scoring -----------------------------------------------------------------------------------
def score_attempts(model: FraudModel, features: pl.DataFrame) -> pl.DataFrame:
    """The features with anomaly_score, anomaly_pct, model_prob, rule_mask (bit i: the i-th rule
    fired), score and flagged. Numpy throughout: this is the batch scoring path."""
    rows = features.height
    matrix = np.empty((rows, len(MODEL_FEATURES)))
    matrix[:, :-1] = feature_matrix(features)
    matrix[:, -1] = anomaly = model.anomaly(matrix[:, :-1])
    prob = model.booster.predict(matrix, num_threads=BATCH_THREADS)
    mask = np.zeros(rows, np.int64)
    for bit, rule in enumerate(model.rules.values()):
        mask |= (matrix[:, FEATURES.index(rule.feature)] >= rule.threshold).astype(np.int64) << bit
    score = np.where(mask > 0, RULE_SCORE + (1 - RULE_SCORE) * prob, prob)
    return features.with_columns(
        anomaly_score=pl.Series(anomaly),
        anomaly_pct=pl.Series(model.anomaly_pct(anomaly)),
        model_prob=pl.Series(prob),
        rule_mask=pl.Series(mask),
        score=pl.Series(score),
        flagged=pl.Series(score >= model.threshold),
    )


def rules_fired(model: FraudModel) -> pl.Expr:
    """The names of the rules an attempt set off, from its rule_mask."""
    return pl.concat_list(
        pl.when((pl.col("rule_mask") & (1 << bit)) != 0).then(pl.lit(name))
        for bit, name in enumerate(model.rules)
    ).list.drop_nulls()


def score_fraud(
    model: FraudModel, events: pl.DataFrame, first: date | None = None, last: date | None = None
) -> pl.DataFrame:
    """The review queue for the attempts in [first, last] of an events frame."""
    return review_queue(model, score_attempts(model, build_attempt_features(events, first, last)))


def review_queue(model: FraudModel, scored: pl.DataFrame) -> pl.DataFrame:
    """One row per flag (see the module docstring), highest score first."""
    flagged = scored.filter(pl.col("flagged")).with_columns(rules_fired=rules_fired(model))
    # Actors a rule fired on, per day: the flags that gather that actor's flagged attempts.
    actors = []
    for name, rule in model.rules.items():
        column = ENTITY_COLUMNS[rule.entity_type]
        actors.append(
            flagged.filter(pl.col("rules_fired").list.contains(name))
            .select(
                pl.col(column).alias("entity_id"),
                "event_date",
                entity_type=pl.lit(rule.entity_type),
                priority=pl.lit(len(actors)),
            )
            .unique()
        )
    assigned = flagged.select(
        "event_id", "event_date", *{ENTITY_COLUMNS[r.entity_type] for r in model.rules.values()}
    )
    candidates = [
        assigned.join(
            actor,
            left_on=[ENTITY_COLUMNS[rule.entity_type], "event_date"],
            right_on=["entity_id", "event_date"],
        ).select(
            "event_id",
            "priority",
            "entity_type",
            entity_id=pl.col(ENTITY_COLUMNS[rule.entity_type]),
        )
        for rule, actor in zip(model.rules.values(), actors, strict=True)
    ]
    owner = (
        pl.concat(candidates).sort("event_id", "priority").unique("event_id", keep="first")
        if candidates
        else pl.DataFrame(
            schema={
                "event_id": pl.String,
                "priority": pl.Int32,
                "entity_type": pl.String,
                "entity_id": pl.String,
            }
        )
    )
    flagged = (
        flagged.join(owner.drop("priority"), on="event_id", how="left")
        .with_columns(
            entity_type=pl.col("entity_type").fill_null("attempt"),
            entity_id=pl.coalesce("entity_id", "event_id"),
        )
        .with_columns(
            flag_id=pl.when(pl.col("entity_type") == "attempt")
            .then(pl.concat_str(pl.lit("attempt:"), "event_id"))
            .otherwise(
                pl.concat_str("entity_type", pl.lit(":"), "entity_id", pl.lit("@"), "event_date")
            )
        )
    )
    reasons = _reasons(model, flagged)
    queue = (
        flagged.join(reasons, on="event_id", how="left")
        .sort("score", "seq", descending=[True, False])
        .group_by("flag_id", maintain_order=True)
        .agg(
            entity_type=pl.col("entity_type").first(),
            entity_id=pl.col("entity_id").first(),
            score=pl.col("score").max(),
            model_prob=pl.col("model_prob").max(),
            anomaly_pct=pl.col("anomaly_pct").max(),
            rules_fired=pl.col("rules_fired")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .unique()
            .sort(),
            **{
                f"rule_{i}": pl.when(pl.col("rules_fired").list.contains(name).any()).then(
                    pl.format(
                        f"{name}: {rule.feature} reached {{}} (threshold {rule.threshold:g}; {rule.why})",
                        pl.col(rule.feature)
                        .filter(pl.col("rules_fired").list.contains(name))
                        .max()
                        .round(3),
                    )
                )
                for i, (name, rule) in enumerate(model.rules.items())
            },
            model_reasons=pl.col("model_reasons").first(),
            attempts=pl.len(),
            event_ids=pl.col("event_id").sort(),
            customer_ids=pl.col("customer_id").drop_nulls().unique().sort(),
            voucher_ids=pl.col("voucher_id").drop_nulls().unique().sort(),
            redemption_ids=pl.col("redemption_id").drop_nulls().unique().sort(),
            codes=pl.col("code").drop_nulls().unique().sort(),
            store_ids=pl.col("store_id").drop_nulls().unique().sort(),
            staff_ids=pl.col("staff_id").drop_nulls().unique().sort(),
            first_seen=pl.col("occurred_at").min(),
            last_seen=pl.col("occurred_at").max(),
        )
        .with_columns(
            layers=pl.concat_list(
                pl.when(pl.col("rules_fired").list.len() > 0).then(pl.lit("rules")),
                pl.when(pl.col("anomaly_pct") >= ANOMALY_FIRE_PCT).then(pl.lit("anomaly")),
                pl.when(pl.col("model_prob") >= model.threshold).then(pl.lit("model")),
            ).list.drop_nulls(),
        )
        .with_columns(
            reasons=pl.concat_list(
                pl.concat_list(*[f"rule_{i}" for i in range(len(model.rules))]).list.drop_nulls(),
                pl.when(pl.col("anomaly_pct") >= ANOMALY_FIRE_PCT)
                .then(
                    pl.concat_list(
                        pl.format(
                            "anomaly: more unusual than {}% of attempts",
                            (pl.col("anomaly_pct") * 100).round(1),
                        )
                    )
                )
                .otherwise(pl.lit([], pl.List(pl.String))),
                "model_reasons",
            )
        )
        .with_columns(
            # One id of each kind for a table row (the lists hold them all).
            **{
                single: pl.col(f"{single}s").list.first()
                for single in ("customer_id", "voucher_id", "redemption_id", "store_id", "staff_id")
            }
        )
        .drop("model_reasons", *[f"rule_{i}" for i in range(len(model.rules))])
        .sort("score", "first_seen", "flag_id", descending=[True, False, False])
    )
    return queue


def _reasons(model: FraudModel, flagged: pl.DataFrame, top: int = 3) -> pl.DataFrame:
    """Per flagged attempt: the features that pushed the model's score up most (LightGBM
    contributions, in log-odds)."""
    schema = {"event_id": pl.String, "model_reasons": pl.List(pl.String)}
    if flagged.is_empty():
        return pl.DataFrame(schema=schema)
    matrix = np.column_stack([feature_matrix(flagged), flagged["anomaly_score"].to_numpy()])
    contributions = model.booster.predict(matrix, pred_contrib=True)[:, :-1]  # last: bias
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :top]
    texts = [
        [
            f"model: {model.features[j]}={matrix[i, j]:.4g} (+{contributions[i, j]:.2f})"
            for j in order[i]
            if contributions[i, j] > 0
        ]
        for i in range(len(order))
    ]
    return flagged.select(
        "event_id",
        model_reasons=pl.Series(texts, dtype=pl.List(pl.String)),
    )


class FraudScorer:
    """Scores one attempt's feature vector (FEATURES order) in well under a millisecond."""

    def __init__(self, model: FraudModel) -> None:
        self.model = model
        self._rule_index = np.array([FEATURES.index(r.feature) for r in model.rules.values()])
        self._rule_threshold = np.array([r.threshold for r in model.rules.values()], float)
        self._row = np.zeros((1, len(MODEL_FEATURES)))

    def score(self, x: np.ndarray) -> float:
        if x.shape != (len(FEATURES),):
            raise DataError(f"a feature vector has {len(FEATURES)} values, got shape {x.shape}")
        self._row[0, :-1] = x
        self._row[0, -1] = -self.model.fast_forest.score_one(x)
        prob = float(self.model.booster.predict(self._row, num_threads=1)[0])
        if (x[self._rule_index] >= self._rule_threshold).any():
            return RULE_SCORE + (1 - RULE_SCORE) * prob
        return prob


# -- training ----------------------------------------------------------------------------------
def split_day(first: date, last: date, share: float = HOLDOUT_SHARE) -> date:
    """The first day of the held-out later part of [first, last] (at least one day each side)."""
    days = (last - first).days + 1
    if days < 2:
        raise DataError(f"the window {first}..{last} is one day: need two or more to hold some out")
    held = min(days - 1, max(1, round(days * share)))
    return last - timedelta(days=held - 1)


def labelled_frame(
    events: pl.DataFrame,
    first: date,
    last: date,
    cases: list[dict],
    reviews: pl.DataFrame | None,
) -> pl.DataFrame:
    features = build_attempt_features(events, first, last)
    if features.is_empty():
        raise DataError(f"no redemption attempts between {first} and {last}")
    return attempt_labels(features, cases, reviews)


def fingerprint(frame: pl.DataFrame) -> str:
    """sha256 of the frame's columns and values (CSV text, in its row order)."""
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()
