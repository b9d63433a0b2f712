"""Ledger → lake → raw layer (pipelines/ledger_extract.py), on ledgers written by the real core.

The contract: every event lands once, in the Parquet file of its own event date, sorted by seq;
a run reads only past the watermark; a late event joins its own (earlier) day; rebuilding a day
gives the same bytes; a run that died before saving its state duplicates nothing; the raw layer
takes the days a run wrote and keeps the rest; NULL stays NULL all the way.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import Clock, engine_at, redeem, standalone

from pipelines import ledger_extract
from pipelines.ledger_extract import (
    LAKE_SCHEMA,
    NULLABLE_COLUMNS,
    TEXT_COLUMNS,
    ExtractResult,
    Lake,
    ledger_high_water,
    load_raw,
    read_ledger,
    split_by_day,
    sync_lake,
    write_day,
)
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.imports.ledger_schema import import_events
from redemption_core.simulate import SimulationConfig, simulate

DAY_1 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
DAY_2 = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
RUN_AT = datetime(2026, 3, 6, 1, 0, tzinfo=UTC)


# -- builders ----------------------------------------------------------------------------------


def simulate_ledger(home: Path) -> Path:
    """A realistic ledger: ten days of trading plus customers' order history, so seq order and
    occurred_at order disagree (history is written after the campaigns, dated years before)."""
    simulate(home, SimulationConfig(customers=150, days=10, seed=2), progress=None)
    return home / "ledger.sqlite"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated ledger for the module (the tests only read it); each test has its own lake."""
    return simulate_ledger(tmp_path_factory.mktemp("simulated"))


def two_day_engine(home: Path) -> tuple[RedemptionEngine, Clock]:
    """An engine whose ledger holds a campaign and a redemption on DAY_1 and one on DAY_2;
    the clock is left on DAY_2."""
    clock = Clock(DAY_1)
    engine = engine_at(home, clock)
    code = standalone(engine)
    redeem(engine, code)
    clock.set(DAY_2)
    redeem(engine, code)
    engine.flush()
    return engine, clock


def import_late(engine: RedemptionEngine, event_id: str, occurred_at: str) -> None:
    """Import one event dated `occurred_at`, recorded now (the engine's clock)."""
    import_events(
        engine,
        [
            {
                "event_id": event_id,
                "event_type": "segment_member_added",
                "occurred_at": occurred_at,
                "customer_id": "cust-late",
                "payload": {"segment_id": "vip"},
            }
        ],
    )


def lake_of(home: Path) -> Lake:
    return Lake(home / "lake")


def ledger_rows(ledger: Path, sql: str = "SELECT * FROM events ORDER BY seq") -> list[Any]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


def seq_of(ledger: Path, event_id: str) -> int:
    [(seq,)] = ledger_rows(ledger, f"SELECT seq FROM events WHERE event_id = '{event_id}'")
    return seq


def lake_table(lake: Lake) -> pa.Table:
    return pa.concat_tables([pq.read_table(path) for path in lake.day_files()])


def seqs_in(path: Path) -> list[int]:
    return pq.read_table(path, columns=["seq"])["seq"].to_pylist()


def file_bytes(lake: Lake) -> dict[str, bytes]:
    return {path.parent.name: path.read_bytes() for path in lake.day_files()}


def file_inodes(lake: Lake) -> dict[str, int]:
    return {path.parent.name: path.stat().st_ino for path in lake.day_files()}


