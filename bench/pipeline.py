"""Benchmark of the pipeline: ledger to published warehouse, against a plain-DuckDB floor.

    python bench/pipeline.py [--sizes 1m,10m] [--quick] [--repeats N]

For each size a ledger of about that many events is simulated once (`promo simulate`, not timed)
and cached under $PROMO_BENCH_CACHE (default /tmp/promo-bench-cache), keyed by the simulation's
parameters. Then, per repeat, in a fresh PROMO_HOME holding a copy of that ledger:

- floor: bench/pipeline_floor.py in a child process (no Dagster, no dbt, no checks): the same
  reader (read_ledger, ADBC) into DuckDB, then every dbt model's compiled SQL, in dependency
  order; timed from the ledger read to the last mart table on disk;
- full refresh: `python -m pipelines.run` in a child process, timed from start to exit; it must
  succeed and leave a published warehouse.

One incremental day (on the largest size): an events-only copy of the ledger without the last
simulated day gets a full refresh (not timed), then the last day's events are appended and the
second `python -m pipelines.run` is timed. After it, the fixed costs any run pays before it does
work (the code location's imports, GX's import, dbt's start with nothing selected) are timed
alone, to show how much of the day is the tools' and how much the data's.

Each figure is the median of the repeats (3 by default; 1 at 10m). Peak RSS is the largest
process of the child's tree (os.wait4). A breakdown of one full refresh comes from the Dagster
run's event log (step start and end), dbt's run_results.json, and a separate, untimed profile of
the ingest step and the raw-events check. Progress goes to stderr, a table to stdout; the last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
DBT = str(Path(sys.executable).with_name("dbt"))
DBT_PROJECT = ROOT / "dbt_project"
SEED = 7
# (customers, days): about 0.1, 1 and 10 million events with the simulator's default habits
SIZES = {"quick": (1_300, 120), "1m": (13_000, 120), "10m": (130_000, 120)}
DEFAULT_REPEATS = {"quick": 3, "1m": 3, "10m": 1}
TARGETS = {"full_refresh_s_10m": 60.0, "ratio_10m": 3.0, "incremental_day_s": 15.0}
STALE_PARTIAL_S = 300  # a generation whose ledger has not changed for this long is abandoned

# Reads the finished run from the Dagster instance at $DAGSTER_HOME: every step's start and end.
EVENT_LOG_CHILD = """
import json
import dagster as dg
instance = dg.DagsterInstance.get()
NAMES = {t.value: t.name for t in (dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS,
         dg.DagsterEventType.RUN_FAILURE)}
run = instance.get_runs(limit=1)[0]
steps, run_events = {}, {}
for entry in instance.all_logs(run.run_id):
    event = entry.dagster_event
    if event is None:
        continue
    kind = event.event_type_value
    if entry.step_key:
        step = steps.setdefault(entry.step_key, {})
        if kind == "STEP_START":
            step["start"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = entry.timestamp
    elif kind in NAMES:
        run_events[NAMES[kind]] = entry.timestamp
print(json.dumps({"run_id": run.run_id, "status": run.status.value, "steps": steps, "run": run_events}))
"""

# Untimed profile of what the ingest step and the raw check do, piece by piece (ledger reads,
# summed over the reader threads, so they can exceed the wall time; split by day, Parquet
# writes, raw load; the raw check's DuckDB staging of the batch and its GX validation).
PROFILE_CHILD = """
import json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from pipelines import ledger_extract as le, quality as q
ledger, work = Path(sys.argv[1]), Path(sys.argv[2])
spent = {}
def timed(module, name):
    original = getattr(module, name)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
    setattr(module, name, wrapper)
for name in ("read_ledger", "split_by_day", "write_day", "_merge"):
    timed(le, name)
for name in ("stage_raw_batch", "validate"):
    timed(q, name)
lake = le.Lake(work / "lake")
started = time.perf_counter()
result = le.sync_lake(ledger, lake)
spent["sync_lake"] = time.perf_counter() - started
started = time.perf_counter()
le.load_raw(work / "build.duckdb", lake, result, result.watermark_after, datetime.now(UTC))
spent["load_raw"] = time.perf_counter() - started
started = time.perf_counter()
report = q.check_raw_events(work / "build.duckdb")
spent["check_raw_events"] = time.perf_counter() - started
spent["raw_check_stage"] = spent.pop("stage_raw_batch")
spent["raw_check_gx"] = spent.pop("validate")
spent["raw_check_passed"] = report.passed
print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in spent.items()}))
"""


def log(message: str) -> None:
    print(f"[bench-pipeline {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PROMO_HOME=str(home),
        PROMO_WAREHOUSE=str(home / "warehouse" / "build.duckdb"),
        DAGSTER_HOME=str(home / "dagster"),
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="False",
        PYTHONPATH=str(ROOT),
    )
    return env


class TreeMemory:
    """Samples, once a second, the RSS of a process and its descendants (from /proc): the total
    of the tree and its largest process, with the time, so peaks can be put against run steps."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float, float]] = []  # (epoch, total MB, largest MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        while not self._stop.wait(self.interval):
            parents: dict[int, int] = {}
            rss: dict[int, float] = {}
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    stat = (entry / "stat").read_text()
                    fields = stat[stat.rindex(")") + 2 :].split()
                    parents[int(entry.name)] = int(fields[1])
                    rss[int(entry.name)] = int(fields[21]) * page_mb
                except (OSError, ValueError, IndexError):
                    continue
            tree, frontier = {self.pid}, [self.pid]
            while frontier:
                parent = frontier.pop()
                children = [pid for pid, ppid in parents.items() if ppid == parent]
                tree.update(children)
                frontier += children
            sizes = [rss.get(pid, 0.0) for pid in tree]
            self.samples.append((time.time(), sum(sizes), max(sizes)))

    def peak(self, start: float | None = None, end: float | None = None) -> dict:
        inside = [
            s
            for s in self.samples
            if (start is None or s[0] >= start) and (end is None or s[0] <= end)
        ]
        if not inside:
            return {}
        return {
            "tree_mb": round(max(s[1] for s in inside)),
            "largest_mb": round(max(s[2] for s in inside)),
        }


