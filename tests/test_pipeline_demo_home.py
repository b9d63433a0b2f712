"""`make demo` starts from an empty PROMO_HOME it made itself, and never empties anyone else's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.demo import MARKER, fresh_home
from redemption_core import Effect, describe_effect, describe_without_interval


def test_a_home_holding_someone_elses_ledger_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "ledger.sqlite").write_bytes(b"a real ledger")

    with pytest.raises(SystemExit, match="already holds a ledger the demo did not make"):
        fresh_home(tmp_path)

    assert (tmp_path / "ledger.sqlite").read_bytes() == b"a real ledger"
    assert not (tmp_path / MARKER).exists()


def test_a_home_the_demo_made_is_emptied_but_for_its_readme(tmp_path: Path) -> None:
    fresh_home(tmp_path)
    (tmp_path / "ledger.sqlite").write_bytes(b"last demo")
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "part.parquet").write_bytes(b"x")
    (tmp_path / "README.md").write_text("what this folder is")

    fresh_home(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "README.md"]
    assert (tmp_path / "README.md").read_text() == "what this folder is"


def test_a_missing_home_is_created(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"

    fresh_home(home)

    assert (home / MARKER).exists()


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (-271_821, 855_779, "not distinguishable from no effect: the interval includes zero"),
        (0, 10_000, "not distinguishable from no effect: the interval includes zero"),
        (1, 10_000, "it made money: the whole interval is above zero"),
        (-10_000, -1, "it lost money: the whole interval is below zero"),
        (None, None, "no interval: too few customers in the control group to say"),
    ],
)
def test_the_demo_summary_says_in_plain_words_what_an_interval_allows(
    low: int | None, high: int | None, verdict: str
) -> None:
    # make demo words each campaign through redemption_core's effects, as the console does
    if low is None or high is None:
        line = describe_without_interval("Win-back", "EUR", 5_000)
    else:
        line = describe_effect(Effect("Win-back", "EUR", (low + high) / 2, low, high, 1.0))

    assert line.endswith(verdict)
