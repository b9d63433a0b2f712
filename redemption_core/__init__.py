"""promoledger redemption core: campaigns, vouchers, rules, exactly-once redemption, ledger.

The public surface, for the pipeline, the console and the simulator:

    from redemption_core import RedemptionEngine, RedeemRequest, Order, OrderItem
    with RedemptionEngine.open() as engine:          # the ledger under PROMO_HOME
        engine.redeem(RedeemRequest("WB-…", Order(2500, "EUR"), customer_id="c-17"))
"""

from redemption_core.campaigns import Campaign, CampaignStatus, MainCampaign, campaign_from_dict
from redemption_core.engine import (
    RedeemRequest,
    RedemptionEngine,
    RedemptionResult,
    RollbackResult,
    ValidationResult,
)
from redemption_core.errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PromoError,
)
from redemption_core.events import Event, EventType
from redemption_core.orders import Order, OrderItem, RequestContext
from redemption_core.reasons import Code, Reason

__all__ = [
    "Campaign",
    "CampaignStatus",
    "Code",
    "Conflict",
    "Event",
    "EventType",
    "IdempotencyKeyReused",
    "InvalidInput",
    "MainCampaign",
    "NotFound",
    "Order",
    "OrderItem",
    "PromoError",
    "Reason",
    "RedeemRequest",
    "RedemptionEngine",
    "RedemptionResult",
    "RequestContext",
    "RollbackResult",
    "ValidationResult",
    "campaign_from_dict",
]
