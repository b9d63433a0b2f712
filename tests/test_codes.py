"""Voucher codes: how they are drawn, normalised, generated into and imported into the ledger."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest
from builders import engine_at, events, gift_def, order, unique_def, voucher

from redemption_core.domain.codes import DEFAULT_CHARSET, CodeConfig, CodeGenerator, normalize_code
from redemption_core.domain.errors import Conflict, InvalidInput


def test_default_charset_leaves_out_ambiguous_characters() -> None:
    config = CodeConfig()

    assert set("0O1IL").isdisjoint(config.charset)
    assert len(config.charset) == 31


def test_default_codes_have_at_least_64_bits_of_entropy() -> None:
    config = CodeConfig()

    assert config.entropy_bits >= 64
    assert config.code_space == 31**13


def test_default_codes_are_13_characters_from_the_charset() -> None:
    generated = CodeGenerator(CodeConfig()).generate(200)

    assert all(len(code) == 13 for code in generated)
    assert all(set(code) <= set(DEFAULT_CHARSET) for code in generated)


def test_pattern_places_random_characters_at_each_hash() -> None:
    config = CodeConfig(pattern="AB-####-####-####-##", prefix="X", postfix="-EU")

    generated = CodeGenerator(config).generate(100)

    body = f"[{DEFAULT_CHARSET}]"
    shape = re.compile(rf"^XAB-{body}{{4}}-{body}{{4}}-{body}{{4}}-{body}{{2}}-EU$")
    assert all(shape.match(code) for code in generated), generated[:3]
    assert config.random_chars == 14


def test_prefix_and_postfix_wrap_the_random_part() -> None:
    config = CodeConfig(prefix="SUMMER-", postfix="-26", length=13)

    generated = CodeGenerator(config).generate(50)

    assert all(code.startswith("SUMMER-") and code.endswith("-26") for code in generated)
    assert all(len(code) == len("SUMMER-") + 13 + len("-26") for code in generated)


def test_a_single_hash_pattern_draws_one_character() -> None:
    config = CodeConfig(pattern="#", prefix="P", min_entropy_bits=0)

    generated = CodeGenerator(config).generate(500)

    assert {code[0] for code in generated} == {"P"}
    assert {code[1:] for code in generated} <= set(DEFAULT_CHARSET)
    assert all(len(code) == 2 for code in generated)


@pytest.mark.parametrize(
    "kwargs",
    [{"length": 8}, {"pattern": "SALE-####"}, {"charset": "AB", "length": 63}],
    ids=["short", "short-pattern", "binary"],
)
def test_low_entropy_code_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as refused:
        CodeConfig(**kwargs)

    assert refused.value.field == "code_config"
    assert "entropy" in refused.value.problem


def test_low_entropy_code_config_is_allowed_when_the_minimum_is_lowered() -> None:
    config = CodeConfig(pattern="SALE-####", min_entropy_bits=16)

    assert math.isclose(config.entropy_bits, 4 * math.log2(31))
    assert config.code_space == 31**4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"charset": "A"}, "code_config.charset"),
        ({"charset": "AAB"}, "code_config.charset"),
        ({"charset": "abc"}, "code_config.charset"),
        ({"charset": "AB-"}, "code_config.charset"),
        ({"length": 0}, "code_config.length"),
        ({"length": 65}, "code_config.length"),
        ({"length": True}, "code_config.length"),
        ({"pattern": "NO-HASHES"}, "code_config.pattern"),
        ({"prefix": "bad prefix "}, "code_config"),
    ],
)
def test_malformed_code_config_names_its_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        CodeConfig(**kwargs)

    assert refused.value.field == field


def test_generated_characters_are_close_to_uniform() -> None:
    generator = CodeGenerator(CodeConfig())
    drawn = "".join(generator.generate(200_000 // 13 + 1))

    counts = Counter(drawn)

    expected = len(drawn) / len(DEFAULT_CHARSET)
    assert set(counts) == set(DEFAULT_CHARSET)
    # Each count's standard deviation is ~80, so 10% (~645) is 8 sigma: it never flakes.
    # The chi-square bound is the sharper one: plain `byte % 31` without rejection makes 8
    # characters ~9% too likely and scores ~500.
    assert all(abs(count - expected) < 0.10 * expected for count in counts.values()), counts
    chi_square = sum((count - expected) ** 2 / expected for count in counts.values())
    assert chi_square < 100  # 30 degrees of freedom: mean 30, p(> 100) ~ 1e-9


def test_generated_codes_are_unique_across_calls(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    # 8**4 = 4096 possible codes: drawing 3000 of them collides all the time.
    code_config = {"charset": "23456789", "length": 4, "min_entropy_bits": 12}
    engine.create_from_definition(
        unique_def(voucher={"kind": "unique", "code_config": code_config})
    )

    first = engine.generate_codes("welcome", 1500)
    second = engine.generate_codes("welcome", 1500)

    assert len(set(first)) == 1500
    assert len(set(second)) == 1500
    assert set(first).isdisjoint(second)


def test_code_space_exhaustion_is_a_conflict_not_a_hang(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code_config = {"charset": "23", "length": 2, "min_entropy_bits": 0}
    engine.create_from_definition(
        unique_def(voucher={"kind": "unique", "code_config": code_config})
    )
    all_four = engine.generate_codes("welcome", 4)

    with pytest.raises(Conflict) as refused:
        engine.generate_codes("welcome", 1)

    assert sorted(all_four) == ["22", "23", "32", "33"]
    assert refused.value.field == "code_config"


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [("spring10", "SPRING10"), ("  Spring-10\n", "SPRING-10"), ("a_b", "A_B"), ("7", "7")],
)
def test_normalize_code_strips_and_upper_cases(typed: str, canonical: str) -> None:
    result = normalize_code(typed)

    assert result == canonical


@pytest.mark.parametrize(
    "junk",
    ["", "   ", "SPRING 10", "SPRÏNG", "-SPRING", "SPRING;DROP", "A" * 65, 12345, None],
    ids=repr,
)
def test_normalize_code_rejects_junk(junk: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalize_code(junk, "row 1.code")

    assert refused.value.field == "row 1.code"


def test_engine_finds_a_code_whatever_its_case(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(unique_def(rules={"holder_only": False}))
    [code] = engine.generate_codes("welcome", 1)

    result = engine.validate(f"  {code.lower()} ", order())

    assert result.valid
    assert result.code == code


def test_import_publishes_each_code_to_its_customer(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(unique_def())

    imported = engine.import_codes(
        "welcome",
        [
            {"code": "wel-0001", "customer_id": "cust-1"},
            {"code": "WEL-0002", "customer_id": ""},
            {"code": "WEL-0003"},
        ],
    )

    assert imported == 3
    assert voucher(engine, "WEL-0001").holder_id == "cust-1"
    assert voucher(engine, "WEL-0001").published_at is not None
    assert voucher(engine, "WEL-0002").holder_id is None
    assert voucher(engine, "WEL-0003").holder_id is None


def test_import_sets_the_gift_balance_of_each_row(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(gift_def(balance=5000))

    engine.import_codes(
        "giftcards",
        [
            {"code": "GIFT-A", "gift_balance": "2500"},  # as read from CSV
            {"code": "GIFT-B", "gift_balance": 1000},
            {"code": "GIFT-C", "gift_balance": ""},  # empty cell: the campaign's balance
        ],
    )

    assert voucher(engine, "GIFT-A").gift_balance == 2500
    assert voucher(engine, "GIFT-B").gift_balance == 1000
    assert voucher(engine, "GIFT-C").gift_balance == 5000


def test_import_refuses_the_whole_file_for_a_repeated_code(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(unique_def())
    before = len(events(engine))

    with pytest.raises(InvalidInput) as refused:
        engine.import_codes("welcome", [{"code": "WEL-1"}, {"code": "WEL-2"}, {"code": " wel-1 "}])

    assert refused.value.field == "row 3.code"
    assert len(events(engine)) == before


def test_import_refuses_the_whole_file_for_a_code_already_in_the_ledger(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(unique_def())
    engine.import_codes("welcome", [{"code": "WEL-2"}])
    before = len(events(engine))

    with pytest.raises(Conflict) as refused:
        engine.import_codes(
            "welcome", [{"code": "WEL-1", "customer_id": "cust-1"}, {"code": "WEL-2"}]
        )

    assert refused.value.field == "row 2.code"
    assert len(events(engine)) == before
    with engine.store.read() as tx:
        assert tx.voucher_by_code("WEL-1") is None


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([{"code": "WEL-1", "colour": "red"}], "row 1.colour"),
        ([{"code": "WEL-1"}, {"code": "bad code"}], "row 2.code"),
        ([{"code": "WEL-1", "customer_id": "no spaces allowed"}], "row 1.customer_id"),
        ([{"code": "WEL-1", "gift_balance": 100}], "row 1.gift_balance"),
        ([], "rows"),
    ],
)
def test_import_names_the_row_and_field_it_refuses(
    tmp_path: Path, rows: list[dict[str, object]], field: str
) -> None:
    engine = engine_at(tmp_path)
    engine.create_from_definition(unique_def())
    before = len(events(engine))

    with pytest.raises(InvalidInput) as refused:
        engine.import_codes("welcome", rows)

    assert refused.value.field == field
    assert len(events(engine)) == before


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("\u017fpring10", id="long s folds to S"),
        pytest.param("SPR\u0131NG10", id="dotless i folds to I"),
        pytest.param("\ufb01ve10", id="fi ligature folds to FI"),
        pytest.param("SPRING10\u3000", id="ideographic space is stripped by str.strip"),
        pytest.param("\u3000SPRING10", id="leading ideographic space"),
        pytest.param("SPRING10\u00a0", id="no-break space"),
        pytest.param("\uff33PRING10", id="fullwidth S"),
        pytest.param("SPRING\u200b10", id="zero-width space"),
    ],
)
def test_a_code_with_look_alike_characters_is_refused_never_folded(typed: str) -> None:
    with pytest.raises(InvalidInput) as refusal:
        normalize_code(typed)

    assert refusal.value.field == "code"


def test_a_code_is_trimmed_of_ascii_blanks_and_upper_cased() -> None:
    assert normalize_code(" spring10\t\r\n") == "SPRING10"
