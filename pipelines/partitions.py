"""The days the pipeline's runs are partitioned by, and the range a run is for.

The partitions cover every day a ledger may hold: the importer accepts events from 1990 on
(redemption_core's import refuses anything earlier, and the raw gate stops it too), so a
history from 2008 is as welcome as yesterday's sales. A run's range is checked here, before
Dagster sees it, so that a day outside the partitions is a sentence, not a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# The first day the importer accepts (redemption_core/imports/ledger_schema.py EARLIEST).
EARLIEST_DAY = date(1990, 1, 1)


class RunRangeError(ValueError):
    """A run asked for days the pipeline cannot run for; the message says which and why."""


@dataclass(frozen=True)
class RunRange:
    first: date
    last: date
    note: str | None = None  # what was changed from what was asked, for the user


def run_range(
    latest_event_day: date | None,
    first: date | None,
    last: date | None,
    last_partition: date,
) -> RunRange:
    """The days a run re-reads: `first`..`last` when given (a backfill), else the day of the
    ledger's newest event. The ledger's newest event may lie past the last partition (the
    importer takes events up to a day ahead of now): a plain run is then for the last partition,
    and still extracts every new event, whatever its day."""
    if first is None and last is None:
        if latest_event_day is None:
            raise RunRangeError("the ledger has no events: run `promo simulate` or `promo import`")
        if latest_event_day < EARLIEST_DAY:
            raise RunRangeError(
                f"the ledger's newest event is dated {latest_event_day}, before "
                f"{EARLIEST_DAY}, the earliest day the pipeline (and the importer) accepts"
            )
        if latest_event_day > last_partition:
            return RunRange(
                last_partition,
                last_partition,
                f"the ledger's newest event is dated {latest_event_day}, after today's "
                f"partition; running for {last_partition} (every new event is extracted anyway)",
            )
        return RunRange(latest_event_day, latest_event_day)
    first = first or last
    last = last or first
    assert first is not None and last is not None
    if first > last:
        raise RunRangeError(f"--from {first} is after --to {last}")
    if first < EARLIEST_DAY or last > last_partition:
        raise RunRangeError(
            f"the days {first}..{last} are not all between {EARLIEST_DAY} and {last_partition}, "
            "the days the pipeline runs for"
        )
    return RunRange(first, last)
