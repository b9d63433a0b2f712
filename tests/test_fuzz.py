"""Fuzzing validate and redeem with arbitrary JSON-ish input and junk passed to constructors.

The property: whatever a checkout sends, the core answers with a result or refuses with a
PromoError that names the field to fix; it never raises anything else. A call records at most
its own event (validate: one voucher_validated, plus a hold when it made one; redeem: one
redemption_succeeded or redemption_rejected, none when replayed), and a refusal records
nothing at all. The ledger still verifies clean after all of it.

One engine on one ledger serves the whole module, so state builds up between examples the way
it does in production; the last test checks that ledger.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import event_counts, order, read_only, standalone_def

from redemption_core.domain.errors import IdempotencyKeyReused, InvalidInput, PromoError
from redemption_core.domain.orders import (
    Order,
    OrderItem,
    RequestContext,
    context_from_dict,
    order_from_dict,
)
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine
from redemption_core.ledger.home import ledger_path
from redemption_core.ledger.verify import verify_ledger

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
GIFT_CODE = "GIFT-0001"
VALID_CODES = ["SAVE10", "PCT15", "ONCE", GIFT_CODE]
ITEM_FIELDS = ("product_id", "quantity", "unit_price", "category")
# What a fuzzing run reached, so the last test can tell it got past the parsers.
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedemptionEngine]:
    home = tmp_path_factory.mktemp("fuzz")
    engine = RedemptionEngine.open(home)
    engine.create_from_definition(standalone_def("amount", "SAVE10", rules={"min_order_amount": 1}))
    percent = standalone_def("percent", "PCT15", currency="USD")
    percent["discount"] = {"type": "percent", "percent_off": 15, "max_discount": 5000}
    engine.create_from_definition(percent)
    engine.create_from_definition(standalone_def("once", "ONCE", limits={"per_voucher": 1}))
    engine.create_from_definition(
        {
            "id": "gift",
            "currency": "EUR",
            "status": "active",
            "voucher": {"kind": "gift", "gift_balance": 10**9},
            "rules": {"holder_only": False},
        }
    )
    engine.import_codes("gift", [{"code": GIFT_CODE}])
    yield engine
    engine.close()


# -- strategies --------------------------------------------------------------------------------
def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Draw from each strategy in proportion to its weight (st.one_of cannot weight: it
    drops repeated branches)."""
    return st.sampled_from(
        [strategy for weight, strategy in choices for _ in range(weight)]
    ).flatmap(lambda strategy: strategy)


def mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int = 4
) -> st.SearchStrategy[Any]:
    """`good` `odds` times for each `bad`: junk in every field at once would never get past the
    parsers to the rules."""
    return weighted((odds, good), (1, bad))


ODD_STRINGS = [
    "", " ", "\t", "\n", "\x00", "\x1b[2J", "\ud800", "\udfff", "\u202e", "\ufeff", "é", "ß",
    "İ", "🎟️", "\uff33\uff21\uff36\uff25\uff11\uff10", "SAVE10\x00", "save10\n", "alice\n",
    "A" * 65, "x" * 129, "NaN", "-1", "1e3", "5000", "null", "EUR ", "eur", "XXX", "{}", "[]",
    "' OR 1=1 --",
]  # fmt: skip
junk_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=24), st.sampled_from(ODD_STRINGS)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    junk_text,
)
json_ish = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(junk_text, inner, max_size=4),
    max_leaves=12,
)
ids = st.one_of(
    st.sampled_from(["alice", "bob", "p-1", "shoes", "c_9", "a" * 128]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,20}", fullmatch=True),
)
junk = st.one_of(junk_text, json_ish)
# Values for a known field that are wrong in kind or size.
bad_amounts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1, 10**13 + 1, 2**63, 2**64, 10**30, 1.0, 0.5, True, False, "5000", None]),
    st.integers(max_value=-1),
    st.integers(min_value=10**13 + 1),
    junk,
)
bad_quantities = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=100_001),
    st.sampled_from([1.5, 2.0, True, "2", None]),
    junk,
)
bad_currencies = st.one_of(
    st.sampled_from(["eur", "XXX", "EURO", "", "€", "EUR ", None, 978]), junk
)
bad_ids = st.one_of(
    st.sampled_from(["", " ", "a b", "alice\n", "\nalice", "x" * 129, "é", "-a", "a/b"]),
    st.integers(),
    junk,
)

