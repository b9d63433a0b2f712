"""The Great Expectations gates (pipelines/quality.py).

The contract: a clean extract of a real ledger passes; each kind of bad batch fails, and the
report names the expectation that failed and the offending rows by seq and event_id (the
marts' reconciliation by the figure that differs). Bad batches are written into a copy of a
clean warehouse whose raw check already passed, one kind at a time, so each test shows one
condition arriving as a new batch: only that batch is checked, against the whole raw layer.

Great Expectations takes seconds to import; it is imported once, on the first suite run, and
the clean warehouse is built once for the module.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines import quality
from pipelines.ledger_extract import Lake, ledger_high_water, load_raw, sync_lake
from pipelines.paths import DBT_PROJECT_DIR
from pipelines.quality import (
    FUNNEL_RATES,
    INTEGER_TYPES,
    NUMERIC_PAYLOAD_FIELDS,
    QualityReport,
    check_marts,
    check_raw_events,
)
from redemption_core.simulate import SimulationConfig, simulate

INJECTED_SEQ = 1_000_000


# -- builders ----------------------------------------------------------------------------------


def extract_simulated_ledger(home: Path) -> Path:
    """A warehouse whose raw layer is a clean extract of a small simulated ledger."""
    simulate(home, SimulationConfig(customers=150, days=10, seed=2), progress=None)
    ledger, lake, warehouse = home / "ledger.sqlite", Lake(home / "lake"), home / "build.duckdb"
    result = sync_lake(ledger, lake)
    load_raw(warehouse, lake, result, ledger_high_water(ledger), datetime.now(UTC))
    return warehouse


@pytest.fixture(scope="module")
def unchecked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean extract no raw check has seen yet."""
    return extract_simulated_ledger(tmp_path_factory.mktemp("clean"))


