"""The `promo` command line, driven the way people and scripts drive it.

Most tests call `redemption_core.cli.main([...])` in-process (fast) with PROMO_HOME pointing at
a temporary folder; a few run `python -m redemption_core.cli` as a real process, where the exit
code, stderr and state across processes are exactly what a shell sees.

The contract under test (redemption_core/cli/, README): exit 0 done / valid / redeemed; exit 1 a well-formed
request refused by a rule (and recorded with its reason codes); exit 2 bad input or a refused
command, with ONE line on stderr that starts with 'error:' and names the field, and nothing
written to the ledger.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from redemption_core import cli
from redemption_core.cli.campaigns import EXPORT_COLUMNS
from redemption_core.cli.main import build_parser
from redemption_core.ledger.dialect import to_pyformat

REPO = Path(__file__).resolve().parents[1]
HMAC_KEY = "5e" * 32  # 64 hex characters

MAIN_YAML = """\
id: retention
name: Retention
campaigns:
  - id: winback
    name: Win-back
    currency: EUR
    status: active
    voucher:
      kind: unique
      code_config: {prefix: "WB-"}
    discount: {type: percent, percent_off: 15, max_discount: 1000}
    rules: {min_order_amount: 2000}
  - id: giftcards
    name: Gift cards
    currency: EUR
    status: active
    voucher: {kind: gift, gift_balance: 2500}
"""

SPRING_JSON = """\
{
  "id": "spring",
  "name": "Spring sale",
  "currency": "EUR",
  "status": "active",
  "voucher": {"kind": "standalone", "code": "spring10"},
  "discount": {"type": "amount", "amount_off": 500}
}
"""

# A cart of 30.00: what a hold needs.
CART_3000 = json.dumps(
    {"amount": 3000, "currency": "EUR", "items": [{"product_id": "burger", "unit_price": 3000}]}
)
ORDER = {
    "id": "o-1",
    "amount": 4000,
    "currency": "EUR",
    "items": [{"product_id": "burger", "category": "mains", "quantity": 2, "unit_price": 1290}],
}


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


class Promo:
    """`promo ...` in this process; argparse's SystemExit becomes an exit code like a shell's."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def __call__(self, *args: object) -> Result:
        self._capsys.readouterr()
        try:
            code = cli.main([str(arg) for arg in args])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: object) -> Result:
        result = self(*args)
        assert result.code == 0, f"promo {' '.join(map(str, args))}: {result.err or result.out}"
        return result

    def stats(self) -> dict[str, Any]:
        return self.ok("--json", "ledger", "stats").json

    def events(self) -> int:
        return self.stats()["events"]


