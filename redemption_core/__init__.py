"""promoledger redemption core: campaigns, vouchers, rules, exactly-once redemption, ledger.

The public surface, the door the pipeline, the models, the console and the benchmarks use:

    from redemption_core import RedemptionEngine, RedeemRequest, Order, OrderItem
    with RedemptionEngine.open() as engine:          # the ledger under PROMO_HOME
        engine.redeem(RedeemRequest("WB-…", Order(2500, "EUR"), customer_id="c-17"))

Inside, in layers (each imports only those before it; tests/test_layering.py keeps it so):
domain (pure rules and values) ← ledger (store port, projection, SQLite) ← engine ←
imports and distribution ← simulate and demo ← cli.
"""

from redemption_core.distribution.notifications import (
    Notice,
    NotificationError,
    Notifier,
    load_notifier,
    notifier_from_home,
)
from redemption_core.distribution.notifications import (
    describe as describe_notifier,
)
from redemption_core.domain.campaigns import (
    Campaign,
    CampaignStatus,
    MainCampaign,
    campaign_from_dict,
)
from redemption_core.domain.clock import SettableClock
from redemption_core.domain.effects import (
    NO_INTERVAL,
    PROFIT_VERDICTS,
    Effect,
    Verdict,
    describe_without_interval,
    interval_verdict,
    minimum_detectable_effect,
    minor_unit_exponent,
    money_text,
    overall_verdict,
    total,
)
from redemption_core.domain.effects import (
    describe as describe_effect,
)
from redemption_core.domain.errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PromoError,
)
from redemption_core.domain.events import Event, EventType
from redemption_core.domain.money import CURRENCY_EXPONENTS
from redemption_core.domain.orders import Order, OrderItem, RequestContext
from redemption_core.domain.parsing import iso
from redemption_core.domain.reasons import Code, Reason
from redemption_core.engine.redemption import (
    RedeemRequest,
    RedemptionEngine,
    RedemptionResult,
    RollbackResult,
    ValidationResult,
)
from redemption_core.ledger.home import (
    ledger_exists,
    ledger_location,
    ledger_path,
    ledger_url,
    promo_home,
)
from redemption_core.ledger.verify import verify_ledger
from redemption_core.simulate import SimulationConfig, simulate

__all__ = [
    "CURRENCY_EXPONENTS",
    "NO_INTERVAL",
    "PROFIT_VERDICTS",
    "Campaign",
    "CampaignStatus",
    "Code",
    "Conflict",
    "Effect",
    "Event",
    "EventType",
    "IdempotencyKeyReused",
    "InvalidInput",
    "MainCampaign",
    "NotFound",
    "Notice",
    "NotificationError",
    "Notifier",
    "Order",
    "OrderItem",
    "PromoError",
    "Reason",
    "RedeemRequest",
    "RedemptionEngine",
    "RedemptionResult",
    "RequestContext",
    "RollbackResult",
    "SettableClock",
    "SimulationConfig",
    "ValidationResult",
    "Verdict",
    "campaign_from_dict",
    "describe_effect",
    "describe_notifier",
    "describe_without_interval",
    "interval_verdict",
    "iso",
    "ledger_exists",
    "ledger_location",
    "ledger_path",
    "ledger_url",
    "load_notifier",
    "minimum_detectable_effect",
    "minor_unit_exponent",
    "money_text",
    "notifier_from_home",
    "overall_verdict",
    "promo_home",
    "simulate",
    "total",
    "verify_ledger",
]
