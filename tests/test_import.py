"""`promo import`: events from other systems in the ledger schema, and the dunnhumby mapping.

The contract under test (imports/ledger_schema.py, docs/ledger.md): every row is checked before anything
is written; a file with any bad row is refused whole, with a report naming each bad row's
number (1-based, the header is row 0) and field, and the ledger is left untouched; rows the
ledger already holds with the same content are skipped, so a second import adds nothing;
accepted rows are applied in order of occurrence with their own ids and timestamps.

The dunnhumby tests read real data (shared/data beside the repository) and check the imported
ledger against counts computed here, independently, from the source CSV files.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import (
    NOW,
    Clock,
    add_customers,
    cart,
    gift_card,
    order,
    place_order,
    redeem,
    rule,
    segment_def,
    unique_def,
    unique_voucher,
)
from shared_data import DUNNHUMBY, require_dunnhumby
from test_cli import Promo

from redemption_core import cli
from redemption_core.domain.events import COLUMNS
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.orders import RequestContext
from redemption_core.domain.parsing import iso
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine
from redemption_core.imports.ledger_schema import (
    ImportRefused,
    events_to_rows,
    import_events,
    read_rows,
)
from redemption_core.imports.reading import in_chunks
from redemption_core.ledger.reports import stats
from redemption_core.ledger.store import LedgerStore
from redemption_core.ledger.verify import verify_ledger

# Every content column of the events table (seq is the receiving ledger's own numbering).
CONTENT = ", ".join(COLUMNS)
BEFORE = NOW - timedelta(days=1)  # imported rows happened before the engine's "now"


# -- helpers -----------------------------------------------------------------------------------


def query(engine: RedemptionEngine, sql: str) -> list[tuple[Any, ...]]:
    with engine.store.read() as tx:
        return [tuple(row) for row in tx.query(sql, ())]


def event_table(engine: RedemptionEngine) -> dict[str, tuple[Any, ...]]:
    """The events table, every column but seq, by event id."""
    return {row[0]: row for row in query(engine, f"SELECT {CONTENT} FROM events")}


def event_count(engine: RedemptionEngine) -> int:
    return query(engine, "SELECT count(*) FROM events")[0][0]


def assert_verify_clean(engine: RedemptionEngine) -> None:
    store = engine.store
    report = verify_ledger(getattr(store, "url", None) or store.path)  # type: ignore[attr-defined]
    assert report.clean, [str(d) for d in report.differences]


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = list(dict.fromkeys(name for row in rows for name in row))
    pq.write_table(pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows]), path)
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = list(dict.fromkeys(name for row in rows for name in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


_serial = itertools.count(1)


def row(event_type: str, payload: Any = None, *, at: datetime = BEFORE, **ids: Any) -> dict:
    """A ledger-schema row; payload given as a dict is written as JSON text."""
    text = payload if isinstance(payload, str) else orjson.dumps(payload or {}).decode()
    return {
        "event_id": f"ext-{next(_serial)}",
        "event_type": event_type,
        "occurred_at": iso(at),
        "payload": text,
        **ids,
    }


def customer_created(customer_id: str, at: datetime = BEFORE) -> dict:
    payload = {"signup_at": iso(at), "attributes": {}, "metadata": {}, "consent": {}}
    return row("customer_created", payload, at=at, customer_id=customer_id)


def consent_changed(customer_id: str, granted: Any = True, at: datetime = BEFORE) -> dict:
    payload = {"channel": "email", "granted": granted, "source": "import"}
    return row("consent_changed", payload, at=at, customer_id=customer_id, channel="email")


def order_recorded(order_id: str, customer_id: str, amount: Any = 4000) -> dict:
    payload = {"amount": amount, "currency": "EUR", "items": []}
    return row("order_recorded", payload, order_id=order_id, customer_id=customer_id)


def campaign_created(campaign_id: str, at: datetime = BEFORE) -> dict:
    definition = unique_def(id=campaign_id, name=campaign_id)
    return row("campaign_created", {"definition": definition}, at=at, campaign_id=campaign_id)


def voucher_created(
    voucher_id: str | None, campaign_id: str, code: str, at: datetime = BEFORE
) -> dict:
    payload = {"code": code, "kind": "unique", "source": "import"}
    return row("voucher_created", payload, at=at, campaign_id=campaign_id, voucher_id=voucher_id)


def redemption_succeeded(
    redemption_id: str,
    voucher_id: str,
    campaign_id: str,
    code: str,
    *,
    discount: Any = 1000,
    at: datetime = BEFORE,
) -> dict:
    payload = {
        "code": code,
        "order": {"id": None, "amount": 4000, "currency": "EUR", "items": []},
        "discount": discount,
        "gift_amount": 0,
        "currency": "EUR",
    }
    return row(
        "redemption_succeeded",
        payload,
        at=at,
        campaign_id=campaign_id,
        voucher_id=voucher_id,
        redemption_id=redemption_id,
        customer_id="cust-1",
    )


def publish(voucher_id: str, code: str, campaign_id: str, customer_id: str = "cust-1") -> dict:
    payload = {"code": code, "source": "import"}
    return row(
        "voucher_published", payload, campaign_id=campaign_id, voucher_id=voucher_id,
        customer_id=customer_id,
    )  # fmt: skip


def good_rows(count: int) -> list[dict]:
    """`count` valid rows that need nothing but the `ledger` fixture: new customers and orders."""
    rows: list[dict] = []
    for i in range(count):
        customer = f"imp-{i // 2}"
        rows.append(
            customer_created(customer) if i % 2 == 0 else order_recorded(f"imp-o-{i}", customer)
        )
    return rows


def refused(engine: RedemptionEngine, rows: list[dict]) -> ImportRefused:
    """Import `rows`, expecting a refusal; returns it."""
    with pytest.raises(ImportRefused) as caught:
        import_events(engine, rows)
    return caught.value


def reported(refusal: ImportRefused) -> list[tuple[int, str]]:
    return [(error.row, error.field) for error in refusal.errors]


# -- fixtures ----------------------------------------------------------------------------------


def engine_on(store: LedgerStore, now: datetime | Clock = NOW) -> RedemptionEngine:
    """An engine on a fresh ledger of the test's backend; pass a Clock to move time later."""
    clock = now if isinstance(now, Clock) else Clock(now)
    return RedemptionEngine(store, ContextHasher(b"k" * 32), clock=clock)