good_items = st.fixed_dictionaries(
    {"product_id": ids, "quantity": st.integers(1, 5), "unit_price": st.integers(0, 5000)},
    optional={"category": ids},
)


@st.composite
def good_orders(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed order: its amount covers its lines."""
    lines = draw(st.lists(good_items, max_size=3))
    total = sum(line["quantity"] * line["unit_price"] for line in lines)
    order = {
        "amount": total + draw(st.integers(0, 100_000)),
        "currency": draw(st.sampled_from(["EUR", "EUR", "EUR", "USD", "JPY"])),
    }
    if lines:
        order["items"] = lines
    if draw(st.booleans()):
        order["id"] = draw(ids)
    return order


# Absurd sizes are built once: generating them example by example would only slow the run.
MANY_LINES = [{"product_id": f"p{i}", "quantity": 1, "unit_price": 1} for i in range(10_000)]
MOST_LINES = [{"product_id": f"p{i}", "quantity": 2, "unit_price": 3} for i in range(500)]
item_faults = st.one_of(
    st.tuples(st.just("product_id"), bad_ids),
    st.tuples(st.just("category"), bad_ids),
    st.tuples(st.just("quantity"), bad_quantities),
    st.tuples(st.just("unit_price"), bad_amounts),
    st.tuples(st.just("discount"), junk),  # an unknown field
    st.tuples(st.just(None), junk),  # the whole line
)


def with_one_fault(order: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The order with exactly one thing wrong: one fault at a time reaches every check."""
    faults = [
        bad_amounts.map(lambda value: {**order, "amount": value}),
        bad_currencies.map(lambda value: {**order, "currency": value}),
        bad_ids.map(lambda value: {**order, "id": value}),
        st.sampled_from(["amount", "currency"]).map(
            lambda gone: {key: value for key, value in order.items() if key != gone}
        ),
        junk.map(lambda value: {**order, "coupon": value}),  # an unknown field
        st.sampled_from([MANY_LINES, [*MOST_LINES, MOST_LINES[0]], "p1", {"0": {}}]).map(
            lambda items: {**order, "items": items}
        ),
    ]
    lines = order.get("items") or []
    if lines:

        def spoil(where: int, fault: tuple[str | None, Any]) -> dict[str, Any]:
            field, value = fault
            spoilt = value if field is None else {**lines[where], field: value}
            return {**order, "items": [*lines[:where], spoilt, *lines[where + 1 :]]}

        faults.append(st.builds(spoil, st.integers(0, len(lines) - 1), item_faults))
    return st.one_of(faults)


order_dicts = weighted(
    (4, good_orders()),
    (3, good_orders().flatmap(with_one_fault)),
    (1, st.just({"currency": "EUR", "items": MOST_LINES})),  # the most lines an order may have
    (1, junk),
)
# ("json", data): order_from_dict(data); ("direct", data, container): the constructors.
order_specs = st.one_of(
    st.tuples(st.just("json"), order_dicts),
    st.tuples(
        st.just("direct"),
        weighted((4, good_orders()), (3, good_orders().flatmap(with_one_fault))),
        st.sampled_from(["tuple", "tuple", "tuple", "list", "junk", "many"]),
    ),
)
ips = mostly(
    st.one_of(
        st.sampled_from(["203.0.113.7", "::1", "::ffff:1.2.3.4", "fe80::1%eth0"]),
        st.ip_addresses().map(str),
    ),
    st.one_of(st.sampled_from(["fe80::1%\ud800", "1.2.3.4\n", "999.1.1.1", "x" * 65]), junk),
)
context_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "device_id": mostly(ids, st.one_of(junk, st.just("d" * 257))),
        "ip": ips,
        "payment_fingerprint": mostly(ids, junk),
        "store_id": mostly(ids, junk),
        "staff_id": mostly(ids, junk),
        "sales_channel": mostly(ids, junk),
    },
)
# None: no context; ("json", data); ("direct", kwargs); ("object", junk): not a RequestContext.
context_specs = mostly(
    st.one_of(
        st.none(),
        st.tuples(st.just("json"), context_kwargs),
        st.tuples(st.just("direct"), context_kwargs),
    ),
    st.one_of(st.tuples(st.just("json"), junk), st.tuples(st.just("object"), junk)),
)
codes = mostly(
    st.one_of(
        st.sampled_from(VALID_CODES),
        st.sampled_from(VALID_CODES).map(lambda code: f"  {code.lower()}\t"),
        st.from_regex(r"[A-Z0-9][A-Z0-9_-]{0,12}", fullmatch=True),  # well-formed, unknown
    ),
    junk,
)
customers = mostly(st.one_of(st.none(), ids), junk)
keys = mostly(st.one_of(st.none(), st.none(), st.sampled_from(["key-1", "key-2", "key-3"])), junk)
sessions = mostly(st.none(), st.one_of(ids, junk))
holds = mostly(st.none(), st.one_of(st.integers(-5, 4000), junk))
gift_amounts = mostly(st.none(), st.one_of(st.integers(-5, 10**6), bad_amounts))


