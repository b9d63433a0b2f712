"""Idempotency keys: a retry returns the first answer and records nothing new.

ARCHITECTURE.md: idempotency keys make retries safe, the same key returns the first answer.
That holds across a restart, across processes racing with the same key, for rejections as well
as successes, and for rollbacks; a key reused for a different request is refused and changes
nothing. Every test runs on both ledgers (SQLite, PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_helpers import (
    create_ledger,
    event_counts,
    event_rows,
    ledger_of,
    open_engine,
    order,
    projection_row,
    run_lined_up,
    standalone_def,
)

from redemption_core.domain.errors import IdempotencyKeyReused
from redemption_core.domain.orders import RequestContext
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine
from redemption_core.ledger.verify import verify_ledger

CODE = "RETRY10"
pytestmark = pytest.mark.usefixtures("ledger_backend")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    create_ledger(
        home,
        [
            standalone_def("retry", CODE, limits={"per_customer": 5}),
            standalone_def("other", "OTHER5", amount_off=500),
        ],
    )
    return home


def checkout(
    *,
    code: str = CODE,
    amount: int = 5000,
    customer_id: str | None = "alice",
    key: str | None = "checkout-1",
    device_id: str = "device-a",
) -> RedeemRequest:
    return RedeemRequest(
        code,
        order(amount, order_id="order-1"),
        customer_id=customer_id,
        idempotency_key=key,
        context=RequestContext(device_id=device_id, ip="203.0.113.7"),
    )


def test_a_retried_redemption_returns_the_first_answer_and_adds_no_event(home: Path) -> None:
    engine = open_engine(home)
    first = engine.redeem(checkout())
    events_after_first = event_counts(ledger_of(home))

    retry = engine.redeem(checkout())
    engine.close()

    assert first.ok and not first.replayed
    assert retry.replayed
    assert (retry.ok, retry.redemption_id, retry.event_id, retry.discount) == (
        first.ok,
        first.redemption_id,
        first.event_id,
        first.discount,
    )
    assert event_counts(ledger_of(home)) == events_after_first
    assert events_after_first["redemption_succeeded"] == 1


def test_a_retry_after_a_restart_returns_the_first_answer(home: Path) -> None:
    with open_engine(home) as engine:
        first = engine.redeem(checkout())
    events_before_restart = event_counts(ledger_of(home))

    with open_engine(home) as restarted:
        retry = restarted.redeem(checkout())

    assert retry.replayed
    assert (retry.redemption_id, retry.event_id) == (first.redemption_id, first.event_id)
    assert event_counts(ledger_of(home)) == events_before_restart


@pytest.mark.parametrize(
    "changed",
    [
        {"amount": 6000},
        {"code": "OTHER5"},
        {"customer_id": "bob"},
        {"customer_id": None},
        {"device_id": "device-b"},
    ],
    ids=["order amount", "code", "customer", "no customer", "device"],
)
def test_a_key_reused_for_a_different_request_is_refused_and_records_nothing(
    home: Path, changed: dict
) -> None:
    engine = open_engine(home)
    engine.redeem(checkout())
    before = event_counts(ledger_of(home))

    with pytest.raises(IdempotencyKeyReused) as refused:
        engine.redeem(checkout(**changed))
    engine.close()

    assert refused.value.field == "idempotency_key"
    assert event_counts(ledger_of(home)) == before


def test_eight_processes_sending_the_same_key_make_one_redemption_and_get_one_answer(
    home: Path, tmp_path: Path
) -> None:
    request = {
        "code": CODE,
        "customer_id": "alice",
        "order_id": "order-1",
        "idempotency_key": "double-click",
        "device_id": "device-a",
    }
    specs = [{"home": str(home), "requests": [request]} for _ in range(8)]

    results = [child[0] for child in run_lined_up("call", specs, tmp_path / "line")]

    assert all(result["ok"] for result in results)
    assert len({result["redemption_id"] for result in results}) == 1
    assert len({result["event_id"] for result in results}) == 1
    assert sorted(result["replayed"] for result in results) == [False] + [True] * 7
    path = ledger_of(home)
    [event] = event_rows(path, "redemption_succeeded")
    assert event["idempotency_key"] == "double-click"
    assert event_counts(path)["redemption_rejected"] == 0
    assert verify_ledger(path).clean


def test_a_rejected_redemption_retried_with_its_key_returns_the_same_rejection(
    home: Path,
) -> None:
    engine = open_engine(home)
    engine.set_campaign_status("retry", "paused")
    first = engine.redeem(checkout())
    before = event_counts(ledger_of(home))
    engine.set_campaign_status("retry", "active")  # a fresh attempt would now succeed

    retry = engine.redeem(checkout())
    fresh = engine.redeem(checkout(key="checkout-2"))
    engine.close()

    assert not first.ok
    assert [str(reason.code) for reason in first.reasons] == ["campaign_inactive"]
    assert retry.replayed and not retry.ok
    assert (retry.event_id, retry.reasons, retry.redemption_id) == (
        first.event_id,
        first.reasons,
        None,
    )
    assert fresh.ok
    after = event_counts(ledger_of(home))
    assert after["redemption_rejected"] == before["redemption_rejected"] == 1
    assert after["redemption_succeeded"] == 1


def test_a_retried_rollback_returns_the_first_result_and_a_second_rollback_is_refused(
    home: Path,
) -> None:
    engine = open_engine(home)
    redemption = engine.redeem(checkout())
    first = engine.rollback(redemption.redemption_id, reason="returned", idempotency_key="rb-1")
    before = event_counts(ledger_of(home))

    retry = engine.rollback(redemption.redemption_id, reason="returned", idempotency_key="rb-1")
    after_retry = event_counts(ledger_of(home))
    again = engine.rollback(redemption.redemption_id, reason="returned")
    with pytest.raises(IdempotencyKeyReused):
        engine.rollback(redemption.redemption_id, reason="changed mind", idempotency_key="rb-1")
    with pytest.raises(IdempotencyKeyReused):
        engine.redeem(checkout(key="rb-1"))
    engine.close()

    assert first.ok and not first.replayed and first.rollback_id
    assert retry.replayed
    assert (retry.ok, retry.rollback_id, retry.event_id, retry.discount) == (
        first.ok,
        first.rollback_id,
        first.event_id,
        first.discount,
    )
    assert after_retry == before
    assert before["redemption_rolled_back"] == 1
    assert not again.ok
    assert [str(reason.code) for reason in again.reasons] == ["already_rolled_back"]
    path = ledger_of(home)
    assert projection_row(path, "campaigns", "campaign_id", "retry")["budget_used"] == 0
    assert event_counts(path)["rollback_rejected"] == 1


def test_a_retried_batch_replays_every_answer_of_the_first_batch(home: Path) -> None:
    engine = open_engine(home)
    batch = [checkout(key=f"batch-{i}", customer_id=f"c{i}") for i in range(4)]
    first = engine.redeem_many(batch)
    before = event_counts(ledger_of(home))

    retry = engine.redeem_many(batch)
    engine.close()

    assert [result.redemption_id for result in retry] == [result.redemption_id for result in first]
    assert all(result.replayed for result in retry)
    assert event_counts(ledger_of(home)) == before


def test_idempotency_keys_are_in_the_projection_and_verify_stays_clean(home: Path) -> None:
    with open_engine(home) as engine:
        redeemed = engine.redeem(checkout())
        engine.redeem(checkout())
        engine.set_campaign_status("other", "paused")
        rejected = engine.redeem(checkout(code="OTHER5", key="checkout-2"))
        rolled = engine.rollback(redeemed.redemption_id, idempotency_key="rb-1")

    path = ledger_of(home)
    for key, event_id in [
        ("checkout-1", redeemed.event_id),
        ("checkout-2", rejected.event_id),
        ("rb-1", rolled.event_id),
    ]:
        row = projection_row(path, "idempotency", "idempotency_key", key)
        assert row is not None and row["event_id"] == event_id
        assert len(row["request_hash"]) == 64
    report = verify_ledger(path)
    assert report.clean, report.differences


def test_a_refused_retry_does_not_discard_validations_buffered_before_it(home: Path) -> None:
    # Validation events are group-committed: buffered, then written with the next write.
    # Only a crash may lose them; a refused request must not.
    engine = RedemptionEngine.open(home, validation_buffer=1000, validation_max_age_s=3600)
    engine.redeem(checkout())
    engine.validate(CODE, order(), customer_id="carol")

    with pytest.raises(IdempotencyKeyReused):
        engine.redeem(checkout(amount=7000))
    engine.flush()
    engine.close()

    assert event_counts(ledger_of(home))["voucher_validated"] == 1