@pytest.fixture
def source(tmp_path: Path, ledger_store: Callable[[Path], LedgerStore]) -> RedemptionEngine:
    """A ledger with a bit of everything the engine writes, one minute apart."""
    clock = Clock()
    engine = engine_on(ledger_store(tmp_path / "source"), clock)
    add_customers(engine, "cust-1", "cust-2", email="ann@example.com")
    engine.create_from_definition(
        {
            "id": "retention",
            "name": "Retention",
            "campaigns": [unique_def(id="welcome"), unique_def(id="winback", name="Win-back")],
        }
    )
    clock.advance(minutes=1)
    [code] = engine.generate_codes("welcome", 1)
    engine.publish(code, "cust-1", channel="email")
    engine.accept(code, "cust-1")
    second = unique_voucher(engine, "cust-2", id="spring", name="Spring")
    gift = gift_card(engine, holder="cust-2")
    clock.advance(minutes=1)
    engine.top_up(gift, 1000)
    engine.define_segment(segment_def("all", rule("days_since_signup", ">=", 0)))
    engine.set_segment_membership("vip", "cust-1", True)
    engine.set_consent("cust-1", "sms", True, source="form")
    engine.update_customer("cust-2", {"attributes": {"tier": "gold"}})
    place_order(engine, "cust-1", 3000, "o-1")
    place_order(engine, "cust-2", 6000, "o-2")
    clock.advance(minutes=1)
    engine.validate(code, order(4000), customer_id="cust-1")
    hold = engine.validate(second, cart(4000), customer_id="cust-2", hold_seconds=60)
    first = engine.redeem(
        RedeemRequest(
            code=code,
            order=order(4000, id="o-3"),
            customer_id="cust-1",
            context=RequestContext(device_id="device-1", ip="192.0.2.1", store_id="berlin-1"),
            idempotency_key="idem-1",
        )
    )
    redeem(engine, second, order(6000, id="o-2"), customer_id="cust-2", session_id=hold.session_id)
    redeem(engine, gift, order(2000), customer_id="cust-2", gift_amount=1500)
    redeem(engine, "NO-SUCH-CODE", order(4000))
    clock.advance(minutes=1)
    engine.rollback(first.redemption_id, reason="customer returned the goods")
    engine.rollback(first.redemption_id, reason="again")
    engine.refund_order("o-1", 500)
    engine.cancel_order("o-2", reason="out of stock")
    engine.set_voucher_enabled(gift, False)
    engine.set_voucher_enabled(gift, True)
    engine.set_campaign_status("winback", "paused")
    engine.flush()
    return engine


@pytest.fixture
def ledger(tmp_path: Path, ledger_store: Callable[[Path], LedgerStore]) -> RedemptionEngine:
    """A small live ledger: customer cust-1, campaign welcome with code WELCOME-1 held by cust-1."""
    engine = engine_on(ledger_store(tmp_path / "ledger"))
    add_customers(engine, "cust-1")
    engine.create_from_definition(unique_def())
    engine.import_codes("welcome", [{"code": "WELCOME-1"}])
    engine.publish("WELCOME-1", "cust-1")
    return engine


def welcome_voucher_id(engine: RedemptionEngine) -> str:
    return query(engine, "SELECT voucher_id FROM vouchers WHERE code = 'WELCOME-1'")[0][0]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_backend: str) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PROMO_HOME", str(home))
    monkeypatch.delenv("PROMO_HMAC_KEY", raising=False)
    return home


