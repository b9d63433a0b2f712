"""Benchmark of the console: every page's render time, cold and warm, over a big warehouse.

    python bench/console.py [--size 1m|10m] [--quick] [--repeats N] [--pages a,b] [--profile N]
                            [--no-server] [--home PROMO_HOME]

The warehouse is the one the real pipeline publishes from a simulated ledger of about that many
events (10m by default). The ledger is bench/pipeline.py's cached simulation under
$PROMO_BENCH_CACHE (default /tmp/promo-bench-cache), generated there when missing (not timed);
it is copied into $PROMO_BENCH_CACHE/console-home-<size>, where `python -m pipelines.run` runs
once (not timed). Later runs reuse that PROMO_HOME while its `ready.json` names the same ledger.

Each page runs in Streamlit's AppTest from the router (`streamlit_app.py`), selected with
`switch_page` before the first run, as an analyst opening that page first would reach it: the
router's shared sidebar filters, then the page. One child process per page and repeat:

- cold: the first `AppTest.run()` in the new process, so st.cache_data is empty. Streamlit and
  the libraries under the pages (altair, numpy, pandas, pyarrow, duckdb) are imported before
  the clock starts, as is AppTest's one-off scan of installed packages for components; the
  console's own modules are not, so a page's first run pays for importing them;
- warm: the same page run again in that process (every query a cache hit), `--warm-runs` times;
- recold: the cache emptied (`clear()`) in that warmed-up process and the page run again: what
  an analyst sees in a running server once a new publish or the TTL has emptied the cache.

Then a real server (`streamlit run`, unless --no-server): each page opened in a new websocket
session, as a browser would (nothing rendered), timed from the request to `script_finished`,
then rerun. Each figure is the median over the repeats (3 by default, 1 with --quick); warm
takes the median of every warm run. A run that raises, shows the console's apology or lands on
another page fails the benchmark. CPU time (the child's, all threads) is reported beside wall
time: on a loaded machine wall time is mostly waiting for a CPU. "Rows read" is what DuckDB
scanned for the page's queries (its profiler's total_rows_scanned, from an untimed re-run of
each query) and "rows out" what the queries returned. With `--profile N` the N slowest pages
(cold) get a cProfile of a cold run (of the script thread, where the page runs) and DuckDB's
EXPLAIN ANALYZE of their slowest queries, written under the output directory.

Progress goes to stderr, a table to stdout; the last line is one JSON object with at least
`page_cold_s_max` and `page_warm_s_max` (the slowest page's medians).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
ROUTER = ROOT / "app_streamlit" / "streamlit_app.py"
PAGES_DIR = ROUTER.parent / "app_pages"
# (customers, days), the same simulations bench/pipeline.py caches (seed 7)
SIZES = {"quick": (1_300, 120), "1m": (13_000, 120), "10m": (130_000, 120)}
TARGETS = {"page_cold_s": 2.0, "page_warm_s": 0.2}
APOLOGY = "Something went wrong"
CHILD_TIMEOUT_S = 1800
# imported before a cold run's clock starts: Streamlit itself and the libraries the pages chart,
# tabulate and query with (what `streamlit run` has loaded after its first page)
LIBRARIES = ("streamlit", "altair", "numpy", "pandas", "pyarrow", "duckdb")


def log(message: str) -> None:
    print(f"[bench-console {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    return Path(os.environ.get("PROMO_BENCH_CACHE") or "/tmp/promo-bench-cache")


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


# --- the warehouse -------------------------------------------------------------------------


def cached_ledger(size: str) -> Path:
    """bench/pipeline.py's cached simulation of this size (it waits for one under way)."""
    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    customers, days = SIZES[size]
    return module.cached_ledger(customers, days)


def ledger_events(ledger: Path) -> int:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM events").fetchone()[0]


