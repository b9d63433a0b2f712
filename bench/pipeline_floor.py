"""The floor of the pipeline benchmark: ledger to marts with DuckDB alone.

    python bench/pipeline_floor.py --ledger LEDGER --manifest MANIFEST --out DIR

One plain script, without Dagster, dbt or the quality checks: it reads the ledger with the
pipeline's own reader (pipelines.ledger_extract.read_ledger, ADBC), loads the Arrow table as
`raw.ledger_events` (and one `raw.extract_runs` row, as the extract logs) into a fresh
DIR/build.duckdb, then runs every dbt model's compiled SQL from MANIFEST (a `dbt compile` made
beforehand against a warehouse named build.duckdb) in dependency order, as a view or a table as
the model is configured; an incremental model is built as a table, as dbt does on its first run
(compiled against an empty warehouse, its SQL selects every event). No Parquet lake, no dbt
tests, no publish.

The timing runs from the start of the ledger read to the closing of the warehouse after the last
mart table. Prints one JSON object: total and per-phase seconds, per-model seconds, rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import UTC, datetime
from graphlib import TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from pipelines.ledger_extract import read_ledger  # noqa: E402

DATABASE = "build"  # the warehouse file's stem, as the compiled SQL names it


def load_models(manifest_path: Path) -> list[dict]:
    """Every enabled model of the project, in an order where dependencies come first."""
    manifest = json.loads(manifest_path.read_text())
    nodes = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["config"].get("enabled", True)
    }
    graph = {
        uid: [dep for dep in node["depends_on"]["nodes"] if dep in nodes]
        for uid, node in nodes.items()
    }
    order = list(TopologicalSorter(graph).static_order())
    models = []
    for uid in order:
        node = nodes[uid]
        if node.get("compiled_code") is None:
            raise SystemExit(f"{uid} has no compiled code: run `dbt compile` first")
        models.append(
            {
                "name": node["name"],
                "schema": node["schema"],
                "relation": node.get("alias") or node["name"],
                "materialized": node["config"]["materialized"],
                "sql": node["compiled_code"],
            }
        )
    known = {"view", "table", "incremental", "ephemeral"}
    unsupported = {m["materialized"] for m in models} - known
    if unsupported:
        raise SystemExit(f"the floor does not know these materializations: {unsupported}")
    return models


def run_floor(ledger: Path, models: list[dict], out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    warehouse = out / f"{DATABASE}.duckdb"
    for leftover in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        leftover.unlink(missing_ok=True)
    timings: dict[str, float] = {}
    per_model: dict[str, float] = {}

    started = time.perf_counter()
    events = read_ledger(ledger)
    timings["read_ledger_s"] = time.perf_counter() - started

    mark = time.perf_counter()
    db = duckdb.connect(str(warehouse))
    db.execute("CREATE SCHEMA raw")
    db.register("ledger_arrow", events)
    db.execute("CREATE TABLE raw.ledger_events AS SELECT * FROM ledger_arrow")
    db.unregister("ledger_arrow")
    high_water = int(events["seq"][-1].as_py()) if events.num_rows else 0
    db.execute(
        "CREATE TABLE raw.extract_runs (run_at TIMESTAMP, watermark_before BIGINT, "
        "watermark_after BIGINT, ledger_high_water BIGINT, new_events BIGINT, late_events BIGINT)"
    )
    db.execute(
        "INSERT INTO raw.extract_runs VALUES (?, 0, ?, ?, ?, 0)",
        [datetime.now(UTC).replace(tzinfo=None), high_water, high_water, events.num_rows],
    )
    rows = events.num_rows
    del events
    timings["load_raw_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    for schema in sorted({m["schema"] for m in models}):
        db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    for model in models:
        if model["materialized"] == "ephemeral":
            continue  # inlined into its dependants' compiled SQL
        kind = "VIEW" if model["materialized"] == "view" else "TABLE"
        one = time.perf_counter()
        db.execute(
            f'CREATE {kind} "{DATABASE}"."{model["schema"]}"."{model["relation"]}" AS\n'
            f"{model['sql']}"
        )
        per_model[f"{model['schema']}.{model['relation']}"] = round(time.perf_counter() - one, 3)
    timings["models_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    tables = db.execute(
        "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
        "WHERE schema_name = 'marts' ORDER BY 1"
    ).fetchall()
    db.close()  # checkpoints: the warehouse is on disk
    timings["close_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    return {
        **{k: round(v, 3) for k, v in timings.items()},
        "events": rows,
        "models": len([m for m in models if m["materialized"] != "ephemeral"]),
        "mart_tables": {name: size for name, size in tables},
        "per_model_s": per_model,
        "warehouse_bytes": warehouse.stat().st_size,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True, help="a compiled manifest.json")
    parser.add_argument("--out", type=Path, required=True, help="folder for build.duckdb")
    args = parser.parse_args()
    models = load_models(args.manifest)
    print(json.dumps(run_floor(args.ledger, models, args.out)))


if __name__ == "__main__":
    main()
