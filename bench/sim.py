"""Benchmark of the simulator and the importer.

    python bench/sim.py [--sizes 1m,10m]

For each size a simulation runs in a child process (so its peak memory is its own) into a
fresh PROMO_HOME, with customers and days chosen to give about that many ledger events:
events per second of simulated business (wall time of the whole run, setup included) and
peak RSS. Then the 1M ledger's events are exported to Parquet and imported into a fresh
ledger through `promo import`'s code path: rows per second. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (customers, days) giving about 1 and 10 million events with the simulator's default habits.
SIZES = {"1m": (12_000, 120), "10m": (120_000, 120)}

CHILD = """
import json, resource, sys, time
from pathlib import Path
from redemption_core.simulator import SimulationConfig, simulate
report = simulate(Path(sys.argv[1]), SimulationConfig(customers=int(sys.argv[2]), days=int(sys.argv[3]), seed=7), progress=sys.stderr)
document = report.to_dict()
document["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(json.dumps(document))
"""


def run_simulation(home: Path, customers: int, days: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), str(customers), str(days)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_rate(source: Path, work: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from redemption_core.engine import RedemptionEngine
    from redemption_core.importer import events_to_rows, import_events, read_rows

    engine = RedemptionEngine.open(source)
    rows = events_to_rows(engine.store.events())
    engine.close()
    path = work / "events.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    target = RedemptionEngine.open(work / "imported")
    started = time.perf_counter()
    report = import_events(target, read_rows(path))
    seconds = time.perf_counter() - started
    target.close()
    return {
        "import_rows": report.rows,
        "import_s": round(seconds, 2),
        "import_rows_per_s": round(report.rows / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1m,10m", help="comma-separated: 1m, 10m")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="promo-bench-sim-"))
    summary: dict = {}
    try:
        for size in args.sizes.split(","):
            customers, days = SIZES[size]
            home = work / size
            result = run_simulation(home, customers, days)
            print(
                json.dumps({"size": size, **{k: v for k, v in result.items() if k != "outcomes"}}),
                flush=True,
            )
            summary[f"sim_events_{size}"] = result["events"]
            summary[f"sim_events_per_s_{size}"] = result["events_per_s"]
            summary[f"sim_peak_rss_mb_{size}"] = result["peak_rss_mb"]
            if size == "1m":
                summary.update(import_rate(home, work))
                print(
                    json.dumps({k: v for k, v in summary.items() if k.startswith("import")}),
                    flush=True,
                )
        summary["target_sim_events_per_s"] = 100_000
        print(json.dumps(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
