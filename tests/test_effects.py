"""What an estimated effect lets one conclude (redemption_core/domain/effects.py): verdicts,
the minimum detectable effect, the interval of a sum, and the sentences every door shows."""

from __future__ import annotations

import math

import pytest

from redemption_core import (
    Effect,
    Verdict,
    interval_verdict,
    minimum_detectable_effect,
    money_text,
    overall_verdict,
    total,
)
from redemption_core.domain.effects import describe, describe_without_interval


def campaign(name: str, estimate: float, standard_error: float, currency: str = "EUR") -> Effect:
    return Effect.from_standard_error(name, currency, estimate, standard_error)


def test_an_interval_that_includes_zero_is_indistinguishable_from_zero() -> None:
    assert interval_verdict(-271_800, 855_800) is Verdict.INCLUDES_ZERO
    assert interval_verdict(0, 10) is Verdict.INCLUDES_ZERO
    assert interval_verdict(300, 2_100) is Verdict.ABOVE_ZERO
    assert interval_verdict(-2_100, -300) is Verdict.BELOW_ZERO


def test_an_interval_upside_down_is_refused() -> None:
    with pytest.raises(ValueError, match="low end"):
        interval_verdict(5, -5)


def test_the_minimum_detectable_effect_is_2_8_standard_errors_at_95_percent_and_80_percent_power() -> (
    None
):
    assert minimum_detectable_effect(1_000) == pytest.approx(2_801.6, abs=0.1)
    assert minimum_detectable_effect(1_000, power=0.9) == pytest.approx(3_241.5, abs=0.1)
    assert minimum_detectable_effect(0) == 0


def test_a_negative_or_missing_standard_error_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="standard_error"):
        minimum_detectable_effect(-1)
    with pytest.raises(ValueError, match="standard_error"):
        minimum_detectable_effect(math.nan)


def test_the_sum_of_estimates_carries_the_interval_of_the_sum() -> None:
    a, b = campaign("A", 1_000, 300), campaign("B", -400, 400)

    summed = total([a, b])

    assert summed.estimate == 600
    assert summed.standard_error == pytest.approx(500)
    assert (summed.low, summed.high) == pytest.approx((600 - 1.96 * 500, 600 + 1.96 * 500), abs=0.1)


def test_estimates_in_two_currencies_are_never_added_up() -> None:
    with pytest.raises(ValueError, match="EUR, USD"):
        total([campaign("A", 1, 1), campaign("B", 1, 1, "USD")])


def test_money_is_written_with_the_currency_thousands_separators_and_its_decimals() -> None:
    assert money_text(99_394, "EUR") == "EUR 993.94"
    assert money_text(-271_812.4, "EUR") == "EUR -2,718.12"
    assert money_text(1_500, "JPY") == "JPY 1,500"


def test_one_estimate_is_described_with_its_interval_and_what_the_interval_says() -> None:
    best = Effect("Win-back", "EUR", 291_979, -271_800, 855_800, 287_551)
    worst = Effect("Lunch", "EUR", -500_000, -900_000, -100_000, 204_000)

    assert describe(best) == (
        "Win-back: EUR 2,919.79 (95 % CI EUR -2,718.00 to EUR 8,558.00); not "
        "distinguishable from no effect: the interval includes zero"
    )
    assert describe(worst).endswith("it lost money: the whole interval is below zero")
    assert best.detectable == pytest.approx(805_599, abs=1)  # EUR 8,055.99 at 80 % power


def test_when_no_campaign_is_distinguishable_from_zero_the_verdict_says_so_with_the_detectable_range() -> (
    None
):
    effects = [
        campaign("Win-back", 291_979, 287_551),
        campaign("Lunch", -377_900, 200_000),
        campaign("Birthday", 10_000, 50_000),
    ]

    (verdict,) = overall_verdict(effects)

    assert verdict.startswith(
        "No campaign is distinguishable from zero yet: every 95 % interval of incremental "
        "profit includes zero."
    )
    assert "an effect of EUR 1,400.79 (Birthday) to EUR 8,055.99 (Win-back)" in verdict
    assert "At these control group sizes an effect of" in verdict
    assert "with 80 % power" in verdict
    # the sum comes with the interval of the sum, never alone
    assert "All 3 together: EUR -759.21 (95 % CI EUR -7,693.87 to EUR 6,175.45)" in verdict
    assert "not distinguishable from zero (the interval of the sum" in verdict


def test_conclusive_campaigns_are_named_and_the_others_still_get_their_detectable_effect() -> None:
    effects = [campaign("Win-back", 100_000, 10_000), campaign("Lunch", 5_000, 50_000)]

    (verdict,) = overall_verdict(effects)

    assert verdict.startswith("Incremental profit: 1 of 2 campaigns above zero (Win-back).")
    assert "1 of 2 campaigns not distinguishable from zero yet (Lunch)" in verdict
    assert "an effect of EUR 1,400.79 would be detected" in verdict


def test_each_currency_gets_its_own_verdict_and_nothing_says_anything_without_estimates() -> None:
    verdicts = overall_verdict([campaign("A", 1, 1, "USD"), campaign("B", 1, 1, "EUR")])

    assert len(verdicts) == 2
    assert "EUR" in verdicts[0] and "USD" in verdicts[1]
    assert overall_verdict([]) == [
        "No incremental profit can be judged yet: no campaign has a control group with a "
        "closed outcome window."
    ]


def test_an_estimate_without_a_standard_error_is_named_and_left_out_of_every_sum() -> None:
    effects = [campaign("Win-back", 100_000, 10_000)]

    sentences = overall_verdict(effects, without_interval=["Lunch"])

    assert sentences[-1] == (
        "1 campaign (Lunch) has an estimate but no interval: too few customers in the control "
        "group to say anything, so left out of every sum."
    )
    assert describe_without_interval("Lunch", "EUR", 120_000) == (
        "Lunch: EUR 1,200.00; no interval: too few customers in the control group to say"
    )
    assert overall_verdict([], without_interval=["Lunch"])[0].endswith(
        "and enough customers in both arms."
    )