def promo_process(home: Path, *args: object, hmac_key: str | None = HMAC_KEY) -> Result:
    """`python -m redemption_core.cli ...` as a real process, state under `home`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROMO_HOME", "PROMO_HMAC_KEY")}
    env["PROMO_HOME"] = str(home)
    if hmac_key is not None:
        env["PROMO_HMAC_KEY"] = hmac_key
    done = subprocess.run(
        [sys.executable, "-m", "redemption_core.cli", *map(str, args)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def assert_refused(result: Result, *fields: str) -> None:
    """Exit 2 and exactly one stderr line, starting with 'error:', that names one of `fields`."""
    assert result.code == 2, result
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("error:"), result.err
    assert any(field in result.err_lines[0] for field in fields), result.err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_backend: str) -> Path:
    """PROMO_HOME for the test; every test that uses it runs on both ledgers (SQLite, and
    PostgreSQL through PROMO_LEDGER_URL)."""
    home = tmp_path / "home"
    monkeypatch.setenv("PROMO_HOME", str(home))
    monkeypatch.delenv("PROMO_HMAC_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def promo(home: Path, capsys: pytest.CaptureFixture[str]) -> Promo:
    return Promo(capsys)


@pytest.fixture
def campaigns(promo: Promo, tmp_path: Path) -> None:
    """winback (unique WB- codes, 15%, min 20.00), giftcards (25.00), spring (SPRING10, 5.00 off)."""
    promo.ok("campaign", "create", write(tmp_path / "retention.yaml", MAIN_YAML))
    promo.ok("campaign", "create", write(tmp_path / "spring.json", SPRING_JSON))


@pytest.fixture
def winback_code(promo: Promo, campaigns: None) -> str:
    """A win-back code published to customer c-1."""
    code = promo.ok("--json", "codes", "generate", "--campaign", "winback", "--count", 1)
    (code,) = code.json["codes"]
    promo.ok("voucher", "publish", code, "--customer", "c-1")
    return code


def redeem_json(promo: Promo, *args: object) -> Result:
    return promo("--json", "redeem", *args)


# -- campaign ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_campaign_create_takes_a_main_campaign_and_a_single_campaign_from_yaml_or_json(
    promo: Promo, tmp_path: Path, suffix: str
) -> None:
    dump = json.dumps if suffix == "json" else yaml.safe_dump
    main_file = write(tmp_path / f"retention.{suffix}", dump(yaml.safe_load(MAIN_YAML)))
    single_file = write(tmp_path / f"spring.{suffix}", dump(json.loads(SPRING_JSON)))

    main = promo("campaign", "create", main_file)
    single = promo("--json", "campaign", "create", single_file)

    assert (main.code, main.out.strip()) == (0, "created campaigns: winback, giftcards")
    assert (single.code, single.json) == (0, {"created": ["spring"]})
    stats = promo.stats()
    assert stats["events_by_type"] == {
        "main_campaign_created": 1,
        "campaign_created": 3,
        "voucher_created": 1,  # the standalone SPRING10
    }


def test_campaign_list_prints_one_line_per_campaign_with_status_and_counters(
    promo: Promo, campaigns: None
) -> None:
    promo.ok("codes", "generate", "--campaign", "winback", "--count", 4)

    result = promo("campaign", "list")

    assert result.code == 0
    lines = result.out.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["giftcards", "active", "vouchers=0"],
        ["spring", "active", "vouchers=1"],
        ["winback", "active", "vouchers=4"],
    ]
    assert all("redemptions=0" in line and "discount=0.00 EUR" in line for line in lines)


def test_json_may_follow_the_subcommand_as_well_as_precede_it(
    promo: Promo, campaigns: None
) -> None:
    before = promo.ok("--json", "ledger", "tail", "-n", "2")

    after = promo.ok("ledger", "tail", "-n", "2", "--json")

    assert after.out == before.out
    assert [json.loads(line)["seq"] for line in after.out.splitlines()] != []


def test_campaign_list_as_json_is_a_list_of_rows(promo: Promo, campaigns: None) -> None:
    promo.ok("campaign", "status", "spring", "paused")

    result = promo("--json", "campaign", "list")

    assert result.code == 0
    rows = {row["campaign_id"]: row for row in result.json}
    assert set(rows) == {"winback", "giftcards", "spring"}
    assert rows["spring"] == {
        "campaign_id": "spring",
        "status": "paused",
        "currency": "EUR",
        "vouchers": 1,
        "redemptions": 0,
        "discount_given": 0,
    }


def test_a_paused_campaign_rejects_a_redemption_with_campaign_inactive(
    promo: Promo, campaigns: None
) -> None:
    paused = promo("campaign", "status", "spring", "paused")

    result = promo("redeem", "SPRING10", "--amount", 3000, "--currency", "EUR")

    assert (paused.code, paused.out.strip()) == (0, "spring: paused")
    assert result.code == 1
    assert result.out.startswith("rejected: campaign_inactive")
    assert promo.stats()["rejections_by_reason"] == {"campaign_inactive": 1}


def test_an_illegal_status_change_is_refused_and_names_the_status(
    promo: Promo, campaigns: None
) -> None:
    promo.ok("campaign", "status", "spring", "finished")
    before = promo.events()

    result = promo("campaign", "status", "spring", "active")

    assert_refused(result, "status")
    assert promo.events() == before


# -- codes -------------------------------------------------------------------------------------


def test_codes_generate_writes_n_unique_codes_to_the_out_csv_and_prints_a_summary(
    promo: Promo, campaigns: None, tmp_path: Path
) -> None:
    out_file = tmp_path / "codes.csv"

    result = promo("codes", "generate", "--campaign", "winback", "--count", 25, "--out", out_file)

    assert result.code == 0
    assert result.out.strip() == f"generated 25 codes for winback into {out_file}"
    with out_file.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["code"]
    written = [row[0] for row in rows[1:]]
    assert len(written) == len(set(written)) == 25
    assert all(code.startswith("WB-") and len(code) == len("WB-") + 13 for code in written)
    assert promo.stats()["events_by_type"]["voucher_created"] == 1 + 25


def test_codes_generate_to_a_file_as_json_names_the_file_and_the_count_not_the_codes(
    promo: Promo, campaigns: None, tmp_path: Path
) -> None:
    result = promo(
        "--json",
        "codes",
        "generate",
        "--campaign",
        "winback",
        "--count",
        4,
        "--out",
        tmp_path / "c.csv",
    )

    assert result.code == 0
    assert result.json == {"campaign_id": "winback", "generated": 4, "out": str(tmp_path / "c.csv")}


def test_codes_generate_as_json_names_the_campaign_and_the_codes(
    promo: Promo, campaigns: None
) -> None:
    result = promo("--json", "codes", "generate", "--campaign", "giftcards", "--count", 3)

    assert result.code == 0
    assert result.json["campaign_id"] == "giftcards"
    assert len(set(result.json["codes"])) == 3


def test_codes_import_publishes_to_the_customer_column_and_export_lists_the_holders(
    promo: Promo, campaigns: None, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "import.csv",
        [["code", "customer_id"], ["imp-0001", "c-10"], ["IMP-0002", "c-11"], ["IMP-0003", ""]],
    )

    imported = promo("codes", "import", "--campaign", "winback", source)
    exported = promo("codes", "export", "--campaign", "winback")

    assert (imported.code, imported.out.strip()) == (0, "imported 3 codes")
    assert exported.code == 0
    rows = parse_csv(exported.out)
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    assert [(r["code"], r["customer_id"], r["status"]) for r in rows] == [
        ("IMP-0001", "c-10", "active"),
        ("IMP-0002", "c-11", "active"),
        ("IMP-0003", "", "active"),
    ]
    assert [bool(r["published_at"]) for r in rows] == [True, True, False]
    assert all(r["voucher_id"].startswith("v_") for r in rows)


def test_codes_export_with_out_writes_the_same_csv_to_the_file(
    promo: Promo, winback_code: str, tmp_path: Path
) -> None:
    out_file = tmp_path / "export.csv"

    to_file = promo("codes", "export", "--campaign", "winback", "--out", out_file)
    to_stdout = promo("codes", "export", "--campaign", "winback")

    assert (to_file.code, to_file.out) == (0, "")
    assert parse_csv(out_file.read_text()) == parse_csv(to_stdout.out)
    assert [(r["code"], r["customer_id"]) for r in parse_csv(to_stdout.out)] == [
        (winback_code, "c-1")
    ]


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        pytest.param([["NEW-0001", "c-1"], ["new-0001", "c-2"]], "row 2.code", id="duplicate row"),
        pytest.param([["NEW-0002", "c-1"], ["SPRING10", "c-2"]], "row 2.code", id="existing code"),
        pytest.param([["NEW-0003", "c-1"], ["NEW 0004!", "c-2"]], "row 2.code", id="junk code"),
        pytest.param([["NEW-0005", "not an id"]], "row 1.customer_id", id="bad customer id"),
    ],
)
def test_codes_import_of_a_bad_file_exits_2_naming_row_and_field_and_adds_nothing(
    promo: Promo, campaigns: None, tmp_path: Path, rows: list[list[str]], field: str
) -> None:
    source = write_csv(tmp_path / "import.csv", [["code", "customer_id"], *rows])
    before = promo.stats()

    result = promo("codes", "import", "--campaign", "winback", source)

    assert_refused(result, field)
    after = promo.stats()
    assert after["events_by_type"] == before["events_by_type"]
    assert after["events"] == before["events"]


def test_codes_import_of_a_file_without_a_code_header_names_the_file(
    promo: Promo, campaigns: None, tmp_path: Path
) -> None:
    source = write(tmp_path / "codes.csv", "voucher\nNEW-0001\n")
    before = promo.events()

    result = promo("codes", "import", "--campaign", "winback", source)

    assert_refused(result, "file")
    assert "'code'" in result.err
    assert promo.events() == before


# -- voucher -----------------------------------------------------------------------------------


def test_voucher_publish_assigns_the_code_once_and_refuses_a_second_customer(
    promo: Promo, campaigns: None
) -> None:
    (code,) = promo.ok("--json", "codes", "generate", "--campaign", "winback", "--count", 1).json[
        "codes"
    ]

    first = promo("voucher", "publish", code, "--customer", "c-1")
    again = promo("--json", "voucher", "publish", code.lower(), "--customer", "c-1")
    other = promo("voucher", "publish", code, "--customer", "c-2")

    assert (first.code, first.out.strip()) == (0, "published")
    assert (again.code, again.json["changed"]) == (0, False)
    assert_refused(other, "code")
    assert promo.stats()["events_by_type"]["voucher_published"] == 1


def test_voucher_accept_is_for_the_holder_only(promo: Promo, winback_code: str) -> None:
    accepted = promo("voucher", "accept", winback_code, "--customer", "c-1")
    again = promo("--json", "voucher", "accept", winback_code, "--customer", "c-1")
    stranger = promo("voucher", "accept", winback_code, "--customer", "c-2")

    assert (accepted.code, accepted.out.strip()) == (0, "accepted")
    assert (again.code, again.json["changed"]) == (0, False)
    assert_refused(stranger, "customer_id")
    (row,) = parse_csv(promo.ok("codes", "export", "--campaign", "winback").out)
    assert row["accepted_at"]


def test_a_disabled_voucher_fails_validation_until_it_is_enabled_again(
    promo: Promo, winback_code: str
) -> None:
    check = ("validate", winback_code, "--customer", "c-1", "--amount", 3000, "--currency", "EUR")

    disabled = promo("voucher", "disable", winback_code)
    while_disabled = promo(*check)
    enabled = promo("voucher", "enable", winback_code)
    while_enabled = promo(*check)

    assert (disabled.code, disabled.out.strip()) == (0, "disabled")
    assert while_disabled.code == 1
    assert "voucher_disabled" in while_disabled.out
    assert (enabled.code, enabled.out.strip()) == (0, "enabled")
    assert while_enabled.code == 0
    types = promo.stats()["events_by_type"]
    assert (types["voucher_disabled"], types["voucher_enabled"]) == (1, 1)


def test_voucher_topup_adds_to_a_gift_card_balance(promo: Promo, campaigns: None) -> None:
    (card,) = promo.ok("--json", "codes", "generate", "--campaign", "giftcards", "--count", 1).json[
        "codes"
    ]

    first = promo("voucher", "topup", card, 1000)
    second = promo("--json", "voucher", "topup", card, 500)

    assert (first.code, first.out.strip()) == (0, "balance 3500")
    assert (second.code, second.json) == (0, {"code": card, "gift_balance": 4000})
    (row,) = parse_csv(promo.ok("codes", "export", "--campaign", "giftcards").out)
    assert row["gift_balance"] == "4000"


def test_voucher_topup_of_a_code_that_is_not_a_gift_card_is_refused(
    promo: Promo, campaigns: None
) -> None:
    before = promo.events()

    result = promo("voucher", "topup", "SPRING10", 1000)

    assert_refused(result, "code")
    assert promo.events() == before


# -- validate ----------------------------------------------------------------------------------


def test_validate_of_a_valid_order_exits_0_and_shows_the_discount(
    promo: Promo, winback_code: str
) -> None:
    result = promo(
        "validate", winback_code, "--customer", "c-1", "--amount", 3000, "--currency", "EUR"
    )

    assert result.code == 0
    assert result.out.strip() == "valid: discount 4.50 EUR, gift 0.00 EUR, to pay 25.50 EUR"


def test_validate_of_an_order_a_rule_refuses_exits_1_with_the_reason_code(
    promo: Promo, winback_code: str
) -> None:
    result = promo(
        "validate", winback_code, "--customer", "c-1", "--amount", 1500, "--currency", "EUR"
    )

    assert result.code == 1
    assert result.out.startswith("invalid: order_below_minimum")
    assert promo.stats()["events_by_type"]["voucher_validated"] == 1  # recorded all the same


def test_validate_as_json_of_a_valid_order_has_valid_reasons_and_discount(
    promo: Promo, winback_code: str
) -> None:
    result = promo(
        "--json", "validate", winback_code, "--customer", "c-1", "--amount", 3000,
        "--currency", "EUR",
    )  # fmt: skip

    assert result.code == 0
    document = result.json
    assert (document["valid"], document["reasons"], document["discount"]) == (True, [], 450)
    assert (document["amount_to_pay"], document["session_id"]) == (2550, None)


def test_validate_as_json_of_a_refused_order_lists_the_reason_codes(
    promo: Promo, winback_code: str
) -> None:
    result = promo(
        "--json", "validate", winback_code, "--customer", "c-2", "--amount", 1500,
        "--currency", "EUR",
    )  # fmt: skip

    assert result.code == 1
    document = result.json
    assert document["valid"] is False
    assert sorted(reason["code"] for reason in document["reasons"]) == [
        "customer_not_holder",
        "order_below_minimum",
    ]
    assert all(reason["message"] for reason in document["reasons"])
    assert isinstance(document["discount"], int)


def test_validate_of_an_unknown_code_exits_1_with_resource_not_found(
    promo: Promo, campaigns: None
) -> None:
    result = promo("validate", "NO-SUCH-CODE", "--amount", 3000, "--currency", "EUR")

    assert result.code == 1
    assert "resource_not_found" in result.out


def test_validate_hold_returns_a_session_that_redeem_session_consumes_once(
    promo: Promo, winback_code: str
) -> None:
    order = ("--customer", "c-1", "--order", CART_3000)
    held = promo("--json", "validate", winback_code, *order, "--hold", 30)
    session = held.json["session_id"]

    redeemed = redeem_json(promo, winback_code, *order, "--session", session)
    reused = redeem_json(promo, winback_code, *order, "--session", session)

    assert held.code == 0
    assert session.startswith("hold_")
    assert held.json["session_expires_at"]
    assert redeemed.code == 0
    assert redeemed.json["ok"] is True
    assert redeemed.json["discount"] == 450
    assert reused.code == 1
    assert "session_expired" in [reason["code"] for reason in reused.json["reasons"]]
    assert promo.ok("ledger", "verify").out.startswith("clean")


def test_a_hold_keeps_other_sessions_from_using_a_single_use_code(
    promo: Promo, winback_code: str
) -> None:
    order = ("--customer", "c-1", "--order", CART_3000)
    promo.ok("validate", winback_code, *order, "--hold", 30)

    result = redeem_json(promo, winback_code, *order)

    assert result.code == 1
    assert "quantity_exceeded" in [reason["code"] for reason in result.json["reasons"]]


# -- redeem and rollback -----------------------------------------------------------------------


def test_redeem_takes_the_order_as_json_or_from_a_file(
    promo: Promo, campaigns: None, tmp_path: Path
) -> None:
    order_file = write(tmp_path / "order.json", json.dumps(ORDER))

    inline = redeem_json(promo, "SPRING10", "--customer", "c-1", "--order", json.dumps(ORDER))
    from_file = redeem_json(promo, "SPRING10", "--customer", "c-2", "--order", f"@{order_file}")

    for result in (inline, from_file):
        assert result.code == 0
        assert result.json["ok"] is True
        assert (result.json["order_amount"], result.json["discount"]) == (4000, 500)
        assert result.json["amount_to_pay"] == 3500
    assert inline.json["redemption_id"] != from_file.json["redemption_id"]
    assert promo.stats()["redemptions"] == 2


def test_redeem_in_text_mode_names_the_redemption_and_the_money(
    promo: Promo, campaigns: None
) -> None:
    result = promo("redeem", "spring10", "--amount", 3000, "--currency", "EUR")

    assert result.code == 0
    assert result.out.startswith("redeemed r_")
    assert "discount 5.00 EUR, gift 0.00 EUR, to pay 25.00 EUR" in result.out


def test_redeem_retried_with_the_same_idempotency_key_replays_the_first_redemption(
    promo: Promo, campaigns: None
) -> None:
    request = ("SPRING10", "--customer", "c-1", "--order", json.dumps(ORDER))

    first = redeem_json(promo, *request, "--idempotency-key", "chk-991")
    retry = redeem_json(promo, *request, "--idempotency-key", "chk-991")
    retry_text = promo("redeem", *request, "--idempotency-key", "chk-991")

    assert (first.code, retry.code, retry_text.code) == (0, 0, 0)
    assert first.json["replayed"] is False
    assert retry.json["replayed"] is True
    assert retry.json["redemption_id"] == first.json["redemption_id"]
    assert retry_text.out.rstrip().endswith("(replayed)")
    assert first.json["redemption_id"] in retry_text.out
    assert promo.stats()["events_by_type"]["redemption_succeeded"] == 1


def test_an_idempotency_key_reused_with_a_different_amount_exits_2_and_writes_nothing(
    promo: Promo, campaigns: None
) -> None:
    promo.ok("redeem", "SPRING10", "--amount", 3000, "--currency", "EUR", "--idempotency-key", "k1")
    before = promo.events()

    result = promo(
        "redeem", "SPRING10", "--amount", 3100, "--currency", "EUR", "--idempotency-key", "k1"
    )

    assert_refused(result, "idempotency_key")
    assert promo.events() == before


def test_rollback_gives_back_a_redemption_and_a_second_rollback_exits_1(
    promo: Promo, campaigns: None
) -> None:
    redeemed = redeem_json(promo, "SPRING10", "--amount", 3000, "--currency", "EUR")
    redemption_id = redeemed.json["redemption_id"]

    first = promo("rollback", redemption_id, "--reason", "order cancelled")
    second = promo("rollback", redemption_id, "--reason", "order cancelled")
    second_json = promo("--json", "rollback", redemption_id)

    assert first.code == 0
    assert first.out.startswith(f"rolled back {redemption_id} (rb_")
    assert second.code == 1
    assert second.out.startswith("refused: already_rolled_back")
    assert second_json.code == 1
    assert second_json.json["ok"] is False
    assert [reason["code"] for reason in second_json.json["reasons"]] == ["already_rolled_back"]
    stats = promo.stats()
    assert (stats["redemptions"], stats["rolled_back"], stats["discount_given_net"]) == (1, 1, 0)


def test_rollback_of_an_unknown_redemption_exits_1_with_resource_not_found(
    promo: Promo, campaigns: None
) -> None:
    result = promo("rollback", "r_doesnotexist")

    assert result.code == 1
    assert "resource_not_found" in result.out


# -- bad input ---------------------------------------------------------------------------------

BAD_INVOCATIONS = [
    pytest.param(
        ["redeem", "SPRING10", "--amount", "-5", "--currency", "EUR"], "order.amount",
        id="negative amount",
    ),
    pytest.param(
        ["redeem", "SPRING10", "--amount", "12.50", "--currency", "EUR"], "--amount",
        id="non-integer amount",
    ),
    pytest.param(
        ["validate", "SPRING10", "--amount", "3000", "--currency", "XYZ"], "order.currency",
        id="unknown currency",
    ),
    pytest.param(
        ["redeem", "SPRING10", "--amount", "3000"], "--currency", id="missing currency"
    ),
    pytest.param(["redeem", "SPRING10", "--order", '{"amount": 3000,'], "--order", id="bad JSON"),
    pytest.param(
        ["redeem", "SPRING10", "--order", '{"amount": 3000, "currency": "EUR", "coupon": "x"}'],
        "order.coupon", id="unknown order field",
    ),
    pytest.param(
        ["redeem", "SPRING10", "--order", '{"currency": "EUR", "items": [{"product_id": "x"}]}'],
        "order.items[0].unit_price", id="order item without a price",
    ),
    pytest.param(
        ["redeem", "SPRING10", "--order", "[3000]"], "order", id="order JSON is not an object"
    ),
    pytest.param(
        ["redeem", "SPRING10", "--order", "{}", "--amount", "3000"], "--order",
        id="order and amount",
    ),
    pytest.param(
        ["redeem", "SPRING10", "--order", "@missing-order.json"], "missing-order.json",
        id="missing order file",
    ),
    pytest.param(["campaign", "create", "missing.yaml"], "file", id="missing campaign file"),
    pytest.param(
        ["codes", "import", "--campaign", "winback", "missing.csv"], "file",
        id="missing csv file",
    ),
    pytest.param(
        ["validate", "SPR!NG 10", "--amount", "3000", "--currency", "EUR"], "code",
        id="code with junk characters",
    ),
    pytest.param(
        ["redeem", "SPRING10", "--amount", "3000", "--currency", "EUR", "--ip", "300.1.2.3"],
        "context.ip", id="bad ip",
    ),
    pytest.param(
        ["redeem", "SPRING10", "--amount", "3000", "--currency", "EUR", "--customer", "c 1"],
        "customer_id", id="customer id with a space",
    ),
    pytest.param(
        ["validate", "SPRING10", "--amount", "3000", "--currency", "EUR", "--hold", "0"],
        "hold_seconds", id="zero hold",
    ),
    pytest.param(["frobnicate"], "frobnicate", id="unknown command"),
    pytest.param(["voucher", "shred", "SPRING10"], "shred", id="unknown subcommand"),
    pytest.param(["codes", "generate", "--count", "3"], "--campaign", id="missing --campaign"),
    pytest.param(["voucher", "publish", "SPRING10"], "--customer", id="missing --customer"),
    pytest.param(["validate", "SPRING10"], "--amount", id="missing amount"),
    pytest.param(
        ["codes", "generate", "--campaign", "winback", "--count", "0"], "count", id="zero count"
    ),
    pytest.param(
        ["codes", "generate", "--campaign", "nope", "--count", "1"], "campaign_id",
        id="unknown campaign",
    ),
    pytest.param(["voucher", "topup", "SPRING10", "-5"], "amount", id="negative topup"),
    pytest.param(["campaign", "status", "spring", "asleep"], "status", id="unknown status"),
    pytest.param(["ledger", "tail", "-n", "x"], "-n", id="non-integer tail count"),
    pytest.param(["rollback", "r_1; DROP"], "redemption_id", id="junk redemption id"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "field"), BAD_INVOCATIONS)
def test_a_malformed_invocation_exits_2_with_one_error_line_and_writes_nothing(
    promo: Promo, campaigns: None, argv: list[str], field: str
) -> None:
    before = promo.stats()

    result = promo(*argv)

    assert_refused(result, field)
    assert result.out == ""
    after = promo.stats()
    assert (after["events"], after["events_by_type"]) == (
        before["events"],
        before["events_by_type"],
    )


# -- ledger ------------------------------------------------------------------------------------


def test_ledger_tail_prints_the_last_n_events_one_per_line(promo: Promo, winback_code: str) -> None:
    result = promo("ledger", "tail", "-n", 3)

    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) == 3
    last_seq = promo.stats()["last_seq"]
    assert [int(line.split()[0]) for line in lines] == [last_seq - 2, last_seq - 1, last_seq]
    assert lines[-1].split()[2] == "voucher_published"
    assert "customer_id=c-1" in lines[-1]


def test_ledger_tail_as_json_prints_one_event_object_per_line(
    promo: Promo, winback_code: str
) -> None:
    result = promo("--json", "ledger", "tail")

    assert result.code == 0
    events = [json.loads(line) for line in result.out.splitlines()]
    assert len(events) == promo.stats()["events"]  # fewer than the default 20
    assert [event["seq"] for event in events] == sorted(event["seq"] for event in events)
    assert all({"seq", "event_type", "payload"} <= set(event) for event in events)
    assert events[0]["event_type"] == "main_campaign_created"
    assert events[-1]["event_type"] == "voucher_published"
    assert events[-1]["payload"]["code"] == winback_code


def test_ledger_stats_counts_every_event_type_of_a_session(promo: Promo, winback_code: str) -> None:
    order = ("--customer", "c-1", "--amount", 3000, "--currency", "EUR")
    promo.ok("voucher", "accept", winback_code, "--customer", "c-1")
    promo.ok("validate", winback_code, *order)
    promo("validate", "NO-SUCH-CODE", *order)
    redemption_id = redeem_json(promo, winback_code, *order).json["redemption_id"]
    promo("redeem", winback_code, *order)  # single use: rejected
    promo.ok("rollback", redemption_id)
    promo("rollback", redemption_id)  # rejected
    promo.ok("campaign", "status", "spring", "paused")
    promo.ok("segment", "add", "vip", "c-1")

    stats = promo.stats()

    assert stats["events_by_type"] == {
        "main_campaign_created": 1,
        "campaign_created": 3,
        "voucher_created": 2,
        "voucher_published": 1,
        "voucher_accepted": 1,
        "voucher_validated": 2,
        "redemption_succeeded": 1,
        "redemption_rejected": 1,
        "redemption_rolled_back": 1,
        "rollback_rejected": 1,
        "campaign_status_changed": 1,
        "segment_member_added": 1,
    }
    assert stats["events"] == 16
    assert stats["rejections_by_reason"] == {"quantity_exceeded": 1}
    assert (stats["redemptions"], stats["rolled_back"]) == (1, 1)


def test_ledger_stats_in_text_mode_summarises_events_and_campaigns(
    promo: Promo, campaigns: None
) -> None:
    result = promo("ledger", "stats")

    assert result.code == 0
    assert result.out.startswith("ledger: 5 events, last seq 5")
    assert "campaigns:" in result.out
    assert "spring" in result.out


def test_ledger_verify_of_an_untouched_ledger_exits_0_and_says_clean(
    promo: Promo, winback_code: str
) -> None:
    redeem_json(promo, winback_code, "--customer", "c-1", "--amount", 3000, "--currency", "EUR")

    result = promo("ledger", "verify")
    as_json = promo("--json", "ledger", "verify")

    assert result.code == 0
    assert result.out.strip() == (
        f"clean: {promo.events()} events break no invariant and the projection matches them"
    )
    assert (as_json.code, as_json.json["clean"], as_json.json["differences"]) == (0, True, [])


def test_ledger_verify_names_the_table_and_key_of_a_tampered_projection_row(
    promo: Promo, winback_code: str, home: Path
) -> None:
    redeem_json(promo, winback_code, "--customer", "c-1", "--amount", 3000, "--currency", "EUR")
    url = os.environ.get("PROMO_LEDGER_URL")
    db: Any = (
        psycopg.connect(url, autocommit=True) if url else sqlite3.connect(home / "ledger.sqlite")
    )
    sql = to_pyformat if url else str
    (voucher_id,) = db.execute(
        sql("SELECT voucher_id FROM vouchers WHERE code = ?"), (winback_code,)
    ).fetchone()
    db.execute(sql("UPDATE vouchers SET redemptions = 5 WHERE voucher_id = ?"), (voucher_id,))
    if not url:
        db.commit()
    db.close()

    result = promo("ledger", "verify")

    assert result.code == 1
    assert f"vouchers[{voucher_id}]: redemptions: ledger says 1, projection has 5" in result.out
    assert "1 differences over" in result.out


@pytest.mark.parametrize("action", ["stats", "tail", "verify"])
def test_ledger_commands_without_a_ledger_exit_2_with_one_line_and_create_nothing(
    promo: Promo, home: Path, action: str, ledger_backend: str
) -> None:
    if ledger_backend != "sqlite":
        pytest.skip("a ledger named by PROMO_LEDGER_URL is there once configured")
    result = promo("ledger", action)

    assert_refused(result, "PROMO_HOME")
    assert "no ledger at" in result.err
    assert not (home / "ledger.sqlite").exists()


# -- real processes ----------------------------------------------------------------------------


def test_a_fresh_home_works_end_to_end_in_real_processes_without_an_hmac_key(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    definition = write(tmp_path / "retention.yaml", MAIN_YAML)
    codes_file = tmp_path / "codes.csv"

    created = promo_process(home, "campaign", "create", definition, hmac_key=None)
    generated = promo_process(
        home, "codes", "generate", "--campaign", "winback", "--count", 3, "--out", codes_file,
        hmac_key=None,
    )  # fmt: skip
    listed = promo_process(home, "--json", "campaign", "list", hmac_key=None)
    verified = promo_process(home, "ledger", "verify", hmac_key=None)

    assert (created.code, created.out.strip()) == (0, "created campaigns: winback, giftcards")
    assert generated.code == 0
    assert len(parse_csv(codes_file.read_text())) == 3
    assert generated.out.strip() == f"generated 3 codes for winback into {codes_file}"
    assert {row["campaign_id"]: row["vouchers"] for row in listed.json} == {
        "winback": 3,
        "giftcards": 0,
    }
    assert verified.code == 0
    assert verified.out.startswith("clean")
    assert (home / "secrets" / "hmac.key").exists()


def test_a_hold_taken_by_validate_in_one_process_is_consumed_by_redeem_in_another(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    promo_process(home, "campaign", "create", write(tmp_path / "r.yaml", MAIN_YAML))
    code = promo_process(home, "codes", "generate", "--campaign", "winback", "--count", 1).out
    code = code.strip()
    promo_process(home, "voucher", "publish", code, "--customer", "c-1")
    order = ("--customer", "c-1", "--order", CART_3000)

    held = promo_process(home, "--json", "validate", code, *order, "--hold", 30)
    redeemed = promo_process(
        home, "--json", "redeem", code, *order, "--session", held.json["session_id"]
    )

    assert held.code == 0
    assert held.json["valid"] is True
    assert redeemed.code == 0
    assert redeemed.json["ok"] is True
    assert promo_process(home, "ledger", "verify").code == 0


def test_an_idempotent_redeem_retried_in_a_new_process_replays_the_first_redemption(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    promo_process(home, "campaign", "create", write(tmp_path / "spring.json", SPRING_JSON))
    order_file = write(tmp_path / "order.json", json.dumps(ORDER))
    request = ("--json", "redeem", "SPRING10", "--order", f"@{order_file}")

    first = promo_process(home, *request, "--idempotency-key", "chk-991", "--ip", "203.0.113.9")
    retry = promo_process(home, *request, "--idempotency-key", "chk-991", "--ip", "203.0.113.9")
    changed = promo_process(home, *request, "--idempotency-key", "chk-991", "--ip", "203.0.113.10")

    assert (first.code, first.json["replayed"]) == (0, False)
    assert (retry.code, retry.json["replayed"]) == (0, True)
    assert retry.json["redemption_id"] == first.json["redemption_id"]
    assert_refused(changed, "idempotency_key")


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        pytest.param(["redeem", "SPRING10", "--order", "{not json"], "--order", id="bad JSON"),
        pytest.param(["redeem", "SPRING10", "--amount", "1.5"], "--amount", id="float amount"),
        pytest.param(["refund", "SPRING10"], "refund", id="unknown command"),
    ],
)
def test_a_malformed_invocation_in_a_real_process_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, argv: list[str], field: str
) -> None:
    home = tmp_path / "home"
    promo_process(home, "campaign", "create", write(tmp_path / "spring.json", SPRING_JSON))
    before = promo_process(home, "--json", "ledger", "stats").json["events"]

    result = promo_process(home, *argv)

    assert_refused(result, field)
    assert result.out == ""
    assert promo_process(home, "--json", "ledger", "stats").json["events"] == before


# -- defects found while writing these tests (they fail until the CLI is fixed) ------------------


@pytest.mark.parametrize(
    "out", [pytest.param("no-such-dir/codes.csv", id="missing folder"), pytest.param(".", id="dir")]
)
def test_codes_generate_with_an_unwritable_out_file_exits_2_naming_out_and_creates_no_vouchers(
    promo: Promo, campaigns: None, home: Path, tmp_path: Path, out: str
) -> None:
    before = promo.stats()

    result = promo_process(
        home, "codes", "generate", "--campaign", "winback", "--count", 5, "--out", tmp_path / out,
        hmac_key=None,
    )  # fmt: skip

    assert promo.stats()["events"] == before["events"], "vouchers were created anyway"
    assert_refused(result, "--out")


def test_campaign_create_with_invalid_yaml_reports_one_line(promo: Promo, tmp_path: Path) -> None:
    definition = write(tmp_path / "broken.yaml", "id: winback\ncampaigns: [\n")

    result = promo("campaign", "create", definition)

    assert_refused(result, "file")


@pytest.mark.parametrize("command", ["campaign create", "redeem --order"])
def test_a_file_that_is_not_utf8_is_refused_with_one_line(
    promo: Promo, campaigns: None, home: Path, tmp_path: Path, command: str
) -> None:
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"id": "cafe", "name": "Café", "currency": "EUR"}'.encode("latin-1"))
    argv = (
        ["campaign", "create", latin1]
        if command == "campaign create"
        else ["redeem", "SPRING10", "--order", f"@{latin1}"]
    )

    result = promo_process(home, *argv, hmac_key=None)

    assert_refused(result, "file" if command == "campaign create" else "--order")


def test_a_deeply_nested_order_json_is_refused_with_one_line(
    promo: Promo, campaigns: None, home: Path
) -> None:
    result = promo_process(home, "validate", "SPRING10", "--order", "[" * 100_000, hmac_key=None)

    assert_refused(result, "--order")


def test_codes_import_with_an_oversized_field_is_refused_with_one_line(
    promo: Promo, campaigns: None, home: Path, tmp_path: Path
) -> None:
    source = write(tmp_path / "codes.csv", "code\n" + "A" * 200_000 + "\n")

    result = promo_process(home, "codes", "import", "--campaign", "winback", source, hmac_key=None)

    assert_refused(result, "file", "row 1.code")


def test_codes_import_refuses_a_row_with_more_cells_than_the_header(
    promo: Promo, campaigns: None, tmp_path: Path
) -> None:
    # An unquoted comma inside a code shifts the row: "AB,CD" must not become code AB for "CD".
    source = write(tmp_path / "codes.csv", "code,customer_id\nAB,CD,c-1\n")
    before = promo.events()

    result = promo("codes", "import", "--campaign", "winback", source)

    assert promo.events() == before, "the shifted row was imported"
    assert_refused(result, "row 1")


def test_ledger_tail_refuses_a_negative_count(promo: Promo, winback_code: str) -> None:
    result = promo("ledger", "tail", "-n", -1)

    assert_refused(result, "-n")


# -- what a newcomer met -----------------------------------------------------------------------


def test_every_command_and_option_has_help_text() -> None:
    missing = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(" ".join([*path, name]))
                    walk(sub, [*path, name])
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(" ".join([*path, *(action.option_strings or [action.dest])]))

    walk(build_parser(), ["promo"])

    assert missing == []


@pytest.mark.parametrize("amount", ["32.00", "32,00", "3.2e3"])
def test_an_amount_with_decimals_is_refused_saying_amounts_are_minor_units(
    promo: Promo, campaigns: None, amount: str
) -> None:
    result = promo("validate", "SPRING10", "--amount", amount, "--currency", "EUR")

    assert result.code == 2
    assert "minor units" in result.err and "3200 is 32.00 EUR" in result.err
    assert promo.stats()["events_by_type"].get("voucher_validated", 0) == 0


def test_32_point_00_is_shown_as_3200_minor_units(promo: Promo, campaigns: None) -> None:
    result = promo("validate", "SPRING10", "--amount", "32.00", "--currency", "EUR")

    assert "32.00 in a currency with 2 decimals is 3200" in result.err


def test_an_amount_without_a_currency_names_the_currency_option_not_none(
    promo: Promo, campaigns: None
) -> None:
    result = promo("validate", "SPRING10", "--amount", 3200)

    assert result.code == 2
    assert result.err_lines == [
        "error: --currency: required with --amount: an ISO 4217 code such as EUR"
    ]


def test_a_rule_message_never_shows_pythons_none(promo: Promo, tmp_path: Path) -> None:
    promo.ok(
        "campaign",
        "create",
        write(
            tmp_path / "web.yaml",
            SPRING_JSON.replace('"spring"', '"web"')
            .replace("spring10", "WEBONLY")
            .replace(
                '"discount"', '"rules": {"sales_channels": ["web"], "stores": ["s-1"]}, "discount"'
            ),
        ),
    )

    result = promo("--json", "validate", "WEBONLY", "--amount", 3200, "--currency", "EUR")

    messages = [reason["message"] for reason in result.json["reasons"]]
    assert result.code == 1
    assert messages == [
        "no sales channel given; this voucher needs one of: web",
        "no store given; this voucher needs one of: s-1",
    ]
    assert "None" not in result.out


def test_an_invalid_validation_reports_no_discount_and_the_full_amount_to_pay(
    promo: Promo, campaigns: None
) -> None:
    # winback needs orders of 20.00 or more: 15% would have been 2.25 on 15.00.
    (code,) = promo.ok("--json", "codes", "generate", "--campaign", "winback", "--count", 1).json[
        "codes"
    ]
    promo.ok("voucher", "publish", code, "--customer", "c-1")

    result = promo(
        "--json", "validate", code, "--customer", "c-1", "--amount", 1500, "--currency", "EUR"
    )

    assert result.code == 1
    assert result.json["valid"] is False
    assert (result.json["discount"], result.json["gift_amount"]) == (0, 0)
    assert result.json["amount_to_pay"] == 1500


# -- every input bounded, refused before any file is touched ---------------------------------------


def ledger_files(home: Path) -> list[str]:
    return sorted(path.name for path in home.rglob("*")) if home.exists() else []


@pytest.mark.parametrize(
    "argv, field",
    [
        pytest.param(["--order", '{"amount": ' + "9" * 5000 + ', "currency": "EUR"}'], "--order", id="5,000 digits in --order"),
        pytest.param(["--order", "@/dev/zero"], "--order", id="--order @/dev/zero"),
        pytest.param(["--order", '{"amount": 1, "currency": "EUR", "x": ' + "[" * 200 + "]" * 200 + "}"], "--order", id="--order nested 200 deep"),
        pytest.param(["--amount", "9" * 5000, "--currency", "EUR"], "--amount", id="5,000 digits in --amount"),
        pytest.param(["--amount", "1_000", "--currency", "EUR"], "--amount", id="--amount 1_000"),
        pytest.param(["--amount", "١٢", "--currency", "EUR"], "--amount", id="--amount in Arabic-Indic digits"),
    ],
)  # fmt: skip
def test_an_unbounded_or_rewritten_number_is_refused_with_exit_2_before_the_ledger_is_opened(
    home: Path, argv: list[str], field: str
) -> None:
    result = promo_process(home, "redeem", "SPRING10", *argv, hmac_key=None)

    assert_refused(result, field)
    assert ledger_files(home) == []


@pytest.mark.parametrize(
    "argv, field",
    [
        pytest.param(["--port", "9" * 5000], "--port", id="5,000 digits in --port"),
        pytest.param(["--port", "70000"], "--port", id="--port beyond 65535"),
        pytest.param(["--workers", "1000000"], "--workers", id="a million workers"),
    ],
)
def test_serve_refuses_a_port_or_worker_count_out_of_bounds_before_anything_starts(
    home: Path, argv: list[str], field: str
) -> None:
    result = promo_process(home, "serve", *argv, hmac_key=None)

    assert_refused(result, field)
    assert ledger_files(home) == []


def test_a_promo_hmac_key_that_is_not_hex_is_refused_before_the_ledger_is_created(
    home: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events.csv"
    events.write_text("event_id,event_type,occurred_at,payload\n")

    result = promo_process(home, "import", events, hmac_key="not-hex")

    assert_refused(result, "PROMO_HMAC_KEY")
    assert ledger_files(home) == []


def test_a_definition_file_larger_than_the_bound_is_refused_without_reading_it(
    home: Path, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:  # sparse: no disk is spent on it
        handle.truncate(64 * 1024 * 1024 + 1)

    result = promo_process(home, "campaign", "create", huge, hmac_key=None)

    assert_refused(result, "file")
    assert "larger than" in result.err
    assert ledger_files(home) == []


def test_a_yaml_alias_bomb_is_refused_not_expanded(home: Path, tmp_path: Path) -> None:
    # A billion strings in 300 bytes: whoever walks the campaign's metadata would expand them.
    lines = ["id: bomb", "currency: EUR", "discount: {type: amount, amount_off: 100}", "metadata:"]
    lines += ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 9)]
    bomb = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")

    result = promo_process(home, "campaign", "create", bomb, hmac_key=None)

    assert_refused(result, "file")
    assert ledger_files(home) == []


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_customer_attribute_that_is_not_a_finite_number_is_refused_naming_it(
    promo: Promo, tmp_path: Path, value: str
) -> None:
    customers = write(tmp_path / "customers.json", '[{"id": "c-9", "attributes": {"score": ' + value + "}}]")  # fmt: skip

    result = promo("customer", "add", customers)

    assert_refused(result, "customer.attributes.score")
    assert promo("customer", "show", "c-9").code == 2


def test_a_yaml_nan_attribute_is_refused_too(promo: Promo, tmp_path: Path) -> None:
    customers = write(tmp_path / "customers.yaml", "id: c-9\nattributes: {score: .nan}\n")

    result = promo("customer", "add", customers)

    assert_refused(result, "customer.attributes.score")


def test_codes_generate_for_an_unknown_campaign_leaves_an_existing_out_file_as_it_was(
    promo: Promo, campaigns: None, tmp_path: Path
) -> None:
    existing = write(tmp_path / "codes.csv", "code\nKEEP-ME-1\n")

    result = promo("codes", "generate", "--campaign", "no-such", "--count", 3, "--out", existing)

    assert_refused(result, "campaign_id")
    assert existing.read_text() == "code\nKEEP-ME-1\n"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".codes.csv")] == []


def test_codes_generate_replaces_the_out_file_only_once_the_codes_exist(
    promo: Promo, campaigns: None, tmp_path: Path
) -> None:
    existing = write(tmp_path / "codes.csv", "code\nKEEP-ME-1\n")

    promo.ok("codes", "generate", "--campaign", "winback", "--count", 2, "--out", existing)

    header, *codes = existing.read_text().split()
    exported = promo.ok("codes", "export", "--campaign", "winback").out.split()[1:]
    assert (header, len(codes)) == ("code", 2)
    assert {line.split(",")[0] for line in exported} == set(codes)