@pytest.fixture
def promo(home: Path, capsys: pytest.CaptureFixture[str]) -> Promo:
    return Promo(capsys)


# -- round trip --------------------------------------------------------------------------------


def test_the_source_ledger_covers_the_event_types_a_round_trip_must_carry(
    source: RedemptionEngine,
) -> None:
    types = Counter(str(event.event_type) for event in source.store.events())

    assert {
        "main_campaign_created", "campaign_created", "campaign_status_changed",
        "voucher_created", "voucher_published", "voucher_accepted", "voucher_disabled",
        "voucher_enabled", "gift_card_topped_up", "segment_defined", "segment_member_added",
        "customer_created", "customer_updated", "consent_changed", "order_recorded",
        "order_refunded", "order_cancelled", "voucher_validated", "validation_hold_created",
        "redemption_succeeded", "redemption_rejected", "redemption_rolled_back",
        "rollback_rejected",
    } <= set(types)  # fmt: skip


@pytest.mark.parametrize("form", ["parquet", "csv"])
def test_a_ledger_exported_and_imported_into_a_fresh_ledger_is_the_same_ledger(
    source: RedemptionEngine,
    tmp_path: Path,
    form: str,
    ledger_store: Callable[[Path], LedgerStore],
) -> None:
    rows = events_to_rows(source.store.events())
    path = (write_parquet if form == "parquet" else write_csv)(tmp_path / f"events.{form}", rows)
    target = engine_on(ledger_store(tmp_path / "target"))

    report = import_events(target, read_rows(path))

    assert (report.rows, report.imported, report.already_present) == (len(rows), len(rows), 0)
    assert event_table(target) == event_table(source)
    assert_verify_clean(target)
    before, after = stats(source.store), stats(target.store)
    for key in ("events_by_type", "campaigns", "redemptions", "rolled_back", "discount_given_net"):
        assert after[key] == before[key], key


def test_importing_the_same_rows_again_adds_nothing(
    source: RedemptionEngine, tmp_path: Path, ledger_store: Callable[[Path], LedgerStore]
) -> None:
    rows = events_to_rows(source.store.events())
    target = engine_on(ledger_store(tmp_path / "target"))
    import_events(target, rows)
    before = event_table(target)

    again = import_events(target, rows)

    assert (again.rows, again.imported, again.already_present) == (len(rows), 0, len(rows))
    assert event_table(target) == before
    assert_verify_clean(target)


def test_promo_import_of_a_parquet_file_twice_imports_everything_then_nothing(
    source: RedemptionEngine, promo: Promo, tmp_path: Path
) -> None:
    rows = events_to_rows(source.store.events())
    path = write_parquet(tmp_path / "events.parquet", rows)
    n = len(rows)

    first = promo("import", path)
    second = promo("import", path)

    assert (first.code, first.out.strip()) == (
        0,
        f"imported {n} of {n} rows (0 already in the ledger)",
    )
    assert (second.code, second.out.strip()) == (
        0,
        f"imported 0 of {n} rows ({n} already in the ledger)",
    )
    assert promo.events() == n
    assert promo.ok("ledger", "verify").out.startswith("clean")


# -- refusals: malformed rows ------------------------------------------------------------------


def _without(fields: dict, name: str) -> dict:
    return {k: v for k, v in fields.items() if k != name}


MALFORMED = {
    "an amount given as the string '12'": (order_recorded("o-bad", "cust-1", amount="12"), "payload.amount"),
    "a discount of 1.5": (redemption_succeeded("r-bad", "v-x", "welcome", "WELCOME-1", discount=1.5), "payload.discount"),
    "a consent granted 'yes'": (consent_changed("cust-1", granted="yes"), "payload.granted"),
    "a voucher_created without voucher_id": (voucher_created(None, "welcome", "NEW-1"), "voucher_id"),
    "a row without event_id": (_without(customer_created("cust-7"), "event_id"), "event_id"),
    "an unknown event_type": ({**customer_created("cust-7"), "event_type": "customer_teleported"}, "event_type"),
    "an unknown column": ({**customer_created("cust-7"), "loyalty_tier": "gold"}, "loyalty_tier"),
}  # fmt: skip