def raw_rows(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        return db.execute(sql).fetchall()


def load(warehouse: Path, ledger: Path, lake: Lake, result: ExtractResult) -> int:
    return load_raw(warehouse, lake, result, ledger_high_water(ledger), RUN_AT)


# -- the lake ----------------------------------------------------------------------------------


def test_a_first_sync_writes_every_event_once_in_its_days_file_sorted_by_seq(
    tmp_path: Path, simulated: Path
) -> None:
    ledger = simulated
    lake = lake_of(tmp_path)

    result = sync_lake(ledger, lake)

    ledger_seqs = [seq for (seq,) in ledger_rows(ledger, "SELECT seq FROM events ORDER BY seq")]
    lake_seqs = [seq for path in lake.day_files() for seq in seqs_in(path)]
    assert sorted(lake_seqs) == ledger_seqs  # every event, none twice
    days = {
        day
        for (day,) in ledger_rows(ledger, "SELECT DISTINCT substr(occurred_at, 1, 10) FROM events")
    }
    assert {path.parent.name for path in lake.day_files()} == {f"event_date={d}" for d in days}
    for path in lake.day_files():
        table = pq.read_table(path)
        day = path.parent.name.removeprefix("event_date=")
        assert set(table["event_date"].to_pylist()) == {day}
        assert {at[:10] for at in table["occurred_at"].to_pylist()} == {day}
        seqs = table["seq"].to_pylist()
        assert seqs == sorted(seqs), f"{path} is not sorted by seq"
    assert result.new_events == result.lake_events == len(ledger_seqs)
    assert result.watermark_before == 0
    assert result.watermark_after == ledger_seqs[-1]
    assert sorted(result.days_written) == sorted(days)


def test_the_lake_holds_every_ledger_event_value_for_value(tmp_path: Path, simulated: Path) -> None:
    ledger = simulated
    lake = lake_of(tmp_path)

    sync_lake(ledger, lake)

    lake_events = lake_table(lake).sort_by("seq")
    ledger_events = ledger_rows(
        ledger, f"SELECT seq, {', '.join(TEXT_COLUMNS)} FROM events ORDER BY seq"
    )
    assert lake_events.num_rows == len(ledger_events)
    as_rows = lake_events.select(["seq", *TEXT_COLUMNS]).to_pylist()
    assert [tuple(row.values()) for row in as_rows] == ledger_events


def test_a_second_sync_without_new_events_writes_nothing(tmp_path: Path, simulated: Path) -> None:
    ledger = simulated
    lake = lake_of(tmp_path)
    first = sync_lake(ledger, lake)
    contents, inodes = file_bytes(lake), file_inodes(lake)

    second = sync_lake(ledger, lake)

    assert second.new_events == 0
    assert second.days_written == ()
    assert second.watermark_before == second.watermark_after == first.watermark_after
    assert second.lake_events == first.lake_events
    assert file_inodes(lake) == inodes  # not even rewritten with the same bytes
    assert file_bytes(lake) == contents


def test_new_events_are_read_incrementally_past_the_watermark(tmp_path: Path) -> None:
    clock = Clock(DAY_1)
    engine = engine_at(tmp_path, clock)
    code = standalone(engine)
    redeem(engine, code)
    ledger, lake = tmp_path / "ledger.sqlite", lake_of(tmp_path)
    first = sync_lake(ledger, lake)
    day_1_inode = lake.day_file("2026-03-04").stat().st_ino
    clock.set(DAY_2)
    redeem(engine, code)
    redeem(engine, code, customer_id="cust-2")
    engine.flush()

    second = sync_lake(ledger, lake)

    assert second.watermark_before == first.watermark_after
    assert second.new_events == 2
    assert second.watermark_after == ledger_high_water(ledger) == first.watermark_after + 2
    assert second.days_written == ("2026-03-05",)
    assert lake.day_file("2026-03-04").stat().st_ino == day_1_inode
    assert seqs_in(lake.day_file("2026-03-05")) == [
        first.watermark_after + 1,
        first.watermark_after + 2,
    ]
    assert second.lake_events == first.lake_events + 2


def test_a_late_event_lands_in_its_own_days_file_and_is_counted_as_late(tmp_path: Path) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake = tmp_path / "ledger.sqlite", lake_of(tmp_path)
    sync_lake(ledger, lake)
    clock.advance(hours=1)
    import_late(engine, "evt_late_day_1", "2026-03-04T09:30:00.000000Z")

    result = sync_lake(ledger, lake)

    late_seq = seq_of(ledger, "evt_late_day_1")
    day_1 = pq.read_table(lake.day_file("2026-03-04"))
    assert late_seq in day_1["seq"].to_pylist()
    assert day_1["seq"].to_pylist() == sorted(day_1["seq"].to_pylist())
    assert late_seq not in seqs_in(lake.day_file("2026-03-05"))
    assert result.days_written == ("2026-03-04",)
    assert (result.new_events, result.late_events) == (1, 1)


def test_an_event_recorded_with_the_clock_set_back_joins_the_earlier_day(tmp_path: Path) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake = tmp_path / "ledger.sqlite", lake_of(tmp_path)
    sync_lake(ledger, lake)
    clock.set(DAY_1.replace(hour=18))
    redeem(engine, "SPRING10", customer_id="cust-backdated")

    result = sync_lake(ledger, lake)

    [(seq,)] = ledger_rows(ledger, "SELECT max(seq) FROM events")
    assert seqs_in(lake.day_file("2026-03-04"))[-1] == seq
    assert result.days_written == ("2026-03-04",)
    assert result.late_events == 1


def test_a_late_event_on_an_earlier_day_the_lake_has_not_seen_is_counted_as_late(
    tmp_path: Path,
) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake = tmp_path / "ledger.sqlite", lake_of(tmp_path)
    sync_lake(ledger, lake)
    clock.advance(hours=1)
    import_late(engine, "evt_late_day_0", "2026-03-01T09:30:00.000000Z")

    result = sync_lake(ledger, lake)

    assert seqs_in(lake.day_file("2026-03-01")) == [seq_of(ledger, "evt_late_day_0")]
    assert result.late_events == 1


def test_more_events_on_the_latest_extracted_day_are_not_late(tmp_path: Path) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake = tmp_path / "ledger.sqlite", lake_of(tmp_path)
    sync_lake(ledger, lake)
    clock.advance(hours=2)
    redeem(engine, "SPRING10", customer_id="cust-afternoon")

    result = sync_lake(ledger, lake)

    assert result.days_written == ("2026-03-05",)
    assert (result.new_events, result.late_events) == (1, 0)


def test_rebuilding_days_gives_byte_identical_files(tmp_path: Path, simulated: Path) -> None:
    ledger = simulated
    lake = lake_of(tmp_path)
    sync_lake(ledger, lake)
    contents, inodes = file_bytes(lake), file_inodes(lake)
    busiest = max(contents, key=lambda name: len(contents[name])).removeprefix("event_date=")
    days = [busiest, "2024-11-30", "2026-01-14"]

    result = sync_lake(ledger, lake, rebuild_days=days)

    assert sorted(result.days_written) == sorted(days)
    assert result.new_events == 0
    rewritten = {f"event_date={day}" for day in days}
    after = file_inodes(lake)
    assert all(after[name] != inodes[name] for name in rewritten)  # really written again
    assert file_bytes(lake) == contents


def test_rebuilding_a_day_built_over_several_runs_gives_the_same_bytes(tmp_path: Path) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake = tmp_path / "ledger.sqlite", lake_of(tmp_path)
    sync_lake(ledger, lake)
    clock.advance(hours=1)
    import_late(engine, "evt_late_day_1", "2026-03-04T09:30:00.000000Z")
    sync_lake(ledger, lake)
    merged = lake.day_file("2026-03-04").read_bytes()
    lake.day_file("2026-03-04").unlink()

    result = sync_lake(ledger, lake, rebuild_days=["2026-03-04"])

    assert result.days_written == ("2026-03-04",)
    assert lake.day_file("2026-03-04").read_bytes() == merged


def wide_day(events: int, seed: int = 1) -> pa.Table:
    """A day of events whose payloads (480 random hex characters) fill more than one 1 MiB
    Parquet data page, where the writer's page breaks could depend on the chunks it is given."""
    rng = random.Random(seed)
    columns: dict[str, list[Any]] = {"seq": list(range(1, events + 1))}
    for name in TEXT_COLUMNS:
        width = 240 if name == "payload" else 8
        columns[name] = [rng.randbytes(width).hex() for _ in range(events)]
    columns["event_date"] = ["2026-03-04"] * events
    return pa.Table.from_pydict(columns, schema=LAKE_SCHEMA)


def test_a_days_bytes_do_not_depend_on_how_its_events_were_chunked(tmp_path: Path) -> None:
    day = wide_day(3000)
    merged = pa.concat_tables([day.slice(0, 2300), day.slice(2300)])  # two runs, then a merge

    write_day(tmp_path / "at_once.parquet", day)
    write_day(tmp_path / "merged.parquet", merged)

    assert merged.column("payload").num_chunks == 2
    assert (tmp_path / "merged.parquet").read_bytes() == (tmp_path / "at_once.parquet").read_bytes()


def test_a_run_that_died_before_saving_its_state_duplicates_nothing(tmp_path: Path) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake = tmp_path / "ledger.sqlite", lake_of(tmp_path)
    sync_lake(ledger, lake)
    state_before = lake.state_path.read_bytes()
    clock.advance(hours=1)
    import_late(engine, "evt_late_day_1", "2026-03-04T09:30:00.000000Z")
    clock.set(datetime(2026, 3, 6, 9, 0, tzinfo=UTC))
    redeem(engine, "SPRING10", customer_id="cust-day-3")
    died = sync_lake(ledger, lake)
    contents = file_bytes(lake)
    lake.state_path.write_bytes(state_before)  # the Parquet files were written, the state was not

    rerun = sync_lake(ledger, lake)

    assert rerun.watermark_before == died.watermark_before
    assert rerun.new_events == 2
    total = ledger_high_water(ledger)
    lake_seqs = [seq for path in lake.day_files() for seq in seqs_in(path)]
    assert sorted(lake_seqs) == list(range(1, total + 1))  # each event once
    assert rerun.lake_events == total
    assert file_bytes(lake) == contents


def small_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int, buffer: int) -> None:
    """Read the ledger `chunk` seqs at a time and keep at most `buffer` events waiting."""
    monkeypatch.setattr(ledger_extract, "CHUNK_EVENTS", chunk)
    monkeypatch.setattr(ledger_extract, "BUFFER_EVENTS", buffer)