@pytest.fixture(scope="module")
def clean(unchecked: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean extract whose raw check passed: the next check sees only what arrives after."""
    warehouse = tmp_path_factory.mktemp("checked") / "build.duckdb"
    shutil.copy(unchecked, warehouse)
    report = check_raw_events(warehouse)
    assert report.passed, report.message()
    return warehouse


def with_injected(clean: Path, tmp_path: Path, replace: str, where: str) -> Path:
    """A copy of the clean warehouse plus one event: the first event matching `where`, with
    seq INJECTED_SEQ and the columns in `replace` (DuckDB `* REPLACE (...)` items) changed."""
    warehouse = tmp_path / "bad.duckdb"
    shutil.copy(clean, warehouse)
    inject(warehouse, INJECTED_SEQ, replace, where)
    return warehouse


def inject(warehouse: Path, seq: int, replace: str, where: str) -> None:
    """Add to the warehouse's raw layer the first event matching `where`, with seq `seq` and the
    columns in `replace` changed."""
    with duckdb.connect(str(warehouse)) as db:
        db.execute(
            f"INSERT INTO raw.ledger_events SELECT * REPLACE ({seq} AS seq, {replace}) "
            f"FROM raw.ledger_events WHERE {where} ORDER BY seq LIMIT 1"
        )
        (added,) = db.execute(
            "SELECT count(*) FROM raw.ledger_events WHERE seq = ?", [seq]
        ).fetchone()
    assert added == 1, f"no event matches {where}"


def injected(warehouse: Path, column: str) -> str:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        (value,) = db.execute(
            f"SELECT {column} FROM raw.ledger_events WHERE seq = ?", [INJECTED_SEQ]
        ).fetchone()
    return value


def failed(report: QualityReport) -> list[tuple[str, str | None]]:
    return [(failure.expectation, failure.column) for failure in report.failures]


REDEMPTION = "event_type = 'redemption_succeeded'"
ORDER = "event_type = 'order_recorded'"
DELIVERY_ATTEMPT = "event_type = 'delivery_attempted'"


# -- the raw extract ---------------------------------------------------------------------------


def test_a_clean_extract_of_a_simulated_ledger_passes_checking_every_event(
    unchecked: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "build.duckdb"
    shutil.copy(unchecked, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as db:
        (events,) = db.execute("SELECT count(*) FROM raw.ledger_events").fetchone()

    report = check_raw_events(warehouse)

    assert report.passed, report.message()
    assert report.rows_checked == events
    assert report.expectations == 21
    assert "21 expectations passed" in report.message()
    # GX's read-only connections are closed: the next step can write to the warehouse
    with duckdb.connect(str(warehouse)) as db:
        db.execute("CREATE TABLE after_the_check AS SELECT 1")


def test_a_check_with_nothing_new_passes_on_no_rows(clean: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "build.duckdb"
    shutil.copy(clean, warehouse)

    report = check_raw_events(warehouse)

    assert report.passed, report.message()
    assert report.rows_checked == 0


def test_a_clean_incremental_batch_passes_and_counts_only_its_rows(
    clean: Path, tmp_path: Path
) -> None:
    """The next day's events (copies of the ledger's redemptions with new seqs and ids, whose
    vouchers and campaigns were created in older batches) are the batch."""
    warehouse = tmp_path / "build.duckdb"
    shutil.copy(clean, warehouse)
    with duckdb.connect(str(warehouse)) as db:
        db.execute(
            f"INSERT INTO raw.ledger_events SELECT * REPLACE ({INJECTED_SEQ} + seq AS seq, "
            f"'evt_next_' || seq AS event_id) FROM raw.ledger_events WHERE {REDEMPTION}"
        )
        (added,) = db.execute(
            "SELECT count(*) FROM raw.ledger_events WHERE seq > ?", [INJECTED_SEQ]
        ).fetchone()
    assert added > 10

    report = check_raw_events(warehouse)

    assert report.passed, report.message()
    assert report.rows_checked == added
    # and once passed, it is not checked again
    assert check_raw_events(warehouse).rows_checked == 0


def test_a_failed_batch_is_checked_again_on_the_next_run(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean, tmp_path, "'evt_odd' AS event_id, 'x' AS event_type", REDEMPTION
    )

    assert not check_raw_events(warehouse).passed
    again = check_raw_events(warehouse)

    assert failed(again) == [("expect_column_values_to_be_in_set", "event_type")]
    assert again.rows_checked == 1


def test_a_duplicate_event_id_inside_the_batch_fails_naming_both_rows(
    clean: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "build.duckdb"
    shutil.copy(clean, warehouse)
    with duckdb.connect(str(warehouse)) as db:
        db.execute(
            "INSERT INTO raw.ledger_events SELECT * REPLACE (seq + ? AS seq, 'evt_twice' AS event_id) "
            f"FROM raw.ledger_events WHERE {REDEMPTION} ORDER BY seq LIMIT 2",
            [INJECTED_SEQ],
        )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_unique", "event_id")]
    assert report.rows_checked == 2
    message = report.message()
    assert "expect_column_values_to_be_unique on event_id: 2 rows" in message
    assert message.count("event_id=evt_twice, seq=") == 2


def test_a_new_event_reusing_an_old_event_id_fails_naming_both_rows(
    clean: Path, tmp_path: Path
) -> None:
    warehouse = with_injected(clean, tmp_path, "event_id AS event_id", REDEMPTION)
    event_id = injected(warehouse, "event_id")

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_unique", "event_id")]
    assert report.rows_checked == 1  # the older row is named, not counted as checked
    message = report.message()
    assert "expect_column_values_to_be_unique on event_id: 2 rows" in message
    assert f"event_id={event_id}, seq={INJECTED_SEQ}" in message
    assert message.count(f"event_id={event_id}") == 2  # the original and the copy


def test_a_duplicate_event_id_fails_in_a_first_full_check(unchecked: Path, tmp_path: Path) -> None:
    warehouse = with_injected(unchecked, tmp_path, "event_id AS event_id", REDEMPTION)
    event_id = injected(warehouse, "event_id")

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_unique", "event_id")]
    assert report.message().count(f"event_id={event_id}") == 2


def test_a_reloaded_day_with_different_events_is_checked_again(clean: Path, tmp_path: Path) -> None:
    """A re-load that brings a checked day different events (here: one more, with an old seq)
    makes that whole day the batch, not only what is past the watermark."""
    warehouse = tmp_path / "build.duckdb"
    shutil.copy(clean, warehouse)
    with duckdb.connect(str(warehouse)) as db:
        (day_events,) = db.execute(
            "SELECT count(*) FROM raw.ledger_events "
            "WHERE event_date = (SELECT event_date FROM raw.ledger_events WHERE seq = 10) GROUP BY ALL"
        ).fetchone()
        db.execute(
            "INSERT INTO raw.ledger_events SELECT * REPLACE ('evt_again' AS event_id) "
            "FROM raw.ledger_events WHERE seq = 10"
        )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_unique", "seq")]
    assert report.rows_checked == day_events + 1
    assert "seq=10, event_id=evt_again" in report.message()


def test_a_negative_discount_in_a_redemption_fails(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_negative' AS event_id, "
        "regexp_replace(payload, '\"discount\":[0-9]+', '\"discount\":-500') AS payload",
        REDEMPTION,
    )
    assert '"discount":-500' in injected(warehouse, "payload")  # the payload really changed

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_between", "discount")]
    assert f"discount=-500, seq={INJECTED_SEQ}, event_id=evt_negative" in report.message()


def test_a_discount_of_5000_on_an_order_of_0_fails_naming_the_row(
    clean: Path, tmp_path: Path
) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_too_much' AS event_id, "
        'json_merge_patch(payload, \'{"discount":5000,"gift_amount":0,'
        '"order":{"amount":0}}\') AS payload',
        REDEMPTION,
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_null", "amount_rule_error")]
    assert (
        "amount_rule_error=discount 5000 and gift amount 0 exceed the order amount 0, "
        f"seq={INJECTED_SEQ}, event_id=evt_too_much" in report.message()
    )


def test_a_discount_up_to_the_order_amount_passes(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_all_off' AS event_id, "
        'json_merge_patch(payload, \'{"discount":700,"order":{"amount":700}}\') AS payload',
        REDEMPTION,
    )

    assert check_raw_events(warehouse).passed


@pytest.mark.parametrize(
    ("where", "patch", "named"),
    [
        (REDEMPTION, '{"currency":"XYZ"}', "currency XYZ"),
        (REDEMPTION, '{"order":{"currency":"EURO"}}', "order.currency EURO"),
        (ORDER, '{"currency":"ABC"}', "currency ABC"),
        (
            "event_type = 'campaign_created'",
            '{"definition":{"currency":"BTC"}}',
            "definition.currency BTC",
        ),
    ],
)
def test_a_currency_that_does_not_exist_fails_naming_the_field_and_the_row(
    clean: Path, tmp_path: Path, where: str, patch: str, named: str
) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        f"'evt_money' AS event_id, json_merge_patch(payload, '{patch}') AS payload",
        where,
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_null", "currency_error")]
    assert (
        f"currency_error={named} is not an ISO 4217 currency the core accepts, "
        f"seq={INJECTED_SEQ}, event_id=evt_money" in report.message()
    )


def test_a_redemption_of_a_voucher_never_created_fails(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean, tmp_path, "'evt_ghost' AS event_id, 'v_ghost' AS voucher_id", REDEMPTION
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_null", "broken_reference")]
    assert (
        f"broken_reference=voucher v_ghost was never created, seq={INJECTED_SEQ}, "
        "event_id=evt_ghost" in report.message()
    )


def test_a_reference_to_a_voucher_created_in_an_older_batch_passes(
    clean: Path, tmp_path: Path
) -> None:
    warehouse = with_injected(clean, tmp_path, "'evt_later' AS event_id", REDEMPTION)
    with duckdb.connect(str(warehouse), read_only=True) as db:
        (created_before,) = db.execute(
            "SELECT count(*) FROM raw.ledger_events WHERE event_type = 'voucher_created' "
            "AND voucher_id = (SELECT voucher_id FROM raw.ledger_events WHERE seq = ?)",
            [INJECTED_SEQ],
        ).fetchone()
    assert created_before == 1

    report = check_raw_events(warehouse)

    assert report.passed, report.message()
    assert report.rows_checked == 1


def test_a_rollback_of_a_redemption_that_never_succeeded_fails(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_rollback' AS event_id, 'redemption_rolled_back' AS event_type, "
        "'r_never' AS redemption_id, "
        """'{"rollback_id":"rb_1","reason":"test","discount":0,"gift_amount":0}' AS payload""",
        REDEMPTION,
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_null", "broken_reference")]
    assert (
        f"broken_reference=redemption r_never never succeeded, seq={INJECTED_SEQ}, "
        "event_id=evt_rollback" in report.message()
    )


def test_an_event_dated_far_after_it_was_recorded_fails(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_future' AS event_id, '2030-01-01T00:00:00.000000Z' AS occurred_at",
        REDEMPTION,
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_between", "seconds_after_recorded")]
    assert f"seq={INJECTED_SEQ}, event_id=evt_future" in report.message()


def test_an_event_stamped_a_little_after_it_was_recorded_passes(
    clean: Path, tmp_path: Path
) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_skewed' AS event_id, "
        "strftime(recorded_at::timestamp + interval 23 hour, '%Y-%m-%dT%H:%M:%S.%fZ') "
        "AS occurred_at",
        REDEMPTION,
    )
    assert injected(warehouse, "occurred_at") > injected(warehouse, "recorded_at")

    report = check_raw_events(warehouse)

    assert report.passed, report.message()


def test_an_event_dated_before_1990_fails(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_old' AS event_id, '1989-12-31T23:59:59.000000Z' AS occurred_at, "
        "'1989-12-31T23:59:59.000000Z' AS recorded_at",
        REDEMPTION,
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_between", "occurred")]
    assert f"seq={INJECTED_SEQ}, event_id=evt_old" in report.message()


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("occurred_at", "2026-05-04 22:00:00"),  # parses, but sorts before 2026-05-04T...
        ("occurred_at", "2026-05-04T22:00:00+00:00"),
        ("recorded_at", "2026-05-04T22:00:00.000Z"),
    ],
)
def test_a_timestamp_not_in_the_ledgers_format_fails_naming_it(
    clean: Path, tmp_path: Path, column: str, text: str
) -> None:
    """The ledger's timestamps sort as text, and the lake, the models and the marts compare
    them as text: one written differently would be put in the wrong order silently."""
    warehouse = with_injected(
        clean, tmp_path, f"'evt_format' AS event_id, '{text}' AS {column}", REDEMPTION
    )

    report = check_raw_events(warehouse)

    assert ("expect_column_values_to_be_null", "timestamp_format_error") in failed(report)
    assert f"{column} {text} is not like 2026-05-04T22:00:00.000000Z" in report.message()
    assert f"seq={INJECTED_SEQ}, event_id=evt_format" in report.message()


def test_an_unknown_event_type_fails(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean, tmp_path, "'evt_odd' AS event_id, 'voucher_teleported' AS event_type", REDEMPTION
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_in_set", "event_type")]
    assert (
        f"event_type=voucher_teleported, seq={INJECTED_SEQ}, event_id=evt_odd" in report.message()
    )


def test_a_payload_that_is_not_json_fails(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean, tmp_path, "'evt_garbled' AS event_id, '{\"code\": \"A' AS payload", REDEMPTION
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_in_set", "payload_is_json")]
    assert f"seq={INJECTED_SEQ}, event_id=evt_garbled" in report.message()


def test_numbers_of_the_wrong_json_type_fail_naming_the_field_and_the_row(
    clean: Path, tmp_path: Path
) -> None:
    """json_transform in the typed staging models would read these as 500, 2 and NULL."""
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_text_amount' AS event_id, "
        """regexp_replace(payload, '"amount":[0-9]+', '"amount":"500"') AS payload""",
        REDEMPTION,
    )
    inject(
        warehouse,
        INJECTED_SEQ + 1,
        "'evt_half_line' AS event_id, '"
        '{"amount":2480,"currency":"EUR","items":['
        '{"product_id":"lasagna","category":"pasta","quantity":1,"unit_price":1350},'
        '{"product_id":"tiramisu","category":"dessert","quantity":1.5,"unit_price":590}]}'
        "' AS payload",
        ORDER,
    )
    inject(
        warehouse,
        INJECTED_SEQ + 2,
        "'evt_slow' AS event_id, "
        """regexp_replace(payload, '"latency_ms":[0-9.]+', '"latency_ms":"slow"') AS payload""",
        DELIVERY_ATTEMPT,
    )

    report = check_raw_events(warehouse)

    assert failed(report) == [("expect_column_values_to_be_null", "payload_type_error")]
    assert report.rows_checked == 3
    message = report.message()
    assert "expect_column_values_to_be_null on payload_type_error: 3 rows" in message
    assert (
        f'payload_type_error=order.amount is VARCHAR "500", seq={INJECTED_SEQ}, '
        "event_id=evt_text_amount" in message
    )
    assert (
        "payload_type_error=items[1].quantity is DOUBLE 1.5, "
        f"seq={INJECTED_SEQ + 1}, event_id=evt_half_line" in message
    )
    assert (
        f'payload_type_error=latency_ms is VARCHAR "slow", seq={INJECTED_SEQ + 2}, '
        "event_id=evt_slow" in message
    )


def test_a_null_or_absent_numeric_field_passes(clean: Path, tmp_path: Path) -> None:
    warehouse = with_injected(
        clean,
        tmp_path,
        "'evt_no_discount' AS event_id, "
        """regexp_replace(payload, '"discount":[0-9]+', '"discount":null') AS payload""",
        REDEMPTION,
    )
    inject(
        warehouse,
        INJECTED_SEQ + 1,
        "'evt_no_quantity' AS event_id, '"
        '{"amount":1350,"currency":"EUR","items":[{"product_id":"lasagna","category":"pasta",'
        '"unit_price":1350}]}'
        "' AS payload",
        ORDER,
    )
    assert '"discount":null' in injected(warehouse, "payload")

    report = check_raw_events(warehouse)

    assert report.passed, report.message()
    assert report.rows_checked == 2


def test_the_numeric_payload_fields_are_the_ones_the_typed_staging_models_read() -> None:
    """NUMERIC_PAYLOAD_FIELDS against the json_transform structures of the typed models: a
    numeric field added to a model, or left in the constant after a model stopped reading it,
    fails here."""
    models = sorted((DBT_PROJECT_DIR / "models" / "staging" / "typed").glob("*.sql"))
    read: dict[str, set[str]] = {}
    for model in models:
        structures = TRANSFORM.findall(model.read_text())
        assert structures, f"{model.name}: no json_transform(payload, '...') found"
        for structure in structures:
            for path, type_ in numeric_leaves(json.loads(structure)):
                read.setdefault(path, set()).add(type_)

    assert len(models) >= 5
    assert {path: sorted(types) for path, types in read.items()} == {
        path: [type_] for path, type_ in NUMERIC_PAYLOAD_FIELDS.items()
    }


TRANSFORM = re.compile(r"json_transform\(\s*payload\s*,\s*'([^']*)'\s*\)")
NUMERIC_TYPES = INTEGER_TYPES | {"FLOAT", "REAL", "DOUBLE"}


def numeric_leaves(structure: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """(JSON path, type) of each numeric leaf of a json_transform structure."""
    if isinstance(structure, dict):
        for key, value in structure.items():
            yield from numeric_leaves(value, f"{path}.{key}")
    elif isinstance(structure, list):
        yield from numeric_leaves(structure[0], f"{path}[*]")
    elif structure.upper() in NUMERIC_TYPES or structure.upper().startswith("DECIMAL"):
        yield path, structure.upper()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ('{"amount":1680,"items":[{"quantity":1,"unit_price":890}]}', None),
        ('{"discount":-500,"gift_amount":0,"order":{"amount":18446744073709551615}}', None),
        ('{"latency_ms":118.002,"backoff_ms":0.0,"attempt":1}', None),
        ('{"latency_ms":120,"backoff_ms":-1.5e-3}', None),
        ('{"discount":null,"order":{"amount":null},"items":[{"quantity":null}]}', None),
        ('{"code":"A","items":3}', None),
        ("[1, 2]", None),
        ('{"order":{"id":"o1","amount":"500"}}', 'order.amount is VARCHAR "500"'),
        ('{"amount":5.5}', "amount is DOUBLE 5.5"),
        ('{"discount":5.0}', "discount is DOUBLE 5.0"),
        ('{"balance":1e3}', "balance is DOUBLE 1000.0"),
        ('{"gift_balance":true}', "gift_balance is BOOLEAN true"),
        ('{"attempts":[1]}', "attempts is ARRAY [1]"),
        ('{"latency_ms":"fast"}', 'latency_ms is VARCHAR "fast"'),
        ('{"backoff_ms":false}', "backoff_ms is BOOLEAN false"),
        (
            '{"items":[{"quantity":1,"unit_price":890},{"quantity":1.5,"unit_price":790}]}',
            "items[1].quantity is DOUBLE 1.5",
        ),
        (
            '{"items":[{"quantity":2,"unit_price":{"eur":7}}]}',
            'items[0].unit_price is OBJECT {"eur":7}',
        ),
        ('{"discount":"x","amount":"y"}', 'discount is VARCHAR "x"'),
        ('{"amount":"' + "9" * 100 + '"}', 'amount is VARCHAR "' + "9" * 39),
    ],
)
def test_payload_type_error_names_the_first_numeric_field_that_is_not_a_json_number(
    payload: str, error: str | None
) -> None:
    with duckdb.connect() as db:
        db.execute("CREATE SCHEMA raw")
        db.execute(
            "CREATE TABLE raw.ledger_events (seq BIGINT, event_id VARCHAR, event_type VARCHAR, "
            "occurred_at VARCHAR, recorded_at VARCHAR, voucher_id VARCHAR, campaign_id VARCHAR, "
            "redemption_id VARCHAR, payload VARCHAR, event_date VARCHAR)"
        )
        db.execute(
            "INSERT INTO raw.ledger_events VALUES (1, 'evt_1', 'order_recorded', "
            "'2026-03-04T10:00:00Z', '2026-03-04T10:00:00Z', NULL, NULL, NULL, ?, '2026-03-04')",
            [payload],
        )

        quality.stage_raw_batch(db)
        (staged,) = db.execute(f"SELECT payload_type_error FROM {quality.RAW_BATCH}").fetchone()

    assert staged == error


# -- the marts ---------------------------------------------------------------------------------


def marts_warehouse(
    path: Path,
    *,
    redemptions: int = 2,
    published: int = 3,
    discount_net: int = 300,
    rates: dict[str, float] | None = None,
    funnel_rows: int = 1,
    acceptance_required: bool = False,
) -> Path:
    """A tiny warehouse: a ledger of 3 publications, 2 redemptions (500 + 300 off) and a rollback
    of the 500, and marts that agree with it unless told otherwise; its one campaign requires
    acceptance or not."""
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE SCHEMA raw")
        db.execute(
            "CREATE TABLE raw.ledger_events AS SELECT * FROM (VALUES "
            """(1, 'evt_1', 'voucher_published', '{"code":"A"}'),"""
            """(2, 'evt_2', 'voucher_published', '{"code":"B"}'),"""
            """(3, 'evt_3', 'voucher_published', '{"code":"C"}'),"""
            """(4, 'evt_4', 'redemption_succeeded', '{"code":"A","discount":500}'),"""
            """(5, 'evt_5', 'redemption_succeeded', '{"code":"B","discount":300}'),"""
            """(6, 'evt_6', 'redemption_rolled_back', '{"discount":500,"gift_amount":0}')"""
            ") t(seq, event_id, event_type, payload)"
        )
        db.execute("CREATE SCHEMA marts")
        db.execute(
            "CREATE TABLE marts.fct_redemptions AS SELECT 'r_' || i AS redemption_id FROM range(?) t(i)",
            [redemptions],
        )
        rate_values = {name: 0.5 for name in FUNNEL_RATES} | (rates or {})
        db.execute(
            "CREATE TABLE marts.fct_campaign_funnel (campaign_id VARCHAR, channel VARCHAR, "
            "cohort_date DATE, published BIGINT, "
            + ", ".join(f"{name} DOUBLE" for name in FUNNEL_RATES)
            + ")"
        )
        db.execute(
            "INSERT INTO marts.fct_campaign_funnel SELECT 'spring', 'email', DATE '2026-03-04', "
            f"CASE WHEN i = 0 THEN ? ELSE 0 END, {', '.join('?' for _ in FUNNEL_RATES)} "
            "FROM range(?) t(i)",
            [published, *(rate_values[name] for name in FUNNEL_RATES), funnel_rows],
        )
        db.execute(
            "CREATE TABLE marts.fct_campaign_performance AS "
            "SELECT 'spring' AS campaign_id, ?::BIGINT AS attributed_discount",
            [discount_net],
        )
        db.execute(
            "CREATE TABLE marts.dim_campaigns AS "
            "SELECT 'spring' AS campaign_id, ?::BOOLEAN AS is_acceptance_required",
            [acceptance_required],
        )
    return path


def test_marts_that_reconcile_with_the_ledger_pass(tmp_path: Path) -> None:
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb")

    report = check_marts(warehouse)

    assert report.passed, report.message()
    assert (report.rows_checked, report.expectations) == (4, 3 + len(FUNNEL_RATES))


def test_more_redeemed_than_accepted_passes_where_acceptance_is_not_required(
    tmp_path: Path,
) -> None:
    """By default a campaign redeems vouchers nobody accepted: redeemed per accepted is then
    no share, and may be anything from 0 up."""
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb", rates={"redeemed_per_accepted": 3.0})

    report = check_marts(warehouse)

    assert report.passed, report.message()


def test_more_accepted_than_delivered_passes(tmp_path: Path) -> None:
    """The core lets a holder accept a voucher whose delivery failed or is still pending."""
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb", rates={"accepted_per_delivered": 2.0})

    assert check_marts(warehouse).passed


def test_a_negative_rate_fails_naming_the_rule(tmp_path: Path) -> None:
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb", rates={"accepted_per_delivered": -0.5})

    report = check_marts(warehouse)

    assert failed(report) == [("expect_column_values_to_be_between", "accepted_per_delivered")]
    assert "[rule: a ratio of counts is never negative" in report.message()


def test_a_redemption_count_that_differs_from_the_ledger_fails_naming_the_figure(
    tmp_path: Path,
) -> None:
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb", redemptions=1)

    report = check_marts(warehouse)

    assert failed(report) == [("expect_column_pair_values_to_be_equal", None)]
    message = report.message()
    assert "figure=redemptions" in message
    assert "figure=publications" not in message
    assert "figure=discount_net" not in message


def test_a_net_discount_that_ignores_rollbacks_fails_naming_the_figure(tmp_path: Path) -> None:
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb", discount_net=800)

    report = check_marts(warehouse)

    assert failed(report) == [("expect_column_pair_values_to_be_equal", None)]
    assert "figure=discount_net" in report.message()
    assert "figure=redemptions" not in report.message()


def test_more_redeemed_than_accepted_fails_where_acceptance_is_required_naming_the_row(
    tmp_path: Path,
) -> None:
    warehouse = marts_warehouse(
        tmp_path / "tiny.duckdb", rates={"redeemed_per_accepted": 1.25}, acceptance_required=True
    )

    report = check_marts(warehouse)

    assert failed(report) == [
        ("expect_column_values_to_be_between", "redeemed_per_accepted_where_required")
    ]
    assert (
        "redeemed_per_accepted_where_required=1.25, funnel_key=spring|email|2026-03-04"
        in report.message()
    )
    assert "where a campaign requires acceptance the core redeems only accepted" in (
        report.message()
    )


@pytest.mark.parametrize("rate", ["delivered_per_published", "redeemed_per_published"])
def test_a_share_of_the_published_cohort_above_one_fails_naming_the_funnel_row(
    tmp_path: Path, rate: str
) -> None:
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb", rates={rate: 1.25})

    report = check_marts(warehouse)

    assert failed(report) == [("expect_column_values_to_be_between", rate)]
    assert f"{rate}=1.25, funnel_key=spring|email|2026-03-04" in report.message()


def test_every_expectation_states_the_rule_it_enforces() -> None:
    gx = quality._gx()

    expectations = [
        *quality.raw_expectations(gx),
        *quality.key_mart_expectations(gx),
        *quality.reconciliation_expectations(gx),
    ]

    assert [e for e in expectations if not (e.description or "").strip()] == []


def test_a_funnel_row_repeated_for_the_same_key_fails(tmp_path: Path) -> None:
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb", funnel_rows=2)

    report = check_marts(warehouse)

    assert failed(report) == [("expect_column_values_to_be_unique", "funnel_key")]
    assert "funnel_key=spring|email|2026-03-04" in report.message()


# -- the Great Expectations machinery ----------------------------------------------------------


def test_a_suite_whose_metrics_raise_fails_instead_of_passing(
    clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the transaction-hook workaround (pipelines.quality.keep_results_open) every
    metric of GX 1.24 on DuckDB raises: the suite must fail, naming the error. If an upgrade
    makes the workaround unnecessary this still passes only if metrics raise; if one breaks it,
    the clean-extract tests fail."""
    warehouse = with_injected(clean, tmp_path, "'evt_fine' AS event_id", REDEMPTION)
    monkeypatch.setattr(quality, "keep_results_open", lambda engine: None)

    report = check_raw_events(warehouse)

    assert not report.passed
    assert report.failures and all("error:" in str(f.observed) for f in report.failures)


def test_an_expectation_on_a_column_that_is_not_there_fails(tmp_path: Path) -> None:
    warehouse = marts_warehouse(tmp_path / "tiny.duckdb")
    assert check_marts(warehouse).passed  # stages quality.campaign_funnel_rates

    (report,) = quality.validate(
        warehouse,
        [
            quality.Suite(
                "missing_column",
                quality.FUNNEL_KEYS,
                lambda gx: [gx.expectations.ExpectColumnValuesToBeUnique(column="no_such")],
                id_columns=["funnel_key"],
                rows_checked=1,
            )
        ],
    )

    assert failed(report) == [("expect_column_values_to_be_unique", "no_such")]
    assert "error:" in report.message()
