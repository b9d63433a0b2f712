"""The fraud model on simulated ledgers: every injected pattern is found on a ledger it was not
trained on, training is deterministic, reviews become labels, regressions are not promoted, and
bad input is refused with a message that names the problem."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from models_ml.data import DataError, load_ground_truth, load_review_labels
from models_ml.evaluate import evaluate_fraud
from models_ml.fraud import (
    FraudScorer,
    fit_fraud,
    labelled_frame,
    score_attempts,
)
from models_ml.fraud_features import FEATURES, load_fraud_events
from models_ml.fraud_training import train_fraud
from models_ml.registry import Registry, RegistryError
from pipelines.ledger_extract import Lake, sync_lake
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.simulate import FRAUD_PATTERNS, SimulationConfig, simulate

DAYS = 21
FIRST = date(2026, 1, 5)
LAST = FIRST + timedelta(days=DAYS - 1)


def simulated(home: Path, seed: int) -> Path:
    simulate(
        home, SimulationConfig(customers=600, days=DAYS, seed=seed, fraud_scale=15), progress=None
    )
    sync_lake(home / "ledger.sqlite", Lake(home / "lake"))
    return home


@pytest.fixture(scope="module")
def ledger_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated(tmp_path_factory.mktemp("fraud-a"), seed=5)


@pytest.fixture(scope="module")
def ledger_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated(tmp_path_factory.mktemp("fraud-b"), seed=6)


def inputs(home: Path) -> tuple[pl.DataFrame, list[dict], pl.DataFrame]:
    return (
        load_fraud_events(home / "lake", FIRST, LAST),
        load_ground_truth(home / "simulation" / "ground_truth.jsonl"),
        load_review_labels(home / "lake"),
    )


@pytest.fixture(scope="module")
def trained(ledger_a: Path):
    events, cases, reviews = inputs(ledger_a)
    return train_fraud(events, FIRST, LAST, 1, cases, reviews)


def promo(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "redemption_core.cli", *args],
        capture_output=True,
        text=True,
        env={"PROMO_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_every_injected_fraud_pattern_is_flagged_on_a_ledger_the_model_never_saw(
    trained, ledger_b: Path
) -> None:
    model, _ = trained
    events, cases, reviews = inputs(ledger_b)

    metrics = evaluate_fraud(model, events, FIRST, LAST, cases, reviews)

    assert {case["pattern"] for case in cases} == set(FRAUD_PATTERNS)
    for pattern in FRAUD_PATTERNS:
        assert metrics[f"{pattern}.cases_flagged"] >= 1, pattern
        assert metrics[f"{pattern}.recall"] > 0.3, pattern
    assert metrics["pr_auc"] > 0.8


def test_the_single_request_scorer_gives_the_batch_score(trained, ledger_b: Path) -> None:
    model, _ = trained
    events, _, _ = inputs(ledger_b)
    scored = score_attempts(model, labelled_frame(events, FIRST, LAST, [], None)).head(300)

    scorer = FraudScorer(model)
    single = [scorer.score(row) for row in scored.select(FEATURES).to_numpy()]

    np.testing.assert_allclose(single, scored["score"].to_numpy(), atol=1e-9)


def test_the_same_data_and_seed_give_identical_model_bytes_and_metrics(ledger_a: Path) -> None:
    events, cases, reviews = inputs(ledger_a)

    first_model, first_card = train_fraud(events, FIRST, LAST, 3, cases, reviews)
    second_model, second_card = train_fraud(events, FIRST, LAST, 3, cases, reviews)

    assert pickle.dumps(first_model, protocol=5) == pickle.dumps(second_model, protocol=5)
    assert first_card == second_card


def test_a_review_decision_becomes_a_label_in_the_next_training_frame(
    ledger_a: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(ledger_a, home, ignore=shutil.ignore_patterns("models"))
    events, cases, _ = inputs(home)
    before = labelled_frame(events, FIRST, LAST, cases, load_review_labels(home / "lake"))
    honest = before.filter(pl.col("label") == 0).row(0, named=True)["event_id"]
    fraud = before.filter(pl.col("label") == 1).row(0, named=True)["event_id"]

    with RedemptionEngine.open(home) as engine:
        engine.record_review(f"attempt:{honest}", "attempt", honest, "fraud", reviewer="ana")
        engine.record_review(f"attempt:{fraud}", "attempt", fraud, "legitimate", reviewer="ana")
    sync_lake(home / "ledger.sqlite", Lake(home / "lake"))
    after = labelled_frame(events, FIRST, LAST, cases, load_review_labels(home / "lake"))

    labels = {
        row["event_id"]: row
        for row in after.filter(pl.col("event_id").is_in([honest, fraud])).iter_rows(named=True)
    }
    assert (labels[honest]["label"], labels[honest]["label_source"]) == (1, "review")
    assert (labels[fraud]["label"], labels[fraud]["label_source"]) == (0, "review")


def test_a_model_whose_metrics_regress_is_not_promoted_unless_forced(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    card = {
        "training_window": {"from": "2026-01-05", "to": "2026-01-25"},
        "features": list(FEATURES),
        "params": {},
        "seed": 1,
        "primary_metric": "pr_auc",
        "data_fingerprint": "0" * 64,
    }
    registry.save("fraud", {"model": 1}, {**card, "metrics": {"pr_auc": 0.9}})
    registry.save("fraud", {"model": 2}, {**card, "metrics": {"pr_auc": 0.7}})
    registry.promote("fraud-v1")

    with pytest.raises(RegistryError, match="below the promoted"):
        registry.promote("fraud-v2")
    refused = promo(tmp_path, "models", "promote", "fraud-v2")
    listed = promo(tmp_path, "--json", "models", "list")
    forced = promo(tmp_path, "models", "promote", "fraud-v2", "--force")

    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "pr_auc 0.7000, below" in refused.stderr
    assert [row["version"] for row in json.loads(listed.stdout) if row["promoted"]] == ["fraud-v1"]
    assert forced.returncode == 0 and registry.promoted("fraud").version == "fraud-v2"
    assert promo(tmp_path, "models", "rollback", "fraud").returncode == 0
    assert registry.promoted("fraud").version == "fraud-v1"


def test_the_cli_trains_a_version_with_its_card_and_evaluates_it(
    ledger_a: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(ledger_a, home, ignore=shutil.ignore_patterns("models"))

    trained = promo(
        home,
        "--json",
        "models",
        "train",
        "fraud",
        "--from",
        str(FIRST),
        "--to",
        str(LAST),
        "--seed",
        "2",
    )
    card = json.loads(trained.stdout)
    evaluated = promo(home, "--json", "models", "evaluate", card["version"])

    assert trained.returncode == 0, trained.stderr
    assert card["training_window"] == {"from": str(FIRST), "to": str(LAST)}
    assert card["seed"] == 2 and len(card["data_fingerprint"]) == 64
    assert card["features"][-1] == "anomaly_score" and "pr_auc" in card["metrics"]
    assert json.loads(evaluated.stdout)["window"] == card["extra"]["holdout_window"]


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        (LAST, FIRST, "empty window"),
        (date(2030, 1, 1), date(2030, 1, 9), "no redemption attempts"),
    ],
)
def test_a_window_without_attempts_is_refused_with_a_clear_error(
    ledger_a: Path, first: date, last: date, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        events = load_fraud_events(ledger_a / "lake", first, last)
        train_fraud(events, first, last, 1, [], None)


def test_labels_of_a_single_class_are_refused(ledger_a: Path) -> None:
    events, _, _ = inputs(ledger_a)
    honest_only = labelled_frame(events, FIRST, LAST, [], None)

    with pytest.raises(DataError, match=r"single class .* all legitimate"):
        fit_fraud(honest_only, 1)


def test_a_training_frame_without_labels_is_refused_naming_the_column(ledger_a: Path) -> None:
    events, _, _ = inputs(ledger_a)
    frame = labelled_frame(events, FIRST, LAST, [], None).drop("label", "device_codes_1h")

    with pytest.raises(DataError, match="missing columns: device_codes_1h, label"):
        fit_fraud(frame, 1)


def test_the_cli_names_the_problem_in_one_line_and_exits_2(tmp_path: Path) -> None:
    no_lake = promo(tmp_path, "models", "train", "fraud")
    bad_version = promo(tmp_path, "models", "evaluate", "fraud-v7")
    bad_date = promo(tmp_path, "models", "train", "fraud", "--to", "2026-02-30")

    assert [r.returncode for r in (no_lake, bad_version, bad_date)] == [2, 2, 2]
    assert "no events in the lake" in no_lake.stderr
    assert "no model version fraud-v7" in bad_version.stderr
    assert "not a date" in bad_date.stderr
    assert all(r.stderr.count("\n") == 1 for r in (no_lake, bad_version, bad_date))


def test_without_any_label_training_stops_before_building_features(
    ledger_a: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger with no ground truth and no reviews (a real one, before analysts have decided
    anything) can't give a fraud model; the nightly bootstrap must learn that cheaply."""
    import models_ml.fraud_features as fraud_features
    from models_ml.training import train_and_register

    home = tmp_path / "unlabelled"
    home.mkdir()
    shutil.copytree(ledger_a / "lake", home / "lake")

    def must_not_run(*args, **kwargs):
        raise AssertionError("features were built for a ledger without labels")

    monkeypatch.setattr(fraud_features, "load_fraud_events", must_not_run)
    with pytest.raises(DataError, match="no fraud to learn from"):
        train_and_register(home, "fraud")
