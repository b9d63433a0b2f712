"""Which dbt code built the warehouse's incremental models, so a change to it rebuilds them.

An incremental model only takes in what is new; rows it built earlier stay as the code of that
time made them. After a change to its SQL, to a model it reads, to its configuration or to a
project macro, those rows would silently disagree with the new ones. So each successful build
records a fingerprint per piece of code the incremental models depend on, in the warehouse beside
them (`incremental_state.code_fingerprints`, never published), and the next build compares: any
difference, or a warehouse that holds incremental tables but no record, makes it a full refresh.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb

FINGERPRINTS = "incremental_state.code_fingerprints"
# the configuration that decides what an incremental model's rows are
_CONFIG_KEYS = (
    "materialized",
    "incremental_strategy",
    "unique_key",
    "schema",
    "pre-hook",
    "post-hook",
)


def code_fingerprints(manifest: dict, macros_dir: Path) -> dict[str, str]:
    """Per incremental model and every model upstream of one (`model:<name>`), a hash of its SQL
    and configuration; per project macro file (`macro:<path>`), a hash of its text."""
    nodes = manifest["nodes"]
    incremental = [
        uid
        for uid, node in nodes.items()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental"
    ]
    upstream, frontier = set(incremental), list(incremental)
    while frontier:
        for parent in manifest["parent_map"].get(frontier.pop(), []):
            if parent.startswith("model.") and parent not in upstream:
                upstream.add(parent)
                frontier.append(parent)
    fingerprints = {}
    for uid in upstream:
        node = nodes[uid]
        config = {key: node["config"].get(key) for key in _CONFIG_KEYS}
        text = json.dumps([node["checksum"]["checksum"], config], sort_keys=True, default=str)
        fingerprints[f"model:{node['name']}"] = _sha256(text.encode())
    for path in sorted(macros_dir.rglob("*.sql")):
        fingerprints[f"macro:{path.relative_to(macros_dir)}"] = _sha256(path.read_bytes())
    return fingerprints


def incremental_relations(manifest: dict) -> list[tuple[str, str]]:
    """(schema, table) of every incremental model."""
    return sorted(
        (node["config"]["schema"], node["alias"] or node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental"
    )


def full_refresh_reason(warehouse: Path, manifest: dict, wanted: dict[str, str]) -> str | None:
    """Why the next build must rebuild the incremental models from scratch, or None when it need
    not: the warehouse holds none of them yet (any build is from scratch), or they were built by
    the code `wanted` describes."""
    if not warehouse.exists():
        return None
    with duckdb.connect(str(warehouse), read_only=True) as db:
        tables = set(db.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall())
        if not tables & set(incremental_relations(manifest)):
            return None
        if ("incremental_state", "code_fingerprints") not in tables:
            return "the incremental models were built before their code was recorded"
        recorded = dict(db.execute(f"SELECT piece, fingerprint FROM {FINGERPRINTS}").fetchall())
    changed = sorted(
        piece
        for piece in recorded.keys() | wanted.keys()
        if recorded.get(piece) != wanted.get(piece)
    )
    if not changed:
        return None
    shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
    return f"the incremental models' code changed since the last build: {shown}"


def record_fingerprints(warehouse: Path, fingerprints: dict[str, str]) -> None:
    """After a successful build: the code that built the incremental models."""
    with duckdb.connect(str(warehouse)) as db:
        db.execute("CREATE SCHEMA IF NOT EXISTS incremental_state")
        db.execute(f"CREATE OR REPLACE TABLE {FINGERPRINTS} (piece VARCHAR, fingerprint VARCHAR)")
        db.executemany(f"INSERT INTO {FINGERPRINTS} VALUES (?, ?)", sorted(fingerprints.items()))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
