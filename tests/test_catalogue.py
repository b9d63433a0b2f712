"""The product catalogue and what a voucher offers: products upserted through the engine and
through `promo import`, a campaign's `applies_to` by brand or collection matched through the
catalogue, a voucher's own `applies_to` honoured at redemption, and the merchant's declaration
of its customer attributes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import NOW, Clock, engine_at, item, order, unique_def
from test_cli import Promo

from redemption_core.domain.errors import Conflict, InvalidInput
from redemption_core.domain.events import Event, EventType
from redemption_core.domain.hashing import ContextHasher
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine
from redemption_core.imports.ledger_schema import ImportRefused, events_to_rows, import_events
from redemption_core.ledger.store import LedgerStore
from redemption_core.ledger.verify import verify_ledger

MENU = [
    {"id": "margherita", "name": "Margherita", "category": "pizza", "brand": "casa",
     "price": 950, "currency": "EUR", "collections": ["classics"]},
    {"id": "diavola", "category": "pizza", "brand": "fuoco", "price": 1150, "currency": "EUR"},
    {"id": "caprese", "category": "salad", "brand": "casa", "price": 790, "currency": "EUR",
     "collections": ["classics", "light"]},
]  # fmt: skip


@pytest.fixture
def engine(
    tmp_path: Path, ledger_store: Callable[[Path], LedgerStore]
) -> Iterator[RedemptionEngine]:
    """An engine with the menu in its catalogue, once on each ledger backend."""
    store = ledger_store(tmp_path)
    with RedemptionEngine(store, ContextHasher(b"k" * 32), clock=Clock(NOW)) as opened:
        opened.upsert_products(MENU)
        yield opened


def verified(engine: RedemptionEngine) -> bool:
    """`promo ledger verify` finds the engine's ledger clean, SQLite file or PostgreSQL."""
    return verify_ledger(getattr(engine.store, "url", None) or engine.store.path).clean  # type: ignore[attr-defined]


def percent_campaign(engine: RedemptionEngine, applies_to: Any, campaign_id: str = "p20") -> None:
    engine.create_from_definition(
        unique_def(
            id=campaign_id,
            discount={"type": "percent", "percent_off": 20, "applies_to": applies_to},
        )
    )


def code_for(
    engine: RedemptionEngine, campaign_id: str, applies_to: dict | None = None, holder: str = "ann"
) -> str:
    (code,) = engine.generate_codes(campaign_id, 1, applies_to=applies_to)
    engine.publish(code, holder)
    return code


def redeem(engine: RedemptionEngine, code: str, *lines: Any) -> int:
    result = engine.redeem(RedeemRequest(code, order(items=lines), customer_id="ann"))
    return result.discount if result.ok else -1


# -- the catalogue -----------------------------------------------------------------------------


def test_upserted_products_are_in_the_catalogue_and_an_unchanged_one_writes_nothing(
    engine: RedemptionEngine,
) -> None:
    changed = {**MENU[1], "price": 1250}

    written = engine.upsert_products([MENU[0], changed, MENU[2]])

    assert written == 1
    with engine.store.read() as tx:
        assert tx.product("diavola").price == 1250  # type: ignore[union-attr]
        assert tx.product("caprese").collections == frozenset({"classics", "light"})  # type: ignore[union-attr]
        assert tx.product("tiramisu") is None
    assert verified(engine)


@pytest.mark.parametrize(
    ("product", "field"),
    [
        ({"id": "x", "price": 100}, "products[1].currency"),
        ({"id": "x", "price": -1, "currency": "EUR"}, "products[1].price"),
        ({"id": "x y"}, "products[1].id"),
        ({"id": "x", "colour": "red"}, "products[1].colour"),
        ({"id": "x", "collections": "classics"}, "products[1].collections"),
        ({"id": "x", "brand": ""}, "products[1].brand"),
    ],
)
def test_a_bad_product_is_refused_naming_its_field_and_nothing_is_written(
    tmp_path: Path, product: dict[str, Any], field: str
) -> None:
    with engine_at(tmp_path) as engine:
        with pytest.raises(InvalidInput) as refused:
            engine.upsert_products([MENU[0], product])

        assert refused.value.field == field
        with engine.store.read() as tx:
            assert tx.product("margherita") is None


def test_the_same_product_twice_in_one_call_is_refused_naming_the_row(
    engine: RedemptionEngine,
) -> None:
    with pytest.raises(InvalidInput, match="repeats row 1"):
        engine.upsert_products([MENU[0], MENU[0]])


