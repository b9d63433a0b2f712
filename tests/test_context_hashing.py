"""The request context fraud detection needs is stored as keyed hashes, never raw."""

from __future__ import annotations

from pathlib import Path

from builders import engine_at, events, order, redeem, standalone

from redemption_core.domain.events import EventType
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.orders import RequestContext
from redemption_core.ledger.home import context_hasher

RAW = RequestContext(
    device_id="iphone-7f3a-unique-device",
    ip="203.0.113.77",
    payment_fingerprint="card-4242-fingerprint",
    store_id="berlin-1",
    staff_id="staff-9",
    sales_channel="pos",
)


def ledger_bytes(tmp_path: Path) -> bytes:
    return b"".join(path.read_bytes() for path in tmp_path.glob("ledger.sqlite*"))


def test_raw_device_ip_and_payment_values_never_reach_the_ledger_file(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)

    engine.validate(code, order(), context=RAW)
    redeem(engine, code, context=RAW)
    engine.close()

    stored = ledger_bytes(tmp_path)
    for raw in ("iphone-7f3a-unique-device", "203.0.113.77", "card-4242-fingerprint"):
        assert raw.encode() not in stored


def test_every_attempt_records_hashes_that_join_and_the_plain_store_staff_and_channel(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)
    expected = ContextHasher(b"k" * 32)

    engine.validate(code, order(), context=RAW)
    redeem(engine, code, context=RAW)
    redeem(engine, "NO-SUCH-CODE", context=RAW)
    engine.flush()

    attempts = events(
        engine,
        EventType.VOUCHER_VALIDATED,
        EventType.REDEMPTION_SUCCEEDED,
        EventType.REDEMPTION_REJECTED,
    )
    assert len(attempts) == 3
    for event in attempts:
        assert event.device_hash == expected.hash("iphone-7f3a-unique-device")
        assert event.ip_hash == expected.hash("203.0.113.77")
        assert event.payment_hash == expected.hash("card-4242-fingerprint")
        assert (event.store_id, event.staff_id, event.sales_channel) == (
            "berlin-1",
            "staff-9",
            "pos",
        )


def test_two_spellings_of_one_ip_address_hash_alike(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)

    redeem(engine, code, context=RequestContext(ip="2001:db8:0:0:0:0:0:1"))
    redeem(engine, code, context=RequestContext(ip="2001:DB8::1"))

    first, second = events(engine, EventType.REDEMPTION_SUCCEEDED)
    assert first.ip_hash is not None
    assert first.ip_hash == second.ip_hash


def test_hashes_depend_on_the_key_so_they_cannot_be_recomputed_without_it() -> None:
    one, other = ContextHasher(b"a" * 32), ContextHasher(b"b" * 32)

    assert one.hash("device-1") != other.hash("device-1")
    assert one.hash("device-1") == ContextHasher(b"a" * 32).hash("device-1")


def test_a_home_gets_one_key_file_that_later_engines_reuse(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PROMO_HMAC_KEY", raising=False)

    first = context_hasher(tmp_path).hash("device-1")
    second = context_hasher(tmp_path).hash("device-1")

    key_file = tmp_path / "secrets" / "hmac.key"
    assert first == second
    assert key_file.stat().st_mode & 0o777 == 0o600
