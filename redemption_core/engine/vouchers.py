"""The engine's campaign and voucher side: campaigns and their status, codes generated or
imported, publication, acceptance, disabling, gift-card top-ups and segment membership.
Mixed into RedemptionEngine, so that every act shares its ledger transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.campaigns import (
    Campaign,
    CampaignStatus,
    MainCampaign,
    VoucherKind,
    campaign_from_dict,
    check_transition,
    main_campaign_from_dict,
)
from redemption_core.domain.codes import CodeGenerator, normalize_code
from redemption_core.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from redemption_core.domain.events import Event, EventType, new_id
from redemption_core.domain.invariants import (
    acceptance_breach,
    publication_breach,
    voucher_creation_breach,
)
from redemption_core.domain.money import check_amount
from redemption_core.domain.reasons import LedgerCode
from redemption_core.domain.state import VoucherState
from redemption_core.ledger.rows import dumps
from redemption_core.ledger.store import LedgerStore, LedgerTransaction

MAX_CODES_PER_CALL = 10_000_000
CODES_PER_TRANSACTION = 20_000


class VoucherOperations:
    """Requires of its host: store, now(), _random_bytes, _transaction(), _write()."""

    store: LedgerStore
    now: Callable[[], datetime]
    _random_bytes: Callable[[int], bytes]
    _transaction: Callable[[], AbstractContextManager[LedgerTransaction]]
    _write: Callable[[Sequence[Event]], None]

    # -- campaigns ---------------------------------------------------------------------------
    def create_main_campaign(self, main: MainCampaign) -> None:
        self._create(main, [])

    def create_campaign(self, campaign: Campaign) -> None:
        """Record a sub-campaign (and, for a standalone code, its one voucher)."""
        self._create(None, [(campaign, "campaign")])

    def create_from_definition(self, data: object) -> list[str]:
        """A YAML/JSON document: one campaign, or a main campaign with `campaigns: [...]`.

        All or nothing: every campaign of the document is checked before any is written,
        and all are written in one transaction.
        """
        document = p.mapping(data, "definition")
        if "campaigns" not in document:
            campaign = campaign_from_dict(document)
            self.create_campaign(campaign)
            return [campaign.id]
        main = main_campaign_from_dict(document)
        subs = document["campaigns"]
        if not isinstance(subs, list) or not subs:
            raise InvalidInput("main_campaign.campaigns", "must be a non-empty list")
        campaigns = []
        for i, sub in enumerate(subs):
            where = f"campaigns[{i}]"
            sub = dict(p.mapping(sub, where))
            if sub.setdefault("main_campaign", main.id) != main.id:
                raise InvalidInput(f"{where}.main_campaign", f"must be {main.id!r}")
            campaigns.append((campaign_from_dict(sub, where), where))
        self._create(main, campaigns)
        return [campaign.id for campaign, _ in campaigns]

    def _create(self, main: MainCampaign | None, campaigns: list[tuple[Campaign, str]]) -> None:
        now = self.now()
        events: list[Event] = []
        if main is not None:
            events.append(
                Event(EventType.MAIN_CAMPAIGN_CREATED, now, payload={"definition": main.to_dict()})
            )
        for campaign, where in campaigns:
            definition = campaign.to_dict()
            try:
                dumps(definition)
            except (TypeError, ValueError):
                raise InvalidInput(f"{where}.metadata", "must hold only JSON values") from None
            events.append(
                Event(
                    EventType.CAMPAIGN_CREATED,
                    now,
                    payload={"definition": definition},
                    campaign_id=campaign.id,
                )
            )
            if campaign.standalone_code is not None:
                events.append(
                    self._voucher_created(
                        campaign, campaign.standalone_code, now, source="definition"
                    )
                )
        with self._transaction() as tx:
            if main is not None and tx.main_campaign_exists(main.id):
                raise Conflict("main_campaign.id", f"{main.id!r} already exists")
            ids: set[str] = set()
            codes: set[str] = set()
            for campaign, where in campaigns:
                if campaign.id in ids or tx.campaign_state(campaign.id) is not None:
                    raise Conflict(f"{where}.id", f"{campaign.id!r} already exists")
                ids.add(campaign.id)
                parent = campaign.main_campaign_id
                if (
                    parent
                    and not (main and parent == main.id)
                    and not tx.main_campaign_exists(parent)
                ):
                    raise NotFound(f"{where}.main_campaign", parent)
                code = campaign.standalone_code
                if code is not None:
                    if code in codes or tx.existing_codes([code]):
                        raise Conflict(f"{where}.voucher.code", f"{code!r} is taken")
                    codes.add(code)
            tx.append_many(events)

    def set_campaign_status(self, campaign_id: str, status: CampaignStatus | str) -> None:
        try:
            new = CampaignStatus(status)
        except ValueError:
            raise InvalidInput("status", f"unknown status {p.short(status)}") from None
        with self._transaction() as tx:
            state = tx.campaign_state(campaign_id)
            if state is None:
                raise NotFound("campaign_id", campaign_id)
            check_transition(state.status, new)
            tx.append(
                Event(
                    EventType.CAMPAIGN_STATUS_CHANGED,
                    self.now(),
                    payload={"status": str(new), "previous": str(state.status)},
                    campaign_id=campaign_id,
                )
            )

    # -- vouchers ----------------------------------------------------------------------------
    def _voucher_created(
        self,
        campaign: Campaign,
        code: str,
        now: datetime,
        *,
        source: str,
        gift_balance: int | None = None,
    ) -> Event:
        payload: dict[str, Any] = {
            "code": code,
            "kind": str(campaign.voucher_kind),
            "source": source,
        }
        if campaign.voucher_kind is VoucherKind.GIFT:
            payload["gift_balance"] = (
                gift_balance if gift_balance is not None else campaign.gift_balance
            )
        return Event(
            EventType.VOUCHER_CREATED,
            now,
            payload=payload,
            campaign_id=campaign.id,
            voucher_id=new_id("v"),
        )

    def _campaign_for_codes(self, tx: LedgerTransaction, campaign_id: str) -> Campaign:
        state = tx.campaign_state(campaign_id)
        if state is None:
            raise NotFound("campaign_id", campaign_id)
        breach = voucher_creation_breach(state, state.campaign.voucher_kind, from_definition=False)
        if breach is not None:
            raise breach.conflict()
        return state.campaign

    def code_generator(self, campaign: Campaign) -> CodeGenerator:
        return CodeGenerator(campaign.code_config, self._random_bytes)

    def generate_codes(
        self,
        campaign_id: str,
        count: int,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Create `count` new vouchers with fresh codes, unique across the whole ledger.

        Written in transactions of CODES_PER_TRANSACTION codes: every committed code is
        complete, and a crash midway leaves the codes generated so far. `progress` is told the
        number committed so far after each transaction.
        """
        p.integer(count, "count", minimum=1, maximum=MAX_CODES_PER_CALL)
        with self.store.read() as tx:
            campaign = self._campaign_for_codes(tx, campaign_id)
        generator = self.code_generator(campaign)
        created: list[str] = []
        while len(created) < count:
            wanted = min(CODES_PER_TRANSACTION, count - len(created))
            with self._transaction() as tx:
                codes = self._fresh_codes(tx, generator, wanted)
                now = self.now()
                tx.append_many(
                    [
                        self._voucher_created(campaign, code, now, source="generated")
                        for code in codes
                    ]
                )
            created.extend(codes)
            if progress is not None:
                progress(len(created))
        return created

    @staticmethod
    def _fresh_codes(tx: LedgerTransaction, generator: CodeGenerator, wanted: int) -> list[str]:
        fresh: dict[str, None] = {}
        space = generator.config.code_space
        for attempt in range(40):
            shortfall = wanted - len(fresh)
            # Draw more than the shortfall as collisions grow, so that a crowded code space
            # still converges; a full one ends in the Conflict below instead of a hang.
            draw = min(shortfall * 2 ** min(attempt, 8) + 16, max(space * 4, shortfall))
            candidates = [c for c in generator.generate(draw) if c not in fresh]
            taken = tx.existing_codes(candidates)
            fresh.update((c, None) for c in candidates if c not in taken)
            if len(fresh) >= wanted:
                return list(fresh)[:wanted]
        raise Conflict(
            "code_config",
            f"could not find {wanted} unused codes; the code space of "
            f"{generator.config.code_space} is nearly exhausted",
        )

    def import_codes(self, campaign_id: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Import existing codes (e.g. from CSV): every row is checked before any is written.

        Columns: code (required), customer_id (publishes the voucher to that customer),
        gift_balance (gift cards only; defaults to the campaign's).
        """
        if not rows:
            raise InvalidInput("rows", "the file has no codes")
        with self.store.read() as tx:
            campaign = self._campaign_for_codes(tx, campaign_id)
        parsed: list[tuple[str, str | None, int | None]] = []
        seen: dict[str, int] = {}
        for number, row in enumerate(rows, start=1):
            where = f"row {number}"
            p.reject_unknown(row, {"code", "customer_id", "gift_balance"}, where)
            code = normalize_code(row.get("code"), f"{where}.code")
            if code in seen:
                raise InvalidInput(f"{where}.code", f"{code!r} repeats row {seen[code]}")
            seen[code] = number
            customer = row.get("customer_id") or None
            customer = p.optional_identifier(customer, f"{where}.customer_id")
            balance = row.get("gift_balance")
            if balance in (None, ""):
                balance = None
            elif campaign.voucher_kind is not VoucherKind.GIFT:
                raise InvalidInput(f"{where}.gift_balance", "only gift cards have a balance")
            else:
                if isinstance(balance, str) and balance.isdigit():
                    balance = int(balance)
                balance = check_amount(balance, f"{where}.gift_balance", allow_zero=False)
            parsed.append((code, customer, balance))
        with self._transaction() as tx:
            taken = tx.existing_codes([code for code, _, _ in parsed])
            if taken:
                first = min(taken, key=seen.__getitem__)
                raise Conflict(
                    f"row {seen[first]}.code",
                    f"{first!r} already exists ({len(taken)} codes of the file do)",
                )
            now = self.now()
            events: list[Event] = []
            for code, customer, balance in parsed:
                created = self._voucher_created(
                    campaign, code, now, source="import", gift_balance=balance
                )
                events.append(created)
                if customer is not None:
                    events.append(
                        Event(
                            EventType.VOUCHER_PUBLISHED,
                            now,
                            payload={"code": code, "source": "import"},
                            campaign_id=campaign.id,
                            voucher_id=created.voucher_id,
                            customer_id=customer,
                        )
                    )
            tx.append_many(events)
        return len(parsed)

    def _voucher_for_admin(self, tx: LedgerTransaction, code: str) -> VoucherState:
        voucher = tx.voucher_by_code(normalize_code(code))
        if voucher is None:
            raise NotFound("code", code)
        return voucher

    def publish(self, code: str, customer_id: str, *, channel: str | None = None) -> bool:
        """Assign a unique voucher or gift card to its customer. False: already theirs."""
        customer_id = p.identifier(customer_id, "customer_id")
        with self._transaction() as tx:
            voucher = self._voucher_for_admin(tx, code)
            breach = publication_breach(voucher, customer_id)
            if breach is not None:
                if breach.code == LedgerCode.REPEATED_ACT:
                    return False
                raise breach.conflict()
            tx.append(
                Event(
                    EventType.VOUCHER_PUBLISHED,
                    self.now(),
                    payload={"code": voucher.code},
                    campaign_id=voucher.campaign_id,
                    voucher_id=voucher.voucher_id,
                    customer_id=customer_id,
                    channel=channel,
                )
            )
        return True

    def publish_next(self, campaign_id: str, customer_id: str) -> tuple[str, bool]:
        """A voucher of the campaign for this customer: the one they hold already, else a free
        one published to them now (what a client-side key may do). (code, newly published)."""
        campaign_id = p.identifier(campaign_id, "campaign_id")
        customer_id = p.identifier(customer_id, "customer_id")
        with self._transaction() as tx:
            state = tx.campaign_state(campaign_id)
            if state is None:
                raise NotFound("campaign_id", campaign_id)
            if state.campaign.voucher_kind is VoucherKind.STANDALONE:
                raise Conflict("campaign_id", "a standalone code is shared, not published")
            if state.status is not CampaignStatus.ACTIVE:
                raise Conflict("campaign_id", f"the campaign is {state.status}")
            voucher = tx.voucher_for_customer(campaign_id, customer_id)
            if voucher is None:
                raise Conflict("campaign_id", "the campaign has no unpublished voucher left")
            if voucher.holder_id == customer_id:
                return voucher.code, False
            tx.append(
                Event(
                    EventType.VOUCHER_PUBLISHED,
                    self.now(),
                    payload={"code": voucher.code, "source": "client"},
                    campaign_id=campaign_id,
                    voucher_id=voucher.voucher_id,
                    customer_id=customer_id,
                )
            )
        return voucher.code, True

    def accept(self, code: str, customer_id: str) -> bool:
        """The holder accepts the voucher in the app. False: it was accepted before."""
        return self.accept_many([(code, customer_id)])[0]

    def accept_many(self, acceptances: Sequence[tuple[str, str]]) -> list[bool]:
        """Acceptances in one transaction; all, or none if one names a voucher not theirs."""
        checked = [(code, p.identifier(customer, "customer_id")) for code, customer in acceptances]
        answers = []
        with self._transaction() as tx:
            now = self.now()
            for code, customer_id in checked:
                voucher = self._voucher_for_admin(tx, code)
                breach = acceptance_breach(voucher, customer_id)
                if breach is not None:
                    if breach.code != LedgerCode.REPEATED_ACT:
                        raise breach.conflict()
                    answers.append(False)  # accepted before, also by an earlier line of this batch
                    continue
                tx.append(
                    Event(
                        EventType.VOUCHER_ACCEPTED,
                        now,
                        payload={"code": voucher.code},
                        campaign_id=voucher.campaign_id,
                        voucher_id=voucher.voucher_id,
                        customer_id=customer_id,
                    )
                )
                answers.append(True)
        return answers

    def set_voucher_enabled(self, code: str, enabled: bool, *, note: str = "") -> None:
        with self._transaction() as tx:
            voucher = self._voucher_for_admin(tx, code)
            if voucher.disabled != enabled:
                return
            tx.append(
                Event(
                    EventType.VOUCHER_ENABLED if enabled else EventType.VOUCHER_DISABLED,
                    self.now(),
                    payload={"code": voucher.code, "note": p.text(note, "note")},
                    campaign_id=voucher.campaign_id,
                    voucher_id=voucher.voucher_id,
                )
            )

    def top_up(self, code: str, amount: int) -> int:
        """Add to a gift card's balance; returns the new balance."""
        amount = check_amount(amount, "amount", allow_zero=False)
        with self._transaction() as tx:
            voucher = self._voucher_for_admin(tx, code)
            if voucher.kind is not VoucherKind.GIFT:
                raise Conflict("code", "only a gift card can be topped up")
            balance = (voucher.gift_balance or 0) + amount
            tx.append(
                Event(
                    EventType.GIFT_CARD_TOPPED_UP,
                    self.now(),
                    payload={"code": voucher.code, "amount": amount, "balance": balance},
                    campaign_id=voucher.campaign_id,
                    voucher_id=voucher.voucher_id,
                    customer_id=voucher.holder_id,
                )
            )
        return balance

    def set_segment_membership(self, segment_id: str, customer_id: str, member: bool) -> None:
        segment_id = p.identifier(segment_id, "segment_id")
        customer_id = p.identifier(customer_id, "customer_id")
        self._write(
            [
                Event(
                    EventType.SEGMENT_MEMBER_ADDED if member else EventType.SEGMENT_MEMBER_REMOVED,
                    self.now(),
                    payload={"segment_id": segment_id},
                    customer_id=customer_id,
                )
            ]
        )