def build_order(spec: tuple[Any, ...]) -> Order:
    """Build the order a spec describes; any refusal comes from the core's own checks."""
    if spec[0] == "json":
        return order_from_dict(spec[1])
    _, data, container = spec
    lines: Any = data.get("items", [])
    if isinstance(lines, list):
        lines = [
            OrderItem(**{name: line.get(name) for name in ITEM_FIELDS})
            if isinstance(line, dict)
            else line  # junk where an OrderItem belongs
            for line in lines
        ]
        if container == "tuple":
            lines = tuple(lines)
        elif container == "junk":
            lines = {"lines": lines}
        elif container == "many":
            lines = (OrderItem("p", 1, 1),) * 10_000
    return Order(
        amount=data.get("amount"), currency=data.get("currency"), items=lines, id=data.get("id")
    )


def build_context(spec: tuple[str, Any] | None) -> Any:
    if spec is None:
        return None
    kind, data = spec
    if kind == "json":
        return context_from_dict(data)
    if kind == "direct":
        return RequestContext(**data)
    return data  # not a RequestContext at all


def counts(engine: RedemptionEngine) -> Counter[str]:
    rows = engine.store.connection.execute("SELECT event_type, count(*) FROM events GROUP BY 1")
    return Counter(dict(rows.fetchall()))


def assert_names_a_field(error: PromoError) -> None:
    field = getattr(error, "field", None)
    assert isinstance(field, str) and field, f"{type(error).__name__} names no field: {error}"


# -- properties --------------------------------------------------------------------------------
@FUZZ
@given(
    code=codes,
    order_spec=order_specs,
    customer_id=customers,
    context_spec=context_specs,
    hold_seconds=holds,
)
def test_validating_arbitrary_input_either_answers_with_one_event_or_refuses_naming_a_field(
    engine: RedemptionEngine,
    code: Any,
    order_spec: tuple[Any, ...],
    customer_id: Any,
    context_spec: Any,
    hold_seconds: Any,
) -> None:
    engine.flush()
    before = counts(engine)

    try:
        result = engine.validate(
            code,
            build_order(order_spec),
            customer_id=customer_id,
            context=build_context(context_spec),
            hold_seconds=hold_seconds,
        )
    except PromoError as error:
        assert_names_a_field(error)
        engine.flush()
        assert counts(engine) == before, "a refused validation recorded something"
        OUTCOMES["validate refused"] += 1
        return
    engine.flush()

    expected = Counter({"voucher_validated": 1})
    if result.session_id is not None:
        expected["validation_hold_created"] = 1
    added = counts(engine) - before
    backoffs = added.pop("guessing_backoff_started", 0)
    assert backoffs == 0 or "resource_not_found" in [str(r.code) for r in result.reasons]
    assert added == expected
    OUTCOMES["validate valid" if result.valid else "validate invalid"] += 1


@FUZZ
@given(
    code=codes,
    order_spec=order_specs,
    customer_id=customers,
    context_spec=context_specs,
    key=keys,
    session_id=sessions,
    gift_amount=gift_amounts,
)
def test_redeeming_arbitrary_input_either_answers_with_one_event_or_refuses_naming_a_field(
    engine: RedemptionEngine,
    code: Any,
    order_spec: tuple[Any, ...],
    customer_id: Any,
    context_spec: Any,
    key: Any,
    session_id: Any,
    gift_amount: Any,
) -> None:
    engine.flush()
    before = counts(engine)

    try:
        context = build_context(context_spec)
        request = RedeemRequest(
            code,
            build_order(order_spec),
            customer_id=customer_id,
            idempotency_key=key,
            session_id=session_id,
            gift_amount=gift_amount,
            **({} if context is None else {"context": context}),
        )
        result = engine.redeem(request)
    except PromoError as error:
        assert_names_a_field(error)
        assert counts(engine) == before, "a refused redemption recorded something"
        OUTCOMES["redeem key reused" if isinstance(error, IdempotencyKeyReused) else "refused"] += 1
        return

    added = counts(engine) - before
    # The guard (the engine is opened on a home) may start a back-off on a miss: one more event.
    backoffs = added.pop("guessing_backoff_started", 0)
    assert backoffs == 0 or "resource_not_found" in [str(r.code) for r in result.reasons]
    if result.replayed:
        assert added == Counter()
    else:
        kind = "redemption_succeeded" if result.ok else "redemption_rejected"
        assert added == Counter({kind: 1})
    assert result.discount >= 0 and result.gift_amount >= 0
    assert result.amount_to_pay >= 0
    OUTCOMES["redeem ok" if result.ok else "redeem rejected"] += 1


