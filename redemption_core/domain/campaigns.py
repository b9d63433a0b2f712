"""Campaign definitions: main campaigns contain sub-campaigns; a sub-campaign carries the
reward, the kind of voucher, the rules & limitations, an active window, a budget and a status.

Definitions are immutable values. They are written to the ledger as a `campaign_created`
event in their normalised dict form (`to_dict`), and read back with `campaign_from_dict`,
so that what the ledger says is exactly what the engine enforces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redemption_core.domain import parsing as p
from redemption_core.domain.codes import CodeConfig, normalize_code
from redemption_core.domain.errors import Conflict, InvalidInput
from redemption_core.domain.money import check_amount, check_currency, parse_percent
from redemption_core.domain.offers import Distribution, distribution_from_dict

MAX_LIMIT = 10**9
E = TypeVar("E", bound=StrEnum)


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


# Which status changes a merchant may make; finished is final.
STATUS_TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.ACTIVE, CampaignStatus.FINISHED}),
    CampaignStatus.ACTIVE: frozenset({CampaignStatus.PAUSED, CampaignStatus.FINISHED}),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.ACTIVE, CampaignStatus.FINISHED}),
    CampaignStatus.FINISHED: frozenset(),
}


def check_transition(current: CampaignStatus, new: CampaignStatus) -> None:
    if new not in STATUS_TRANSITIONS[current]:
        raise Conflict("status", f"a {current} campaign cannot become {new}")


class VoucherKind(StrEnum):
    UNIQUE = "unique"  # many codes, each published to one customer
    STANDALONE = "standalone"  # one shared code
    GIFT = "gift"  # unique codes carrying a balance


class DiscountType(StrEnum):
    AMOUNT = "amount"
    PERCENT = "percent"
    FIXED_PRICE = "fixed_price"
    FREE_ITEM = "free_item"
    # The reward lives in another system and is not known here (imported history): redeeming
    # such a voucher through the engine earns no discount.
    UNSPECIFIED = "unspecified"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class ItemFilter:
    """Which order items a discount applies to: any listed product or any listed category."""

    products: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()

    def matches(self, product_id: str, category: str | None) -> bool:
        return product_id in self.products or (category is not None and category in self.categories)


@dataclass(frozen=True)
class Discount:
    type: DiscountType
    amount_off: int | None = None
    percent_off_bp: int | None = None  # basis points: 1500 = 15%
    max_discount: int | None = None  # cap for percent discounts
    fixed_price: int | None = None
    free_product: str | None = None
    applies_to: ItemFilter | None = None  # None: the whole order


@dataclass(frozen=True)
class Rules:
    days_of_week: frozenset[int] = frozenset()  # 0 = Monday; empty: every day
    hours: tuple[time, time] | None = None  # [from, to) local time; may wrap midnight
    timezone: str = "UTC"
    valid_days_after_publication: int | None = None
    min_order_amount: int | None = None
    required_products: frozenset[str] = frozenset()
    required_categories: frozenset[str] = frozenset()
    min_item_quantity: int | None = None
    segments: frozenset[str] = frozenset()
    holder_only: bool = False
    new_customers_only: bool = False
    sales_channels: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    acceptance_required: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Limits:
    per_voucher: int | None = None  # redemptions of one code
    per_customer: int | None = None  # redemptions by one customer id across the campaign
    campaign_total: int | None = None  # redemptions across the campaign
    budget: int | None = None  # total discount across the campaign, minor units


@dataclass(frozen=True)
class MainCampaign:
    id: str
    name: str
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description}


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    currency: str
    voucher_kind: VoucherKind
    discount: Discount | None  # None for gift cards, whose reward is the balance
    main_campaign_id: str | None = None
    status: CampaignStatus = CampaignStatus.DRAFT
    active_from: datetime | None = None
    active_until: datetime | None = None
    rules: Rules = field(default_factory=Rules)
    limits: Limits = field(default_factory=Limits)
    code_config: CodeConfig = field(default_factory=CodeConfig)
    standalone_code: str | None = None
    gift_balance: int | None = None  # initial balance of each generated gift card
    distribution: Distribution | None = None  # how it reaches customers (promotion/autopilot)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The normalised definition, as written to the ledger."""
        return dict(self.source)


def main_campaign_from_dict(data: object, field: str = "main_campaign") -> MainCampaign:
    d = p.mapping(data, field)
    p.reject_unknown(d, {"id", "name", "description", "campaigns"}, field)
    return MainCampaign(
        id=p.identifier(d.get("id"), f"{field}.id"),
        name=p.text(d.get("name", d.get("id")), f"{field}.name", max_length=200),
        description=p.text(d.get("description", ""), f"{field}.description"),
    )


