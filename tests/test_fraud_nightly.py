"""Which days a night's fraud step scores: the whole lake the first time, then the days since the
last run (that day again: it may have been scored half-way), or the days asked for."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from models_ml.fraud_nightly import Window, scoring_window


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for day in ("2026-01-05", "2026-01-06", "2026-02-10"):
        (tmp_path / "lake" / "events" / f"event_date={day}").mkdir(parents=True)
    return tmp_path


def test_a_first_run_scores_the_whole_lake(home: Path) -> None:
    assert scoring_window(home, None) == Window(date(2026, 1, 5), date(2026, 2, 10))


def test_a_later_run_scores_from_the_last_day_scored_again(home: Path) -> None:
    assert scoring_window(home, date(2026, 2, 1)) == Window(date(2026, 2, 1), date(2026, 2, 10))


def test_a_run_asked_for_a_day_scores_from_it_within_the_lake(home: Path) -> None:
    asked = scoring_window(home, date(2026, 2, 1), asked=date(2026, 1, 20))
    too_early = scoring_window(home, None, asked=date(2020, 1, 1))

    assert asked == Window(date(2026, 1, 20), date(2026, 2, 10))
    assert too_early == Window(date(2026, 1, 5), date(2026, 2, 10))


def test_an_empty_lake_has_nothing_to_score(tmp_path: Path) -> None:
    assert scoring_window(tmp_path, None) is None
