"""What catalogue events do to the projection: products as last upserted and the merchant's
declared customer attributes (vouchers' own contents: vouchers.py)."""

from __future__ import annotations

from redemption_core.domain.events import Event
from redemption_core.domain.parsing import iso
from redemption_core.ledger.projection.base import ProjectionBase
from redemption_core.ledger.rows import dumps


class CatalogueProjection(ProjectionBase):
    def _product_upserted(self, event: Event) -> None:
        product = event.payload["product"]
        self._db.execute(
            "INSERT INTO products (product_id, name, category, brand, price, currency, collections,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (product_id) DO UPDATE SET"
            " name = excluded.name, category = excluded.category, brand = excluded.brand,"
            " price = excluded.price, currency = excluded.currency,"
            " collections = excluded.collections, updated_at = excluded.updated_at",
            (
                product["id"],
                product.get("name"),
                product.get("category"),
                product.get("brand"),
                product.get("price"),
                product.get("currency"),
                dumps(product.get("collections") or []),
                iso(event.occurred_at),
            ),
        )

    def _customer_attributes_declared(self, event: Event) -> None:
        declared = {**self.customer_attribute_types(), **event.payload["attributes"]}
        self._db.execute(
            "INSERT INTO settings (key, value) VALUES ('customer_attribute_types', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (dumps(dict(sorted(declared.items()))),),
        )
