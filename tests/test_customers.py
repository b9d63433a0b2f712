"""Customer profiles: how they are checked, what of them reaches the ledger, how they change.

The ledger never holds an email address or a phone number, only a keyed hash (equal for two
spellings of one contact) and a masked form for display. Every refusal names its field and
writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from builders import NOW, Clock, customer_row, engine_at, events, ledger_bytes

from redemption_core.domain.customers import CustomerProfile
from redemption_core.domain.errors import Conflict, InvalidInput, NotFound
from redemption_core.domain.events import EventType
from redemption_core.ledger.verify import verify_ledger

HEX32 = set("0123456789abcdef")


def test_a_customer_added_from_a_dict_keeps_its_profile(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    engine.add_customer(
        {
            "id": "ann",
            "signup_at": "2026-01-10T09:30:00+01:00",
            "birthday": "1992-02-29",
            "anniversary": "06-01",
            "attributes": {"city": "Berlin", "tier": 2, "vip": True, "note": None},
            "metadata": {"source": "shop"},
            "consent": {"email": True, "push": False},
        }
    )

    ann = engine.customer("ann")
    assert ann.signup_at.isoformat() == "2026-01-10T08:30:00+00:00"
    assert (ann.birthday, ann.anniversary) == ("02-29", "06-01")
    assert ann.attributes == {"city": "Berlin", "tier": 2, "vip": True, "note": None}
    assert ann.consent == {"email": True, "sms": False, "push": False}
    assert (ann.orders, ann.spend, ann.first_order_at, ann.last_order_at) == (0, 0, None, None)
    assert (ann.email_masked, ann.phone_masked) == (None, None)
    [created] = events(engine, EventType.CUSTOMER_CREATED)
    assert created.customer_id == "ann"
    assert verify_ledger(engine.store.path).clean


def test_a_customer_without_a_signup_date_signs_up_now(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    engine.add_customer({"id": "ann"})

    assert engine.customer("ann").signup_at == NOW


def test_a_customer_added_from_a_profile_is_stored_like_one_added_from_a_dict(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    fields: dict[str, Any] = {
        "birthday": "04-17",
        "attributes": {"city": "Berlin"},
        "email": "ann@example.com",
        "phone": "+491705559167",
        "consent": {"sms": True},
    }

    engine.add_customer(CustomerProfile(id="ann", **fields))
    engine.add_customer({"id": "twin", **fields})

    ann, twin = engine.customer("ann"), engine.customer("twin")
    assert ann.attributes == twin.attributes == {"city": "Berlin"}
    assert ann.consent == twin.consent == {"email": False, "sms": True, "push": False}
    assert ann.birthday == twin.birthday == "04-17"
    assert customer_row(engine, "ann") == customer_row(engine, "twin")
    assert verify_ledger(engine.store.path).clean


def test_a_profile_object_gets_the_same_contact_normalisation_as_a_dict(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    engine.add_customer({"id": "ann", "email": "ann@example.com", "phone": "+491705559167"})
    engine.add_customer(
        CustomerProfile(id="twin", email=" Ann@Example.COM ", phone="+49 (170) 555-9167")
    )

    ann, twin = customer_row(engine, "ann"), customer_row(engine, "twin")
    assert twin["email_hash"] == ann["email_hash"]
    assert twin["phone_hash"] == ann["phone_hash"]
    assert twin["email_masked"] == "a***@example.com"
    assert twin["phone_masked"] == "+49********67"


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        (CustomerProfile(id="ann", email="not-an-email"), "customer.email"),
        (CustomerProfile(id="ann", phone="12-34"), "customer.phone"),
        (CustomerProfile(id="ann smith"), "customer.id"),
        (CustomerProfile(id="ann", attributes={"city": ["Berlin"]}), "customer.attributes.city"),
        (CustomerProfile(id="ann", birthday="02-30"), "customer.birthday"),
    ],
    ids=["email", "phone", "id", "attribute", "birthday"],
)
def test_a_malformed_profile_object_is_refused_naming_the_field_like_a_dict(
    tmp_path: Path, profile: CustomerProfile, field: str
) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(InvalidInput) as refused:
        engine.add_customer(profile)

    assert refused.value.field == field
    assert events(engine) == []


def test_adding_a_customer_id_twice_is_a_conflict_and_writes_nothing(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann", "attributes": {"city": "Berlin"}})
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.add_customer({"id": "ann", "attributes": {"city": "Paris"}})

    assert refused.value.field == "customer.id"
    assert events(engine) == before
    assert engine.customer("ann").attributes == {"city": "Berlin"}
    assert verify_ledger(engine.store.path).clean


def test_email_and_phone_reach_the_ledger_files_only_hashed_and_masked(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer(
        {"id": "ann", "email": "Anna.Schmidt@Example.com", "phone": "+49 (170) 555-9167"}
    )
    engine.add_customer(CustomerProfile(id="bob", email="bob.meier@example.net"))

    engine.update_customer("bob", {"email": "Robert.Meier@Example.org", "phone": "0171 8642097"})
    live = ledger_bytes(engine)
    engine.close()

    stored = (live + ledger_bytes(engine)).lower()
    for raw in (b"anna.schmidt", b"bob.meier", b"robert.meier", b"1705559167", b"8642097"):
        assert raw not in stored, raw
    reopened = engine_at(tmp_path)
    ann, bob = customer_row(reopened, "ann"), customer_row(reopened, "bob")
    assert set(ann["email_hash"]) <= HEX32 and len(ann["email_hash"]) == 32
    assert set(ann["phone_hash"]) <= HEX32 and len(ann["phone_hash"]) == 32
    assert (ann["email_masked"], ann["phone_masked"]) == ("a***@example.com", "+49********67")
    assert (bob["email_masked"], bob["phone_masked"]) == ("r***@example.org", "*********97")
    for event in events(reopened):
        assert not {"email", "phone"} & set(event.payload)


def test_contact_hashes_are_equal_for_any_case_or_formatting_of_one_contact(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)

    engine.add_customer({"id": "a", "email": "ann@example.com", "phone": "+491705559167"})
    engine.add_customer({"id": "b", "email": "ANN@Example.COM", "phone": "+49 170 555 9167"})
    engine.add_customer({"id": "c", "email": " Ann@example.com", "phone": "+49-(170)-555.91.67"})
    engine.add_customer({"id": "d", "email": "anne@example.com", "phone": "+491705559168"})

    rows = [customer_row(engine, customer_id) for customer_id in "abcd"]
    assert rows[0]["email_hash"] == rows[1]["email_hash"] == rows[2]["email_hash"]
    assert rows[0]["phone_hash"] == rows[1]["phone_hash"] == rows[2]["phone_hash"]
    assert rows[3]["email_hash"] != rows[0]["email_hash"]
    assert rows[3]["phone_hash"] != rows[0]["phone_hash"]
    assert {row["email_masked"] for row in rows[:3]} == {"a***@example.com"}
    assert {row["phone_masked"] for row in rows[:3]} == {"+49********67"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "customer.email"),
        ({"email": "ann@localhost"}, "customer.email"),
        ({"email": "ann smith@example.com"}, "customer.email"),
        ({"email": 42}, "customer.email"),
        ({"phone": "12-34"}, "customer.phone"),
        ({"phone": "+49 170 CALL-ME"}, "customer.phone"),
        ({"phone": "+1234567890123456"}, "customer.phone"),
        ({"birthday": "02-30"}, "customer.birthday"),
        ({"birthday": "1990-13-01"}, "customer.birthday"),
        ({"birthday": "yesterday"}, "customer.birthday"),
        ({"anniversary": 417}, "customer.anniversary"),
        ({"attributes": {"city": ["Berlin"]}}, "customer.attributes.city"),
        ({"attributes": {"city": {"name": "Berlin"}}}, "customer.attributes.city"),
        ({"attributes": {"city": "Ber\x00lin"}}, "customer.attributes.city"),
        ({"attributes": {"home town": "Berlin"}}, "customer.attributes.home town"),
        ({"attributes": "city=Berlin"}, "customer.attributes"),
        ({"attributes": {f"a{i}": i for i in range(101)}}, "customer.attributes"),
        ({"metadata": {"crm": ["x"]}}, "customer.metadata.crm"),
        ({"consent": {"fax": True}}, "customer.consent.fax"),
        ({"consent": {"email": "yes"}}, "customer.consent.email"),
        ({"signup_at": "2026-01-01T00:00:00"}, "customer.signup_at"),
        ({"nickname": "Annie"}, "customer.nickname"),
        ({"id": "ann smith"}, "customer.id"),
        ({"id": None}, "customer.id"),
    ],
)
def test_a_malformed_customer_field_is_refused_naming_it_and_writes_nothing(
    tmp_path: Path, fields: dict[str, Any], field: str
) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(InvalidInput) as refused:
        engine.add_customer({"id": "ann", **fields})

    assert refused.value.field == field
    assert events(engine) == []


def test_update_customer_changes_attributes_birthday_and_contacts(tmp_path: Path) -> None:
    clock = Clock()
    engine = engine_at(tmp_path, clock)
    engine.add_customer(
        {
            "id": "ann",
            "birthday": "04-17",
            "attributes": {"city": "Berlin", "tier": 1},
            "email": "ann@example.com",
        }
    )
    engine.add_customer({"id": "probe", "email": "ann.new@example.org", "phone": "+442079460958"})
    clock.advance(days=1)

    engine.update_customer(
        "ann",
        {
            "attributes": {"city": "Hamburg"},
            "birthday": "1985-12-24",
            "anniversary": "05-05",
            "email": "Ann.New@Example.org",
            "phone": "+44 20 7946 0958",
        },
    )

    ann = engine.customer("ann")
    assert ann.attributes == {"city": "Hamburg"}  # replaced whole, not merged
    assert (ann.birthday, ann.anniversary) == ("12-24", "05-05")
    assert (ann.email_masked, ann.phone_masked) == ("a***@example.org", "+44********58")
    row, probe = customer_row(engine, "ann"), customer_row(engine, "probe")
    assert (row["email_hash"], row["phone_hash"]) == (probe["email_hash"], probe["phone_hash"])
    [updated] = events(engine, EventType.CUSTOMER_UPDATED)
    assert (updated.customer_id, updated.occurred_at) == ("ann", clock.now)
    assert verify_ledger(engine.store.path).clean


def test_update_customer_changes_only_what_it_names(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer(
        {
            "id": "ann",
            "birthday": "04-17",
            "attributes": {"city": "Berlin"},
            "email": "ann@example.com",
            "consent": {"email": True},
        }
    )
    before = customer_row(engine, "ann")

    engine.update_customer("ann", {"birthday": None})
    engine.update_customer("ann", {"metadata": {"crm": "42"}})

    after = customer_row(engine, "ann")
    assert after["birthday"] is None
    assert after["metadata"] == '{"crm":"42"}'
    assert {k: v for k, v in after.items() if k not in ("birthday", "metadata")} == {
        k: v for k, v in before.items() if k not in ("birthday", "metadata")
    }
    assert engine.customer("ann").consent["email"] is True
    assert verify_ledger(engine.store.path).clean


def test_update_of_an_unknown_customer_is_not_found_and_writes_nothing(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    before = events(engine)

    with pytest.raises(NotFound) as refused:
        engine.update_customer("nobody", {"attributes": {"city": "Berlin"}})

    assert refused.value.field == "customer_id"
    assert events(engine) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-email"}, "changes.email"),
        ({"phone": "12"}, "changes.phone"),
        ({"birthday": "13-01"}, "changes.birthday"),
        ({"attributes": {"city": ["Berlin"]}}, "changes.attributes.city"),
        ({"consent": {"email": True}}, "changes.consent"),
        ({"id": "someone-else"}, "changes.id"),
        ({"signup_at": "2026-01-01T00:00:00Z"}, "changes.signup_at"),
        ({}, "changes"),
        ("city=Berlin", "changes"),
    ],
)
def test_a_malformed_update_is_refused_naming_the_field_and_writes_nothing(
    tmp_path: Path, changes: Any, field: str
) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann", "email": "ann@example.com"})
    before = events(engine)

    with pytest.raises(InvalidInput) as refused:
        engine.update_customer("ann", changes)

    assert refused.value.field == field
    assert events(engine) == before


def test_set_consent_records_a_change_only_when_the_consent_changes(tmp_path: Path) -> None:
    clock = Clock()
    engine = engine_at(tmp_path, clock)
    engine.add_customer({"id": "ann", "consent": {"email": True}})

    unchanged = engine.set_consent("ann", "email", True)
    granted = engine.set_consent("ann", "sms", True, source="checkout")
    granted_again = engine.set_consent("ann", "sms", True)
    clock.advance(days=3)
    withdrawn = engine.set_consent("ann", "email", False, source="unsubscribe link")
    never_given = engine.set_consent("ann", "push", False)

    assert (unchanged, granted, granted_again, withdrawn, never_given) == (
        False,
        True,
        False,
        True,
        False,
    )
    changes = events(engine, EventType.CONSENT_CHANGED)
    assert [(e.channel, e.payload["granted"], e.payload["source"]) for e in changes] == [
        ("sms", True, "checkout"),
        ("email", False, "unsubscribe link"),
    ]
    assert changes[1].occurred_at == clock.now
    assert engine.customer("ann").consent == {"email": False, "sms": True, "push": False}
    assert verify_ledger(engine.store.path).clean


@pytest.mark.parametrize(
    ("customer_id", "channel", "granted", "error", "field"),
    [
        ("ann", "fax", True, InvalidInput, "channel"),
        ("ann", "EMAIL", True, InvalidInput, "channel"),
        ("ann", "email", "yes", InvalidInput, "granted"),
        ("nobody", "email", True, NotFound, "customer_id"),
    ],
)
def test_a_bad_consent_change_is_refused_naming_the_field_and_writes_nothing(
    tmp_path: Path,
    customer_id: str,
    channel: str,
    granted: Any,
    error: type[Exception],
    field: str,
) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    before = events(engine)

    with pytest.raises(error) as refused:
        engine.set_consent(customer_id, channel, granted)

    assert refused.value.field == field  # type: ignore[attr-defined]
    assert events(engine) == before


def test_an_unknown_customer_cannot_be_read(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(NotFound) as refused:
        engine.customer("nobody")

    assert refused.value.field == "customer_id"
