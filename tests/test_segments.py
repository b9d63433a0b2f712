"""Rule-based segments: validation, every field and operator, and evaluation at past instants.

The stories below are told on a Clock, so each customer's orders, refunds, cancellations,
consent changes and attribute updates happen at known instants; who was in a segment at an
instant is worked out by hand (or by the small model in `History`) from what had happened by
then, and must be what `segment_members(at=...)` answers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from builders import (
    Clock,
    codes,
    engine_at,
    events,
    item,
    moment,
    order,
    redeem,
    rule,
    segment_def,
    standalone,
)
from pg_cluster import Cluster

from redemption_core.domain import events as events_module
from redemption_core.domain.errors import InvalidInput, NotFound
from redemption_core.domain.events import EventType
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.reasons import Code
from redemption_core.domain.segments import Condition, Segment
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.postgres import PostgresLedgerStore
from redemption_core.ledger.store import LedgerStore
from redemption_core.ledger.verify import verify_ledger


@dataclass
class Placed:
    customer_id: str | None
    at: datetime
    amount: int
    lines: list[tuple[str, int]]  # (category, amount)
    refunds: list[tuple[datetime, int]] = field(default_factory=list)
    cancelled_at: datetime | None = None


class History:
    """Tells a story to the engine on a Clock and remembers, beside it, what happened when."""

    def __init__(self, tmp_path: Path, store: LedgerStore | None = None) -> None:
        self.clock = Clock(moment(1, 1, 0))
        self.engine = (
            engine_at(tmp_path, self.clock)
            if store is None
            else RedemptionEngine(store, ContextHasher(b"k" * 32), clock=self.clock)
        )
        self.signups: dict[str, datetime] = {}
        self.orders: dict[str, Placed] = {}
        self.consents: list[tuple[str, str, datetime, bool]] = []
        self.versions: list[tuple[str, datetime, dict[str, Any]]] = []

    def signup(
        self,
        customer_id: str,
        when: datetime,
        *,
        consent: dict[str, bool] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self.clock.set(when)
        self.engine.add_customer(
            {"id": customer_id, "consent": consent or {}, "attributes": attributes or {}}
        )
        self.signups[customer_id] = when
        for channel, granted in (consent or {}).items():
            self.consents.append((customer_id, channel, when, granted))
        self.versions.append((customer_id, when, dict(attributes or {})))

    def order(
        self, order_id: str, customer_id: str | None, when: datetime, *lines: tuple[str, int]
    ) -> None:
        self.clock.set(when)
        items = [item(f"sku-{category}", amount, 1, category) for category, amount in lines]
        amount = sum(line for _, line in lines)
        self.engine.record_order(order(amount, items, id=order_id), customer_id=customer_id)
        self.orders[order_id] = Placed(customer_id, when, amount, list(lines))

    def refund(self, order_id: str, when: datetime, amount: int) -> None:
        self.clock.set(when)
        self.engine.refund_order(order_id, amount)
        self.orders[order_id].refunds.append((when, amount))

    def cancel(self, order_id: str, when: datetime) -> None:
        self.clock.set(when)
        self.engine.cancel_order(order_id)
        self.orders[order_id].cancelled_at = when

    def consent(self, customer_id: str, channel: str, granted: bool, when: datetime) -> None:
        self.clock.set(when)
        self.engine.set_consent(customer_id, channel, granted)
        self.consents.append((customer_id, channel, when, granted))

    def attributes(self, customer_id: str, attributes: dict[str, Any], when: datetime) -> None:
        self.clock.set(when)
        self.engine.update_customer(customer_id, {"attributes": attributes})
        self.versions.append((customer_id, when, dict(attributes)))

    # -- the model: what a customer's fields were at t --------------------------------------
    def facts(self, customer_id: str, t: datetime) -> dict[str, Any]:
        standing = [
            o
            for o in self.orders.values()
            if o.customer_id == customer_id
            and o.at <= t
            and (o.cancelled_at is None or o.cancelled_at > t)
        ]
        spend = sum(o.amount - sum(a for when, a in o.refunds if when <= t) for o in standing)
        last = max((o.at for o in standing), default=None)
        by_category: dict[str, int] = {}
        for o in standing:
            for category, amount in o.lines:
                by_category[category] = by_category.get(category, 0) + amount
        favourite = min(by_category, key=lambda c: (-by_category[c], c), default=None)
        facts: dict[str, Any] = {
            "order_count": len(standing),
            "total_spend": spend,
            "avg_basket": spend / len(standing) if standing else None,
            "days_since_last_order": None if last is None else days(t - last),
            "days_since_signup": days(t - self.signups[customer_id]),
            "favourite_category": favourite,
        }
        for channel in ("email", "sms", "push"):
            changes = [
                granted
                for who, ch, when, granted in self.consents
                if who == customer_id and ch == channel and when <= t
            ]
            facts[f"consent.{channel}"] = changes[-1] if changes else False
        versions = [a for who, when, a in self.versions if who == customer_id and when <= t]
        for name, value in (versions[-1] if versions else {}).items():
            facts[f"attributes.{name}"] = value
        return facts

    def members(self, definition: dict[str, Any], t: datetime) -> list[str]:
        combine = all if definition["match"] == "all" else any
        return sorted(
            customer_id
            for customer_id, signed_up in self.signups.items()
            if signed_up <= t
            and combine(
                holds(self.facts(customer_id, t).get(r["field"]), r["op"], r["value"])
                for r in definition["rules"]
            )
        )


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda have, want: have in want,
    "not_in": lambda have, want: have not in want,
}


def holds(have: Any, op: str, want: Any) -> bool:
    """A rule on a value the customer does not have (no orders, no attribute) never holds."""
    return have is not None and COMPARE[op](have, want)


def days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


# -- validation ------------------------------------------------------------------------------

FINE = rule("order_count", ">=", 1)


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        (segment_def("s", rule("order_count", "~", 1)), "segment.rules[0].op"),
        (segment_def("s", rule("order_count", "LIKE", 1)), "segment.rules[0].op"),
        (segment_def("s", FINE, rule("shoe_size", "==", 42)), "segment.rules[1].field"),
        (segment_def("s", FINE, rule(None, "==", 42)), "segment.rules[1].field"),
        (segment_def("s", rule("total_spend", ">", "100")), "segment.rules[0].value"),
        (segment_def("s", rule("order_count", "==", True)), "segment.rules[0].value"),
        (segment_def("s", rule("avg_basket", "in", [10, "20"])), "segment.rules[0].value"),
        (segment_def("s", rule("order_count", "in", [])), "segment.rules[0].value"),
        (segment_def("s", rule("order_count", "not_in", 3)), "segment.rules[0].value"),
        (segment_def("s", FINE, rule("consent.email", ">", True)), "segment.rules[1].value"),
        (segment_def("s", rule("consent.email", "in", [True])), "segment.rules[0].value"),
        (segment_def("s", rule("consent.email", "==", "yes")), "segment.rules[0].value"),
        (segment_def("s", rule("consent.email", "==", 1)), "segment.rules[0].value"),
        (segment_def("s", rule("consent.fax", "==", True)), "segment.rules[0].field.fax"),
        (
            segment_def("s", rule("favourite_category", "==", "x' OR 1=1 --")),
            "segment.rules[0].value",
        ),
        (
            segment_def("s", rule("favourite_category", "in", ["shoes", "a);DROP TABLE orders"])),
            "segment.rules[0].value",
        ),
        (
            segment_def("s", rule('attributes.city" OR 1=1 --', "==", "Berlin")),
            "segment.rules[0].field",
        ),
        (segment_def("s", rule("attributes.", "==", "Berlin")), "segment.rules[0].field"),
        (segment_def("s", rule("attributes.city", "==", ["Berlin"])), "segment.rules[0].value"),
        (segment_def("s", rule("attributes.city", "==", {"$": 1})), "segment.rules[0].value"),
        (segment_def("s", {**FINE, "weight": 2}), "segment.rules[0].weight"),
        (segment_def("s", "order_count >= 1"), "segment.rules[0]"),
        (segment_def("s", FINE, match="most"), "segment.match"),
        (segment_def("s"), "segment.rules"),
        (segment_def("s", *[FINE] * 51), "segment.rules"),
        (segment_def("s p", FINE), "segment.id"),
        ({**segment_def("s", FINE), "colour": "red"}, "segment.colour"),
        ({**segment_def("s", FINE), "name": 7}, "segment.name"),
    ],
)
def test_a_malformed_segment_is_refused_naming_the_field_and_writes_nothing(
    tmp_path: Path, definition: dict[str, Any], field: str
) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(InvalidInput) as refused:
        engine.define_segment(definition)

    assert refused.value.field == field
    assert events(engine) == []


def test_a_segment_object_is_checked_like_a_definition_before_it_is_recorded(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    hostile = Segment("s", "s", "all", (Condition("consent.email) OR (1", "==", True),))

    with pytest.raises(InvalidInput) as refused:
        engine.define_segment(hostile)

    assert refused.value.field.startswith("segment.rules[0].field")
    assert events(engine, EventType.SEGMENT_DEFINED) == []


def test_members_of_an_unknown_segment_or_at_a_bad_instant_are_refused(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.define_segment(segment_def("s", FINE))

    with pytest.raises(NotFound) as unknown:
        engine.segment_members("nope")
    with pytest.raises(InvalidInput) as naive:
        engine.segment_members("s", at=datetime(2026, 3, 1))
    with pytest.raises(InvalidInput) as hostile:
        engine.segment_members("s' OR 1=1 --")

    assert unknown.value.field == "segment_id"
    assert naive.value.field == "at"
    assert hostile.value.field == "segment_id"


# -- every field and operator, at one instant ------------------------------------------------

T = moment(3, 11)


def ledger_for(request: pytest.FixtureRequest) -> Iterator[LedgerStore | None]:
    """None (SQLite, in the History's folder) or a store on a fresh PostgreSQL database: the
    story fixtures run once per backend, so segments compile right in both dialects."""
    if request.param == "sqlite":
        yield None
        return
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_ledger()
    store = PostgresLedgerStore(url)
    yield store
    store.close()
    cluster.drop_ledger(url)


def verify(store: LedgerStore) -> bool:
    return verify_ledger(getattr(store, "url", None) or store.path).clean  # type: ignore[attr-defined]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def snapshot_store(request: pytest.FixtureRequest) -> Iterator[LedgerStore | None]:
    yield from ledger_for(request)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def story_store(request: pytest.FixtureRequest) -> Iterator[LedgerStore | None]:
    yield from ledger_for(request)


@pytest.fixture(scope="module")
def snapshot(
    tmp_path_factory: pytest.TempPathFactory, snapshot_store: LedgerStore | None
) -> History:
    """Four customers whose fields at T (March 11th, noon) are, worked out by hand:

    |                       | ann    | bob     | cem  | dora |
    | days_since_last_order | 10     | 19      | -    | 5    |
    | days_since_signup     | 69     | 55      | 38   | 6    |
    | order_count           | 3      | 1       | 0    | 1    |
    | total_spend           | 12000  | 6000    | 0    | 1000 |
    | avg_basket            | 4000   | 6000    | -    | 1000 |
    | favourite_category    | shoes  | bags    | -    | toys |
    | consent email/sms/push| y/n/n  | n/y/n   | n/n/y| y/n/n|
    | attributes.city       | Berlin | Hamburg | -    | Koeln|

    erin signs up the day after T; a guest order buys shoes worth more than all of them.
    """
    h = History(tmp_path_factory.mktemp("snapshot"), snapshot_store)
    nick = "O'Brien\" OR 1=1 --"
    attributes = {"city": "Berlin", "tier": 3, "vip": True, "nick": nick, "a.b": "dotted"}
    h.signup("ann", moment(1, 1), consent={"email": True}, attributes=attributes)
    h.signup("bob", moment(1, 15), consent={"sms": True}, attributes={"city": "Hamburg", "tier": 1})
    h.order("a-1", "ann", moment(1, 10), ("shoes", 3000), ("socks", 1000))
    h.signup("cem", moment(2, 1), consent={"push": True})
    h.order("a-2", "ann", moment(2, 10), ("shoes", 6000))
    h.order("b-1", "bob", moment(2, 20), ("hats", 5000), ("bags", 5000))
    h.refund("b-1", moment(2, 25), 4000)
    h.order("a-3", "ann", moment(3, 1), ("socks", 2000))
    h.order("g-1", None, moment(3, 2), ("shoes", 99999))
    h.signup("dora", moment(3, 5), consent={"email": True}, attributes={"city": "Koeln"})
    h.order("d-1", "dora", moment(3, 6), ("toys", 1000))
    h.order("d-2", "dora", moment(3, 8), ("shoes", 5000))
    h.cancel("d-2", moment(3, 9))
    h.signup("erin", moment(3, 12), consent={"email": True}, attributes={"city": "Berlin"})
    h.order("e-1", "erin", moment(3, 12, 13), ("shoes", 9000))
    return h


CASES = [
    ("count ==", [rule("order_count", "==", 1)], ["bob", "dora"]),
    ("count !=", [rule("order_count", "!=", 1)], ["ann", "cem"]),
    ("count <", [rule("order_count", "<", 1)], ["cem"]),
    ("count <=", [rule("order_count", "<=", 1)], ["bob", "cem", "dora"]),
    ("count >", [rule("order_count", ">", 1)], ["ann"]),
    ("count >=", [rule("order_count", ">=", 1)], ["ann", "bob", "dora"]),
    ("count in", [rule("order_count", "in", [0, 3])], ["ann", "cem"]),
    ("count not_in", [rule("order_count", "not_in", [0, 3])], ["bob", "dora"]),
    ("spend is net of refunds", [rule("total_spend", "==", 6000)], ["bob"]),
    ("spend >=", [rule("total_spend", ">=", 6000)], ["ann", "bob"]),
    ("spend without the cancelled order", [rule("total_spend", "<", 1001)], ["cem", "dora"]),
    ("avg basket >", [rule("avg_basket", ">", 3000)], ["ann", "bob"]),
    ("avg basket ==", [rule("avg_basket", "==", 4000)], ["ann"]),
    ("avg basket <=", [rule("avg_basket", "<=", 1000.0)], ["dora"]),
    ("last order <=", [rule("days_since_last_order", "<=", 10)], ["ann", "dora"]),
    ("last order ==", [rule("days_since_last_order", "==", 19)], ["bob"]),
    ("last order <", [rule("days_since_last_order", "<", 9.5)], ["dora"]),
    ("last order in", [rule("days_since_last_order", "in", [5, 19])], ["bob", "dora"]),
    ("signup >=", [rule("days_since_signup", ">=", 55)], ["ann", "bob"]),
    ("signup <", [rule("days_since_signup", "<", 7)], ["dora"]),
    ("signup ==", [rule("days_since_signup", "==", 38)], ["cem"]),
    ("favourite by spend", [rule("favourite_category", "==", "shoes")], ["ann"]),
    ("favourite tie by name", [rule("favourite_category", "==", "bags")], ["bob"]),
    ("favourite not hats", [rule("favourite_category", "==", "hats")], []),
    ("favourite in", [rule("favourite_category", "in", ["toys", "bags"])], ["bob", "dora"]),
    ("favourite !=", [rule("favourite_category", "!=", "shoes")], ["bob", "dora"]),
    ("favourite not_in", [rule("favourite_category", "not_in", ["toys"])], ["ann", "bob"]),
    ("email ==", [rule("consent.email", "==", True)], ["ann", "dora"]),
    ("email !=", [rule("consent.email", "!=", True)], ["bob", "cem"]),
    ("sms ==", [rule("consent.sms", "==", True)], ["bob"]),
    ("push == false", [rule("consent.push", "==", False)], ["ann", "bob", "dora"]),
    ("city ==", [rule("attributes.city", "==", "Berlin")], ["ann"]),
    ("city in", [rule("attributes.city", "in", ["Berlin", "Hamburg"])], ["ann", "bob"]),
    ("city !=", [rule("attributes.city", "!=", "Berlin")], ["bob", "dora"]),
    ("city not_in", [rule("attributes.city", "not_in", ["Koeln"])], ["ann", "bob"]),
    ("tier >=", [rule("attributes.tier", ">=", 2)], ["ann"]),
    ("tier <", [rule("attributes.tier", "<", 2)], ["bob"]),
    ("vip flag", [rule("attributes.vip", "==", True)], ["ann"]),
    ("dotted name is one key", [rule("attributes.a.b", "==", "dotted")], ["ann"]),
    ("quotes compared literally", [rule("attributes.nick", "==", "O'Brien\" OR 1=1 --")], ["ann"]),
    ("injection is a plain string", [rule("attributes.nick", "==", "x' OR '1'='1")], []),
    (
        "injections in a list",
        [rule("attributes.city", "in", ["') OR 1=1 --", '"; DROP TABLE customers; --'])],
        [],
    ),
    ("number text is text", [rule("attributes.tier", "==", "3 OR 1=1")], []),
]


@pytest.mark.parametrize(
    ("number", "rules", "expected"),
    [(number, rules, expected) for number, (_, rules, expected) in enumerate(CASES)],
    ids=[name for name, _, _ in CASES],
)
def test_each_field_and_operator_selects_the_customers_worked_out_by_hand(
    snapshot: History, number: int, rules: list[dict[str, Any]], expected: list[str]
) -> None:
    segment_id = f"case-{number}"
    snapshot.engine.define_segment(segment_def(segment_id, *rules))

    members = snapshot.engine.segment_members(segment_id, at=T)

    assert members == expected
    assert members == snapshot.members(segment_def(segment_id, *rules), T)


def test_match_all_needs_every_rule_and_match_any_needs_one(snapshot: History) -> None:
    rules = (rule("consent.email", "==", True), rule("order_count", ">=", 2))
    snapshot.engine.define_segment(segment_def("both", *rules, match="all"))
    snapshot.engine.define_segment(segment_def("either", *rules, match="any"))

    both = snapshot.engine.segment_members("both", at=T)
    either = snapshot.engine.segment_members("either", at="2026-03-11T13:00:00+01:00")

    assert both == ["ann"]
    assert either == ["ann", "dora"]


def test_hostile_values_leave_the_ledger_as_it_was(snapshot: History) -> None:
    engine = snapshot.engine
    engine.define_segment(segment_def("everyone", rule("days_since_signup", ">=", 0)))
    engine.define_segment(
        segment_def(
            "hostile",
            rule("attributes.nick", "in", ["'; DELETE FROM customers; --", '" OR "1"="1']),
            rule("attributes.city", "==", "Berlin' --"),
            match="any",
        )
    )

    hostile = engine.segment_members("hostile", at=T)

    assert hostile == []
    assert engine.segment_members("everyone", at=T) == ["ann", "bob", "cem", "dora"]
    assert verify(engine.store)


def test_a_customer_who_signed_up_after_the_instant_is_in_no_segment_then(
    snapshot: History,
) -> None:
    engine = snapshot.engine
    engine.define_segment(segment_def("berlin-buyers", rule("attributes.city", "==", "Berlin")))

    at_t = engine.segment_members("berlin-buyers", at=T)
    a_day_later = engine.segment_members("berlin-buyers", at=moment(3, 13))

    assert at_t == ["ann"]
    assert a_day_later == ["ann", "erin"]


def test_the_snapshot_ledger_rebuilds_to_the_same_projection(snapshot: History) -> None:
    assert verify(snapshot.engine.store)


# -- evaluation at past instants ---------------------------------------------------------------

STORY_SEGMENTS = [
    segment_def("regulars", rule("order_count", ">=", 3)),
    segment_def("loyal", rule("order_count", ">=", 4)),
    segment_def("two-orders", rule("order_count", ">=", 2)),
    segment_def("big-spenders", rule("total_spend", ">=", 9000)),
    segment_def("recent", rule("days_since_last_order", "<=", 30)),
    segment_def("mailable", rule("consent.email", "==", True)),
    segment_def("berliners", rule("attributes.city", "==", "Berlin")),
    segment_def("shoe-people", rule("favourite_category", "==", "shoes")),
    segment_def("big-baskets", rule("avg_basket", ">=", 3000)),
    segment_def(
        "reachable-regulars",
        rule("consent.sms", "==", True),
        rule("order_count", ">=", 4),
        match="any",
    ),
]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, story_store: LedgerStore | None) -> History:
    """January to April 2026, every act at noon:

    ann   signs up Jan 1 (email consent, Berlin); orders Jan 10 (shoes 3000), Feb 10 (socks
          2000), Mar 10 (shoes 4000) and Apr 10 (socks 2500); 1500 of the March order is
          refunded Mar 20; withdraws email consent Apr 1; moves to Hamburg Apr 5.
    bob   signs up Jan 15 (sms consent, Hamburg); orders Feb 1 (socks 3000) and Feb 15 (shoes
          6000), the latter cancelled Mar 1; orders again Mar 15 (hats 1000).
    cem   signs up Feb 20 with nothing; grants email consent Mar 1; sets Berlin Mar 3.
    dora  signs up Apr 3 (email consent, Berlin) and orders Apr 4 (shoes 9000).
    A guest buys shoes for 99999 on Feb 5.
    """
    h = History(tmp_path_factory.mktemp("story"), story_store)
    h.signup("ann", moment(1, 1), consent={"email": True}, attributes={"city": "Berlin"})
    h.order("a-1", "ann", moment(1, 10), ("shoes", 3000))
    h.signup("bob", moment(1, 15), consent={"sms": True}, attributes={"city": "Hamburg"})
    h.order("b-1", "bob", moment(2, 1), ("socks", 3000))
    h.order("g-1", None, moment(2, 5), ("shoes", 99999))
    h.order("a-2", "ann", moment(2, 10), ("socks", 2000))
    h.order("b-2", "bob", moment(2, 15), ("shoes", 6000))
    h.signup("cem", moment(2, 20))
    h.cancel("b-2", moment(3, 1))
    h.consent("cem", "email", True, moment(3, 1))
    h.attributes("cem", {"city": "Berlin"}, moment(3, 3))
    h.order("a-3", "ann", moment(3, 10), ("shoes", 4000))
    h.order("b-3", "bob", moment(3, 15), ("hats", 1000))
    h.refund("a-3", moment(3, 20), 1500)
    h.consent("ann", "email", False, moment(4, 1))
    h.signup("dora", moment(4, 3), consent={"email": True}, attributes={"city": "Berlin"})
    h.order("d-1", "dora", moment(4, 4), ("shoes", 9000))
    h.attributes("ann", {"city": "Hamburg"}, moment(4, 5))
    h.order("a-4", "ann", moment(4, 10), ("socks", 2500))
    for definition in STORY_SEGMENTS:
        h.engine.define_segment(definition)
    return h


@pytest.mark.parametrize(
    ("segment_id", "when", "expected"),
    [
        ("regulars", moment(3, 9), []),
        ("regulars", moment(3, 10), ["ann"]),
        ("regulars", moment(3, 31), ["ann"]),
        ("loyal", moment(3, 31), []),
        ("loyal", moment(4, 11), ["ann"]),
        ("two-orders", moment(2, 16), ["ann", "bob"]),
        ("two-orders", moment(3, 1, 11), ["ann", "bob"]),
        ("two-orders", moment(3, 1), ["ann"]),
        ("two-orders", moment(3, 16), ["ann", "bob"]),
        ("big-spenders", moment(2, 16), ["bob"]),
        ("big-spenders", moment(3, 2), []),
        ("big-spenders", moment(3, 11), ["ann"]),
        ("big-spenders", moment(3, 21), []),
        ("big-spenders", moment(4, 11), ["ann", "dora"]),
        ("shoe-people", moment(2, 16), ["ann", "bob"]),
        ("shoe-people", moment(3, 2), ["ann"]),
        ("mailable", moment(1, 1, 11), []),
        ("mailable", moment(3, 2), ["ann", "cem"]),
        ("mailable", moment(4, 2), ["cem"]),
        ("mailable", moment(4, 4), ["cem", "dora"]),
        ("berliners", moment(2, 1), ["ann"]),
        ("berliners", moment(3, 4), ["ann", "cem"]),
        ("berliners", moment(4, 6), ["cem", "dora"]),
        ("recent", moment(2, 9), ["ann", "bob"]),
        ("recent", moment(3, 2), ["ann", "bob"]),
        ("recent", moment(3, 4), ["ann"]),
        ("recent", moment(4, 30), ["ann", "dora"]),
        ("reachable-regulars", moment(1, 14), []),
        ("reachable-regulars", moment(4, 11), ["ann", "bob"]),
    ],
)
def test_membership_at_a_past_instant_follows_what_had_happened_by_then(
    story: History, segment_id: str, when: datetime, expected: list[str]
) -> None:
    members = story.engine.segment_members(segment_id, at=when)

    assert members == expected


def test_membership_at_every_half_day_of_the_story_matches_the_model(story: History) -> None:
    instants = [moment(1, 1, 0) + timedelta(hours=12 * i) for i in range(2 * 125)]

    wrong = [
        (definition["id"], t.isoformat(), got, want)
        for definition in STORY_SEGMENTS
        for t in instants
        if (got := story.engine.segment_members(definition["id"], at=t))
        != (want := story.members(definition, t))
    ]

    assert wrong == []


def test_the_story_ledger_rebuilds_to_the_same_projection(story: History) -> None:
    assert verify(story.engine.store)


def test_changes_made_at_one_instant_are_decided_in_ledger_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_at(tmp_path)  # the clock stands still, as in one fast batch of changes
    # Every id minted in one millisecond, as on a fast machine or in one batch.
    monkeypatch.setattr(
        events_module, "time", SimpleNamespace(time_ns=lambda: 1_767_225_600_000_000_000)
    )
    customers = [f"c{i:02}" for i in range(20)]
    for customer_id in customers:
        engine.add_customer({"id": customer_id, "attributes": {"tier": "old"}})
        engine.set_consent(customer_id, "email", True)
        engine.set_consent(customer_id, "email", False)
        engine.update_customer(customer_id, {"attributes": {"tier": "new"}})
    engine.define_segment(segment_def("mailable", rule("consent.email", "==", True)))
    engine.define_segment(segment_def("new-tier", rule("attributes.tier", "==", "new")))

    mailable = engine.segment_members("mailable")
    new_tier = engine.segment_members("new-tier")

    assert [engine.customer(c).consent["email"] for c in customers] == [False] * 20
    assert mailable == []
    assert new_tier == customers
    assert verify_ledger(engine.store.path).clean


# -- definitions over time and campaigns -----------------------------------------------------


def test_redefining_a_segment_replaces_its_rules(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann", "attributes": {"city": "Berlin"}})
    engine.add_customer({"id": "bob", "attributes": {"city": "Hamburg"}})
    engine.record_order(order(5000, id="o-1"), customer_id="bob")
    engine.define_segment(segment_def("s", rule("attributes.city", "==", "Berlin")))
    first = engine.segment_members("s")

    engine.define_segment({"id": "s", "name": "Buyers", "rules": [rule("order_count", ">=", 1)]})

    assert first == ["ann"]
    assert engine.segment_members("s") == ["bob"]
    defined = events(engine, EventType.SEGMENT_DEFINED)
    assert [e.payload["definition"]["rules"] for e in defined] == [
        [rule("attributes.city", "==", "Berlin")],
        [rule("order_count", ">=", 1)],
    ]
    with engine.store.read() as tx:
        assert tx.segment_definition("s") == {
            "id": "s",
            "name": "Buyers",
            "match": "all",
            "rules": [rule("order_count", ">=", 1)],
        }
    assert verify_ledger(engine.store.path).clean


def test_a_campaign_for_a_rule_based_segment_follows_the_customers_history(
    tmp_path: Path,
) -> None:
    clock = Clock()
    engine = engine_at(tmp_path, clock)
    engine.define_segment(segment_def("loyal", rule("order_count", ">=", 2)))
    code = standalone(engine, rules={"segments": ["loyal"]})
    engine.add_customer({"id": "ann"})
    engine.add_customer({"id": "bob"})
    engine.record_order(order(3000, id="a-1"), customer_id="ann")
    engine.record_order(order(3000, id="a-2"), customer_id="ann")
    engine.record_order(order(3000, id="b-1"), customer_id="bob")
    clock.advance(days=1)

    member = engine.validate(code, order(), customer_id="ann")
    outsider = redeem(engine, code, order(id="b-2"), customer_id="bob")
    engine.record_order(order(3000, id="b-2"), customer_id="bob")
    joined = redeem(engine, code, order(id="b-3"), customer_id="bob")
    engine.cancel_order("a-2")
    left = engine.validate(code, order(), customer_id="ann")

    assert member.valid
    assert not outsider.ok
    assert codes(outsider) == {Code.CUSTOMER_NOT_IN_SEGMENT}
    assert joined.ok
    assert codes(left) == {Code.CUSTOMER_NOT_IN_SEGMENT}
    assert verify_ledger(engine.store.path).clean


def test_a_campaign_segment_is_judged_at_the_engines_now(tmp_path: Path) -> None:
    clock = Clock(moment(3, 1))
    engine = engine_at(tmp_path, clock)
    engine.define_segment(segment_def("lapsed", rule("days_since_last_order", ">=", 30)))
    code = standalone(engine, rules={"segments": ["lapsed"]})
    engine.add_customer({"id": "ann"})
    engine.record_order(order(3000, id="a-1"), customer_id="ann")
    clock.set(moment(3, 30))
    too_soon = engine.validate(code, order(), customer_id="ann")

    clock.set(moment(3, 31))

    assert codes(too_soon) == {Code.CUSTOMER_NOT_IN_SEGMENT}
    assert engine.validate(code, order(), customer_id="ann").valid
