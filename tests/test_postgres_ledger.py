"""What only the PostgreSQL ledger has: `promo ledger init` and `migrate`, first opens of an
empty database by many processes at once, and the simulator writing the same ledger there as
into SQLite."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from pg_cluster import APP_ROLE, Cluster
from reliability_helpers import (
    Reader,
    cart,
    create_ledger,
    downgrade_ledger,
    event_rows,
    open_engine,
    order,
    run_lined_up,
    standalone_def,
)
from test_cli import Promo

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.orders import RequestContext
from redemption_core.engine.redemption import RedeemRequest
from redemption_core.ledger.postgres import PostgresLedgerStore
from redemption_core.ledger.rows import SELECT_EVENT
from redemption_core.ledger.sqlite import SqliteLedgerStore
from redemption_core.ledger.verify import verify_ledger
from redemption_core.simulate import SimulationConfig, simulate

REPO = Path(__file__).resolve().parents[1]


def owner_url(cluster: Cluster, url: str) -> str:
    return cluster.admin_url(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


@pytest.fixture
def promo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Promo:
    monkeypatch.setenv("PROMO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROMO_LEDGER_URL", raising=False)
    monkeypatch.setenv("PROMO_HMAC_KEY", "ab" * 32)
    return Promo(capsys)


def make_sqlite_ledger(promo: Promo, tmp_path: Path) -> None:
    definition = tmp_path / "spring.json"
    definition.write_text(
        json.dumps(
            {
                "id": "spring",
                "currency": "EUR",
                "status": "active",
                "voucher": {"kind": "standalone", "code": "SPRING10"},
                "discount": {"type": "amount", "amount_off": 1000},
                "limits": {"budget": 5000},
            }
        )
    )
    promo.ok("campaign", "create", definition)
    for n in range(3):
        promo.ok("redeem", "SPRING10", "--amount", 4000, "--currency", "EUR", "--customer", f"c{n}")
    promo("redeem", "SPRING10", "--amount", 100, "--currency", "EUR")  # refused: minimum


def test_promo_ledger_migrate_copies_a_sqlite_ledger_and_verifies_the_copy(
    promo: Promo,
    tmp_path: Path,
    postgres_url: str,
    postgres_cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_sqlite_ledger(promo, tmp_path)
    before = promo.stats()
    target = owner_url(postgres_cluster, postgres_url)

    migrated = promo.ok("--json", "ledger", "migrate", "--to", target).json
    again = promo("ledger", "migrate", "--to", target)
    monkeypatch.setenv("PROMO_LEDGER_URL", postgres_url)  # the application role from now on
    after = promo.stats()
    redeemed = promo.ok("--json", "redeem", "SPRING10", "--amount", 4000, "--currency", "EUR")

    assert migrated["copied"] == before["events"] and migrated["clean"]
    assert again.code != 0 and "already holds events" in again.err
    assert {k: v for k, v in after.items()} == before
    assert redeemed.json["ok"]  # seqs continue after the copied ones
    assert promo.stats()["last_seq"] == before["last_seq"] + 1
    assert promo.ok("--json", "ledger", "verify").json["clean"]


def test_a_migrated_ledger_has_every_event_byte_for_byte(
    promo: Promo, tmp_path: Path, postgres_url: str, postgres_cluster: Cluster
) -> None:
    make_sqlite_ledger(promo, tmp_path)
    promo.ok("ledger", "migrate", "--to", owner_url(postgres_cluster, postgres_url))

    source = SqliteLedgerStore(tmp_path / "home" / "ledger.sqlite", read_only=True)
    target = PostgresLedgerStore(postgres_url, read_only=True)
    with source.read() as mine, target.read() as theirs:
        rows = [tx.query(f"{SELECT_EVENT} ORDER BY seq", ()) for tx in (mine, theirs)]
    source.close()
    target.close()

    assert [tuple(row) for row in rows[0]] == [tuple(row) for row in rows[1]]


def test_migrate_refuses_a_url_that_is_not_postgresql_naming_the_option(
    promo: Promo, tmp_path: Path
) -> None:
    make_sqlite_ledger(promo, tmp_path)

    refused = promo("ledger", "migrate", "--to", "mysql://somewhere/db")

    assert refused.code == 2 and "--to" in refused.err


def test_promo_ledger_init_creates_the_tables_and_grants_the_application_role(
    promo: Promo, tmp_path: Path, postgres_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "ledger_init_test"
    with psycopg.connect(postgres_cluster.admin_url(), autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {name}")
    app = postgres_cluster.app_url(name)
    try:
        promo.ok(
            "ledger", "init", "--url", postgres_cluster.admin_url(name), "--app-role", APP_ROLE
        )
        monkeypatch.setenv("PROMO_LEDGER_URL", app)
        make_sqlite_ledger(promo, tmp_path)  # written by the application role, into PostgreSQL
        written = promo.events()
        with psycopg.connect(app, autocommit=True) as db:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute("DELETE FROM events")
            assert db.execute("SELECT count(*) FROM events").fetchone() == (written,)
        assert written > 0
    finally:
        postgres_cluster.drop_ledger(app)


def test_a_ledger_of_schema_1_is_migrated_by_its_owner_and_the_application_role_granted_its_new_tables(
    tmp_path: Path, postgres_url: str, postgres_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMO_LEDGER_URL", postgres_url)
    monkeypatch.setenv("PROMO_HMAC_KEY", "ab" * 32)
    home = tmp_path / "home"
    create_ledger(home, [standalone_def("old", "OLD10", limits={"per_customer": 5})])
    till = RequestContext(device_id="till-1", store_id="store-9")
    with open_engine(home) as engine:
        engine.validate("OLD10", cart(), customer_id="c-1", context=till, hold_seconds=600)
        engine.redeem(RedeemRequest("OLD10", order(), customer_id="c-1", context=till))
    owner = owner_url(postgres_cluster, postgres_url)
    downgrade_ledger(owner, 1)

    with pytest.raises(InvalidInput) as refused:  # the application role may not ALTER
        PostgresLedgerStore(postgres_url)
    PostgresLedgerStore(owner).close()  # the owner's first open migrates
    with open_engine(home) as engine:  # the application role again
        engine.issue_key("ADMIN", name="after the migration")  # api_keys: granted to it
        engine.validate("OLD10", cart(), customer_id="c-2", context=till, hold_seconds=600)
        engine.redeem(RedeemRequest("OLD10", order(), customer_id="c-2", context=till))
        with engine.store.read() as tx:
            held = tx.open_holds("c-1", engine._hash_context(till).device_hash, None, engine.now())
            stores = tx.query("SELECT store_id FROM redemptions", ())

    assert refused.value.field == "PROMO_LEDGER_URL"
    assert "promo ledger init" in refused.value.problem and "(1.1)" in refused.value.problem
    assert (held.by_customer, held.by_device) == (1, 2)  # the old hold's device filled in
    assert stores == [("store-9",), ("store-9",)]
    assert verify_ledger(postgres_url).clean


def test_many_processes_opening_an_empty_database_at_once_create_the_ledger_once(
    tmp_path: Path, postgres_cluster: Cluster
) -> None:
    url = postgres_cluster.create_ledger(empty=True)  # no tables; the role owns the database
    try:
        specs = [{"ledger": url} for _ in range(6)]
        opened = run_lined_up("open-store", specs, tmp_path / "line")
        reader = Reader(url)
        version = reader.execute("SELECT value FROM ledger_meta", ()).fetchall()
        reader.close()
    finally:
        postgres_cluster.drop_ledger(url)

    assert [child[0]["opened"] for child in opened] == [True] * 6
    assert len(version) == 1


def test_the_simulator_writes_the_same_ledger_into_postgresql_as_into_sqlite(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulationConfig(customers=40, days=4, seed=11)
    monkeypatch.delenv("PROMO_LEDGER_URL", raising=False)
    simulate(tmp_path / "sqlite", config, progress=None)
    monkeypatch.setenv("PROMO_LEDGER_URL", postgres_url)
    simulate(tmp_path / "postgresql", config, progress=None)

    in_sqlite = event_rows(tmp_path / "sqlite" / "ledger.sqlite")
    in_postgres = [
        {k: v for k, v in row.items() if k != "txid"} for row in event_rows(postgres_url)
    ]
    assert len(in_sqlite) > 500
    assert in_postgres == in_sqlite
    assert verify_ledger(postgres_url).clean


def test_every_ledger_command_reads_a_postgresql_ledger_from_a_separate_process(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {**os.environ, "PROMO_HOME": str(tmp_path / "home"), "PROMO_LEDGER_URL": postgres_url}
    env["PROMO_HMAC_KEY"] = "cd" * 32

    def promo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "redemption_core.cli", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    definition = tmp_path / "spring.json"
    definition.write_text(
        '{"id": "spring", "currency": "EUR", "status": "active",'
        ' "voucher": {"kind": "standalone", "code": "SPRING10"},'
        ' "discount": {"type": "amount", "amount_off": 1000}}'
    )
    created = promo("campaign", "create", str(definition))
    tail = promo("--json", "ledger", "tail", "-n", "5")
    stats = promo("--json", "ledger", "stats")
    verified = promo("ledger", "verify")

    assert created.returncode == 0, created.stderr
    assert json.loads(tail.stdout.splitlines()[-1])["event_type"] == "voucher_created"
    assert json.loads(stats.stdout)["events"] == 2
    assert verified.returncode == 0 and "clean" in verified.stdout


@pytest.mark.parametrize("action", ["stats", "tail", "verify"])
def test_ledger_commands_on_a_database_without_a_ledger_exit_2_naming_the_url(
    promo: Promo, postgres_cluster: Cluster, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    url = postgres_cluster.create_ledger(empty=True)
    monkeypatch.setenv("PROMO_LEDGER_URL", url)
    try:
        result = promo("ledger", action)
        with psycopg.connect(url) as db:
            created = db.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()[0]
    finally:
        postgres_cluster.drop_ledger(url)

    assert result.code == 2
    assert "PROMO_LEDGER_URL" in result.err and "no ledger at" in result.err
    assert not created


def test_a_ledger_url_nobody_answers_at_exits_2_naming_it(
    promo: Promo, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PROMO_LEDGER_URL", f"postgresql://nobody@127.0.0.1:{port}/promo")

    result = promo("ledger", "stats")

    assert result.code == 2
    assert "PROMO_LEDGER_URL" in result.err and "cannot connect" in result.err


def test_every_sqlite_table_exists_in_postgresql_with_the_same_columns(
    tmp_path: Path, postgres_url: str
) -> None:
    # The PostgreSQL tables are derived from sqlite_schema.py: a table added there (a new
    # projection table) needs no second definition.
    sqlite = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    tables = [
        row[0]
        for row in sqlite.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    expected = {
        table: [row[1] for row in sqlite.connection.execute(f"PRAGMA table_info({table})")]
        for table in tables
    }
    sqlite.close()
    reader = Reader(postgres_url)
    found = {
        table: [
            row[0]
            for row in reader.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name = ?"
                " AND column_name NOT IN ('rowid', 'txid') ORDER BY ordinal_position",
                (table,),
            ).fetchall()
        ]
        for table in tables
    }
    reader.close()

    assert "events" in expected and len(expected) > 20
    assert found == expected
