"""`make demo`: simulate a restaurant into PROMO_HOME, run the whole nightly pipeline, and print
what it found: events, campaigns, and the best and worst campaign by incremental profit.

A PROMO_HOME that holds a ledger this demo did not make is left alone.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import duckdb

from pipelines.paths import PipelinePaths
from pipelines.run import failure_messages, prepare_environment, run_pipeline
from redemption_core import (
    Effect,
    SimulationConfig,
    describe_effect,
    describe_without_interval,
    overall_verdict,
    simulate,
)

MARKER = ".made-by-demo"
DEMO_SIMULATION = SimulationConfig(customers=4_000, days=90, seed=2026)


def fresh_home(home: Path) -> None:
    """Empty a PROMO_HOME the demo made before; refuse one that holds someone else's ledger."""
    paths = PipelinePaths(home)
    if paths.ledger.exists() and not (home / MARKER).exists():
        raise SystemExit(
            f"{home} already holds a ledger the demo did not make; "
            "set PROMO_HOME to an empty folder (e.g. PROMO_HOME=/tmp/promo-demo make demo)"
        )
    if home.exists():
        for child in home.iterdir():
            if child.name == "README.md":
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("PROMO_HOME made by `make demo`; the next demo empties it.\n")


def summary(published: Path) -> list[str]:
    """Headline numbers from the published warehouse, worded as the console words them: the
    best and worst campaign by incremental profit with their intervals and what those say, and
    the verdict over every measured campaign with the effect their control groups could
    detect (redemption_core's effects, the same sentences as Campaign performance)."""
    with duckdb.connect(str(published), read_only=True) as db:
        events, campaigns = db.execute(
            "select (select max(ledger_events) from marts.fct_system_health), "
            "(select count(*) from marts.dim_campaigns)"
        ).fetchone()
        rows = db.execute(
            """
            select coalesce(campaign_name, campaign_id), currency, incremental_profit,
                incremental_profit_ci_low, incremental_profit_ci_high, incremental_profit_se
            from marts.fct_campaign_performance
            where incremental_profit is not null
            order by incremental_profit desc, campaign_id
            """
        ).fetchall()
    # one customer in an arm gives an estimate without a standard error, so without an interval
    effects = [
        Effect(row[0], row[1], *map(float, row[2:])) if None not in row else None for row in rows
    ]
    lines = [f"events in the warehouse: {events:,}", f"campaigns: {campaigns}"]
    if rows:
        for label, index in (("best", 0), ("worst", -1)):
            name, currency, profit, *_ = rows[index]
            effect = effects[index]
            text = (
                describe_effect(effect)
                if effect is not None
                else describe_without_interval(name, currency, float(profit))
            )
            lines.append(f"{label} campaign by incremental profit: {text}")
        judged = [effect for effect in effects if effect is not None]
        unjudged = [row[0] for row, effect in zip(rows, effects, strict=True) if effect is None]
        lines += [
            f"verdict: {sentence}"
            for sentence in overall_verdict(judged, without_interval=unjudged)
        ]
    else:
        lines.append("no campaign with a control group: no incremental profit to rank")
    return lines


def main() -> int:
    home = Path(os.environ.get("PROMO_HOME") or "data").resolve()
    fresh_home(home)
    paths = prepare_environment(home)
    started = time.perf_counter()
    print(
        f"simulating {DEMO_SIMULATION.customers:,} customers over {DEMO_SIMULATION.days} days "
        f"into {home} ..."
    )
    report = simulate(home, DEMO_SIMULATION)
    print(f"{report.events:,} ledger events in {time.perf_counter() - started:.0f} s")

    started = time.perf_counter()
    print("running the pipeline (extract, dbt marts and tests, quality gates, publish) ...")
    result = run_pipeline(home, quiet=True)
    if not result.success:
        for message in failure_messages(result.all_events):
            print(message, file=sys.stderr)
        print(
            f"the pipeline FAILED; details in {home / 'pipeline.log'} and the Dagster UI (make dagster)",
            file=sys.stderr,
        )
        return 1
    print(f"pipeline finished in {time.perf_counter() - started:.0f} s\n")
    for line in summary(paths.published_warehouse):
        print(line)
    print(
        "\nNext:\n"
        "  make console   the analysts' console on http://127.0.0.1:8501\n"
        "  make dagster   the Dagster UI (assets, checks, runs, schedule) on http://127.0.0.1:3000\n"
        f"  both read PROMO_HOME={home}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