def last_json(stdout: str) -> dict:
    """A child's last JSON line (DuckDB prints progress bars to stdout for long queries)."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def run_child(
    argv: list[str],
    env: dict[str, str],
    out: Path,
    label: str,
    check: bool = True,
    sample_memory: bool = False,
) -> dict:
    """Run a child to its exit: wall seconds, exit code, the peak RSS of its process tree (the
    largest single process, as wait4 reports it), its stdout and stderr in `out`.*."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = out.with_suffix(".stdout"), out.with_suffix(".stderr")
    load_before = os.getloadavg()[0]
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        started_epoch = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        memory = TreeMemory(process.pid) if sample_memory else None
        _, status, usage = os.wait4(process.pid, 0)
        if memory:
            memory.stop()
        seconds = time.perf_counter() - started
        ended_epoch = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)
    result = {
        "seconds": seconds,
        "returncode": process.returncode,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "started_epoch": started_epoch,
        "ended_epoch": ended_epoch,
        "loadavg_before": round(load_before, 2),
        "stdout": stdout_path.read_text(errors="replace"),
        "stderr_path": str(stderr_path),
        "memory": memory,
    }
    if check and process.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{label} failed (exit {process.returncode}):\n{tail}")
    return result


# --- ledgers -------------------------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("PROMO_BENCH_CACHE") or "/tmp/promo-bench-cache")