@pytest.mark.parametrize(("chunk", "buffer"), [(7, 1_000_000), (50, 20), (1, 1)])
def test_the_lake_does_not_depend_on_how_the_ledger_was_chunked(
    tmp_path: Path, simulated: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, buffer: int
) -> None:
    """Chunk boundaries fall inside days, a run reads many chunks, and a tiny buffer writes days
    that later chunks add to again: the files, the state and the result are the same."""
    ledger = simulated
    whole = lake_of(tmp_path / "whole")
    expected = sync_lake(ledger, whole)
    small_chunks(monkeypatch, chunk, buffer)
    chunked = lake_of(tmp_path / "chunked")

    result = sync_lake(ledger, chunked)

    assert expected.new_events > 20 * chunk  # many chunks
    assert result == expected
    assert file_bytes(chunked) == file_bytes(whole)
    assert chunked.state_path.read_bytes() == whole.state_path.read_bytes()


def test_late_events_and_rebuilds_with_small_chunks_give_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake = tmp_path / "ledger.sqlite", lake_of(tmp_path)
    small_chunks(monkeypatch, 1, 1)
    sync_lake(ledger, lake)
    clock.advance(hours=1)
    import_late(engine, "evt_late_day_1", "2026-03-04T09:30:00.000000Z")
    redeem(engine, "SPRING10", customer_id="cust-afternoon")
    import_late(engine, "evt_late_day_1b", "2026-03-04T10:30:00.000000Z")
    engine.flush()

    result = sync_lake(ledger, lake)
    merged = file_bytes(lake)
    rebuilt = sync_lake(ledger, lake, rebuild_days=["2026-03-04", "2026-03-05"])

    assert result.days_written == ("2026-03-04", "2026-03-05")
    assert (result.new_events, result.late_events) == (3, 2)
    assert rebuilt.days_written == ("2026-03-04", "2026-03-05")
    assert file_bytes(lake) == merged
    day_1 = seqs_in(lake.day_file("2026-03-04"))
    assert day_1 == sorted(day_1)
    assert seq_of(ledger, "evt_late_day_1b") == day_1[-1]


