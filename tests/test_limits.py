"""Limits against guessing and hold abuse, in the core: the arithmetic (domain/limits.py), the
table the machine's processes share (ledger/guard_table.py), and the engine's guard, which
every door opened on a home has (engine/guard.py)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from builders import NOW, Clock, cart, codes, engine_at, events, order, standalone
from hypothesis import given
from hypothesis import strategies as st

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import EventType
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.limits import (
    Backoff,
    Limits,
    MissState,
    Rate,
    Throttled,
    blocked_for,
    gcra,
    limits_from_dict,
    record_miss,
)
from redemption_core.domain.orders import RequestContext
from redemption_core.domain.reasons import Code
from redemption_core.engine.guard import Guard
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine
from redemption_core.ledger.guard_table import GuardTable, subject_key
from redemption_core.ledger.sqlite import SqliteLedgerStore
from redemption_core.ledger.store import LedgerTransaction, WriteConflict


# -- arithmetic --------------------------------------------------------------------------------------
def test_gcra_admits_a_burst_then_one_request_per_interval() -> None:
    rate = Rate(2.0, 3)  # two a second, three at once
    tat, admitted = 0.0, []
    for _ in range(5):
        tat, wait = gcra(tat, 100.0, rate)
        admitted.append(wait == 0)

    later_tat, later_wait = gcra(tat, 100.5, rate)

    assert admitted == [True, True, True, False, False]
    assert later_wait == 0 and later_tat > tat


@given(
    rate=st.floats(0.1, 1000),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_gcra_never_admits_more_than_the_burst_plus_the_rate_over_any_span(
    rate: float, burst: int, gaps: list[float]
) -> None:
    limit = Rate(rate, burst)
    tat, now, times = 0.0, 1000.0, []
    for gap in gaps:
        now += gap
        tat, wait = gcra(tat, now, limit)
        if wait == 0:
            times.append(now)

    span = times[-1] - times[0] if times else 0
    assert len(times) <= burst + span * rate + 1e-6


def test_a_refused_request_says_how_long_to_wait() -> None:
    rate = Rate(1.0, 1)
    tat, _ = gcra(0.0, 10.0, rate)

    unchanged, wait = gcra(tat, 10.25, rate)

    assert unchanged == tat
    assert wait == pytest.approx(0.75)


def test_misses_start_a_backoff_that_doubles_with_every_further_miss_up_to_the_maximum() -> None:
    policy = Backoff(misses=3, window_s=60, base_s=2, max_s=10, reset_s=100)
    state = MissState()

    first = [record_miss(state, t, policy) for t in (0, 1, 2)]
    later = [record_miss(state, t, policy) for t in (5, 20, 40, 60)]

    assert first[:2] == [None, None]
    assert first[2] is not None and first[2].seconds == 2 and first[2].level == 1
    assert [b.seconds for b in later if b is not None] == [4, 8, 10, 10]
    assert blocked_for(state, 61) == pytest.approx(9)


def test_a_quiet_subject_starts_from_scratch_and_old_misses_leave_the_window() -> None:
    policy = Backoff(misses=3, window_s=60, base_s=2, max_s=10, reset_s=100)
    state = MissState()
    for t in (0, 1, 2):
        record_miss(state, t, policy)

    after_quiet = [record_miss(state, t, policy) for t in (200, 300, 400)]

    assert after_quiet == [None, None, None]  # each miss alone in its window, level reset


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"per_key": {"rate": 0}}, "limits.per_key.rate"),
        ({"per_key": {"burst": 1.5}}, "limits.per_key.burst"),
        ({"per_key": {"rate": 1, "speed": 2}}, "limits.per_key.speed"),
        ({"backoff": {"base_s": -1}}, "limits.backoff.base_s"),
        ({"backoff": {"base_s": 100, "max_s": 10}}, "limits.backoff.max_s"),
        ({"holds_per_device": 0}, "limits.holds_per_device"),
        ({"per_account": {}}, "limits.per_account"),
        ([], "limits"),
    ],
)
def test_limits_from_a_file_refuse_nonsense_naming_the_field(document: object, field: str) -> None:
    with pytest.raises(InvalidInput) as refusal:
        limits_from_dict(document)

    assert refusal.value.field == field


def test_limits_from_a_file_override_only_what_they_name() -> None:
    limits = limits_from_dict({"per_key": {"rate": 50}, "holds_per_customer": 1})

    assert limits.per_key == Rate(50, Limits().per_key.burst)
    assert limits.holds_per_customer == 1
    assert limits.per_ip == Limits().per_ip
    assert limits_from_dict(limits.to_dict()) == limits


# -- the shared table --------------------------------------------------------------------------------
def _charge_in_child(path: str, count: int, queue: multiprocessing.Queue) -> None:
    guard = Guard(Limits(per_key=Rate(0.001, 10)), GuardTable(Path(path)))
    admitted = 0
    for _ in range(count):
        try:
            guard.admit(1000.0, key_id="key_shared", ip=None)
            admitted += 1
        except Throttled:
            pass
    queue.put(admitted)


def test_processes_on_one_machine_share_one_allowance(tmp_path: Path) -> None:
    path = str(tmp_path / "guard.table")
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_charge_in_child, args=(path, 8, queue)) for _ in range(3)]

    for child in children:
        child.start()
    for child in children:
        child.join(60)
    admitted = [queue.get(timeout=5) for _ in children]

    assert sum(admitted) == 10  # the burst, once, across the three processes


def test_a_flood_of_subjects_never_grows_the_table(tmp_path: Path) -> None:
    table = GuardTable(tmp_path / "guard.table", slots=64)
    empty = (tmp_path / "guard.table").stat().st_size
    keys = [subject_key("miss:device", f"d-{n}") for n in range(1000)]

    def remember(number: int) -> Callable[[list[list[float]]], tuple[None, list[float]]]:
        def change(slots: list[list[float]]) -> tuple[None, list[float]]:
            slots[0][0] = float(number)
            return None, [float(number)]  # later subjects are fresher: older ones go first

        return change

    for number, key in enumerate(keys, start=1):
        table.update([key], remember(number))
    size = (tmp_path / "guard.table").stat().st_size
    newest = table.update([keys[-1]], lambda slots: (slots[0][0], [0.0]))
    oldest = table.update([keys[0]], lambda slots: (slots[0][0], [0.0]))
    table.close()

    assert size == empty
    assert newest == 1000.0  # the newest subject is still there ...
    assert oldest == 0.0  # ... the stalest were evicted


# -- the engine ----------------------------------------------------------------------------------------
def guarded(tmp_path: Path, clock: Clock, **limits: object) -> RedemptionEngine:
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    return RedemptionEngine(
        store,
        ContextHasher(b"k" * 32),
        clock=clock,
        guard=Guard(Limits(**limits), GuardTable(None)),  # type: ignore[arg-type]
    )


def test_a_device_guessing_codes_is_refused_for_a_growing_time_and_the_ledger_says_so(
    tmp_path: Path,
) -> None:
    clock = Clock(NOW)
    engine = guarded(tmp_path, clock)
    code = standalone(engine)
    bot = RequestContext(device_id="bot-1", ip="203.0.113.5")

    misses = [engine.validate(f"GUESS{n}", order(), context=bot) for n in range(5)]
    with pytest.raises(Throttled) as blocked:
        engine.validate(code, order(), context=bot)  # even a real code, while it lasts
    with pytest.raises(Throttled):
        engine.redeem(RedeemRequest(code, order(), context=bot))
    clock.advance(seconds=2)
    one_more = engine.validate("GUESS6", order(), context=bot)
    with pytest.raises(Throttled) as longer:
        engine.validate(code, order(), context=bot)
    clock.advance(seconds=4)
    engine.flush()

    assert all(codes(m) == {Code.RESOURCE_NOT_FOUND} for m in misses)
    assert blocked.value.code == "guessing_backoff" and blocked.value.retry_after == 2
    assert codes(one_more) == {Code.RESOURCE_NOT_FOUND}
    assert longer.value.retry_after == 4
    assert engine.validate(code, order(), context=bot).valid
    started = events(engine, EventType.GUESSING_BACKOFF_STARTED)
    by_subject = {(e.payload["subject"], e.payload["level"]) for e in started}
    assert by_subject == {("device", 1), ("ip", 1), ("device", 2), ("ip", 2)}
    assert all(e.device_hash or e.ip_hash for e in started)


def test_a_customer_guessing_through_redemptions_is_backed_off_too(tmp_path: Path) -> None:
    engine = guarded(tmp_path, Clock(NOW))
    standalone(engine)

    for n in range(5):
        engine.redeem(RedeemRequest(f"NOPE{n}", order(), customer_id="greedy"))
    results = engine.redeem_many(
        [
            RedeemRequest("SPRING10", order(), customer_id="greedy"),
            RedeemRequest("SPRING10", order()),
        ]
    )

    assert isinstance(results[0], Throttled) and results[0].subject == "customer"
    assert results[1].ok  # type: ignore[union-attr]
    [started] = events(engine, EventType.GUESSING_BACKOFF_STARTED)
    assert started.customer_id == "greedy"


class GivesUpOnce(SqliteLedgerStore):
    """A store whose first concurrent write the database gives up at its commit, as PostgreSQL
    does to one side of a deadlock: nothing of it is written, and the engine runs it again."""

    gave_up = False

    @contextmanager
    def write(self, *, concurrent: bool = False) -> Iterator[LedgerTransaction]:
        with super().write(concurrent=concurrent) as tx:
            yield tx
            if concurrent and not self.gave_up:
                self.gave_up = True
                raise WriteConflict("deadlock detected")


@pytest.mark.parametrize(
    "guess",
    [
        lambda engine, bot: engine.redeem(RedeemRequest("NOPE1", order(), context=bot)),
        lambda engine, bot: engine.validate("NOPE1", cart(), context=bot, hold_seconds=60),
    ],
    ids=["redeem", "hold"],
)
def test_a_miss_whose_write_is_run_again_after_a_conflict_is_counted_once(
    tmp_path: Path, guess: Callable[[RedemptionEngine, RequestContext], object]
) -> None:
    store = GivesUpOnce(tmp_path / "ledger.sqlite")
    engine = RedemptionEngine(
        store,
        ContextHasher(b"k" * 32),
        clock=Clock(NOW),
        guard=Guard(Limits(backoff=Backoff(misses=2)), GuardTable(None)),  # type: ignore[arg-type]
    )
    bot = RequestContext(device_id="bot-1")

    first = guess(engine, bot)
    before_second = events(engine, EventType.GUESSING_BACKOFF_STARTED)
    guess(engine, bot)  # the second miss: now the back-off starts

    assert store.gave_up
    assert codes(first) == {Code.RESOURCE_NOT_FOUND}  # type: ignore[arg-type]
    assert before_second == []
    [started] = events(engine, EventType.GUESSING_BACKOFF_STARTED)
    assert started.payload["misses"] == 2


def test_an_engine_without_a_guard_counts_nothing(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    bot = RequestContext(device_id="bot-1")

    answers = [engine.validate(f"GUESS{n}", order(), context=bot) for n in range(20)]
    engine.flush()

    assert len(answers) == 20
    assert events(engine, EventType.GUESSING_BACKOFF_STARTED) == []


def test_a_hold_needs_a_cart_and_someone_to_count_it_against(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = standalone(engine)

    with pytest.raises(InvalidInput) as no_cart:
        engine.validate(code, order(), customer_id="c-1", hold_seconds=60)
    with pytest.raises(InvalidInput) as nobody:
        engine.validate(code, cart(), hold_seconds=60)

    assert no_cart.value.field == "order.items"
    assert nobody.value.field == "customer_id"
    assert events(engine, EventType.VALIDATION_HOLD_CREATED) == []


@pytest.mark.parametrize(
    ("holder", "limit_name"),
    [
        ({"customer_id": "c-1"}, "holds_per_customer"),
        ({"context": RequestContext(device_id="d-1")}, "holds_per_device"),
        ({"context": RequestContext(device_id=None, ip="198.51.100.7")}, "holds_per_ip"),
    ],
)
def test_open_holds_are_limited_per_customer_device_and_ip(
    tmp_path: Path, holder: dict, limit_name: str
) -> None:
    clock = Clock(NOW)
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    engine = RedemptionEngine(
        store, ContextHasher(b"k" * 32), clock=clock, limits=Limits(**{limit_name: 2})
    )
    code = standalone(engine)
    # Without a customer a hold needs a device: the IP case names made-up customers.
    named = [{**holder, "customer_id": holder.get("customer_id") or f"c-{n}"} for n in range(4)]

    held = [engine.validate(code, cart(), hold_seconds=60, **kw) for kw in named[:3]]
    clock.advance(seconds=61)  # the first two expire
    after_expiry = engine.validate(code, cart(), hold_seconds=60, **named[3])

    assert [h.valid for h in held] == [True, True, False]
    assert codes(held[2]) == {Code.HOLD_LIMIT_EXCEEDED}
    assert held[2].session_id is None
    assert after_expiry.valid