def cached_ledger(customers: int, days: int, seed: int = SEED) -> Path:
    """The simulated ledger for these parameters, generated (not timed) when not cached."""
    home = cache_root() / f"ledger-c{customers}-d{days}-s{seed}"
    partial = home.with_name(home.name + ".partial")
    while not home.exists() and partial.exists():
        newest = max(
            (p.stat().st_mtime for p in partial.glob("ledger.sqlite*")),
            default=partial.stat().st_mtime,
        )
        if time.time() - newest > STALE_PARTIAL_S:
            log(f"abandoned generation at {partial}: starting again")
            shutil.rmtree(partial)
            break
        log(f"waiting for the generation already under way at {partial}")
        time.sleep(30)
    if not home.exists():
        log(f"simulating {customers} customers x {days} days (seed {seed}) into {partial}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        env = dict(os.environ, PROMO_HOME=str(partial), DO_NOT_TRACK="1")
        subprocess.run(
            [str(Path(PYTHON).with_name("promo")), "simulate", "--customers", str(customers),
             "--days", str(days), "--seed", str(seed)],
            cwd=ROOT, env=env, check=True, stdout=sys.stderr,
        )  # fmt: skip
        partial.rename(home)
    ledger = home / "ledger.sqlite"
    with sqlite3.connect(ledger) as db:  # fold any WAL in, so a plain file copy is the ledger
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return ledger


def ledger_info(ledger: Path) -> dict:
    """Event count, highest seq, the last simulated day (of the newest event) and the last seq
    before that day's first event."""
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        events, high = db.execute("SELECT count(*), max(seq) FROM events").fetchone()
        (newest,) = db.execute(
            "SELECT occurred_at FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        last_day = newest[:10]
        (first_of_day,) = db.execute(
            "SELECT min(seq) FROM events WHERE occurred_at >= ?", (last_day,)
        ).fetchone()
        cutoff = first_of_day - 1
        (day_events,) = db.execute(
            "SELECT count(*) FROM events WHERE seq > ?", (cutoff,)
        ).fetchone()
    return {
        "events": events,
        "high_seq": high,
        "last_day": last_day,
        "cutoff_seq": cutoff,
        "last_day_events": day_events,
    }


def events_only_copy(source: Path, target: Path, max_seq: int) -> None:
    """A new ledger with the source's events table (same DDL) holding the events seq <= max_seq."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(target.name + "*"):
        leftover.unlink()
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src:
        ddl = [
            sql
            for (sql,) in src.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND type IN "
                "('table', 'index') AND sql IS NOT NULL ORDER BY type = 'index', name"
            )
        ]
    db = sqlite3.connect(target, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = OFF")
        for sql in ddl:
            db.execute(sql)
        db.execute("ATTACH ? AS src", (f"file:{source}?mode=ro",))
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO events SELECT * FROM src.events WHERE seq <= ? ORDER BY seq", (max_seq,)
        )
        db.execute("COMMIT")
        db.execute("DETACH src")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def append_events(source: Path, target: Path, after_seq: int) -> int:
    """Append the source's events with seq > after_seq to the target ledger, as a writer would."""
    db = sqlite3.connect(target, isolation_level=None)
    try:
        db.execute("ATTACH ? AS src", (f"file:{source}?mode=ro",))
        db.execute("BEGIN")
        added = db.execute(
            "INSERT INTO events SELECT * FROM src.events WHERE seq > ? ORDER BY seq", (after_seq,)
        ).rowcount
        db.execute("COMMIT")
        db.execute("DETACH src")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return added


# --- dbt: manifest for Dagster, compiled SQL for the floor ---------------------------------


def refresh_dagster_manifest(work: Path) -> float:
    """Have the code location's manifest up to date (`dbt parse` when stale) before a timed run,
    so the run does not pay for a parse a nightly run would not. Returns its mtime."""
    env = child_env(work / "manifest-home")
    run_child(
        [PYTHON, "-c", "from pipelines.defs import dbt"],
        env,
        work / "logs" / "manifest",
        "dbt parse",
    )
    return (DBT_PROJECT / "target" / "manifest.json").stat().st_mtime


def compile_project(work: Path) -> Path:
    """`dbt compile` against an empty build.duckdb (its stem names the database in the SQL)."""
    target = work / "dbt-compile"
    env = child_env(work / "compile-home")
    env["PROMO_WAREHOUSE"] = str(target / "build.duckdb")
    target.mkdir(parents=True, exist_ok=True)
    argv = [DBT, "compile", "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
            "--target-path", str(target / "target"), "--log-path", str(target / "logs"), "--quiet"]  # fmt: skip
    run_child(argv, env, work / "logs" / "dbt-compile", "dbt compile")
    return target / "target" / "manifest.json"


# --- the timed runs ------------------------------------------------------------------------


def fresh_home(work: Path, name: str, ledger: Path) -> Path:
    home = work / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copyfile(ledger, home / "ledger.sqlite")
    return home


def run_pipeline(home: Path, label: str) -> dict:
    """`python -m pipelines.run` on this PROMO_HOME, start to exit. `failed` says why a run that
    did not succeed and publish failed (None when it did)."""
    published = home / "warehouse" / "published.duckdb"
    before = published.stat().st_mtime if published.exists() else None
    result = run_child(
        [PYTHON, "-m", "pipelines.run"],
        child_env(home),
        home / "logs" / label,
        label,
        check=False,
        sample_memory=True,
    )
    ok = result["returncode"] == 0 and "pipeline: succeeded" in result["stdout"]
    result["failed"] = None
    if not ok or not published.exists() or published.stat().st_mtime == before:
        code = result["returncode"]
        why = "killed by SIGKILL (out of memory?)" if code == -9 else f"exit {code}"
        result["failed"] = f"{why} after {result['seconds']:.0f}s"
        tail = Path(result["stderr_path"]).read_text(errors="replace")[-3000:]
        log(f"{label}: the pipeline did not publish ({result['failed']}):\n{tail}")
    return result


def run_floor(home: Path, manifest: Path, label: str) -> dict:
    argv = [PYTHON, str(ROOT / "bench" / "pipeline_floor.py"), "--ledger", str(home / "ledger.sqlite"),
            "--manifest", str(manifest), "--out", str(home / "floor")]  # fmt: skip
    result = run_child(argv, child_env(home), home / "logs" / label, label)
    result["report"] = last_json(result["stdout"])
    return result


def breakdown(home: Path, run: dict, work: Path) -> dict:
    """Where one full refresh spent its time: Dagster's steps, dbt's models and tests, and what
    is left (process start, imports, code location load, run setup and teardown)."""
    found = run_child(
        [PYTHON, "-c", EVENT_LOG_CHILD], child_env(home), work / "logs" / "event-log", "event log"
    )
    log_data = last_json(found["stdout"])
    # a step cut short (the run killed) ends when the run did
    ends = {k: v.get("end", run["ended_epoch"]) for k, v in log_data["steps"].items()}
    steps = {
        key: round(ends[key] - value["start"], 2)
        for key, value in log_data["steps"].items()
        if "start" in value
    }
    unfinished = sorted(k for k, v in log_data["steps"].items() if "end" not in v)
    run_events = log_data["run"]
    run_start = run_events.get("RUN_START")
    run_end = run_events.get("RUN_SUCCESS") or run_events.get("RUN_FAILURE") or run["ended_epoch"]
    out: dict = {"steps_s": steps, "steps_total_s": round(sum(steps.values()), 2)}
    if unfinished:
        out["unfinished_steps"] = unfinished
    memory = run.get("memory")
    if memory is not None:
        out["peak_mb"] = memory.peak()
        out["step_peak_mb"] = {
            key: memory.peak(value["start"], ends[key])
            for key, value in log_data["steps"].items()
            if "start" in value
        }
        if run_start:
            out["peak_mb_before_run_start"] = memory.peak(None, run_start)
    if run_start and run_end:
        out["before_run_start_s"] = round(run_start - run["started_epoch"], 2)
        out["run_s"] = round(run_end - run_start, 2)
        out["after_run_end_s"] = round(run["ended_epoch"] - run_end, 2)
        out["in_run_outside_steps_s"] = round(out["run_s"] - out["steps_total_s"], 2)
    results_path = home / "dbt_target" / "run_results.json"
    if results_path.exists():
        results = json.loads(results_path.read_text())
        models = [r for r in results["results"] if r["unique_id"].startswith("model.")]
        tests = [r for r in results["results"] if r["unique_id"].startswith("test.")]
        slowest = sorted(models, key=lambda r: -r["execution_time"])[:5]
        out["dbt"] = {
            "elapsed_s": round(results.get("elapsed_time", 0.0), 2),
            "models": len(models),
            "models_sum_s": round(sum(r["execution_time"] for r in models), 2),
            "tests": len(tests),
            "tests_sum_s": round(sum(r["execution_time"] for r in tests), 2),
            "slowest_models_s": {
                r["unique_id"].split(".")[-1]: round(r["execution_time"], 2) for r in slowest
            },
            "threads": results.get("args", {}).get("threads"),
        }
    return out


def profile_ingest(home: Path, work: Path) -> dict:
    target = work / "profile"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    found = run_child(
        [PYTHON, "-c", PROFILE_CHILD, str(home / "ledger.sqlite"), str(target)],
        child_env(home), work / "logs" / "profile", "ingest profile",
    )  # fmt: skip
    shutil.rmtree(target, ignore_errors=True)
    return last_json(found["stdout"])


# What every run pays before it does any work, each timed alone in a fresh process: the code
# location (Dagster, dagster-dbt and dbt's libraries, the assets built from the manifest), the
# GX import the raw check needs, and a dbt build that selects nothing (dbt's start and parse).
TOOL_COSTS = {
    "code_location_load": ["-W", "ignore", "-c", "import pipelines.definitions"],
    "great_expectations_import": ["-c", "import great_expectations"],
}


def tool_costs(home: Path, work: Path, repeats: int = 3) -> dict[str, float]:
    """Median seconds of each fixed cost of a run (TOOL_COSTS, and dbt with nothing selected,
    reusing a copy of the run's parsed project), and their sum."""
    scratch = work / "tool-costs"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(home / "dbt_target", scratch / "dbt_target")
    env = child_env(home) | {"PROMO_WAREHOUSE": str(scratch / "nothing.duckdb")}
    commands = {name: [PYTHON, *argv] for name, argv in TOOL_COSTS.items()}
    commands["dbt_build_selecting_nothing"] = [
        DBT, "build", "--select", "selects_no_model", "--project-dir", str(DBT_PROJECT),
        "--profiles-dir", str(DBT_PROJECT), "--target-path", str(scratch / "dbt_target"),
        "--log-path", str(scratch / "logs"), "--quiet",
    ]  # fmt: skip
    costs = {
        name: median(
            [run_child(argv, env, scratch / name, name)["seconds"] for _ in range(repeats)]
        )
        for name, argv in commands.items()
    }
    shutil.rmtree(scratch, ignore_errors=True)
    return {name: round(seconds, 2) for name, seconds in costs.items()} | {
        "sum": round(sum(costs.values()), 2)
    }


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def bench_size(
    size: str, repeats: int, manifest: Path, work: Path, keep: bool, profile: bool
) -> dict:
    customers, days = SIZES[size]
    ledger = cached_ledger(customers, days)
    info = ledger_info(ledger)
    log(f"{size}: {info['events']:,} events ({customers} customers x {days} days) at {ledger}")
    fulls, floors = [], []
    for i in range(repeats):
        home = fresh_home(work, f"{size}-{i}", ledger)
        log(f"{size} #{i + 1}/{repeats}: floor")
        floor = run_floor(home, manifest, f"floor-{size}-{i}")
        floors.append(floor)
        log(f"{size} #{i + 1}/{repeats}: floor {floor['report']['total_s']:.1f}s "
            f"(child {floor['seconds']:.1f}s, {floor['peak_rss_mb']:.0f} MB)")  # fmt: skip
        shutil.rmtree(home / "floor", ignore_errors=True)
        manifest_mtime = refresh_dagster_manifest(work)
        log(f"{size} #{i + 1}/{repeats}: full refresh")
        full = run_pipeline(home, f"full-{size}-{i}")
        full["manifest_reparsed"] = (
            DBT_PROJECT / "target" / "manifest.json"
        ).stat().st_mtime != manifest_mtime
        fulls.append(full)
        log(f"{size} #{i + 1}/{repeats}: full refresh {full['seconds']:.1f}s "
            f"({full['peak_rss_mb']:.0f} MB, load avg before {full['loadavg_before']})"
            + (f" FAILED: {full['failed']}" if full["failed"] else "")
            + (" — the dbt manifest was re-parsed during the run" if full["manifest_reparsed"] else ""))  # fmt: skip
        if full["failed"] or i == repeats - 1:
            log(f"{size}: breakdown of the last full refresh")
            detail = breakdown(home, full, work)
            if profile and not full["failed"]:
                log(f"{size}: untimed ingest profile")
                detail["ingest_profile_s"] = profile_ingest(home, work)
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
        if full["failed"]:
            break  # no figure at this size: a failed run is not a time
    floor_reports = [f["report"] for f in floors]
    failed = next((f["failed"] for f in fulls if f["failed"]), None)
    ml_s = round(sum(v for k, v in detail["steps_s"].items() if k.startswith("ml")), 2)
    return {
        "size": size,
        "customers": customers,
        "days": days,
        "ledger": info,
        "repeats": len(fulls),
        "full_refresh_s": None if failed else median([f["seconds"] for f in fulls]),
        "full_refresh_failed": failed,
        "full_refresh_runs_s": [round(f["seconds"], 2) for f in fulls],
        "full_refresh_peak_rss_mb": max(f["peak_rss_mb"] for f in fulls),
        "full_refresh_peak_tree_mb": detail.get("peak_mb", {}).get("tree_mb"),
        "full_refresh_manifest_reparsed": any(f["manifest_reparsed"] for f in fulls),
        "ml_steps_s": ml_s,
        "floor_s": median([r["total_s"] for r in floor_reports]),
        "floor_runs_s": [r["total_s"] for r in floor_reports],
        "floor_child_s": median([f["seconds"] for f in floors]),
        "floor_peak_rss_mb": max(f["peak_rss_mb"] for f in floors),
        "floor_phases_s": {
            key: median([r[key] for r in floor_reports])
            for key in ("read_ledger_s", "load_raw_s", "models_s", "close_s")
        },
        "floor_slowest_models_s": dict(
            sorted(floor_reports[-1]["per_model_s"].items(), key=lambda kv: -kv[1])[:5]
        ),
        "loadavg_before_runs": [f["loadavg_before"] for f in fulls + floors],
        "breakdown": detail,
    }


def bench_incremental(size: str, repeats: int, work: Path, keep: bool) -> dict:
    customers, days = SIZES[size]
    ledger = cached_ledger(customers, days)
    info = ledger_info(ledger)
    prefix_home = cache_root() / f"ledger-c{customers}-d{days}-s{SEED}-before-last-day"
    prefix = prefix_home / "ledger.sqlite"
    if not (prefix_home / "done").exists():
        log(
            f"incremental {size}: copying events seq <= {info['cutoff_seq']:,} (before {info['last_day']})"
        )
        events_only_copy(ledger, prefix, info["cutoff_seq"])
        (prefix_home / "done").write_text(json.dumps(info))
    base = fresh_home(work, f"incremental-{size}-base", prefix)
    log(f"incremental {size}: full refresh of the ledger without its last day (not timed)")
    first = run_pipeline(base, "incremental-first")
    log(f"incremental {size}: first run {first['seconds']:.1f}s")
    if first["failed"]:
        detail = breakdown(base, first, work)
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
        return {"size": size, "day": info["last_day"], "events": info["last_day_events"],
                "events_before": info["cutoff_seq"], "repeats": 0, "seconds": None,
                "failed": f"the untimed first run failed: {first['failed']}",
                "first_run_s": round(first["seconds"], 2), "peak_rss_mb": first["peak_rss_mb"],
                "manifest_reparsed": False, "loadavg_before_runs": [first["loadavg_before"]],
                "breakdown": detail}  # fmt: skip
    runs = []
    for i in range(repeats):
        home = base
        if repeats > 1:
            home = work / f"incremental-{size}-{i}"
            shutil.rmtree(home, ignore_errors=True)
            shutil.copytree(base, home)
        added = append_events(ledger, home / "ledger.sqlite", info["cutoff_seq"])
        manifest_mtime = refresh_dagster_manifest(work)
        log(
            f"incremental {size} #{i + 1}/{repeats}: +{added:,} events ({info['last_day']}), timed run"
        )
        run = run_pipeline(home, f"incremental-{i}")
        run["manifest_reparsed"] = (
            DBT_PROJECT / "target" / "manifest.json"
        ).stat().st_mtime != manifest_mtime
        run["added"] = added
        if run["failed"]:
            detail = breakdown(home, run, work)
            runs.append(run)
            break
        state = json.loads((home / "lake" / "_state.json").read_text())
        if state["watermark"] != info["high_seq"]:
            raise RuntimeError(f"incremental run left the watermark at {state['watermark']}")
        run["added"] = added
        runs.append(run)
        log(
            f"incremental {size} #{i + 1}/{repeats}: {run['seconds']:.1f}s ({run['peak_rss_mb']:.0f} MB)"
        )
        if i == repeats - 1:
            detail = breakdown(home, run, work)
            log(f"incremental {size}: fixed costs of a run (code location, GX import, dbt start)")
            detail["tool_costs_s"] = tool_costs(home, work)
        if home != base and not keep:
            shutil.rmtree(home, ignore_errors=True)
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    return {
        "size": size,
        "day": info["last_day"],
        "events": runs[0]["added"],
        "events_before": info["cutoff_seq"],
        "repeats": repeats,
        "first_run_s": round(first["seconds"], 2),
        "failed": next((r["failed"] for r in runs if r["failed"]), None),
        "seconds": None if any(r["failed"] for r in runs) else median([r["seconds"] for r in runs]),
        "runs_s": [round(r["seconds"], 2) for r in runs],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "manifest_reparsed": any(r["manifest_reparsed"] for r in runs),
        "loadavg_before_runs": [r["loadavg_before"] for r in runs],
        "breakdown": detail,
    }


# --- report --------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "failed" if value is None else f"{value:.2f}"


def _ratio(full: float | None, floor: float | None) -> float | None:
    return round(full / floor, 2) if full is not None and floor else None


def _print_breakdown(b: dict) -> None:
    print(f"  before the run starts (interpreter, imports, code location, instance): "
          f"{b.get('before_run_start_s', float('nan')):.2f}s, peak {b.get('peak_mb_before_run_start', {})}")  # fmt: skip
    for step, seconds in sorted(b["steps_s"].items(), key=lambda kv: -kv[1]):
        mark = " (cut short)" if step in b.get("unfinished_steps", []) else ""
        memory = b.get("step_peak_mb", {}).get(step, {})
        print(f"  step {step:<62} {seconds:>8.2f}s  peak tree {memory.get('tree_mb', '?')} MB, "
              f"largest process {memory.get('largest_mb', '?')} MB{mark}")  # fmt: skip
    print(f"  in the run, between steps: {b.get('in_run_outside_steps_s', float('nan')):.2f}s; "
          f"after the run ends: {b.get('after_run_end_s', float('nan')):.2f}s; peak {b.get('peak_mb', {})}")  # fmt: skip
    if "dbt" in b:
        d = b["dbt"]
        print(f"  dbt: {d['elapsed_s']:.2f}s elapsed inside dbt, {d['models']} models "
              f"(sum {d['models_sum_s']:.2f}s), {d['tests']} tests (sum {d['tests_sum_s']:.2f}s); "
              f"slowest models {d['slowest_models_s']}")  # fmt: skip
    if "tool_costs_s" in b:
        print(f"  fixed costs of any run, each alone in a fresh process: {b['tool_costs_s']}")


def print_table(results: list[dict], incremental: dict | None) -> None:
    print(f"{'size':<6} {'events':>11} {'runs':>4} {'full refresh s':>15} {'floor s':>8} "
          f"{'ratio':>6} {'ML steps s':>10} {'full RSS MB':>11} {'floor RSS MB':>12}")  # fmt: skip
    for r in results:
        ratio = _ratio(r["full_refresh_s"], r["floor_s"])
        print(f"{r['size']:<6} {r['ledger']['events']:>11,} {r['repeats']:>4} "
              f"{_s(r['full_refresh_s']):>15} {r['floor_s']:>8.2f} {_s(ratio):>6} {r['ml_steps_s']:>10.2f} "
              f"{r['full_refresh_peak_rss_mb']:>11.0f} {r['floor_peak_rss_mb']:>12.0f}")  # fmt: skip
        if r["full_refresh_failed"]:
            print(f"       full refresh FAILED: {r['full_refresh_failed']}")
    if incremental:
        print(f"incremental day {incremental['day']} on {incremental['size']}: "
              f"{incremental['events']:,} new events after {incremental['events_before']:,}, "
              f"{_s(incremental['seconds'])}s (median of {incremental['repeats']}), "
              f"{incremental['peak_rss_mb']:.0f} MB"
              + (f"; FAILED: {incremental['failed']}" if incremental["failed"] else ""))  # fmt: skip
    for r in results:
        b = r["breakdown"]
        print(
            f"\nbreakdown of a {r['size']} full refresh ({r['full_refresh_runs_s'][-1]:.2f}s wall):"
        )
        _print_breakdown(b)
        p = b.get("ingest_profile_s")
        if p:
            print(f"  ingest profile (untimed, separate run): read_ledger {p.get('read_ledger', 0):.2f}s, "
                  f"split_by_day {p.get('split_by_day', 0):.2f}s, write_day {p.get('write_day', 0):.2f}s, "
                  f"sync_lake {p['sync_lake']:.2f}s, load_raw {p['load_raw']:.2f}s; raw check "
                  f"{p['check_raw_events']:.2f}s (DuckDB staging {p['raw_check_stage']:.2f}s, GX {p['raw_check_gx']:.2f}s)")  # fmt: skip
        f = r["floor_phases_s"]
        print(f"  floor phases: read_ledger {f['read_ledger_s']:.2f}s, load raw {f['load_raw_s']:.2f}s, "
              f"models {f['models_s']:.2f}s, close {f['close_s']:.2f}s; slowest {r['floor_slowest_models_s']}")  # fmt: skip
    if incremental:
        print(f"\nbreakdown of the incremental day on {incremental['size']}:")
        _print_breakdown(incremental["breakdown"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1m,10m", help="comma-separated: 1m, 10m (default both)")
    parser.add_argument(
        "--quick", action="store_true", help="a ~100k-event ledger only (smoke run)"
    )
    parser.add_argument("--repeats", type=int, help="runs per figure (default 3; 1 at 10m)")
    parser.add_argument(
        "--incremental-size", help="the ledger for the incremental day (default: the largest)"
    )
    parser.add_argument("--no-incremental", action="store_true")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the untimed ingest and raw-check profile"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    sizes = ["quick"] if args.quick else [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; known: {', '.join(SIZES)}")
    incremental_size = args.incremental_size or max(sizes, key=lambda s: SIZES[s][0])

    work = Path(tempfile.mkdtemp(prefix="promo-bench-pipeline-"))
    log(f"work folder {work}, ledger cache {cache_root()}, {os.cpu_count()} CPUs")
    started = time.perf_counter()
    try:
        for size in sorted({*sizes, incremental_size}, key=lambda s: SIZES[s][0]):
            cached_ledger(*SIZES[size])  # generate what is missing before timing anything
        log("compiling the dbt project for the floor (not timed)")
        manifest = compile_project(work)
        refresh_dagster_manifest(work)
        results = []
        for size in sorted(sizes, key=lambda s: SIZES[s][0]):
            repeats = args.repeats or DEFAULT_REPEATS[size]
            results.append(
                bench_size(size, repeats, manifest, work, args.keep, not args.no_profile)
            )
        incremental = None
        if not args.no_incremental:
            repeats = args.repeats or DEFAULT_REPEATS[incremental_size]
            incremental = bench_incremental(incremental_size, repeats, work, args.keep)

        print_table(results, incremental)
        summary: dict = {}
        for r in results:
            summary[f"events_{r['size']}"] = r["ledger"]["events"]
            summary[f"full_refresh_s_{r['size']}"] = r["full_refresh_s"]
            summary[f"floor_s_{r['size']}"] = r["floor_s"]
            summary[f"ratio_{r['size']}"] = _ratio(r["full_refresh_s"], r["floor_s"])
            summary[f"full_refresh_failed_{r['size']}"] = r["full_refresh_failed"]
            summary[f"ml_steps_s_{r['size']}"] = r["ml_steps_s"]
            summary[f"peak_tree_mb_{r['size']}"] = r["full_refresh_peak_tree_mb"]
            summary[f"repeats_{r['size']}"] = r["repeats"]
            summary[f"peak_rss_mb_{r['size']}"] = r["full_refresh_peak_rss_mb"]
            summary[f"floor_peak_rss_mb_{r['size']}"] = r["floor_peak_rss_mb"]
            summary[f"breakdown_{r['size']}"] = {
                "steps_s": r["breakdown"]["steps_s"],
                "before_run_start_s": r["breakdown"].get("before_run_start_s"),
                "dbt_elapsed_s": r["breakdown"].get("dbt", {}).get("elapsed_s"),
                "step_peak_mb": r["breakdown"].get("step_peak_mb"),
                "unfinished_steps": r["breakdown"].get("unfinished_steps"),
                "ingest_profile_s": r["breakdown"].get("ingest_profile_s"),
                "floor_phases_s": r["floor_phases_s"],
            }
        if incremental:
            summary["incremental_day_s"] = incremental["seconds"]
            summary["incremental_day_events"] = incremental["events"]
            summary["incremental_day_size"] = incremental["size"]
            summary["incremental_day_repeats"] = incremental["repeats"]
            summary["incremental_day_failed"] = incremental["failed"]
            summary["incremental_day_peak_rss_mb"] = incremental["peak_rss_mb"]
            summary["incremental_day_steps_s"] = incremental["breakdown"]["steps_s"]
            summary["incremental_day_tool_costs_s"] = incremental["breakdown"].get("tool_costs_s")
        reparsed = [r["size"] for r in results if r["full_refresh_manifest_reparsed"]]
        if incremental and incremental["manifest_reparsed"]:
            reparsed.append("incremental")
        summary["manifest_reparsed_during"] = reparsed
        summary["loadavg_max_before_runs"] = max(
            [x for r in results for x in r["loadavg_before_runs"]]
            + (incremental["loadavg_before_runs"] if incremental else [])
        )
        summary["cpus"] = os.cpu_count()
        summary["targets"] = TARGETS
        # a failed run meets no target
        if "full_refresh_s_10m" in summary:
            full, ratio = summary["full_refresh_s_10m"], summary["ratio_10m"]
            summary["target_full_refresh_10m_met"] = (
                full is not None and full <= TARGETS["full_refresh_s_10m"]
            )
            summary["target_ratio_10m_met"] = ratio is not None and ratio <= TARGETS["ratio_10m"]
        if incremental:
            day = summary["incremental_day_s"]
            summary["target_incremental_day_met"] = (
                day is not None and day <= TARGETS["incremental_day_s"]
            )
        summary["bench_wall_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps(summary))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
