"""The Dagster instance the pipeline writes to: settings file and the WAL event log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from pipelines.dagster_storage import WalSqliteEventLogStorage
from pipelines.run import DAGSTER_YAML_HEADER, prepare_environment


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DAGSTER_HOME", "PROMO_WAREHOUSE", "PROMO_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    prepare_environment(home)
    return home


@dg.asset
def one() -> int:
    return 1


@dg.asset
def two(one: int) -> int:
    return one + 1


def _journal_mode(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return connection.execute("PRAGMA journal_mode").fetchone()[0]


def test_settings_turn_telemetry_off_and_name_the_wal_event_log(home: Path) -> None:
    text = (home / "dagster" / "dagster.yaml").read_text()
    assert text.startswith(DAGSTER_YAML_HEADER)
    assert "telemetry:\n  enabled: false" in text
    assert "nux:\n  enabled: false" in text  # no newsletter prompt in the UI
    assert "class: WalSqliteEventLogStorage" in text
    assert str(home / "dagster" / "history" / "runs") in text


def test_runs_are_stored_and_read_back_from_wal_databases(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, WalSqliteEventLogStorage)
        result = dg.materialize([one, two], instance=instance)
        assert result.success
        logged = [
            e.dagster_event.event_type_value
            for e in instance.all_logs(result.run_id)
            if e.dagster_event
        ]
        assert logged.count("ASSET_MATERIALIZATION") == 2
        assert instance.get_latest_materialization_event(dg.AssetKey("two")) is not None
    runs = home / "dagster" / "history" / "runs"
    assert _journal_mode(runs / f"{result.run_id}.db") == "wal"
    assert _journal_mode(runs / "index.db") == "wal"


def test_a_second_instance_sees_the_first_ones_events(home: Path) -> None:
    """The webserver reads what the pipeline process wrote while the writer's connections stay
    open (the point of keeping them pooled)."""
    with dg.DagsterInstance.get() as writer:
        run_id = dg.materialize([one], instance=writer).run_id
        with dg.DagsterInstance.get() as reader:
            assert reader.get_run_by_id(run_id) is not None
            assert any(
                e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
                for e in reader.all_logs(run_id)
            )


def test_wipe_closes_the_shards_before_deleting_them(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        run_id = dg.materialize([one], instance=instance).run_id
        instance.event_log_storage.wipe()
        assert not (home / "dagster" / "history" / "runs" / f"{run_id}.db").exists()
        assert instance.all_logs(run_id) == []
        # still usable afterwards
        assert dg.materialize([one], instance=instance).success


def test_our_old_settings_are_rewritten_but_someone_elses_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for home in (ours, theirs):
        (home / "dagster").mkdir(parents=True)
    (ours / "dagster" / "dagster.yaml").write_text(
        f"{DAGSTER_YAML_HEADER}: telemetry off\ntelemetry:\n  enabled: false\n"
    )
    custom = "telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: true\n"
    (theirs / "dagster" / "dagster.yaml").write_text(custom)

    prepare_environment(ours)
    monkeypatch.delenv("DAGSTER_HOME")
    prepare_environment(theirs)

    assert "WalSqliteEventLogStorage" in (ours / "dagster" / "dagster.yaml").read_text()
    assert (theirs / "dagster" / "dagster.yaml").read_text() == custom
