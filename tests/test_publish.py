"""Publishing the warehouse for the console (pipelines/publish.py).

The contract: the published file holds every marts table of the build with its rows and a
`main.published` record; a new publish swaps the file in one rename, so a reader sees the old
warehouse or the new one, never half of either; a publish that fails leaves the old file as it
was and nothing beside it; any number of readers may open the published file read-only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.publish import publish_warehouse


def build_warehouse(path: Path, redemptions: int = 3, campaigns: int = 2) -> Path:
    """A build warehouse with two marts tables, and a staging table that is not published."""
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE SCHEMA marts")
        db.execute(
            "CREATE TABLE marts.fct_redemptions AS "
            "SELECT 'r_' || i AS redemption_id, 100 * i AS discount FROM range(?) t(i)",
            [redemptions],
        )
        db.execute(
            "CREATE TABLE marts.dim_campaigns AS SELECT 'c' || i AS campaign_id FROM range(?) t(i)",
            [campaigns],
        )
        db.execute("CREATE SCHEMA staging")
        db.execute("CREATE TABLE staging.stg_ledger__events AS SELECT 1 AS seq")
    return path


def warehouse_without_marts(path: Path) -> Path:
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE SCHEMA staging")
        db.execute("CREATE TABLE staging.stg_ledger__events AS SELECT 1 AS seq")
    return path


def redemptions_in(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as db:
        (count,) = db.execute("SELECT count(*) FROM marts.fct_redemptions").fetchone()
    return count


def redemptions_seen_by_another_process(path: Path) -> int:
    """What a fresh reader sees: another process, since DuckDB hands a process that still has
    the path open its cached (old) database instead of opening the file again."""
    return int(subprocess.check_output([sys.executable, "-c", READER, str(path)], text=True))


READER = """
import sys, duckdb
with duckdb.connect(sys.argv[1], read_only=True) as db:
    print(db.execute("SELECT count(*) FROM marts.fct_redemptions").fetchone()[0])