CAMPAIGN_FIELDS = {
    "id", "name", "main_campaign", "currency", "status", "voucher", "discount",
    "active_from", "active_until", "rules", "limits", "metadata", "distribution",
}  # fmt: skip


def campaign_from_dict(data: object, field: str = "campaign") -> Campaign:
    """Parse and check a sub-campaign definition; errors name the offending field."""
    d = p.mapping(data, field)
    p.reject_unknown(d, CAMPAIGN_FIELDS, field)
    campaign_id = p.identifier(d.get("id"), f"{field}.id")
    currency = check_currency(d.get("currency"), f"{field}.currency")
    status = _enum(CampaignStatus, d.get("status", "draft"), f"{field}.status")
    voucher = p.mapping(d.get("voucher", {"kind": "unique"}), f"{field}.voucher")
    p.reject_unknown(voucher, {"kind", "code", "code_config", "gift_balance"}, f"{field}.voucher")
    kind = _enum(VoucherKind, voucher.get("kind", "unique"), f"{field}.voucher.kind")
    code_config = _code_config(voucher.get("code_config"), f"{field}.voucher.code_config")
    standalone_code = None
    if kind is VoucherKind.STANDALONE:
        standalone_code = normalize_code(voucher.get("code"), f"{field}.voucher.code")
    elif "code" in voucher:
        raise InvalidInput(f"{field}.voucher.code", "only a standalone voucher has a fixed code")
    gift_balance = None
    if kind is VoucherKind.GIFT:
        gift_balance = check_amount(
            voucher.get("gift_balance"), f"{field}.voucher.gift_balance", allow_zero=False
        )
        if d.get("discount") is not None:
            raise InvalidInput(f"{field}.discount", "a gift card campaign has no discount")
        discount = None
    else:
        if "gift_balance" in voucher:
            raise InvalidInput(f"{field}.voucher.gift_balance", "only gift cards have a balance")
        discount = _discount(d.get("discount"), f"{field}.discount")
    active_from = p.optional_timestamp(d.get("active_from"), f"{field}.active_from")
    active_until = p.optional_timestamp(d.get("active_until"), f"{field}.active_until")
    if active_from and active_until and active_until <= active_from:
        raise InvalidInput(f"{field}.active_until", "must be after active_from")
    rules = _rules(d.get("rules", {}), f"{field}.rules", kind)
    limits = _limits(d.get("limits", {}), f"{field}.limits", kind)
    metadata = p.mapping(d.get("metadata", {}), f"{field}.metadata")
    p.bounded_document(metadata, f"{field}.metadata", max_depth=16, max_nodes=10_000)
    distribution = None
    if d.get("distribution") is not None:
        distribution = distribution_from_dict(d["distribution"], f"{field}.distribution")
        if kind is VoucherKind.STANDALONE:
            raise InvalidInput(
                f"{field}.distribution", "personal offers need unique codes or gift cards"
            )
    campaign = Campaign(
        id=campaign_id,
        name=p.text(d.get("name", campaign_id), f"{field}.name", max_length=200),
        currency=currency,
        voucher_kind=kind,
        discount=discount,
        main_campaign_id=p.optional_identifier(d.get("main_campaign"), f"{field}.main_campaign"),
        status=status,
        active_from=active_from,
        active_until=active_until,
        rules=rules,
        limits=limits,
        code_config=code_config,
        standalone_code=standalone_code,
        gift_balance=gift_balance,
        metadata=dict(metadata),
        distribution=distribution,
    )
    return _with_source(campaign, d)


def _with_source(campaign: Campaign, original: Mapping[str, Any]) -> Campaign:
    """Attach the normalised dict form (timestamps as ISO text, codes upper-cased)."""
    source = {key: value for key, value in original.items() if value is not None}
    for key in ("active_from", "active_until"):
        moment = getattr(campaign, key)
        if moment is not None:
            source[key] = p.iso(moment)
    voucher = dict(source.get("voucher", {"kind": "unique"}))
    voucher["kind"] = str(campaign.voucher_kind)
    voucher["code_config"] = campaign.code_config.to_dict()
    if campaign.standalone_code is not None:
        voucher["code"] = campaign.standalone_code
    source["voucher"] = voucher
    source["status"] = str(campaign.status)
    if "rules" in source and isinstance(source["rules"].get("hours"), Mapping):
        rules = dict(source["rules"])
        start, end = campaign.rules.hours  # type: ignore[misc]
        rules["hours"] = {"from": start.isoformat(), "to": end.isoformat()}
        source["rules"] = rules
    object.__setattr__(campaign, "source", source)
    return campaign


