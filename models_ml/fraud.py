"""The supervised fraud layer: a LightGBM model over the attempt features (and an
IsolationForest anomaly score as one more feature), trained on labels from analysts' review
decisions and, where present, a simulation's ground truth (label mapping in `attempt_labels`).

It joins the label-free layers (fraud_rules, fraud_anomaly, fraud_drift; combined into the
review queue by fraud_detect) once a version is promoted: an attempt it scores at or above its
operating threshold becomes a signal of its own. It never replaces the other layers, and the
named rules live in one table only, fraud_rules.RULES.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.ensemble import IsolationForest

from models_ml.data import DataError, check_columns
from models_ml.fraud_features import FEATURES, build_attempt_features
from models_ml.fraud_rules import ENTITY_COLUMNS

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
    """The features with anomaly_score, anomaly_pct, model_prob, score (= model_prob) and
    flagged (score at or above the operating threshold). Numpy throughout: the batch path."""
    rows = features.height
    matrix = np.empty((rows, len(MODEL_FEATURES)))
    matrix[:, :-1] = feature_matrix(features)
    matrix[:, -1] = anomaly = model.anomaly(matrix[:, :-1])
    prob = model.booster.predict(matrix, num_threads=BATCH_THREADS)
    return features.with_columns(
        anomaly_score=pl.Series(anomaly),
        anomaly_pct=pl.Series(model.anomaly_pct(anomaly)),
        model_prob=pl.Series(prob),
        score=pl.Series(prob),
        flagged=pl.Series(prob >= model.threshold),
    )


def model_reasons(model: FraudModel, flagged: pl.DataFrame, top: int = 3) -> pl.DataFrame:
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
        self._row = np.zeros((1, len(MODEL_FEATURES)))

    def score(self, x: np.ndarray) -> float:
        if x.shape != (len(FEATURES),):
            raise DataError(f"a feature vector has {len(FEATURES)} values, got shape {x.shape}")
        self._row[0, :-1] = x
        self._row[0, -1] = -self.model.fast_forest.score_one(x)
        return float(self.model.booster.predict(self._row, num_threads=1)[0])


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