@pytest.mark.parametrize("bad, field", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_row_refuses_the_file_names_row_and_field_and_writes_nothing(
    ledger: RedemptionEngine, bad: dict, field: str
) -> None:
    before = event_table(ledger)
    rows = [customer_created("new-1"), bad, customer_created("new-2")]

    refusal = refused(ledger, rows)

    assert reported(refusal) == [(2, field)]
    assert refusal.total == 1
    assert event_table(ledger) == before
    assert_verify_clean(ledger)


def test_a_file_with_one_bad_row_among_a_hundred_good_ones_imports_nothing(
    ledger: RedemptionEngine,
) -> None:
    before = event_count(ledger)
    rows = good_rows(100)
    rows.insert(50, consent_changed("cust-1", granted="yes"))

    refusal = refused(ledger, rows)

    assert reported(refusal) == [(51, "payload.granted")]
    assert event_count(ledger) == before
    assert_verify_clean(ledger)


def test_two_bad_rows_on_different_lines_are_both_reported_with_their_row_numbers(
    ledger: RedemptionEngine,
) -> None:
    before = event_count(ledger)
    rows = good_rows(10)
    rows[3] = order_recorded("o-typed", "imp-1", amount="12")  # row 4: a wrong type
    rows[7] = consent_changed("ghost")  # row 8: a customer that does not exist

    refusal = refused(ledger, rows)

    assert reported(refusal) == [(4, "payload.amount"), (8, "customer_id")]
    assert refusal.total == 2
    assert event_count(ledger) == before
    assert_verify_clean(ledger)


def test_an_event_id_repeated_inside_the_file_is_refused_naming_the_second_row(
    ledger: RedemptionEngine,
) -> None:
    before = event_count(ledger)
    first = customer_created("new-1")
    rows = [
        first,
        customer_created("new-2"),
        {**customer_created("new-3"), "event_id": first["event_id"]},
    ]

    refusal = refused(ledger, rows)

    assert reported(refusal) == [(3, "event_id")]
    assert "row 1" in refusal.errors[0].problem
    assert event_count(ledger) == before
    assert_verify_clean(ledger)


@pytest.mark.parametrize(
    "change",
    [
        {"payload": '{"signup_at": "2026-03-04T12:00:00.000000Z", "attributes": {"vip": true}}'},
        {"event_type": "customer_updated", "payload": '{"attributes": {"vip": true}}'},
        {"occurred_at": "2026-01-01T00:00:00.000000Z"},
        {"customer_id": "cust-9"},
    ],
    ids=["payload", "event_type", "occurred_at", "customer_id"],
)
def test_an_event_id_the_ledger_holds_with_other_content_is_refused(
    ledger: RedemptionEngine, change: dict
) -> None:
    before = event_table(ledger)
    [existing] = [r for r in events_to_rows(ledger.store.events()) if r["event_type"] == "customer_created"]  # fmt: skip
    rows = [customer_created("new-1"), {**existing, **change}]

    refusal = refused(ledger, rows)

    assert reported(refusal) == [(2, "event_id")]
    assert event_table(ledger) == before
    assert_verify_clean(ledger)


# -- refusals: timestamps ----------------------------------------------------------------------

TIMES = {
    "two days ahead": ("occurred_at", iso(NOW + timedelta(days=2))),
    "year 9998": ("occurred_at", "9998-12-31T00:00:00Z"),
    "just before 1990": ("occurred_at", "1989-12-31T23:59:59Z"),
    "1990 in a zone that makes it 1989 in UTC": ("occurred_at", "1990-01-01T00:30:00+01:00"),
    "the Unix epoch": ("occurred_at", "1970-01-01T00:00:00Z"),
    "no zone": ("occurred_at", "2026-03-01T10:00:00"),
    "recorded far in the future": ("recorded_at", "2099-01-01T00:00:00Z"),
    "not a time at all": ("occurred_at", "yesterday"),
}


@pytest.mark.parametrize("field, value", TIMES.values(), ids=TIMES.keys())
def test_a_timestamp_out_of_range_or_without_a_zone_is_refused(
    ledger: RedemptionEngine, field: str, value: str
) -> None:
    before = event_count(ledger)
    rows = [customer_created("new-1"), {**customer_created("new-2"), field: value}]

    refusal = refused(ledger, rows)

    assert reported(refusal) == [(2, field)]
    assert event_count(ledger) == before
    assert_verify_clean(ledger)


def test_a_parquet_timestamp_column_without_a_zone_is_refused(
    ledger: RedemptionEngine, tmp_path: Path
) -> None:
    before = event_count(ledger)
    naive = {**customer_created("new-1"), "occurred_at": datetime(2026, 3, 1, 10, 0)}
    path = write_parquet(tmp_path / "naive.parquet", [naive])

    refusal = refused(ledger, read_rows(path))

    assert reported(refusal) == [(1, "occurred_at")]
    assert "zone" in refusal.errors[0].problem
    assert event_count(ledger) == before


def test_a_parquet_timestamp_column_in_utc_is_accepted_as_the_same_instant(
    ledger: RedemptionEngine, tmp_path: Path
) -> None:
    aware = {**customer_created("new-1"), "occurred_at": BEFORE}
    path = write_parquet(tmp_path / "aware.parquet", [aware])

    report = import_events(ledger, read_rows(path))

    assert report.imported == 1
    assert event_table(ledger)[aware["event_id"]][2] == iso(BEFORE)
    assert_verify_clean(ledger)


# -- refusals: hostile rows --------------------------------------------------------------------

DROP = "x'); DROP TABLE events; --"
HOSTILE = {
    "a 100 KB payload": (
        row("customer_created", {"signup_at": iso(BEFORE), "metadata": {"blob": "x" * 100_000}}, customer_id="new-1"),
        "payload",
    ),
    "a 10,000-character id": (customer_created("c" * 10_000), "customer_id"),
    "a NUL in an id": (customer_created("cust\x00-1"), "customer_id"),
    "a newline in an id": (customer_created("cust\n-1"), "customer_id"),
    "an escape sequence in an id": (customer_created("cust\x1b[2J"), "customer_id"),
    "a lone surrogate in an id": (customer_created("cust-\ud800"), "customer_id"),
    "a lone surrogate in the event id": ({**customer_created("new-1"), "event_id": "evt-\udfff"}, "event_id"),
    "a payload that is a JSON list": (row("customer_created", "[1, 2, 3]", customer_id="new-1"), "payload"),
    "a payload that is a JSON string": (row("customer_created", '"hello"', customer_id="new-1"), "payload"),
    "a payload that is not JSON": (row("customer_created", "{'a': 1}", customer_id="new-1"), "payload"),
    "a payload nested 500 deep": (
        row("customer_created", '{"signup_at": "2026-03-01T00:00:00Z", "metadata": ' + '{"a": ' * 500 + "1" + "}" * 501, customer_id="new-1"),
        "payload",
    ),
    "a payload nested 5,000 deep": (
        row("customer_created", '{"metadata": ' + "[" * 5_000 + "]" * 5_000 + "}", customer_id="new-1"),
        "payload",
    ),
    "SQL in an id": (customer_created(DROP), "customer_id"),
    "SQL in the event id": ({**customer_created("new-1"), "event_id": DROP}, "event_id"),
    "SQL as the event type": ({**customer_created("new-1"), "event_type": DROP}, "event_type"),
}  # fmt: skip


@pytest.mark.parametrize("bad, field", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_row_is_refused_by_the_row_rules_and_harms_nothing(
    ledger: RedemptionEngine, bad: dict, field: str
) -> None:
    before = event_table(ledger)
    rows = [customer_created("new-0"), bad]

    refusal = refused(ledger, rows)

    assert reported(refusal) == [(2, field)]
    assert event_table(ledger) == before
    assert_verify_clean(ledger)


def test_sql_in_free_text_is_imported_literally_and_harms_nothing(
    ledger: RedemptionEngine,
) -> None:
    payload = {"signup_at": iso(BEFORE), "attributes": {"note": DROP}, "metadata": {"sql": DROP}}
    hostile = row("customer_created", payload, customer_id="new-1", store_id="store-1")
    before = event_count(ledger)

    report = import_events(ledger, [hostile])

    assert report.imported == 1
    assert event_count(ledger) == before + 1
    stored = event_table(ledger)[hostile["event_id"]]
    assert orjson.loads(stored[-1]) == payload
    [[attributes]] = query(ledger, "SELECT attributes FROM customers WHERE customer_id = 'new-1'")
    assert orjson.loads(attributes) == {"note": DROP}
    assert_verify_clean(ledger)


# -- refusals: broken references ---------------------------------------------------------------


BROKEN = {
    "a redemption of a voucher that does not exist": (
        redemption_succeeded("r-1", "v-no-such-voucher", "welcome", "WELCOME-1"),
        "voucher_id",
    ),
    "a consent change for an unknown customer": (consent_changed("ghost"), "customer_id"),
    "a voucher of an unknown campaign": (voucher_created("v-new", "no-such-campaign", "NEW-1"), "campaign_id"),
}  # fmt: skip


@pytest.mark.parametrize("bad, field", BROKEN.values(), ids=BROKEN.keys())
def test_a_row_that_refers_to_something_missing_is_refused(
    ledger: RedemptionEngine, bad: dict, field: str
) -> None:
    before = event_table(ledger)
    rows = [customer_created("new-1"), bad, customer_created("new-2")]

    refusal = refused(ledger, rows)

    assert reported(refusal) == [(2, field)]
    assert "does not exist" in refusal.errors[0].problem
    assert event_table(ledger) == before
    assert_verify_clean(ledger)


def test_a_redemption_of_a_voucher_already_in_the_ledger_is_accepted(
    ledger: RedemptionEngine,
) -> None:
    voucher_id = welcome_voucher_id(ledger)

    report = import_events(
        ledger,
        [
            redemption_succeeded(
                "r-1", voucher_id, "welcome", "WELCOME-1", at=NOW + timedelta(minutes=1)
            )
        ],
    )

    assert report.imported == 1
    assert_verify_clean(ledger)


# -- the command line on a refused file --------------------------------------------------------


def test_promo_import_of_a_bad_file_exits_2_with_a_line_per_bad_row_and_one_on_stderr(
    source: RedemptionEngine, promo: Promo, tmp_path: Path
) -> None:
    promo.ok(
        "import", write_parquet(tmp_path / "base.parquet", events_to_rows(source.store.events()))
    )
    before = promo.events()
    rows = good_rows(20)
    rows[5] = consent_changed("cust-1", granted="yes")  # row 6
    rows[11] = {**rows[11], "occurred_at": "2026-03-01T10:00:00"}  # row 12
    rows[17] = {**rows[17], "event_type": "order_teleported"}  # row 18
    path = write_csv(tmp_path / "bad.csv", rows)

    result = promo("import", path)

    assert result.code == 2
    assert result.out.splitlines() == [
        "row 6, payload.granted: malformed: must be true or false, got 'yes'",
        "row 12, occurred_at: time_out_of_range: needs a UTC offset, e.g. 2026-01-31T00:00:00Z",
        "row 18, event_type: unknown_value: unknown event type 'order_teleported'",
    ]
    errors = [line for line in result.err_lines if line.startswith("error:")]
    assert len(errors) == 1, result.err
    assert errors[0].startswith("error: import refused, nothing written: 3 bad rows")
    assert promo.events() == before
    assert promo.ok("ledger", "verify").out.startswith("clean")


def test_promo_import_of_a_file_that_cannot_be_read_exits_2_with_one_line(
    promo: Promo, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")

    result = promo("import", broken)

    assert result.code == 2
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("error: file:"), result.err


# -- order of application -----------------------------------------------------------------------


def test_rows_are_applied_in_the_order_of_the_file_each_checked_against_the_rows_before_it(
    ledger: RedemptionEngine,
) -> None:
    campaign = campaign_created("late", at=BEFORE - timedelta(hours=1))
    voucher = voucher_created("v-late", "late", "LATE-1", at=BEFORE)
    published = publish("v-late", "LATE-1", "late")
    redemption = redemption_succeeded("r-late", "v-late", "late", "LATE-1", at=BEFORE)
    rows = [campaign, voucher, published, redemption]

    refusal = refused(ledger, [redemption, *rows[:3]])  # the redemption before its voucher
    report = import_events(ledger, rows)

    assert [(e.row, e.field, e.code) for e in refusal.errors] == [
        (1, "voucher_id", "reference_not_found")
    ]
    assert report.imported == 4
    by_seq = query(ledger, "SELECT event_id FROM events WHERE campaign_id = 'late' ORDER BY seq")
    assert [r[0] for r in by_seq] == [r["event_id"] for r in rows]
    assert_verify_clean(ledger)


def test_a_row_that_happened_before_what_it_names_was_created_is_refused(
    ledger: RedemptionEngine,
) -> None:
    campaign = campaign_created("late", at=BEFORE)
    voucher = voucher_created("v-late", "late", "LATE-1", at=BEFORE + timedelta(hours=2))
    redemption = redemption_succeeded(
        "r-late", "v-late", "late", "LATE-1", at=BEFORE + timedelta(hours=1)
    )
    before = event_count(ledger)

    refusal = refused(ledger, [campaign, voucher, redemption])

    assert [(e.row, e.field, e.code) for e in refusal.errors] == [
        (3, "occurred_at", "happened_before_reference")
    ]
    assert event_count(ledger) == before


# -- dunnhumby ---------------------------------------------------------------------------------

# The mapping is tried on every twentieth household (their targeting, redemptions, demographics)
# with every campaign and coupon: all the shapes of the real data, at a fraction of its 1.8 million
# events (a voucher per coupon a household received).
EVERY_NTH_HOUSEHOLD = 20


def source_table(name: str, folder: Path = DUNNHUMBY) -> list[dict[str, str]]:
    with (folder / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def trimmed_copy(target: Path) -> Path:
    """The data set with the rows of every EVERY_NTH_HOUSEHOLD-th household only."""
    target.mkdir(parents=True)
    for path in DUNNHUMBY.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as source:
            reader = csv.DictReader(source)
            rows = [
                row
                for row in reader
                if "household_key" not in row
                or int(row["household_key"]) % EVERY_NTH_HOUSEHOLD == 0
            ]
            fields = reader.fieldnames
        with (target / path.name).open("w", newline="", encoding="utf-8") as copy:
            writer = csv.DictWriter(copy, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return target


@pytest.fixture(scope="module")
def dunnhumby(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The trimmed folder imported once with `promo import DIR --mapping dunnhumby`."""
    require_dunnhumby()
    root = tmp_path_factory.mktemp("dunnhumby")
    folder = trimmed_copy(root / "data")
    home = root / "home"
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMO_HOME", str(home))
        patch.delenv("PROMO_HMAC_KEY", raising=False)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["import", str(folder), "--mapping", "dunnhumby"])
    db = sqlite3.connect(f"file:{home / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        yield {
            "home": home, "folder": folder, "code": code, "out": out.getvalue(),
            "err": err.getvalue(), "db": db,
        }  # fmt: skip
    finally:
        db.close()


def by_type(db: sqlite3.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT event_type, count(*) FROM events GROUP BY 1").fetchall())


def coupons_per_campaign(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in source_table("coupon.csv", folder):
        found.setdefault(row["campaign"], set()).add(row["coupon_upc"])
    return found


def test_the_dunnhumby_readme_figures_hold_for_the_full_data_set() -> None:
    targeted = {(r["household_key"], r["campaign"]) for r in source_table("campaign_table.csv")}
    redeemed = source_table("coupon_redempt.csv")
    pairs = {(r["household_key"], r["campaign"]) for r in redeemed}

    assert (len(targeted), len(redeemed), len(source_table("hh_demographic.csv"))) == (
        7208,
        2318,
        801,
    )
    assert len(pairs) == 889 and pairs <= targeted  # README: 889 of 7,208 pairs redeemed
    assert len(source_table("campaign_desc.csv")) == 30


def test_promo_import_of_the_dunnhumby_folder_imports_every_row_into_a_clean_ledger(
    dunnhumby: dict[str, Any],
) -> None:
    total = sum(by_type(dunnhumby["db"]).values())

    report = verify_ledger(dunnhumby["home"] / "ledger.sqlite")

    assert (dunnhumby["code"], dunnhumby["err"].startswith("import: ")) == (0, True), dunnhumby[
        "err"
    ]
    assert dunnhumby["out"].strip() == f"imported {total} of {total} rows (0 already in the ledger)"
    assert report.clean, [str(d) for d in report.differences]
    assert report.events == total


def test_dunnhumby_event_counts_match_the_source_tables(dunnhumby: dict[str, Any]) -> None:
    folder = dunnhumby["folder"]
    targeted = source_table("campaign_table.csv", folder)
    redeemed = source_table("coupon_redempt.csv", folder)
    demographics = source_table("hh_demographic.csv", folder)
    households = {r["household_key"] for r in (*targeted, *redeemed, *demographics)}
    coupons = coupons_per_campaign(folder)
    products = {r["product_id"] for r in source_table("coupon.csv", folder)}

    counts = by_type(dunnhumby["db"])

    assert counts["main_campaign_created"] == counts["customer_attributes_declared"] == 1
    assert counts["campaign_created"] == counts["campaign_status_changed"] == 30
    vouchers = sum(len(coupons[r["campaign"]]) for r in targeted)
    assert counts["voucher_created"] == counts["voucher_published"] == vouchers
    assert counts["product_upserted"] == len(products)
    assert counts["redemption_succeeded"] == len(redeemed)
    assert counts["customer_created"] == len(households)
    db = dunnhumby["db"]
    assert db.execute("SELECT count(*) FROM customers").fetchone()[0] == len(households)
    assert db.execute("SELECT count(*) FROM products").fetchone()[0] == len(products)
    with_attributes = db.execute("SELECT count(*) FROM customers WHERE attributes != '{}'")
    assert with_attributes.fetchone()[0] == len(demographics)


def test_dunnhumby_coupons_become_the_contents_of_campaigns_vouchers_and_products(
    dunnhumby: dict[str, Any],
) -> None:
    folder = dunnhumby["folder"]
    coupons = coupons_per_campaign(folder)
    collections: dict[str, set[str]] = {}
    for row in source_table("coupon.csv", folder):
        collections.setdefault(row["product_id"], set()).add(row["coupon_upc"])
    db = dunnhumby["db"]

    campaigns = {
        campaign_id: set(orjson.loads(definition)["discount"]["applies_to"]["collections"])
        for campaign_id, definition in db.execute("SELECT campaign_id, definition FROM campaigns")
    }
    own = db.execute(
        "SELECT v.code, c.applies_to FROM vouchers v JOIN voucher_contents c USING (voucher_id)"
    ).fetchall()
    products = dict(db.execute("SELECT product_id, collections FROM products"))

    assert campaigns == {f"dh-{n}": upcs for n, upcs in coupons.items()}
    assert len(own) == db.execute("SELECT count(*) FROM vouchers").fetchone()[0]
    assert all(orjson.loads(contents) == {"collections": [code.rsplit("-", 1)[1]]}
               for code, contents in own)  # fmt: skip
    assert {p: set(orjson.loads(c)) for p, c in products.items()} == collections


def test_dunnhumby_demographics_become_the_households_attributes_declared_categorical(
    dunnhumby: dict[str, Any],
) -> None:
    expected = {
        f"hh-{r['household_key']}": {k: v for k, v in r.items() if k != "household_key" and v}
        for r in source_table("hh_demographic.csv", dunnhumby["folder"])
    }
    db = dunnhumby["db"]

    rows = db.execute("SELECT customer_id, attributes FROM customers WHERE attributes != '{}'")
    declared = db.execute(
        "SELECT value FROM settings WHERE key = 'customer_attribute_types'"
    ).fetchone()[0]

    assert {customer: orjson.loads(attributes) for customer, attributes in rows} == expected
    assert set(orjson.loads(declared).values()) == {"categorical"}
    assert len(orjson.loads(declared)) == 7


def test_dunnhumby_redemptions_per_campaign_and_redeeming_pairs_match_the_source(
    dunnhumby: dict[str, Any],
) -> None:
    folder = dunnhumby["folder"]
    redeemed = source_table("coupon_redempt.csv", folder)
    per_campaign = Counter(f"dh-{r['campaign']}" for r in redeemed)
    pairs = {(r["household_key"], r["campaign"]) for r in redeemed}
    db = dunnhumby["db"]

    projected = dict(
        db.execute("SELECT campaign_id, redemptions FROM campaigns WHERE redemptions > 0")
    )
    ledger_pairs = db.execute(
        "SELECT count(*) FROM customer_campaigns WHERE redemptions > 0"
    ).fetchone()[0]

    assert projected == dict(per_campaign)
    assert ledger_pairs == len(pairs)


def test_every_dunnhumby_redemption_uses_its_households_voucher_for_that_coupon(
    dunnhumby: dict[str, Any],
) -> None:
    db = dunnhumby["db"]

    mismatches = db.execute(
        "SELECT e.event_id FROM events e JOIN vouchers v USING (voucher_id)"
        " WHERE e.event_type = 'redemption_succeeded' AND (v.holder_id != e.customer_id"
        " OR v.code NOT LIKE '%-' || json_extract(e.payload, '$.coupon_upc'))"
    ).fetchall()
    redemptions = db.execute("SELECT count(*) FROM redemptions").fetchone()[0]

    assert mismatches == []
    assert redemptions == len(source_table("coupon_redempt.csv", dunnhumby["folder"]))


def test_promo_import_of_the_dunnhumby_folder_again_adds_nothing(
    dunnhumby: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMO_HOME", str(dunnhumby["home"]))
    monkeypatch.delenv("PROMO_HMAC_KEY", raising=False)
    promo = Promo(capsys)
    total = sum(by_type(dunnhumby["db"]).values())

    again = promo("import", dunnhumby["folder"], "--mapping", "dunnhumby")

    assert (again.code, again.out.strip()) == (
        0,
        f"imported 0 of {total} rows ({total} already in the ledger)",
    )
    assert sum(by_type(dunnhumby["db"]).values()) == total
    assert promo.ok("ledger", "verify").out.startswith("clean")


# -- streaming ---------------------------------------------------------------------------------


def test_an_event_id_repeated_in_a_later_chunk_names_the_row_it_repeats(
    ledger: RedemptionEngine,
) -> None:
    rows = good_rows(10)
    rows[9] = {**order_recorded("o-dup", "imp-0"), "event_id": rows[1]["event_id"]}  # row 10
    before = event_count(ledger)

    refusal = refused_in_chunks(ledger, rows, size=3)

    assert [(e.row, e.field, e.code) for e in refusal.errors] == [
        (10, "event_id", "event_id_reused")
    ]
    assert refusal.errors[0].problem == "repeats row 2"
    assert event_count(ledger) == before


def refused_in_chunks(engine: RedemptionEngine, rows: list[dict], size: int) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        import_events(engine, in_chunks(rows, size=size))
    return caught.value


def test_an_import_shows_its_progress_on_stderr_and_nothing_with_json(
    source: RedemptionEngine,
    promo: Promo,
    tmp_path: Path,
    ledger_store: Callable[[Path], LedgerStore],
) -> None:
    path = write_parquet(tmp_path / "events.parquet", events_to_rows(source.store.events()))
    shown = io.StringIO()
    import_events(engine_on(ledger_store(tmp_path / "direct")), read_rows(path), progress=shown)

    quiet = promo("--json", "import", path)

    assert shown.getvalue().startswith("import: ")
    assert shown.getvalue().endswith("rows/s\n")
    assert f"{len(read_rows(path))} of {len(read_rows(path))} rows (100%)" in shown.getvalue()
    assert (quiet.code, quiet.err) == (0, "")


def test_every_event_type_has_its_payload_and_its_state_checked_on_import() -> None:
    from redemption_core.domain.events import NOT_IMPORTED, EventType
    from redemption_core.imports import payloads, replay

    without_state = {  # nothing in the ledger's state decides whether these may be recorded
        EventType.SEGMENT_MEMBER_ADDED, EventType.SEGMENT_MEMBER_REMOVED,
        EventType.SEGMENT_DEFINED, EventType.FREQUENCY_CAP_SET, EventType.FRAUD_REVIEW_RECORDED,
        EventType.PRODUCT_UPSERTED,  # the catalogue takes any product, new or changed
    }  # fmt: skip

    # Every type is imported through its checks, or refused whole (this ledger's own events).
    assert set(payloads.CHECKS) | NOT_IMPORTED == set(EventType)
    assert not set(payloads.CHECKS) & NOT_IMPORTED
    assert set(replay.CHECKS) | without_state | NOT_IMPORTED == set(EventType)
