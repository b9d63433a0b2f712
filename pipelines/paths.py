"""Where the pipeline keeps its state under PROMO_HOME, named once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.ledger_extract import LedgerSource, PostgresLedger
from redemption_core import ledger_url

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"


@dataclass(frozen=True)
class PipelinePaths:
    home: Path

    @property
    def ledger(self) -> LedgerSource:
        """The SQLite file under PROMO_HOME, or PROMO_LEDGER_URL's PostgreSQL ledger."""
        url = ledger_url()
        return PostgresLedger(url) if url else self.home / "ledger.sqlite"

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def build_warehouse(self) -> Path:
        """The warehouse dbt builds into: the pipeline's alone, never read by the console."""
        return self.warehouse_dir / "build.duckdb"

    @property
    def published_warehouse(self) -> Path:
        """The finished warehouse the console reads, replaced atomically by each good run."""
        return self.warehouse_dir / "published.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"
