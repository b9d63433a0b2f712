"""Fraud review decisions are ledger events, replayable, and refuse bad input by field."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from redemption_core.domain.errors import InvalidInput
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.verify import verify_ledger


def open_engine(tmp_path: Path) -> RedemptionEngine:
    return RedemptionEngine.open(tmp_path)


def test_a_review_decision_is_a_ledger_event_and_the_latest_one_counts(tmp_path: Path) -> None:
    engine = open_engine(tmp_path)

    first = engine.record_review(
        "redemption:r_1",
        "redemption",
        "r_1",
        "fraud",
        reviewer="ana",
        note="same device",
        score=0.93,
    )
    second = engine.record_review(
        "redemption:r_1", "redemption", "r_1", "legitimate", reviewer="ben"
    )
    engine.record_review("device:abc", "device", "abc", "fraud", reviewer="ana")

    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        events = db.execute(
            "select event_id, json_extract(payload, '$.decision') from events "
            "where event_type = 'fraud_review_recorded' order by seq"
        ).fetchall()
    assert events == [(first, "fraud"), (second, "legitimate"), (events[2][0], "fraud")]
    assert {flag: decision for flag, (decision, _) in engine.reviews().items()} == {
        "redemption:r_1": "legitimate",
        "device:abc": "fraud",
    }
    assert verify_ledger(tmp_path / "ledger.sqlite").differences == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"flag_id": ""}, "flag_id"),
        ({"entity_type": "planet"}, "entity_type"),
        ({"entity_id": ""}, "entity_id"),
        ({"decision": "maybe"}, "decision"),
        ({"reviewer": ""}, "reviewer"),
        ({"score": 1.5}, "score"),
        ({"note": "x" * 2001}, "note"),
    ],
)
def test_a_bad_review_is_refused_naming_the_field_and_records_nothing(
    tmp_path: Path, arguments: dict, field: str
) -> None:
    engine = open_engine(tmp_path)
    call = {
        "flag_id": "customer:c1",
        "entity_type": "customer",
        "entity_id": "c1",
        "decision": "fraud",
        "reviewer": "ana",
        **arguments,
    }

    with pytest.raises(InvalidInput) as refused:
        engine.record_review(
            call.pop("flag_id"),
            call.pop("entity_type"),
            call.pop("entity_id"),
            call.pop("decision"),
            **call,
        )

    assert refused.value.field == field
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        assert db.execute("select count(*) from events").fetchone()[0] == 0
