"""`promo import` (another system's history) and `promo simulate` (a business of our own)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from redemption_core.cli.common import Output, engine_command, whole_number
from redemption_core.domain.parsing import timestamp
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.imports.dunnhumby import dunnhumby_events
from redemption_core.imports.ledger_schema import (
    ImportRefused,
    events_to_rows,
    import_events,
    open_rows,
)
from redemption_core.imports.reading import RowSource, in_chunks
from redemption_core.ledger.home import promo_home
from redemption_core.simulate.simulation import SimulationConfig, simulate


def register(commands: Any) -> None:
    imported = commands.add_parser(
        "import", help="import events (ledger schema, .parquet or .csv) or another system's tables"
    )
    imported.add_argument("path", type=Path, help="a file of events, or the folder of a mapping")
    imported.add_argument("--mapping", choices=["dunnhumby"], help="the source system's tables")
    imported.set_defaults(handler=_import)

    simulated = commands.add_parser(
        "simulate", help="run a simulated restaurant through the core into an empty PROMO_HOME"
    )
    simulated.add_argument(
        "--customers", type=whole_number, default=2000, help="how many customers"
    )
    simulated.add_argument(
        "--days", type=whole_number, default=90, help="how many days to simulate"
    )
    simulated.add_argument("--start", default="2026-01-05T00:00:00Z", help="first day (ISO 8601)")
    simulated.add_argument("--seed", type=whole_number, default=1, help="same seed, same ledger")
    simulated.add_argument("--fraud-scale", type=float, default=1.0, help="0 for no fraud")
    simulated.set_defaults(handler=_simulate)


@engine_command
def _import(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.mapping == "dunnhumby":
        # A mapping builds its events table by table; they happened in time order.
        events = sorted(dunnhumby_events(args.path), key=lambda event: event.occurred_at)
        rows: RowSource = in_chunks(events_to_rows(events))
    else:
        rows = open_rows(args.path)
    try:
        report = import_events(engine, rows, progress=None if out.as_json else sys.stderr)
    except ImportRefused as refused:
        if out.as_json:
            print(
                json.dumps(
                    {
                        "refused": True,
                        "bad_rows": refused.total,
                        "errors": [vars(e) for e in refused.errors],
                    }
                )
            )
        else:
            print("\n".join(str(error) for error in refused.errors))
        bad = f"{refused.total} bad row{'' if refused.total == 1 else 's'}"
        print(
            f"error: import refused, nothing written: {bad}; first: {refused.errors[0]}",
            file=sys.stderr,
        )
        return 2
    document = report.to_dict()
    out.emit(
        document,
        f"imported {report.imported} of {report.rows} rows ({report.already_present} already in the ledger)",
    )
    return 0


def _simulate(args: argparse.Namespace, out: Output) -> int:
    config = SimulationConfig(
        customers=args.customers,
        days=args.days,
        start=timestamp(args.start, "--start"),
        seed=args.seed,
        fraud_scale=args.fraud_scale,
    )
    report = simulate(promo_home(), config, progress=None if args.json else sys.stderr)
    document = report.to_dict()
    out.emit(document, "\n".join(f"{k:<14} {v}" for k, v in document.items() if k != "outcomes"))
    return 0