def test_read_ledger_in_parallel_ranges_reads_the_same_table(
    simulated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = read_ledger(simulated)
    monkeypatch.setattr(ledger_extract, "CHUNK_EVENTS", 13)

    in_ranges = read_ledger(simulated)

    assert in_ranges.equals(whole)
    assert in_ranges.schema == LAKE_SCHEMA
    assert in_ranges["seq"].to_pylist() == [
        seq for (seq,) in ledger_rows(simulated, "SELECT seq FROM events ORDER BY seq")
    ]


@pytest.mark.parametrize("interleaved", [False, True])
def test_split_by_day_keeps_each_days_events_in_seq_order(interleaved: bool) -> None:
    """Days in runs (sliced) and days interleaved event by event (sorted) split alike."""
    days = ["2026-03-05", "2026-03-04", "2026-03-06"]
    if interleaved:
        dates = [days[i % 3] for i in range(300)]
    else:
        dates = [days[0]] * 100 + [days[1]] * 50 + [days[0]] * 50 + [days[2]] * 100
    columns: dict[str, list[Any]] = {"seq": list(range(1, 301))}
    columns.update({name: [f"{name}-{i}" for i in range(300)] for name in TEXT_COLUMNS})
    columns["event_date"] = dates
    table = pa.Table.from_pydict(columns, schema=LAKE_SCHEMA)

    parts = split_by_day(table)

    assert list(parts) == sorted(days)
    for day, part in parts.items():
        expected = [seq for seq, date in zip(columns["seq"], dates, strict=True) if date == day]
        assert part["seq"].to_pylist() == expected
        assert set(part["event_date"].to_pylist()) == {day}
        assert part["payload"].to_pylist() == [f"payload-{seq - 1}" for seq in expected]


# -- the raw layer -----------------------------------------------------------------------------


def test_load_raw_replaces_the_days_it_is_given_and_leaves_the_others(tmp_path: Path) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake, warehouse = tmp_path / "ledger.sqlite", lake_of(tmp_path), tmp_path / "wh.duckdb"
    load(warehouse, ledger, lake, sync_lake(ledger, lake))
    with duckdb.connect(str(warehouse)) as db:
        db.execute("UPDATE raw.ledger_events SET store_id = 'marker'")
    clock.advance(hours=1)
    import_late(engine, "evt_late_day_1", "2026-03-04T09:30:00.000000Z")
    result = sync_lake(ledger, lake)

    rows = load(warehouse, ledger, lake, result)

    by_day = raw_rows(
        warehouse,
        "SELECT event_date, count(*), count(DISTINCT seq), count(*) FILTER (store_id = 'marker') "
        "FROM raw.ledger_events GROUP BY ALL ORDER BY ALL",
    )
    day_1_events = len(ledger_rows(ledger, "SELECT 1 FROM events WHERE occurred_at < '2026-03-05'"))
    day_2_events = len(
        ledger_rows(ledger, "SELECT 1 FROM events WHERE occurred_at >= '2026-03-05'")
    )
    assert by_day == [
        ("2026-03-04", day_1_events, day_1_events, 0),  # replaced from the lake
        ("2026-03-05", day_2_events, day_2_events, day_2_events),  # left as it was
    ]
    assert rows == day_1_events + day_2_events == ledger_high_water(ledger)


def test_load_raw_logs_each_run_in_extract_runs(tmp_path: Path) -> None:
    engine, clock = two_day_engine(tmp_path)
    ledger, lake, warehouse = tmp_path / "ledger.sqlite", lake_of(tmp_path), tmp_path / "wh.duckdb"
    first = sync_lake(ledger, lake)
    load_raw(warehouse, lake, first, ledger_high_water(ledger), RUN_AT)
    clock.advance(hours=1)
    import_late(engine, "evt_late_day_1", "2026-03-04T09:30:00.000000Z")
    second = sync_lake(ledger, lake)

    load_raw(warehouse, lake, second, ledger_high_water(ledger), RUN_AT.replace(hour=2))

    assert raw_rows(warehouse, "SELECT * FROM raw.extract_runs ORDER BY run_at") == [
        (
            datetime(2026, 3, 6, 1, 0),
            0,
            first.watermark_after,
            first.watermark_after,
            first.new_events,
            0,
        ),
        (
            datetime(2026, 3, 6, 2, 0),
            first.watermark_after,
            second.watermark_after,
            second.watermark_after,
            1,
            1,
        ),
    ]


def test_null_columns_survive_the_round_trip_as_null(tmp_path: Path, simulated: Path) -> None:
    ledger = simulated
    lake, warehouse = lake_of(tmp_path), tmp_path / "wh.duckdb"

    load(warehouse, ledger, lake, sync_lake(ledger, lake))

    lake_events = lake_table(lake)
    for column in sorted(NULLABLE_COLUMNS):
        [(nulls, empty)] = ledger_rows(
            ledger,
            f"SELECT count(*) FILTER (WHERE {column} IS NULL), count(*) FILTER (WHERE {column} = '') FROM events",
        )
        assert nulls > 0, f"the simulated ledger has no NULL {column}: the test proves nothing"
        assert lake_events[column].null_count == nulls, column
        assert lake_events[column].type == pa.string(), column
        assert raw_rows(
            warehouse,
            f"SELECT count(*) FILTER ({column} IS NULL), count(*) FILTER ({column} = '') FROM raw.ledger_events",
        ) == [(nulls, empty)], column


def test_the_raw_layer_holds_as_many_events_as_the_lake_and_the_ledger(
    tmp_path: Path, simulated: Path
) -> None:
    ledger = simulated
    lake, warehouse = lake_of(tmp_path), tmp_path / "wh.duckdb"

    result = sync_lake(ledger, lake)
    rows = load(warehouse, ledger, lake, result)

    [(events,)] = ledger_rows(ledger, "SELECT count(*) FROM events")
    assert lake_table(lake).num_rows == result.lake_events == rows == events
    assert raw_rows(warehouse, "SELECT count(DISTINCT event_id) FROM raw.ledger_events") == [
        (events,)
    ]


def test_days_synced_by_a_run_whose_load_failed_reach_the_raw_layer_on_the_next_run(
    tmp_path: Path, simulated: Path
) -> None:
    ledger = simulated
    lake, warehouse = lake_of(tmp_path), tmp_path / "wh.duckdb"
    sync_lake(ledger, lake)  # the load after it failed

    rows = load(warehouse, ledger, lake, sync_lake(ledger, lake))

    assert rows == ledger_high_water(ledger)