# -- what a voucher applies to ------------------------------------------------------------------


def test_a_discount_by_brand_or_collection_finds_the_items_through_the_catalogue(
    engine: RedemptionEngine,
) -> None:
    percent_campaign(engine, {"brands": ["casa"]}, "casa")
    percent_campaign(engine, {"collections": ["light"]}, "light")
    lines = (item("margherita", 1000), item("diavola", 1000), item("caprese", 500))

    by_brand = redeem(engine, code_for(engine, "casa"), *lines)
    by_collection = redeem(engine, code_for(engine, "light"), *lines)

    assert by_brand == 300  # 20% of margherita and caprese
    assert by_collection == 100  # 20% of caprese


def test_an_item_that_states_its_category_is_matched_by_it_before_the_catalogues(
    engine: RedemptionEngine,
) -> None:
    percent_campaign(engine, {"categories": ["salad"]})

    discount = redeem(engine, code_for(engine, "p20"), item("margherita", 1000, category="salad"))

    assert discount == 200


def test_a_vouchers_own_contents_replace_its_campaigns_at_redemption(
    engine: RedemptionEngine,
) -> None:
    percent_campaign(engine, {"categories": ["pizza"]})
    lines = (item("margherita", 1000), item("caprese", 500))

    campaigns = redeem(engine, code_for(engine, "p20"), *lines)
    own = redeem(engine, code_for(engine, "p20", {"products": ["caprese"]}), *lines)
    nothing = engine.redeem(
        RedeemRequest(
            code_for(engine, "p20", {"brands": ["fuoco"]}), order(items=lines), customer_id="ann"
        )
    )

    assert campaigns == 200
    assert own == 100
    assert not nothing.ok and nothing.reasons[0].code == "no_applicable_items"
    assert verified(engine)


def test_a_voucher_cannot_have_contents_where_the_campaign_discounts_no_items(
    engine: RedemptionEngine,
) -> None:
    engine.create_from_definition(
        unique_def(id="dessert", discount={"type": "free_item", "product": "tiramisu"})
    )

    with pytest.raises(InvalidInput, match="free item"):
        engine.generate_codes("dessert", 1, applies_to={"products": ["caprese"]})
    with pytest.raises(InvalidInput, match="applies_to"):
        percent_campaign(engine, {"products": []})


# -- customer attributes ------------------------------------------------------------------------


def test_customer_attributes_are_declared_once_and_a_declared_one_keeps_its_type(
    engine: RedemptionEngine,
) -> None:
    first = engine.declare_customer_attributes({"age": "numeric", "tier": "categorical"})
    more = engine.declare_customer_attributes({"age": "numeric", "city": "categorical"})

    with pytest.raises(Conflict) as changed:
        engine.declare_customer_attributes({"age": "categorical"})

    assert first == {"age": "numeric", "tier": "categorical"}
    assert more == {"age": "numeric", "city": "categorical", "tier": "categorical"}
    assert changed.value.field == "attributes.age"
    with engine.store.read() as tx:
        assert tx.customer_attribute_types() == more


@pytest.mark.parametrize("declaration", [{}, {"age": "ordinal"}, {"bad name": "numeric"}])
def test_a_declaration_that_is_neither_numeric_nor_categorical_is_refused(
    engine: RedemptionEngine, declaration: dict[str, str]
) -> None:
    with pytest.raises(InvalidInput):
        engine.declare_customer_attributes(declaration)


# -- promo import -------------------------------------------------------------------------------


def catalogue_events() -> list[Event]:
    definition = {**unique_def(id="booklet"), "discount": {
        "type": "unspecified", "applies_to": {"collections": ["c1", "c2"]}}}  # fmt: skip
    return [
        Event(EventType.CUSTOMER_ATTRIBUTES_DECLARED, NOW, {"attributes": {"age": "numeric"}},
              event_id="e-declared"),
        Event(EventType.PRODUCT_UPSERTED, NOW, {"product": {"id": "p1", "collections": ["c1"]}},
              event_id="e-p1"),
        Event(EventType.CAMPAIGN_CREATED, NOW, {"definition": definition},
              campaign_id="booklet", event_id="e-campaign"),
        Event(EventType.VOUCHER_CREATED, NOW, {"code": "BK-1", "kind": "unique",
              "applies_to": {"collections": ["c2"]}}, campaign_id="booklet", voucher_id="v1",
              event_id="e-voucher"),
    ]  # fmt: skip