@FUZZ
@given(order_spec=order_specs, context_spec=context_specs)
def test_constructors_given_junk_build_a_sound_value_or_refuse_naming_a_field(
    order_spec: tuple[Any, ...], context_spec: Any
) -> None:
    try:
        built = build_order(order_spec)
        build_context(context_spec)
    except PromoError as error:
        assert_names_a_field(error)
        return

    assert isinstance(built.amount, int) and not isinstance(built.amount, bool)
    assert 0 <= built.amount <= 10**13
    assert sum(item.total for item in built.items) <= built.amount
    json.dumps(built.to_dict(), allow_nan=False)


# -- single cases from the same input space, pinned --------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [
        ("device_id", "\ud800"),
        ("payment_fingerprint", "card-\udc80"),
        ("ip", "fe80::1%\ud800"),
    ],
)
def test_a_lone_surrogate_in_the_request_context_is_answered_or_refused_naming_the_field(
    engine: RedemptionEngine, field: str, value: str
) -> None:
    # JSON can carry a lone surrogate ("\ud800" is a valid JSON escape), so a checkout can send
    # one; the answer must be a result or an InvalidInput, never a UnicodeEncodeError.
    assert json.loads(json.dumps(value)) == value
    engine.flush()
    before = counts(engine)

    try:
        context = RequestContext(**{field: value})
        engine.validate("SAVE10", order(), context=context)
        engine.redeem(RedeemRequest("SAVE10", order(), context=context))
    except InvalidInput as error:
        assert field in error.field
        engine.flush()
        assert counts(engine) == before


def test_a_per_customer_limit_cannot_be_dodged_with_a_trailing_newline_in_the_customer_id(
    tmp_path: Path,
) -> None:
    with RedemptionEngine.open(tmp_path) as engine:
        engine.create_from_definition(
            standalone_def("limited", "LIMITED", limits={"per_customer": 1})
        )
        assert engine.redeem(RedeemRequest("LIMITED", order(), customer_id="alice")).ok

        try:
            second = engine.redeem(RedeemRequest("LIMITED", order(), customer_id="alice\n"))
        except InvalidInput as error:
            assert error.field == "customer_id"
        else:
            assert not second.ok, "'alice\\n' redeemed again past alice's limit of one"


def test_a_redeem_refused_as_invalid_input_keeps_the_validations_buffered_before_it(
    tmp_path: Path,
) -> None:
    # InvalidInput means "nothing was recorded"; it must not un-record earlier validations
    # that were waiting in the buffer for the next write.
    engine = RedemptionEngine.open(tmp_path, validation_buffer=1000, validation_max_age_s=3600)
    engine.create_from_definition(standalone_def("amount", "SAVE10"))
    engine.validate("SAVE10", order(), customer_id="alice")

    with pytest.raises(InvalidInput) as refused:
        engine.redeem(RedeemRequest("SAVE10", order(), gift_amount=100))
    engine.close()

    assert refused.value.field == "gift_amount"
    assert event_counts(ledger_path(tmp_path))["voucher_validated"] == 1


def test_the_fuzzed_ledger_holds_only_whole_rows_and_verifies_clean(
    engine: RedemptionEngine,
) -> None:
    engine.flush()
    path = Path(engine.store.path)

    db = read_only(path)
    payloads = [row[0] for row in db.execute("SELECT payload FROM events")]
    db.close()
    report = verify_ledger(path)

    assert all(isinstance(json.loads(payload), dict) for payload in payloads)
    assert report.clean, report.differences
    assert report.events == len(payloads)
    if OUTCOMES:  # the properties ran first: they reached the rules, not only the parsers
        assert OUTCOMES["validate valid"] and OUTCOMES["redeem ok"], OUTCOMES
        assert OUTCOMES["redeem rejected"] and OUTCOMES["validate refused"], OUTCOMES
