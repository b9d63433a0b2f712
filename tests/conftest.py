"""Fixtures shared by the test modules: the ledger backend.

A module that runs against both ledgers says so with
`pytestmark = pytest.mark.usefixtures("ledger_backend")`: each of its tests then runs once on
SQLite (PROMO_LEDGER_URL unset: the file under PROMO_HOME) and once on PostgreSQL
(PROMO_LEDGER_URL set to a fresh database of the session's throwaway cluster, or of the
server named by PROMO_TEST_POSTGRES_URL). Child processes inherit the variable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_cluster import Cluster

from redemption_core.ledger.postgres import PostgresLedgerStore
from redemption_core.ledger.sqlite import SqliteLedgerStore
from redemption_core.ledger.store import LedgerStore


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> Iterator[str]:
    """A fresh, empty ledger database (tables created, no events): the application's URL."""
    url = postgres_cluster.create_ledger()
    yield url
    postgres_cluster.drop_ledger(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Runs the test once per backend; PROMO_LEDGER_URL says which."""
    if request.param == "sqlite":
        monkeypatch.delenv("PROMO_LEDGER_URL", raising=False)
        yield "sqlite"
        return
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("PROMO_LEDGER_URL", url)
    yield "postgresql"


@pytest.fixture
def fresh_ledger(
    ledger_backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], None]]:
    """Call it to point PROMO_LEDGER_URL at another fresh database (on SQLite a new home is
    a new ledger already, and it does nothing)."""
    made: list[str] = []

    def switch() -> None:
        if ledger_backend == "postgresql":
            cluster: Cluster = request.getfixturevalue("postgres_cluster")
            made.append(cluster.create_ledger())
            monkeypatch.setenv("PROMO_LEDGER_URL", made[-1])

    yield switch
    if made:
        cluster = request.getfixturevalue("postgres_cluster")
        for url in made:
            cluster.drop_ledger(url)


@pytest.fixture
def ledger_store(
    ledger_backend: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[Path], LedgerStore]]:
    """Makes a store on a fresh ledger of the test's backend: a file in the given folder, or
    a new PostgreSQL database (for tests that hold several ledgers at once)."""
    made: list[str] = []

    def make(folder: Path) -> LedgerStore:
        if ledger_backend == "sqlite":
            return SqliteLedgerStore(folder / "ledger.sqlite")
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        made.append(cluster.create_ledger())
        return PostgresLedgerStore(made[-1])

    yield make
    if made:
        cluster = request.getfixturevalue("postgres_cluster")
        for url in made:
            cluster.drop_ledger(url)


@pytest.fixture
def as_owner(ledger_backend: str, request: pytest.FixtureRequest) -> Callable[[Any], Any]:
    """A ledger as its owner reaches it: on PostgreSQL the database's superuser URL (the
    application role may not change the tables), on SQLite the file itself."""

    def owner(ledger: Any) -> Any:
        if ledger_backend == "sqlite":
            return ledger
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        return cluster.admin_url(psycopg.conninfo.conninfo_to_dict(str(ledger))["dbname"])

    return owner
