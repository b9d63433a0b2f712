"""The engine's catalogue side: products upserted into the catalogue, and the merchant's
declaration of its customer attributes. Mixed into RedemptionEngine like the other operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from redemption_core.domain.catalogue import product_from_dict
from redemption_core.domain.customers import attribute_types_from_dict
from redemption_core.domain.errors import Conflict, InvalidInput
from redemption_core.domain.events import Event, EventType
from redemption_core.ledger.store import LedgerTransaction

MAX_PRODUCTS_PER_CALL = 1_000_000


class CatalogueOperations:
    """Requires of its host: now() and _transaction()."""

    now: Callable[[], datetime]
    _transaction: Callable[[], AbstractContextManager[LedgerTransaction]]

    def upsert_products(self, products: Sequence[Mapping[str, Any]]) -> int:
        """Add products to the catalogue or change them; returns how many events were written.

        All rows are checked before any is written (an error names the row and field), and they
        are written in one transaction. A row identical to what the catalogue holds writes
        nothing, so sending the whole catalogue again each night adds only what changed.
        """
        if isinstance(products, Mapping) or not isinstance(products, Sequence):
            raise InvalidInput("products", "must be a list of products")
        if not products:
            raise InvalidInput("products", "the list has no products")
        if len(products) > MAX_PRODUCTS_PER_CALL:
            raise InvalidInput("products", f"more than {MAX_PRODUCTS_PER_CALL} in one call")
        parsed = []
        seen: dict[str, int] = {}
        for number, row in enumerate(products, start=1):
            product = product_from_dict(row, f"products[{number - 1}]")
            if product.id in seen:
                raise InvalidInput(
                    f"products[{number - 1}].id", f"{product.id!r} repeats row {seen[product.id]}"
                )
            seen[product.id] = number
            parsed.append(product)
        written = 0
        with self._transaction() as tx:
            now = self.now()
            events = [
                Event(EventType.PRODUCT_UPSERTED, now, payload={"product": product.to_dict()})
                for product in parsed
                if tx.product(product.id) != product
            ]
            tx.append_many(events)
            written = len(events)
        return written

    def declare_customer_attributes(self, attributes: Mapping[str, Any]) -> dict[str, str]:
        """Declare how the customers' attributes are read (`{name: numeric | categorical}`),
        once per merchant: new names may be added later, a declared name keeps its type.
        Returns the whole declaration."""
        declared = attribute_types_from_dict(attributes)
        with self._transaction() as tx:
            current = tx.customer_attribute_types()
            for name, kind in declared.items():
                if current.get(name, kind) != kind:
                    raise Conflict(
                        f"attributes.{name}",
                        f"already declared {current[name]}; a declared attribute keeps its type",
                    )
            fresh = {name: kind for name, kind in declared.items() if name not in current}
            if fresh:
                tx.append(
                    Event(
                        EventType.CUSTOMER_ATTRIBUTES_DECLARED,
                        self.now(),
                        payload={"attributes": fresh},
                    )
                )
            return dict(sorted({**current, **fresh}.items()))
