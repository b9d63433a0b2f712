"""The simulated restaurant: its menu and stores, its customers' habits (personas), and the
campaigns it runs: a win-back autopilot and a celebration autopilot, monthly VIP thank-you
promotions, a new-dish trial, a slow-night filler with a short validity, a welcome code for new
customers, flyer codes, a happy-hour code. Win-back and VIP hold out a control group."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.simulate.config import SimulationConfig

MENU = (
    ("margherita", "pizza", 950), ("diavola", "pizza", 1150), ("funghi", "pizza", 1050),
    ("carbonara", "pasta", 1250), ("lasagna", "pasta", 1350), ("pesto", "pasta", 1150),
    ("caesar", "salad", 890), ("caprese", "salad", 790), ("tiramisu", "dessert", 650),
    ("panna-cotta", "dessert", 590), ("lemonade", "drinks", 390), ("espresso", "drinks", 250),
)  # fmt: skip
NEW_DISH = ("truffle-pasta", "pasta", 1690)
CATEGORIES = sorted({category for _, category, _ in MENU})
MENU_WITH_NEW_DISH = (*MENU, NEW_DISH)
# Each favourite's dishes, chosen from for every other item of every order: built once.
FAVOURITES = {c: tuple(m for m in MENU if m[1] == c) for c in CATEGORIES}
FAVOURITES_WITH_NEW_DISH = {
    c: tuple(m for m in MENU_WITH_NEW_DISH if m[1] == c) for c in CATEGORIES
}
SLOTS = ((12, 0.35), (13, 0.15), (18, 0.15), (19, 0.25), (20, 0.10))  # hour, share of orders
ACCEPT_BY_CHANNEL = {"push": 0.55, "email": 0.35, "sms": 0.45}
STORES = ("store-mitte", "store-kreuzberg", "store-prenzlauer")


@dataclass
class Persona:
    customer_id: str
    signup_day: int
    every_days: float  # mean days between orders
    basket: float  # mean items per order
    favourite: str
    responsive: float  # how much an offer changes this customer (0..1)
    quits_on: int | None  # the day this customer stops ordering (goes quiet)
    device: str
    payment: str
    ip: str
    store: str
    holding: dict[str, tuple[int, bool]] = field(default_factory=dict)  # code -> (day, accepted)
    orders: int = 0

    def accepted_offer(self) -> str | None:
        """The first accepted code held, if any."""
        return next((code for code, (_, accepted) in self.holding.items() if accepted), None)


def campaign_definitions(config: SimulationConfig, days: int) -> list[dict[str, Any]]:
    start, end = config.start, config.start + timedelta(days=days + 30)
    window = {"active_from": p.iso(start - timedelta(days=1)), "active_until": p.iso(end)}
    definitions: list[dict[str, Any]] = [
        {
            "id": "winback", "name": "Win-back", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "unique", "code_config": {"prefix": "WB-"}},
            "discount": {"type": "amount", "amount_off": 500},
            "rules": {"min_order_amount": 1500, "acceptance_required": True, "valid_days_after_publication": 14},
            "distribution": {"mode": "autopilot", "channels": ["push", "email", "sms"], "control_share": 0.15,
                             "trigger": {"type": "gone_quiet", "min_orders": 3, "quiet_days": 21}},
        },
        {
            "id": "celebration", "name": "Birthday dessert", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "unique", "code_config": {"prefix": "BDAY-"}},
            "discount": {"type": "free_item", "product": "tiramisu"},
            "rules": {"valid_days_after_publication": 10},
            "distribution": {"mode": "autopilot", "channels": ["push", "email"],
                             "trigger": {"type": "personal_date", "days_before": 3}},
        },
        {
            "id": "new-dish", "name": "Truffle pasta launch", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "unique", "code_config": {"prefix": "NEW-"}},
            "discount": {"type": "percent", "percent_off": 30, "applies_to": {"products": ["truffle-pasta"]}},
            "rules": {"holder_only": False, "valid_days_after_publication": 21},  # "bring a friend"
            "metadata": {"send_day": days // 3},
            "distribution": {"mode": "promotion", "segment": "pasta-lovers", "channels": ["email", "push"]},
        },
        {
            "id": "welcome", "name": "Welcome 10%", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "standalone", "code": "WELCOME10"},
            "discount": {"type": "percent", "percent_off": 10, "max_discount": 1000},
            "rules": {"new_customers_only": True}, "limits": {"per_customer": 1},
        },
        {
            "id": "flyer", "name": "Flyer 3 EUR", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "unique", "code_config": {"prefix": "FLY-"}},
            "discount": {"type": "amount", "amount_off": 300},
            "rules": {"holder_only": False, "min_order_amount": 1000},
        },
        {
            "id": "happy-hour", "name": "Friday happy hour", "currency": "EUR", "status": "active", **window,
            "voucher": {"kind": "standalone", "code": "HAPPY5"},
            "discount": {"type": "amount", "amount_off": 500},
            "rules": {"min_order_amount": 2000}, "limits": {"per_customer": 2, "budget": 500_000},
        },
    ]  # fmt: skip
    for month, send_day in enumerate(range(10, days, 30), start=1):
        definitions.append(
            {
                "id": f"vip-thanks-{month}", "name": f"VIP thank-you #{month}", "currency": "EUR", "status": "active", **window,
                "voucher": {"kind": "unique", "code_config": {"prefix": "VIP-"}},
                "discount": {"type": "percent", "percent_off": 15, "max_discount": 1500},
                "rules": {"acceptance_required": True, "valid_days_after_publication": 30},
                "metadata": {"send_day": send_day},
                "distribution": {"mode": "promotion", "segment": "vip", "channels": ["push", "email", "sms"], "control_share": 0.2},
            }
        )  # fmt: skip
    for week, send_day in enumerate(range(14, days, 14), start=1):
        definitions.append(
            {
                "id": f"slow-night-{week}", "name": f"Slow-night filler #{week}", "currency": "EUR", "status": "active", **window,
                "voucher": {"kind": "unique", "code_config": {"prefix": "SN-"}},
                "discount": {"type": "amount", "amount_off": 400},
                "rules": {"valid_days_after_publication": 3, "days_of_week": ["mon", "tue", "wed"], "min_order_amount": 1500},
                "metadata": {"send_day": send_day},
                "distribution": {"mode": "promotion", "segment": "everyone", "channels": ["push", "sms"]},
            }
        )  # fmt: skip
    return definitions