def _enum(kind: type[E], value: object, field: str) -> E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidInput(field, f"must be one of {choices}, got {p.short(value)}") from None


def _optional_amount(value: object, field: str) -> int | None:
    return None if value is None else check_amount(value, field)


def _optional_limit(value: object, field: str) -> int | None:
    return None if value is None else p.integer(value, field, minimum=1, maximum=MAX_LIMIT)


def _code_config(value: object, field: str) -> CodeConfig:
    if value is None:
        return CodeConfig()
    d = p.mapping(value, field)
    allowed = {"charset", "length", "prefix", "postfix", "pattern", "min_entropy_bits"}
    p.reject_unknown(d, allowed, field)
    kwargs = {key: d[key] for key in allowed if d.get(key) is not None}
    if "min_entropy_bits" in kwargs:
        bits = kwargs["min_entropy_bits"]
        if isinstance(bits, bool) or not isinstance(bits, int | float) or not 0 <= bits <= 512:
            raise InvalidInput(f"{field}.min_entropy_bits", "must be a number from 0 to 512")
    for key in ("charset", "prefix", "postfix", "pattern"):
        if key in kwargs and not isinstance(kwargs[key], str):
            raise InvalidInput(f"{field}.{key}", "must be text")
    if isinstance(kwargs.get("charset"), str):
        kwargs["charset"] = kwargs["charset"].upper()
    for key in ("prefix", "postfix", "pattern"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = kwargs[key].upper()
    try:
        return CodeConfig(**kwargs)
    except InvalidInput as error:  # CodeConfig names its own fields; give the full path
        raise InvalidInput(field + error.field.removeprefix("code_config"), error.problem) from None


def _item_filter(value: object, field: str) -> ItemFilter | None:
    if value is None or value == "order":
        return None
    d = p.mapping(value, field)
    p.reject_unknown(d, {"products", "categories"}, field)
    target = ItemFilter(
        products=p.id_set(d.get("products"), f"{field}.products"),
        categories=p.id_set(d.get("categories"), f"{field}.categories"),
    )
    if not target.products and not target.categories:
        raise InvalidInput(field, "name at least one product or category (or use 'order')")
    return target


def _discount(value: object, field: str) -> Discount:
    d = p.mapping(value, field)
    allowed = {"type", "amount_off", "percent_off", "max_discount", "fixed_price", "product"}
    p.reject_unknown(d, allowed | {"applies_to"}, field)
    kind = _enum(DiscountType, d.get("type"), f"{field}.type")
    applies_to = _item_filter(d.get("applies_to"), f"{field}.applies_to")
    needed = {
        DiscountType.AMOUNT: {"amount_off"},
        DiscountType.PERCENT: {"percent_off"},
        DiscountType.FIXED_PRICE: {"fixed_price"},
        DiscountType.FREE_ITEM: {"product"},
        DiscountType.UNSPECIFIED: set(),
    }[kind]
    optional = {"max_discount"} if kind is DiscountType.PERCENT else set()
    for key in sorted(allowed - {"type"}):
        if key in needed and d.get(key) is None:
            raise InvalidInput(f"{field}.{key}", f"required for a {kind} discount")
        if key not in needed | optional and d.get(key) is not None:
            raise InvalidInput(f"{field}.{key}", f"not used by a {kind} discount")
    if kind is DiscountType.FREE_ITEM and applies_to is not None:
        raise InvalidInput(f"{field}.applies_to", "a free item applies to its product only")
    return Discount(
        type=kind,
        amount_off=(
            check_amount(d["amount_off"], f"{field}.amount_off", allow_zero=False)
            if "amount_off" in needed
            else None
        ),
        percent_off_bp=(
            parse_percent(d["percent_off"], f"{field}.percent_off")
            if "percent_off" in needed
            else None
        ),
        max_discount=(
            check_amount(d["max_discount"], f"{field}.max_discount", allow_zero=False)
            if d.get("max_discount") is not None
            else None
        ),
        fixed_price=(
            check_amount(d["fixed_price"], f"{field}.fixed_price")
            if "fixed_price" in needed
            else None
        ),
        free_product=(
            p.identifier(d["product"], f"{field}.product") if "product" in needed else None
        ),
        applies_to=applies_to,
    )


def _clock_time(value: object, field: str) -> time:
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a time like '17:30'")
    if len(value) == 4 and value[1] == ":":
        value = "0" + value  # '9:00' is how people write it
    try:
        moment = time.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field, f"must be a time like '17:30', got {p.short(value)}") from None
    if moment.tzinfo is not None:
        raise InvalidInput(field, "give local time; set rules.timezone instead of an offset")
    return moment