def test_promo_import_takes_products_declarations_and_a_vouchers_own_contents(
    tmp_path: Path,
) -> None:
    with engine_at(tmp_path) as engine:
        report = import_events(engine, events_to_rows(catalogue_events()))

        assert report.imported == 4
        with engine.store.read() as tx:
            assert tx.product("p1").collections == frozenset({"c1"})  # type: ignore[union-attr]
            assert tx.customer_attribute_types() == {"age": "numeric"}
            voucher = tx.voucher_by_code("BK-1")
            assert voucher is not None and voucher.applies_to is not None
            assert voucher.applies_to.collections == frozenset({"c2"})
    assert verify_ledger(tmp_path / "ledger.sqlite").clean


@pytest.mark.parametrize(
    ("change", "row", "field"),
    [
        (lambda e: e[1].payload["product"].update(price=5), 2, "payload.product.currency"),
        (lambda e: e[0].payload["attributes"].update(age="date"), 1, "payload.attributes.age"),
        (lambda e: e[3].payload["applies_to"].update(sizes=["L"]), 4, "payload.applies_to.sizes"),
    ],
)
def test_promo_import_refuses_a_bad_catalogue_row_naming_it_and_writes_nothing(
    tmp_path: Path, change: Any, row: int, field: str
) -> None:
    events = catalogue_events()
    change(events)

    with engine_at(tmp_path) as engine:
        with pytest.raises(ImportRefused) as refused:
            import_events(engine, events_to_rows(events))

        assert (refused.value.errors[0].row, refused.value.errors[0].field) == (row, field)
        with engine.store.read() as tx:
            assert tx.product("p1") is None


def test_promo_import_refuses_what_the_engine_refuses_of_declarations_and_contents(
    tmp_path: Path,
) -> None:
    with engine_at(tmp_path) as engine:
        engine.declare_customer_attributes({"age": "categorical"})
        engine.create_from_definition(
            unique_def(id="dessert", discount={"type": "free_item", "product": "tiramisu"})
        )
        events = catalogue_events()
        events.append(
            Event(
                EventType.VOUCHER_CREATED,
                NOW,
                {"code": "DS-1", "kind": "unique", "applies_to": {"products": ["p1"]}},
                campaign_id="dessert",
                voucher_id="v2",
                event_id="e-dessert",
            )
        )

        with pytest.raises(ImportRefused) as refused:
            import_events(engine, events_to_rows(events))

        found = {(e.row, e.field) for e in refused.value.errors}
        assert found == {(1, "payload.attributes.age"), (5, "payload.applies_to")}


# -- promo catalogue, promo attributes, promo codes --applies-to --------------------------------


def test_the_cli_upserts_and_shows_products_declares_attributes_and_gives_codes_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMO_HOME", str(tmp_path / "home"))
    promo = Promo(capsys)
    (tmp_path / "menu.json").write_text(json.dumps({"products": MENU}))
    (tmp_path / "p20.json").write_text(json.dumps(unique_def(
        id="p20", discount={"type": "percent", "percent_off": 20,
                            "applies_to": {"categories": ["pizza"]}})))  # fmt: skip

    upserted = promo.ok("catalogue", "upsert", tmp_path / "menu.json").out.strip()
    again = promo.ok("catalogue", "upsert", tmp_path / "menu.json").out.strip()
    shown = promo.ok("--json", "catalogue", "show", "caprese").json
    declared = promo.ok("--json", "attributes", "age=numeric", "tier=categorical").json
    changed = promo("attributes", "age=categorical")
    promo.ok("campaign", "create", tmp_path / "p20.json")
    code = promo.ok("--json", "codes", "generate", "--campaign", "p20", "--count", "1",
                    "--applies-to", '{"brands": ["casa"]}').json["codes"][0]  # fmt: skip
    bad = promo("codes", "generate", "--campaign", "p20", "--count", "1", "--applies-to", "{x")

    assert (upserted, again) == (
        "3 of 3 products added or changed",
        "0 of 3 products added or changed",
    )
    assert shown == {**MENU[2], "collections": ["classics", "light"]}
    assert declared == {"age": "numeric", "tier": "categorical"}
    assert changed.code == 2 and "attributes.age" in changed.err
    assert bad.code == 2 and "--applies-to" in bad.err
    with engine_at(tmp_path / "home") as engine, engine.store.read() as tx:
        voucher = tx.voucher_by_code(code)
        assert voucher is not None and voucher.applies_to.brands == frozenset({"casa"})  # type: ignore[union-attr]
