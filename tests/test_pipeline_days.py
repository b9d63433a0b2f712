"""Which days a pipeline run is for: any day a ledger may hold, from the importer's earliest on,
and a sentence (never a traceback) for a day the pipeline cannot run for."""

from __future__ import annotations

import contextlib
import io
from datetime import date
from pathlib import Path

import pytest
from builders import Clock, engine_at
from pipeline_helpers import pipeline_env

from pipelines.defs.ingest import daily
from pipelines.partitions import EARLIEST_DAY, RunRange, RunRangeError, run_range
from redemption_core.imports.rows import EARLIEST as IMPORTER_EARLIEST

TODAY = date(2026, 3, 4)


def test_the_partitions_start_on_the_first_day_the_importer_accepts() -> None:
    assert IMPORTER_EARLIEST.date() == EARLIEST_DAY
    assert daily.get_first_partition_window().start.date() == EARLIEST_DAY
    assert daily.has_partition_key("2008-03-03")


def test_a_plain_run_is_for_the_day_of_the_ledgers_newest_event() -> None:
    assert run_range(date(2008, 3, 17), None, None, TODAY) == RunRange(
        date(2008, 3, 17), date(2008, 3, 17)
    )


def test_a_newest_event_dated_after_the_last_partition_runs_the_last_partition() -> None:
    """The importer takes events up to a day ahead of now; every new event is extracted by any
    run, so the run is for the last day there is a partition for, and says so."""
    days = run_range(date(2026, 3, 5), None, None, TODAY)

    assert (days.first, days.last) == (TODAY, TODAY)
    assert days.note is not None and "2026-03-05" in days.note


def test_a_backfill_runs_the_days_it_names_and_one_day_alone() -> None:
    assert run_range(None, date(2008, 3, 1), date(2008, 3, 31), TODAY) == RunRange(
        date(2008, 3, 1), date(2008, 3, 31)
    )
    assert run_range(None, date(2008, 3, 1), None, TODAY) == RunRange(
        date(2008, 3, 1), date(2008, 3, 1)
    )


@pytest.mark.parametrize(
    ("latest", "first", "last", "said"),
    [
        (None, None, None, "the ledger has no events"),
        (date(1989, 12, 31), None, None, "before 1990-01-01"),
        (None, date(1989, 12, 1), date(1990, 1, 5), "between 1990-01-01 and 2026-03-04"),
        (None, date(2026, 3, 1), date(2026, 3, 9), "between 1990-01-01 and 2026-03-04"),
        (None, date(2008, 3, 9), date(2008, 3, 1), "--from 2008-03-09 is after --to 2008-03-01"),
    ],
)
def test_days_the_pipeline_cannot_run_for_are_refused_in_a_sentence(
    latest: date | None, first: date | None, last: date | None, said: str
) -> None:
    with pytest.raises(RunRangeError, match=said):
        run_range(latest, first, last, TODAY)


def test_make_pipeline_refuses_days_before_1990_with_exit_2_and_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.run import main

    engine_at(tmp_path, Clock()).add_customer({"id": "c1"})
    for key, value in pipeline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    err = io.StringIO()

    with contextlib.redirect_stderr(err):
        code = main(["--from", "1989-06-01", "--to", "1989-06-30"])

    assert code == 2
    assert err.getvalue().startswith("pipeline: the days 1989-06-01..1989-06-30 are not all")
    assert "Traceback" not in err.getvalue()