RULE_FIELDS = {
    "days_of_week", "hours", "timezone", "valid_days_after_publication", "min_order_amount",
    "required_products", "required_categories", "min_item_quantity", "segments",
    "holder_only", "new_customers_only", "sales_channels", "stores", "acceptance_required",
}  # fmt: skip


def _rules(value: object, field: str, kind: VoucherKind) -> Rules:
    d = p.mapping(value, field)
    p.reject_unknown(d, RULE_FIELDS, field)
    days: set[int] = set()
    raw_days = d.get("days_of_week") or []
    if not isinstance(raw_days, list):
        raise InvalidInput(f"{field}.days_of_week", "must be a list like [fri, sat]")
    for i, day in enumerate(raw_days):
        if not isinstance(day, str) or day.lower()[:3] not in WEEKDAYS:
            raise InvalidInput(f"{field}.days_of_week[{i}]", f"not a weekday: {p.short(day)}")
        days.add(WEEKDAYS.index(day.lower()[:3]))
    hours = None
    if d.get("hours") is not None:
        window = p.mapping(d["hours"], f"{field}.hours")
        p.reject_unknown(window, {"from", "to"}, f"{field}.hours")
        start = _clock_time(window.get("from"), f"{field}.hours.from")
        end = _clock_time(window.get("to"), f"{field}.hours.to")
        if start == end:
            raise InvalidInput(f"{field}.hours", "from and to must differ")
        hours = (start, end)
    timezone = d.get("timezone", "UTC")
    try:
        if not isinstance(timezone, str) or len(timezone) > 64:
            raise ValueError
        ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidInput(f"{field}.timezone", f"unknown time zone {p.short(timezone)}") from None
    # Unique codes are personal: by default only their holder may redeem them.
    holder_only = d.get("holder_only", kind is not VoucherKind.STANDALONE)
    return Rules(
        days_of_week=frozenset(days),
        hours=hours,
        timezone=timezone,
        valid_days_after_publication=(
            None
            if d.get("valid_days_after_publication") is None
            else p.integer(
                d["valid_days_after_publication"],
                f"{field}.valid_days_after_publication",
                minimum=1,
                maximum=3650,
            )
        ),
        min_order_amount=_optional_amount(d.get("min_order_amount"), f"{field}.min_order_amount"),
        required_products=p.id_set(d.get("required_products"), f"{field}.required_products"),
        required_categories=p.id_set(d.get("required_categories"), f"{field}.required_categories"),
        min_item_quantity=(
            None
            if d.get("min_item_quantity") is None
            else p.integer(
                d["min_item_quantity"], f"{field}.min_item_quantity", minimum=1, maximum=MAX_LIMIT
            )
        ),
        segments=p.id_set(d.get("segments"), f"{field}.segments"),
        holder_only=p.boolean(holder_only, f"{field}.holder_only"),
        new_customers_only=p.boolean(
            d.get("new_customers_only", False), f"{field}.new_customers_only"
        ),
        sales_channels=p.id_set(d.get("sales_channels"), f"{field}.sales_channels"),
        stores=p.id_set(d.get("stores"), f"{field}.stores"),
        acceptance_required=p.boolean(
            d.get("acceptance_required", False), f"{field}.acceptance_required"
        ),
    )


def _limits(value: object, field: str, kind: VoucherKind) -> Limits:
    d = p.mapping(value, field)
    p.reject_unknown(d, {"per_voucher", "per_customer", "campaign_total", "budget"}, field)
    per_voucher = d.get("per_voucher")
    if per_voucher is None and kind is VoucherKind.UNIQUE:
        per_voucher = 1  # a unique code is single-use unless the campaign says otherwise
    budget = d.get("budget")
    return Limits(
        per_voucher=_optional_limit(per_voucher, f"{field}.per_voucher"),
        per_customer=_optional_limit(d.get("per_customer"), f"{field}.per_customer"),
        campaign_total=_optional_limit(d.get("campaign_total"), f"{field}.campaign_total"),
        budget=None if budget is None else check_amount(budget, f"{field}.budget"),
    )
