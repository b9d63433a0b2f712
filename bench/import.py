"""Benchmark of `promo import`: rows/s and peak RSS importing 1,000,000 and 5,000,000 rows of a
simulated ledger into an empty PROMO_HOME, with every check.

    python bench/import.py [--sizes 1m,5m] [--repeats 1]

For each size, a simulated business with about that many events is generated once (not timed;
minutes at 5M) and its first N events are exported to Parquet, cached under
$PROMO_BENCH_CACHE (default bench/results/import-cache) keyed by the simulation's parameters.
Then, each in a fresh child process (so that its peak RSS is its own):

- the import: `promo import`'s code path (import_events over open_rows) into an empty home,
  every row checked and applied through the projection, one transaction, durable commit;
- the floor: the same file's rows inserted into an empty events table of the same schema with
  executemany in one transaction: no checks, no projection (what the disk and SQLite cost).

Figures: rows/s (wall), CPU seconds, peak RSS; the ratio of the import's rows/s to the floor's
measured in the same run. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# rows -> (customers, days) of a simulation with at least that many events (default habits).
SIZES = {"1m": (1_000_000, 13_500, 120), "5m": (5_000_000, 67_000, 120)}
SEED = 7

IMPORT_CHILD = """
import json, resource, sys, time
from pathlib import Path
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.imports.ledger_schema import import_events, open_rows
engine = RedemptionEngine.open(Path(sys.argv[2]))
started, cpu = time.perf_counter(), time.process_time()
report = import_events(engine, open_rows(Path(sys.argv[1])))
engine.close()
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"rows": report.rows, "imported": report.imported, "seconds": seconds,
                  "cpu_s": cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

FLOOR_CHILD = """
import json, resource, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from redemption_core.domain.events import COLUMNS
from redemption_core.ledger.rows import INSERT_EVENT
from redemption_core.ledger.sqlite import connect
from redemption_core.ledger.sqlite_schema import EVENTS_SCHEMA
db = connect(Path(sys.argv[2]) / "ledger.sqlite")
for statement in EVENTS_SCHEMA.split(";\\n"):
    if statement.strip():
        db.execute(statement)
started, cpu = time.perf_counter(), time.process_time()
rows = 0
db.execute("BEGIN IMMEDIATE")
for batch in pq.ParquetFile(sys.argv[1]).iter_batches(batch_size=20_000):
    columns = batch.to_pydict()
    db.executemany(INSERT_EVENT, zip(*(columns[name] for name in COLUMNS)))
    rows += batch.num_rows
db.execute("COMMIT")
db.close()
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"rows": rows, "seconds": seconds, "cpu_s": cpu,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

EXPORT_CHILD = """
import sys
from pathlib import Path
import pyarrow as pa, pyarrow.parquet as pq
from redemption_core import SimulationConfig, simulate
from redemption_core.domain.events import COLUMNS
from redemption_core.imports.ledger_schema import events_to_rows
from redemption_core.ledger.sqlite import SqliteLedgerStore
home, out, customers, days, seed, limit = Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:])
simulate(home, SimulationConfig(customers=customers, days=days, seed=seed), progress=sys.stderr)
store = SqliteLedgerStore(home / "ledger.sqlite", read_only=True)
schema = pa.schema([(name, pa.string()) for name in COLUMNS])
written = 0
with pq.ParquetWriter(out, schema) as writer:
    page = []
    for event in store.events():
        if written + len(page) == limit:
            break
        page.append(event)
        if len(page) == 100_000:
            writer.write_table(pa.Table.from_pylist(events_to_rows(page), schema=schema))
            written += len(page)
            page = []
    if page:
        writer.write_table(pa.Table.from_pylist(events_to_rows(page), schema=schema))
        written += len(page)
store.close()
print(written)
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_root() -> Path:
    return Path(os.environ.get("PROMO_BENCH_CACHE") or ROOT / "bench" / "results" / "import-cache")


def exported_ledger(rows: int, customers: int, days: int) -> Path:
    """The first `rows` events of a simulated ledger, as Parquet (generated when missing)."""
    path = cache_root() / f"events-r{rows}-c{customers}-d{days}-s{SEED}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="promo-bench-import-sim-", dir=path.parent))
    partial = path.with_suffix(".partial")
    log(f"simulating {customers} customers x {days} days into {home} (cached once)")
    try:
        subprocess.run(
            [sys.executable, "-c", EXPORT_CHILD, str(home), str(partial),
             str(customers), str(days), str(SEED), str(rows)],
            check=True, cwd=ROOT,
        )  # fmt: skip
        partial.rename(path)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return path


def run_child(code: str, source: Path, work: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    done = subprocess.run(
        [sys.executable, "-c", code, str(source), str(home)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    shutil.rmtree(home, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1m,5m", help="comma-separated: 1m, 5m")
    parser.add_argument("--repeats", type=int, default=1, help="runs per figure (median)")
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="promo-bench-import-"))
    summary: dict = {}
    try:
        for size in sizes:
            rows, customers, days = SIZES[size]
            source = exported_ledger(rows, customers, days)
            runs = [run_child(IMPORT_CHILD, source, work) for _ in range(args.repeats)]
            floors = [run_child(FLOOR_CHILD, source, work) for _ in range(args.repeats)]
            rate = statistics.median(r["rows"] / r["seconds"] for r in runs)
            floor = statistics.median(r["rows"] / r["seconds"] for r in floors)
            cpu_rate = statistics.median(r["rows"] / r["cpu_s"] for r in runs)
            figures = {
                f"import_rows_{size}": runs[0]["rows"],
                f"import_rows_per_s_{size}": round(rate),
                f"import_rows_per_cpu_s_{size}": round(cpu_rate),
                f"import_peak_rss_mb_{size}": round(max(r["peak_rss_mb"] for r in runs), 1),
                f"floor_rows_per_s_{size}": round(floor),
                f"import_over_floor_{size}": round(rate / floor, 3),
            }
            print(json.dumps({"size": size, **figures}), flush=True)
            summary.update(figures)
        summary["target_import_rows_per_s"] = 50_000
        summary["load_average_1m"] = round(os.getloadavg()[0], 2)
        print(json.dumps(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