def warehouse_home(size: str) -> tuple[Path, dict]:
    """A PROMO_HOME whose published warehouse the pipeline built from the cached ledger."""
    home = cache_root() / f"console-home-{size}"
    ready = home / "ready.json"
    ledger = cached_ledger(size)
    source = {"ledger": str(ledger), "ledger_bytes": ledger.stat().st_size}
    if ready.exists():
        info = json.loads(ready.read_text())
        if all(info.get(k) == v for k, v in source.items()):
            log(f"reusing the warehouse in {home}")
            return home, info
        log(f"{home} was built from another ledger: building again")
    lock = home.with_name(home.name + ".building")
    while lock.exists():  # another run of this benchmark is building it
        pid = int(lock.read_text() or 0)
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        log(f"waiting for process {pid} building {home}")
        time.sleep(30)
        if ready.exists():
            return warehouse_home(size)
    lock.write_text(str(os.getpid()))
    try:
        shutil.rmtree(home, ignore_errors=True)
        (home / "simulation").mkdir(parents=True)
        log(f"copying {ledger} into {home}")
        shutil.copyfile(ledger, home / "ledger.sqlite")
        truth = ledger.parent / "simulation" / "ground_truth.jsonl"
        if truth.exists():
            shutil.copyfile(truth, home / "simulation" / "ground_truth.jsonl")
        events = ledger_events(home / "ledger.sqlite")
        log(f"running the pipeline over {events:,} events (not timed)")
        started = time.perf_counter()
        with (home / "bench-pipeline.out").open("wb") as out:
            done = subprocess.run(
                [PYTHON, "-m", "pipelines.run"], cwd=ROOT, env=child_env(home), stdout=out,
                stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        text = (home / "bench-pipeline.out").read_text(errors="replace")
        if done.returncode != 0 or "pipeline: succeeded" not in text:
            raise RuntimeError(f"the pipeline failed (exit {done.returncode}):\n{text[-3000:]}")
        info = {
            **source,
            "events": events,
            "pipeline_s": round(time.perf_counter() - started, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        ready.write_text(json.dumps(info))
        return home, info
    finally:
        lock.unlink(missing_ok=True)


# --- one page, in a child process -----------------------------------------------------------


class QueryLog:
    """Wraps duckdb.connect: every query the page really runs (cache misses), its SQL,
    parameters, seconds and rows returned. Anything else passes through untouched."""

    FETCHES = ("df", "fetchdf", "fetch_df", "fetchall", "fetchone", "fetchmany", "arrow")

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def install(self) -> None:
        import duckdb

        log_ = self
        connect = duckdb.connect

        class Result:
            def __init__(self, inner, sql, params, started) -> None:
                self._inner, self._sql, self._params, self._started = inner, sql, params, started

            def __getattr__(self, name):
                attribute = getattr(self._inner, name)
                if name not in log_.FETCHES:
                    return attribute

                def fetch(*args, **kwargs):
                    rows = attribute(*args, **kwargs)
                    log_.entries.append(
                        {
                            "sql": self._sql,
                            "params": self._params,
                            "seconds": time.perf_counter() - self._started,
                            "rows_out": len(rows) if hasattr(rows, "__len__") else None,
                        }
                    )
                    return rows

                return fetch

        class Connection:
            def __init__(self, inner) -> None:
                self._inner = inner

            def __getattr__(self, name):
                return getattr(self._inner, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                self._inner.close()

            def execute(self, sql, params=None):
                started = time.perf_counter()
                return Result(self._inner.execute(sql, params), sql, params, started)

        def logged_connect(*args, **kwargs):
            return Connection(connect(*args, **kwargs))

        duckdb.connect = logged_connect

    def take(self) -> list[dict]:
        entries, self.entries = self.entries, []
        return entries


def scan_profile(path: str, sql: str, params, scratch: Path) -> dict:
    """What DuckDB scans to answer this query: its profiler's rows scanned, bytes read, CPU."""
    import duckdb

    output = scratch / "profile.json"
    output.unlink(missing_ok=True)
    connection = duckdb.connect(path, read_only=True)
    try:
        connection.execute("SET enable_profiling = 'json'")
        connection.execute(f"SET profiling_output = '{output}'")
        connection.execute(sql, params).fetchall()
    finally:
        connection.close()
    try:
        tree = json.loads(output.read_text())
    except (OSError, ValueError):
        return {}
    query, io = tree.get("query", {}), tree.get("io", {})
    return {
        "rows_read": query.get("total_rows_scanned"),
        "bytes_read": io.get("total_bytes_read"),
        "cpu_s": query.get("cpu_time"),
        "latency_s": query.get("total_time"),
    }


def page_texts(app) -> str:
    elements = [*app.info, *app.warning, *app.error, *app.success, *app.markdown, *app.caption]
    return "\n".join(str(element.value) for element in elements)


def run_page_child(page: str, warm_runs: int, profile_out: Path | None, scan: bool) -> dict:
    clock = time.perf_counter
    # Streamlit and the libraries under it are imported before the clock starts (a server
    # imports them once, at start); the console's own modules are not.
    started = clock()
    from streamlit.testing.v1 import AppTest

    for library in LIBRARIES:
        importlib.import_module(library)
    library_import_s = clock() - started
    queries = QueryLog()
    queries.install()

    # AppTest's own set-up, once per AppTest: scanning every installed package's metadata for
    # Streamlit components (a server does this once at start). Done before the clock.
    started = clock()
    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.testing.v1.local_script_runner import LocalScriptRunner

    components = BidiComponentManager()
    components.discover_and_register_components(start_file_watching=False)
    harness_setup_s = clock() - started

    # The script (router and page) runs in its own thread: time it there, and profile it there
    # (cProfile sees one thread only; the main thread just waits for the script to stop).
    script_runs: list[float] = []
    profiler = None
    if profile_out is not None:
        import cProfile

        profiler = cProfile.Profile()
    thread_main = LocalScriptRunner._run_script_thread

    def timed_thread(runner) -> None:
        started = clock()
        if profiler is not None and not script_runs:
            profiler.enable()
        try:
            thread_main(runner)
        finally:
            if profiler is not None and not script_runs:
                profiler.disable()
            script_runs.append(clock() - started)

    LocalScriptRunner._run_script_thread = timed_thread

    app = AppTest.from_file(str(ROUTER), default_timeout=CHILD_TIMEOUT_S)
    app._bidi_component_manager = components
    app.switch_page(f"app_pages/{page}.py")
    load_before = os.getloadavg()[0]
    cpu, started = time.process_time(), clock()
    app.run()
    cold_s, cold_cpu_s = clock() - started, time.process_time() - cpu
    cold_queries = queries.take()

    failures = [str(e.value)[:500] for e in app.exception]
    if APOLOGY in page_texts(app):
        failures.append(f"the page shows the apology: {page_texts(app)[:500]}")
    # which page the router really ran: the one registered for this page's file
    ran = app._finished_page_script_hash
    info = app._registered_pages.get(ran, {})
    ran_path = Path(str(info.get("script_path", ""))).resolve()
    if ran_path != (PAGES_DIR / f"{page}.py").resolve():
        failures.append(f"the router ran {ran_path.name or ran!r}, not {page}.py")
    failures += [str(e.value)[:200] for e in app.info if "No published warehouse" in str(e.value)]
    title = app.title[0].value if len(app.title) else None
    elements = {
        "dataframes": len(app.dataframe),
        "charts": len(app.get("vega_lite_chart")),
        "metrics": len(app.metric),
    }

    def again() -> tuple[float, float]:
        cpu, started = time.process_time(), clock()
        app.run()
        seconds, cpu_s = clock() - started, time.process_time() - cpu
        if app.exception:
            failures.append(f"rerun: {app.exception[0].value}"[:500])
        return seconds, cpu_s

    warm = [again() for _ in range(warm_runs)]
    warm_queries = queries.take()

    # The same page with the cache emptied in this warmed-up process: what an analyst sees in
    # a server that is up when a new publish (or the TTL) has emptied st.cache_data.
    from app_streamlit import db

    db._cached_query.clear()
    recold_s, recold_cpu_s = again()
    recold_queries = queries.take()

    result = {
        "page": page,
        "title": title,
        "cold_s": cold_s,
        "cold_cpu_s": cold_cpu_s,
        "cold_script_s": script_runs[0],
        "recold_s": recold_s,
        "recold_cpu_s": recold_cpu_s,
        "warm_s": [w for w, _ in warm],
        "warm_cpu_s": [c for _, c in warm],
        "library_import_s": library_import_s,
        "harness_setup_s": harness_setup_s,
        "loadavg_before": load_before,
        "queries": len(cold_queries),
        "query_s": sum(q["seconds"] for q in cold_queries),
        "recold_query_s": sum(q["seconds"] for q in recold_queries),
        "rows_out": sum(q["rows_out"] or 0 for q in cold_queries),
        "warm_queries": len(warm_queries),
        "failures": failures,
        "elements": elements,
    }
    path = str(db.warehouse_path())
    if scan:
        scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-console-{os.getpid()}"
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            for q in cold_queries:
                q.update(scan_profile(path, q["sql"], q["params"], scratch))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        result["rows_read"] = sum(q.get("rows_read") or 0 for q in cold_queries)
        result["bytes_read"] = sum(q.get("bytes_read") or 0 for q in cold_queries)
    if profile_out is not None:
        write_profile(profile_out, page, profiler, cold_queries, path, cold_s)
    return result


def write_profile(out: Path, page: str, profiler, cold_queries: list[dict], path: str, cold_s):
    """cProfile of the cold run (top functions by cumulative and own time) and, for the
    slowest queries, their SQL, parameters and EXPLAIN ANALYZE."""
    import io
    import pstats

    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(out / f"{page}.prof")
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    text.write(f"cold run of {page}: {cold_s:.3f} s\n\n")
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)
    (out / f"{page}.cprofile.txt").write_text(text.getvalue())

    slowest = sorted(cold_queries, key=lambda q: -q["seconds"])
    plans = []
    for rank, q in enumerate(slowest[:5], 1):
        connection = duckdb.connect(path, read_only=True)
        try:
            started = time.perf_counter()
            rows = connection.execute("EXPLAIN ANALYZE " + q["sql"], q["params"]).fetchall()
            again = time.perf_counter() - started
        except duckdb.Error as error:
            rows, again = [("error", str(error))], None
        finally:
            connection.close()
        plan = "\n".join(str(r[-1]) for r in rows)
        plans.append(
            f"=== query {rank}: {q['seconds']:.3f} s in the cold run (explain analyze: "
            f"{again if again is None else round(again, 3)} s), rows out {q['rows_out']}, "
            f"rows read {q.get('rows_read')}\nparams: {q['params']!r}\n{q['sql'].strip()}\n\n"
            f"{plan}\n"
        )
    (out / f"{page}.explain.txt").write_text("\n".join(plans))
    summary = [
        {
            "seconds": round(q["seconds"], 3),
            "rows_out": q["rows_out"],
            "rows_read": q.get("rows_read"),
            "sql": " ".join(q["sql"].split())[:300],
        }
        for q in slowest
    ]
    (out / f"{page}.queries.json").write_text(json.dumps(summary, indent=1, default=str))


# --- a real server --------------------------------------------------------------------------


SERVER_CHILD = """
import asyncio, json, sys, time
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

async def visit(port, page_name, runs):
    # one browser session: the page opened, then rerun; each time from the request sent to
    # the server's script_finished, every delta received
    times, problems = [], []
    url = f"ws://127.0.0.1:{port}/_stcore/stream"
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as ws:
        for _ in range(runs):
            msg = BackMsg()
            msg.rerun_script.page_name = page_name
            started = time.perf_counter()
            await ws.send(msg.SerializeToString())
            while True:
                fm = ForwardMsg()
                fm.ParseFromString(await ws.recv())
                kind = fm.WhichOneof("type")
                if kind == "page_not_found":
                    problems.append("page not found")
                elif kind == "delta" and fm.delta.new_element.WhichOneof("type") == "exception":
                    problems.append(fm.delta.new_element.exception.message[:300])
                elif kind == "script_finished":
                    break
            times.append(time.perf_counter() - started)
    return times, problems

port, runs, pages = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
for page in pages:
    name = "" if page == pages[0] else page  # the default page has no url path
    times, problems = asyncio.run(visit(port, name, runs))
    print(json.dumps({"page": page, "times": times, "problems": problems}), flush=True)
"""


def server_round_trips(home: Path, pages: list[str], warm_runs: int, port: int) -> dict:
    """`streamlit run` over this PROMO_HOME, each page opened in a new session over the
    websocket, as a browser would (no rendering): the first visit, then reruns (warm). Pages
    are visited in the router's order, so the shared filters' queries are cached after the
    first page; each page's own queries are not, until its first visit."""
    env = child_env(home)
    argv = [str(Path(PYTHON).with_name("streamlit")), "run", str(ROUTER), "--server.headless",
            "true", "--server.address", "127.0.0.1", "--server.port", str(port),
            "--browser.gatherUsageStats", "false"]  # fmt: skip
    server_log = (home / "bench-console-server.log").open("wb")
    server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=server_log, stderr=server_log)
    try:
        import urllib.request

        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("the console server did not start") from None
                time.sleep(1)
        ordered = pages_in_order()
        visits = [page for page in ordered if page in pages]
        if ordered[0] not in visits:
            visits.insert(0, ordered[0])  # the default page must come first: url path ""
        done = subprocess.run(
            [PYTHON, "-c", SERVER_CHILD, str(port), str(1 + warm_runs), *visits], cwd=ROOT,
            env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S * 2, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"server round trips failed:\n{done.stderr[-3000:]}")
        found = {}
        for line in done.stdout.splitlines():
            visit = json.loads(line)
            found[visit["page"]] = {
                "first_s": visit["times"][0],
                "warm_s": median(visit["times"][1:]),
                "problems": visit["problems"],
            }
        return found
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()


# --- the parent -------------------------------------------------------------------------------


def pages_in_order() -> list[str]:
    from app_streamlit.streamlit_app import SECTIONS

    listed = [file.removesuffix(".py") for entries in SECTIONS.values() for file, _, _ in entries]
    return [page for page in listed if (PAGES_DIR / f"{page}.py").exists()]


def run_child(home: Path, page: str, warm_runs: int, profile_out: Path | None, scan: bool):
    argv = [PYTHON, __file__, "--child", page, "--warm-runs", str(warm_runs)]
    if profile_out is not None:
        argv += ["--profile-out", str(profile_out)]
    if scan:
        argv.append("--scan")
    done = subprocess.run(
        argv, cwd=ROOT, env=child_env(home), capture_output=True, text=True,
        timeout=CHILD_TIMEOUT_S * 2, check=False,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{page}: child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="10m")
    parser.add_argument("--quick", action="store_true", help="one repeat, one warm run")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--warm-runs", type=int)
    parser.add_argument("--pages", help="comma-separated page files (stems); default all")
    parser.add_argument("--profile", type=int, default=3, help="profile the N slowest (cold)")
    parser.add_argument("--out", type=Path, help="where profiles go")
    parser.add_argument(
        "--no-server", action="store_true", help="skip the real server's round trips"
    )
    parser.add_argument("--port", type=int, default=8599, help="the real server's port")
    parser.add_argument("--home", type=Path, help="a PROMO_HOME with a published warehouse")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scan", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    warm_runs = args.warm_runs or (1 if args.quick else 3)

    if args.child:
        print(json.dumps(run_page_child(args.child, warm_runs, args.profile_out, args.scan)))
        return

    if args.home:
        home = args.home.resolve()
        ledger = home / "ledger.sqlite"
        info = {"events": ledger_events(ledger) if ledger.exists() else 0}
        args.size = "custom"
    else:
        home, info = warehouse_home(args.size)
    published = home / "warehouse" / "published.duckdb"
    warehouse_mb = published.stat().st_size / 1e6
    pages = args.pages.split(",") if args.pages else pages_in_order()
    out = args.out or cache_root() / f"console-bench-{args.size}"
    log(
        f"{len(pages)} pages x {repeats} repeat(s), {warm_runs} warm run(s) each, over "
        f"{info['events']:,} events ({warehouse_mb:.0f} MB warehouse); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    loads = [os.getloadavg()[0]]
    runs: dict[str, list[dict]] = {page: [] for page in pages}
    for repeat in range(repeats):
        for page in pages:
            result = run_child(home, page, warm_runs, None, scan=repeat == 0)
            runs[page].append(result)
            loads.append(os.getloadavg()[0])
            log(
                f"repeat {repeat + 1}/{repeats} {page:22} cold {result['cold_s']:6.3f} s "
                f"(cpu {result['cold_cpu_s']:.2f})  recold {result['recold_s']:6.3f} s  warm "
                f"{median(result['warm_s']):6.3f} s  {result['queries']} queries "
                f"({result['query_s']:.3f} s)  load {loads[-1]:.1f}"
                + (f"  FAILED: {result['failures']}" if result["failures"] else "")
            )

    out.mkdir(parents=True, exist_ok=True)
    (out / "runs.json").write_text(json.dumps(runs, indent=1))
    server: dict[str, dict] = {}
    if not args.no_server:
        log(f"a real server: every page over the websocket, 1 + {warm_runs} run(s) each")
        server = server_round_trips(home, pages, warm_runs, args.port)
        loads.append(os.getloadavg()[0])
        for page, visit in server.items():
            log(f"server {page:22} first {visit['first_s']:6.3f} s  warm {visit['warm_s']:6.3f} s")

    def med(results: list[dict], key: str) -> float:
        values = [r[key] for r in results]
        flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
        return median(flat)

    rows = []
    for page, results in runs.items():
        rows.append(
            {
                "page": page,
                "cold_s": med(results, "cold_s"),
                "cold_cpu_s": med(results, "cold_cpu_s"),
                "recold_s": med(results, "recold_s"),
                "recold_cpu_s": med(results, "recold_cpu_s"),
                "warm_s": med(results, "warm_s"),
                "warm_cpu_s": med(results, "warm_cpu_s"),
                "cold_query_s": med(results, "query_s"),
                "queries": results[0]["queries"],
                "warm_queries": max(r["warm_queries"] for r in results),
                "rows_read": results[0].get("rows_read"),
                "bytes_read": results[0].get("bytes_read"),
                "rows_out": results[0]["rows_out"],
                "failures": sorted({f for r in results for f in r["failures"]})
                + [f"server: {p}" for p in server.get(page, {}).get("problems", [])],
                "server_first_s": server.get(page, {}).get("first_s", float("nan")),
                "server_warm_s": server.get(page, {}).get("warm_s", float("nan")),
            }
        )
    slow_cold = max(rows, key=lambda r: r["cold_s"])
    slow_warm = max(rows, key=lambda r: r["warm_s"])

    profiled = []
    if args.profile:
        for row in sorted(rows, key=lambda r: -r["cold_s"])[: args.profile]:
            log(f"profiling {row['page']} (cProfile of a cold run, EXPLAIN ANALYZE) into {out}")
            run_child(home, row["page"], 1, out, scan=True)
            profiled.append(row["page"])
    loads.append(os.getloadavg()[0])

    print(
        f"console pages over {info['events']:,} events, warehouse {warehouse_mb:.0f} MB; medians "
        f"of {repeats} repeat(s); load average {min(loads):.1f}-{max(loads):.1f} on "
        f"{os.cpu_count()} CPUs\n"
        "  cold: first run in a new process (empty st.cache_data; Streamlit and libraries "
        "imported beforehand, the console's modules not)\n"
        "  recold: the cache emptied (st.cache_data.clear) in that warmed-up process\n"
        f"  warm: the page again in the same process ({warm_runs} run(s) per repeat)\n"
        "  srv 1st / srv warm: `streamlit run`, the page opened in a new websocket session "
        "(its own queries not cached yet), then rerun\n"
        "  cpu: this process's CPU time for the same run (all threads); query s: in DuckDB "
        "(cold run); rows read: scanned by DuckDB; rows out: returned to the page"
    )
    header = (
        f"{'page':22}{'cold s':>8}{'cpu':>7}{'recold':>8}{'cpu':>7}{'warm s':>8}{'cpu':>7}"
        f"{'srv 1st':>8}{'srv warm':>9}{'query s':>9}{'queries':>8}{'rows read':>13}{'MB read':>9}"
        f"{'rows out':>10}  status"
    )
    print(header)
    for row in rows:
        over = row["cold_s"] > TARGETS["page_cold_s"] or row["warm_s"] > TARGETS["page_warm_s"]
        status = "over target" if over else "ok"
        if row["failures"]:
            status = "FAILED " + "; ".join(row["failures"])[:200]
        rows_read = "-" if row["rows_read"] is None else f"{row['rows_read']:,}"
        mb_read = "-" if row["bytes_read"] is None else f"{row['bytes_read'] / 1e6:.1f}"
        print(
            f"{row['page']:22}{row['cold_s']:8.3f}{row['cold_cpu_s']:7.2f}{row['recold_s']:8.3f}"
            f"{row['recold_cpu_s']:7.2f}{row['warm_s']:8.3f}{row['warm_cpu_s']:7.3f}"
            f"{row['server_first_s']:8.3f}{row['server_warm_s']:9.3f}"
            f"{row['cold_query_s']:9.3f}{row['queries']:8}{rows_read:>13}{mb_read:>9}"
            f"{row['rows_out']:>10,}  {status}"
        )
    print(f"slowest cold: {slow_cold['page']} {slow_cold['cold_s']:.3f} s (target 2 s)")
    print(f"slowest warm: {slow_warm['page']} {slow_warm['warm_s']:.3f} s (target 0.2 s)")
    if profiled:
        print(f"profiles (cProfile, EXPLAIN ANALYZE, queries) of {', '.join(profiled)} in {out}")

    all_results = [r for results in runs.values() for r in results]
    failed = [row["page"] for row in rows if row["failures"]]
    summary = {
        "bench": "console",
        "size": args.size,
        "events": info["events"],
        "warehouse_mb": round(warehouse_mb, 1),
        "pages": len(rows),
        "repeats": repeats,
        "warm_runs": warm_runs,
        "page_cold_s_max": round(slow_cold["cold_s"], 3),
        "page_warm_s_max": round(slow_warm["warm_s"], 4),
        "slowest_cold_page": slow_cold["page"],
        "slowest_warm_page": slow_warm["page"],
        "cold_target_s": TARGETS["page_cold_s"],
        "warm_target_s": TARGETS["page_warm_s"],
        "cold_target_met": slow_cold["cold_s"] <= TARGETS["page_cold_s"] and not failed,
        "warm_target_met": slow_warm["warm_s"] <= TARGETS["page_warm_s"] and not failed,
        "failed_pages": failed,
        "page_recold_s_max": round(max(r["recold_s"] for r in rows), 3),
        "page_cold_cpu_s_max": round(max(r["cold_cpu_s"] for r in rows), 3),
        "page_recold_cpu_s_max": round(max(r["recold_cpu_s"] for r in rows), 3),
        "page_warm_cpu_s_max": round(max(r["warm_cpu_s"] for r in rows), 4),
        "server_first_s_max": round(max(r["server_first_s"] for r in rows), 3) if server else None,
        "server_warm_s_max": round(max(r["server_warm_s"] for r in rows), 4) if server else None,
        "per_page": {
            row["page"]: {
                "cold_s": round(row["cold_s"], 3),
                "cold_cpu_s": round(row["cold_cpu_s"], 3),
                "recold_s": round(row["recold_s"], 3),
                "warm_s": round(row["warm_s"], 4),
                "warm_cpu_s": round(row["warm_cpu_s"], 4),
                "server_first_s": round(row["server_first_s"], 3) if server else None,
                "server_warm_s": round(row["server_warm_s"], 4) if server else None,
                "query_s": round(row["cold_query_s"], 3),
                "queries": row["queries"],
                "rows_read": row["rows_read"],
            }
            for row in rows
        },
        "library_import_s": round(med(all_results, "library_import_s"), 3),
        "harness_setup_s": round(med(all_results, "harness_setup_s"), 3),
        "loadavg_min": round(min(loads), 2),
        "loadavg_max": round(max(loads), 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
