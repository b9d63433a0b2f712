"""Benchmark of the simulator and the importer.

    python bench/sim.py [--sizes 1m,10m] [--memory-customers 40000 --memory-days 30]

For each size a simulation runs in a child process (so its peak memory is its own) into a
fresh PROMO_HOME, with customers and days chosen to give about that many ledger events:
events per second of simulated business (wall time of the whole run, setup included) and
peak RSS. Then the 1M ledger's events are exported to Parquet and imported into a fresh
ledger through `promo import`'s code path: rows per second. Last, memory as days grow: the
same customers simulated for N and for 2N days, each in a fresh child, and the ratio of their
peak RSS (flat memory: close to 1). The last line is one JSON object.
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
from redemption_core import SimulationConfig, simulate
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


def memory_as_days_grow(work: Path, customers: int, days: int) -> dict:
    """Peak RSS of N days against 2N days at the same customer count."""
    peaks = {}
    for n in (days, 2 * days):
        result = run_simulation(work / f"memory-{n}", customers, n)
        peaks[n] = result["peak_rss_mb"]
        print(json.dumps({"memory_days": n, "customers": customers, **_brief(result)}), flush=True)
    return {
        "sim_memory_customers": customers,
        f"sim_peak_rss_mb_days_{days}": peaks[days],
        f"sim_peak_rss_mb_days_{2 * days}": peaks[2 * days],
        "sim_peak_rss_ratio_2n_over_n": round(peaks[2 * days] / peaks[days], 3),
    }


def _brief(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "outcomes"}


def import_rate(source: Path, work: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from redemption_core.engine.redemption import RedemptionEngine
    from redemption_core.imports.ledger_schema import events_to_rows, import_events, read_rows

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
    parser.add_argument("--sizes", default="1m,10m", help="comma-separated: 1m, 10m (or empty)")
    parser.add_argument("--memory-customers", type=int, default=40_000)
    parser.add_argument("--memory-days", type=int, default=30, help="N: runs N and 2N days")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="promo-bench-sim-"))
    summary: dict = {}
    try:
        for size in filter(None, args.sizes.split(",")):  # --sizes "": memory figure only
            customers, days = SIZES[size]
            home = work / size
            result = run_simulation(home, customers, days)
            print(json.dumps({"size": size, **_brief(result)}), flush=True)
            summary[f"sim_events_{size}"] = result["events"]
            summary[f"sim_events_per_s_{size}"] = result["events_per_s"]
            summary[f"sim_peak_rss_mb_{size}"] = result["peak_rss_mb"]
            if size == "1m":
                summary.update(import_rate(home, work))
                print(
                    json.dumps({k: v for k, v in summary.items() if k.startswith("import")}),
                    flush=True,
                )
        summary.update(memory_as_days_grow(work, args.memory_customers, args.memory_days))
        summary["target_sim_events_per_s"] = 100_000
        print(json.dumps(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
