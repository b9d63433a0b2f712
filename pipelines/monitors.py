"""What the pipeline's monitoring checks find in the build warehouse, as plain functions.

The statuses of System health and Campaign health are computed once, by the marts
(fct_system_health, fct_campaign_health, with the rules of macros/rate_monitor.sql); these
functions only read them, so Dagster's asset checks and the console's pages always agree. The
volume of ledger events per day has no mart: it is judged here, against the days before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from statistics import median
from typing import Literal

import duckdb

Status = Literal["ok", "warning", "failing"]
SEVERITY: dict[Status, int] = {"ok": 0, "warning": 1, "failing": 2}


@dataclass(frozen=True)
class Finding:
    """A monitor's verdict: its status, what it found in words, and the figures behind it."""

    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    def text(self) -> str:
        return "\n".join([self.summary, *(f"- {line}" for line in self.details)])


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=SEVERITY.__getitem__, default="ok")


SYSTEM_MONITORS = (
    ("completeness", "Completeness"),
    ("redemption_rejection", "Redemption rejections"),
    ("delivery_failure", "Delivery failures"),
)


def system_health(warehouse: Path) -> Finding:
    """The latest build's monitors in fct_system_health: each status and its rule."""
    columns = ", ".join(f"{name}_status, {name}_rule" for name, _ in SYSTEM_MONITORS)
    with duckdb.connect(str(warehouse), read_only=True) as db:
        row = db.execute(
            f"SELECT health_status, {columns} FROM marts.fct_system_health "
            "ORDER BY built_at DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return Finding("warning", "fct_system_health holds no build")
    status, *pairs = row
    details = [
        f"{label}: {pairs[2 * index]}: {pairs[2 * index + 1]}"
        for index, (_, label) in enumerate(SYSTEM_MONITORS)
    ]
    flagged = [
        label for index, (_, label) in enumerate(SYSTEM_MONITORS) if pairs[2 * index] != "ok"
    ]
    summary = f"system health {status}: " + (", ".join(flagged) if flagged else "every monitor ok")
    figures = {f"{name}_status": pairs[2 * i] for i, (name, _) in enumerate(SYSTEM_MONITORS)}
    return Finding(status, summary, details, figures)


def campaign_health(warehouse: Path) -> Finding:
    """Campaigns fct_campaign_health does not find ok, with the rules that flagged them."""
    with duckdb.connect(str(warehouse), read_only=True) as db:
        rows = db.execute(
            """
            SELECT coalesce(campaign_name, campaign_id), campaign_id, health_status,
                status_reason
            FROM marts.fct_campaign_health
            ORDER BY CASE health_status WHEN 'failing' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                campaign_id
            """
        ).fetchall()
    flagged = [row for row in rows if row[2] != "ok"]
    counts = {s: sum(1 for row in rows if row[2] == s) for s in ("failing", "warning", "ok")}
    status = worst([row[2] for row in rows])
    summary = (
        f"{counts['failing']} failing, {counts['warning']} warning, {counts['ok']} ok of "
        f"{len(rows)} campaigns"
    )
    details = [f"{name} ({cid}): {state}: {reason}" for name, cid, state, reason in flagged]
    return Finding(status, summary, details, {"campaigns": len(rows), **counts})


# Volume: the last complete day's ledger events against the days before it. Daily volumes are
# bursty (a promotion sends thousands of vouchers in a day), so the baseline is their median and
# the test rank-based: a day lower than every one of the 28 before it happens by chance once in
# 29 at most, and under half the median it is a drop worth a look.
VOLUME_BASELINE_DAYS = 28
VOLUME_MIN_BASELINE_MEDIAN = 20  # below that, a day's count is too small to judge
VOLUME_DROP_RATIO = 0.5


def daily_event_counts(warehouse: Path) -> list[tuple[date, int]]:
    """Ledger events per day in the raw layer over the days the volume check reads (the
    latest VOLUME_BASELINE_DAYS + 2), oldest first; a first entry of (first day, 0) when the
    ledger starts inside that stretch, so days before it do not count as quiet ones."""
    with duckdb.connect(str(warehouse), read_only=True) as db:
        first, last = db.execute(
            "SELECT min(event_date), max(event_date) FROM raw.ledger_events"
        ).fetchone()
        if last is None:
            return []
        since = max(
            date.fromisoformat(first),
            date.fromisoformat(last) - timedelta(days=VOLUME_BASELINE_DAYS + 1),
        )
        # text comparison on the ISO day: the raw layer's ordering keeps this to its last pages
        rows = db.execute(
            "SELECT CAST(event_date AS DATE) AS day, count(*) FROM raw.ledger_events "
            "WHERE event_date >= ? GROUP BY day ORDER BY day",
            [since.isoformat()],
        ).fetchall()
    counts = [(day, int(events)) for day, events in rows]
    if counts and counts[0][0] > since:
        counts.insert(0, (since, 0))
    return counts


def event_volume(daily: list[tuple[date, int]]) -> Finding:
    """Judge the last complete day (the day before the latest event's, which may still be
    filling up) against up to 28 calendar days before it, days without events counted as
    zero: failing when nothing arrived although events usually do; warning when it is under
    half their median and lower than every one of them."""
    if len(daily) < 2:
        return Finding("ok", "fewer than two days of events: no volume to judge yet")
    counts = dict(daily)
    first = daily[0][0]
    day = daily[-1][0] - timedelta(days=1)
    before = [
        counts.get(day - timedelta(days=offset), 0)
        for offset in range(1, VOLUME_BASELINE_DAYS + 1)
        if day - timedelta(days=offset) >= first
    ]
    events = counts.get(day, 0)
    figures: dict[str, object] = {"day": day.isoformat(), "events": events}
    if not before:
        return Finding("ok", f"{events:,} events on {day}: no earlier day to compare", [], figures)
    typical = median(before)
    figures |= {"baseline_days": len(before), "baseline_median": typical, "lowest": min(before)}
    where = (
        f"{events:,} events on {day} against a median of {typical:,.0f} a day (lowest "
        f"{min(before):,}) over the {len(before)} days before"
    )
    if typical < VOLUME_MIN_BASELINE_MEDIAN:
        return Finding("ok", f"{where}: too few a day to judge", [], figures)
    if events == 0:
        return Finding(
            "failing", f"{where}: nothing arrived (failing: no event at all)", [], figures
        )
    if events < VOLUME_DROP_RATIO * typical and events < min(before):
        return Finding(
            "warning",
            f"{where}: under half the median and lower than every day before (warning: both)",
            [],
            figures,
        )
    return Finding("ok", f"{where}: within the usual range", [], figures)


def ml_output(warehouse: Path, table: str, *, may_be_empty: bool) -> Finding:
    """Whether the nightly scoring wrote `ml.<table>` (none: no model promoted yet), how many
    rows, with which model, scored when."""
    with duckdb.connect(str(warehouse), read_only=True) as db:
        exists = db.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'ml' AND table_name = ?",
            [table],
        ).fetchone()[0]
        if not exists:
            return Finding("warning", f"ml.{table} was not written: no model promoted to score")
        rows, versions, scored_at = db.execute(
            f"SELECT count(*), list(DISTINCT model_version), max(scored_at) FROM ml.{table}"
        ).fetchone()
    figures = {"rows": rows, "model_versions": ", ".join(map(str, versions or []))}
    if rows == 0 and not may_be_empty:
        return Finding("warning", f"ml.{table} is empty", [], figures)
    return Finding(
        "ok",
        f"ml.{table}: {rows:,} rows by {figures['model_versions'] or 'no model'}, "
        f"scored {scored_at or 'never'}",
        [],
        figures,
    )