"""


def leftovers(published: Path) -> list[str]:
    return sorted(
        p.name
        for p in published.parent.iterdir()
        if p.name != published.name and p.name.startswith(published.name)
    )


def test_publish_copies_every_marts_table_with_its_rows_and_records_the_run(tmp_path: Path) -> None:
    build = build_warehouse(tmp_path / "build.duckdb", redemptions=3, campaigns=2)
    published = tmp_path / "published.duckdb"

    result = publish_warehouse(build, published, {"run_id": "run-1", "watermark": 42})

    assert result.tables == {"marts.dim_campaigns": 2, "marts.fct_redemptions": 3}
    assert result.bytes == published.stat().st_size
    with duckdb.connect(str(published), read_only=True) as db:
        tables = db.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() ORDER BY ALL"
        ).fetchall()
        db.execute("ATTACH ? AS build (READ_ONLY)", [str(build)])
        differing = db.execute(
            "SELECT count(*) FROM ((SELECT * FROM marts.fct_redemptions EXCEPT ALL "
            "SELECT * FROM build.marts.fct_redemptions) UNION ALL (SELECT * FROM "
            "build.marts.fct_redemptions EXCEPT ALL SELECT * FROM marts.fct_redemptions))"
        ).fetchone()
        [(published_at, info)] = db.execute("SELECT * FROM main.published").fetchall()
    assert tables == [
        ("main.published",),
        ("main.published_tables",),
        ("marts.dim_campaigns",),
        ("marts.fct_redemptions",),
    ]
    assert differing == (0,)
    assert published_at is not None
    assert json.loads(info) == {"run_id": "run-1", "watermark": 42}


def test_a_publish_leaves_nothing_beside_the_published_file(tmp_path: Path) -> None:
    build = build_warehouse(tmp_path / "build.duckdb")
    published = tmp_path / "published.duckdb"

    publish_warehouse(build, published, {})

    assert leftovers(published) == []  # no .tmp, no .wal to replay


def test_a_second_publish_swaps_the_file_under_an_open_reader(tmp_path: Path) -> None:
    published = tmp_path / "published.duckdb"
    publish_warehouse(build_warehouse(tmp_path / "build.duckdb", redemptions=3), published, {})
    first_inode = published.stat().st_ino
    count = "SELECT count(*) FROM marts.fct_redemptions"
    with duckdb.connect(str(published), read_only=True) as old_reader:
        (before,) = old_reader.execute(count).fetchone()

        publish_warehouse(build_warehouse(tmp_path / "build.duckdb", redemptions=5), published, {})

        (still_old,) = old_reader.execute(count).fetchone()
        fresh = redemptions_seen_by_another_process(published)
    assert published.stat().st_ino != first_inode  # renamed over, not written in place
    assert (before, still_old) == (3, 3)
    assert fresh == 5
    assert redemptions_in(published) == 5


def test_a_missing_build_warehouse_leaves_the_published_file_untouched(tmp_path: Path) -> None:
    published = tmp_path / "published.duckdb"
    publish_warehouse(build_warehouse(tmp_path / "build.duckdb"), published, {})
    before = published.read_bytes()

    with pytest.raises(FileNotFoundError, match="no build warehouse"):
        publish_warehouse(tmp_path / "missing.duckdb", published, {})

    assert published.read_bytes() == before
    assert leftovers(published) == []


def test_a_build_without_marts_tables_is_refused_and_the_published_file_kept(
    tmp_path: Path,
) -> None:
    published = tmp_path / "published.duckdb"
    publish_warehouse(build_warehouse(tmp_path / "build.duckdb"), published, {})
    before = published.read_bytes()
    empty = warehouse_without_marts(tmp_path / "empty.duckdb")

    with pytest.raises(RuntimeError, match="no tables in marts"):
        publish_warehouse(empty, published, {})

    assert published.read_bytes() == before
    assert redemptions_in(published) == 3


@pytest.mark.parametrize("broken", ["no marts tables", "not a duckdb file"])
def test_a_failed_publish_leaves_no_tmp_file_behind(tmp_path: Path, broken: str) -> None:
    published = tmp_path / "published.duckdb"
    publish_warehouse(build_warehouse(tmp_path / "build.duckdb"), published, {})
    build = tmp_path / "broken.duckdb"
    if broken == "no marts tables":
        warehouse_without_marts(build)
    else:
        build.write_bytes(b"this is not a database")

    with pytest.raises((RuntimeError, duckdb.Error)):
        publish_warehouse(build, published, {})

    assert leftovers(published) == []


def test_several_readers_can_open_the_published_file_at_once(tmp_path: Path) -> None:
    published = tmp_path / "published.duckdb"
    publish_warehouse(build_warehouse(tmp_path / "build.duckdb", redemptions=4), published, {})

    with duckdb.connect(str(published), read_only=True) as here:
        readers = [
            subprocess.Popen(
                [sys.executable, "-c", READER, str(published)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outputs = [reader.communicate()[0].strip() for reader in readers]
        (mine,) = here.execute("SELECT count(*) FROM marts.fct_redemptions").fetchone()

    assert [reader.returncode for reader in readers] == [0, 0]
    assert outputs == ["4", "4"]
    assert mine == 4


def timeline_build(path: Path, events: int, detail: str = "event") -> Path:
    """A build warehouse with an append-only timeline (rows keyed by event_seq) and a mart."""
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE SCHEMA marts")
        db.execute(
            "CREATE TABLE marts.fct_ledger_timeline AS "
            "SELECT i AS event_seq, ? || ' ' || i AS detail FROM range(1, ? + 1) t(i)",
            [detail, events],
        )
        db.execute("CREATE TABLE marts.dim_campaigns AS SELECT 'c' || ? AS campaign_id", [events])
    return path


def table_rows(path: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as db:
        return db.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def test_the_timeline_gets_only_its_new_rows_and_ends_up_equal_to_the_build(
    tmp_path: Path,
) -> None:
    published = tmp_path / "published.duckdb"
    first = publish_warehouse(timeline_build(tmp_path / "b.duckdb", 5), published, {})
    build = timeline_build(tmp_path / "b.duckdb", 8)

    second = publish_warehouse(build, published, {"run_id": "2"})
    third = publish_warehouse(timeline_build(tmp_path / "b.duckdb", 9), published, {})

    assert first.appended == {}  # nothing published before: copied whole
    assert second.appended == {"marts.fct_ledger_timeline": 3}
    assert third.appended == {"marts.fct_ledger_timeline": 1}
    assert table_rows(published, "marts.fct_ledger_timeline") == [
        (i, f"event {i}") for i in range(1, 10)
    ]
    assert table_rows(published, "marts.dim_campaigns") == [("c9",)]  # other tables replaced
    assert leftovers(published) == []


def test_a_timeline_rebuilt_differently_is_copied_whole(tmp_path: Path) -> None:
    """After a --full-refresh or a changed model the old rows differ: appending would keep the
    old text, so the checksum over the published rows sends it down the full copy."""
    published = tmp_path / "published.duckdb"
    publish_warehouse(timeline_build(tmp_path / "b.duckdb", 5), published, {})
    rebuilt = timeline_build(tmp_path / "b.duckdb", 6, detail="what happened:")

    result = publish_warehouse(rebuilt, published, {})

    assert result.appended == {}
    assert table_rows(published, "marts.fct_ledger_timeline") == [
        (i, f"what happened: {i}") for i in range(1, 7)
    ]


def test_a_timeline_that_lost_rows_is_copied_whole(tmp_path: Path) -> None:
    published = tmp_path / "published.duckdb"
    publish_warehouse(timeline_build(tmp_path / "b.duckdb", 5), published, {})
    build = timeline_build(tmp_path / "b.duckdb", 7)
    with duckdb.connect(str(build)) as db:
        db.execute("DELETE FROM marts.fct_ledger_timeline WHERE event_seq = 2")

    result = publish_warehouse(build, published, {})

    assert result.appended == {}
    assert [seq for seq, _ in table_rows(published, "marts.fct_ledger_timeline")] == [
        1,
        3,
        4,
        5,
        6,
        7,
    ]


def test_a_table_the_build_no_longer_has_is_not_published(tmp_path: Path) -> None:
    published = tmp_path / "published.duckdb"
    publish_warehouse(timeline_build(tmp_path / "b.duckdb", 3), published, {})
    build = timeline_build(tmp_path / "b.duckdb", 4)
    with duckdb.connect(str(build)) as db:
        db.execute("DROP TABLE marts.dim_campaigns")

    publish_warehouse(build, published, {})

    with duckdb.connect(str(published), read_only=True) as db:
        tables = db.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE schema_name = 'marts'"
        ).fetchall()
    assert tables == [("marts.fct_ledger_timeline",)]
