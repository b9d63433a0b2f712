"""What an estimated causal effect lets a manager conclude, in plain words.

The marts estimate each campaign's incremental profit against its control group, with a 95 %
confidence interval and the standard error behind it. A figure without that context misleads:
a "best campaign" whose interval runs from -2,700 to +8,500 EUR is indistinguishable from no
effect. Every door that shows such an estimate (console, `make demo`, CLI) words it through
these functions, so that they all say the same thing:

- an estimate comes with its interval and a verdict (above zero, below zero, includes zero);
- where the interval includes zero, the minimum detectable effect says how large an effect the
  experiment could have seen: (z of the confidence + z of the power) x standard error, the
  textbook sample-size formula turned around (two-sided test at 5 %, 80 % power);
- a sum of estimates carries the interval of the sum: the standard errors add in quadrature,
  which assumes the experiments are independent (each campaign draws its own control group).

Amounts are minor units of a currency, as everywhere in the core; estimates may be fractional.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

from redemption_core.domain.money import CURRENCY_EXPONENTS

CONFIDENCE = 0.95
POWER = 0.80
_NORMAL = NormalDist()


def z_two_sided(confidence: float = CONFIDENCE) -> float:
    """1.96 for 95 %: the half-width of a two-sided interval in standard errors."""
    _check_share(confidence, "confidence")
    return _NORMAL.inv_cdf(1 - (1 - confidence) / 2)


def minimum_detectable_effect(
    standard_error: float, *, confidence: float = CONFIDENCE, power: float = POWER
) -> float:
    """The smallest true effect that a two-sided test at `confidence` would find with
    probability `power`, given the estimate's standard error: 2.80 x SE at 95 % and 80 %."""
    _check_share(power, "power")
    if not math.isfinite(standard_error) or standard_error < 0:
        raise ValueError(f"standard_error must be a finite number >= 0, got {standard_error!r}")
    return (z_two_sided(confidence) + _NORMAL.inv_cdf(power)) * standard_error


def _check_share(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


class Verdict(StrEnum):
    """Where an interval lies with respect to zero."""

    ABOVE_ZERO = "above zero"
    BELOW_ZERO = "below zero"
    INCLUDES_ZERO = "includes zero"


def interval_verdict(low: float, high: float) -> Verdict:
    if low > high:
        raise ValueError(f"an interval's low end {low!r} is above its high end {high!r}")
    if low > 0:
        return Verdict.ABOVE_ZERO
    if high < 0:
        return Verdict.BELOW_ZERO
    return Verdict.INCLUDES_ZERO


@dataclass(frozen=True)
class Effect:
    """An estimated effect (minor units of `currency`) with its 95 % interval and standard
    error, as a mart publishes them; `name` says whose effect it is (a campaign's name)."""

    name: str
    currency: str
    estimate: float
    low: float
    high: float
    standard_error: float

    @classmethod
    def from_standard_error(
        cls, name: str, currency: str, estimate: float, standard_error: float
    ) -> Effect:
        half = z_two_sided() * standard_error
        return cls(name, currency, estimate, estimate - half, estimate + half, standard_error)

    @property
    def verdict(self) -> Verdict:
        return interval_verdict(self.low, self.high)

    @property
    def detectable(self) -> float:
        """The minimum detectable effect at 95 % confidence and 80 % power."""
        return minimum_detectable_effect(self.standard_error)


def total(effects: Sequence[Effect], name: str = "together") -> Effect:
    """The sum of independent estimates in one currency, with the interval of the sum."""
    if not effects:
        raise ValueError("nothing to add up")
    currencies = {effect.currency for effect in effects}
    if len(currencies) > 1:
        raise ValueError(f"estimates in {', '.join(sorted(currencies))} cannot be added up")
    return Effect.from_standard_error(
        name,
        effects[0].currency,
        sum(effect.estimate for effect in effects),
        math.sqrt(sum(effect.standard_error**2 for effect in effects)),
    )


def minor_unit_exponent(currency: str | None) -> int:
    """Decimals of a currency's major unit: 2 for EUR, 0 for JPY, 3 for KWD (2 if unknown)."""
    return CURRENCY_EXPONENTS.get((currency or "").upper(), 2)


def money_text(minor: float, currency: str | None) -> str:
    """The one way money is written for people: 'EUR 1,234.56', 'EUR -5.00', 'JPY 1,500'."""
    digits = minor_unit_exponent(currency)
    return f"{currency or ''} {minor / 10**digits:,.{digits}f}".strip()


def with_interval(effect: Effect) -> str:
    """'EUR 12.00 (95 % CI EUR 3.00 to EUR 21.00)'."""
    money = lambda minor: money_text(minor, effect.currency)  # noqa: E731
    return f"{money(effect.estimate)} (95 % CI {money(effect.low)} to {money(effect.high)})"


INDISTINGUISHABLE = "indistinguishable from zero"
# A campaign's incremental profit verdict, as a table states it.
PROFIT_VERDICTS = {
    Verdict.ABOVE_ZERO: "pays for itself",
    Verdict.BELOW_ZERO: "loses money",
    Verdict.INCLUDES_ZERO: INDISTINGUISHABLE,
}


# What an incremental profit's interval says, in the words `make demo` and the CLI print.
PROFIT_INTERVAL_WORDS = {
    Verdict.ABOVE_ZERO: "it made money: the whole interval is above zero",
    Verdict.BELOW_ZERO: "it lost money: the whole interval is below zero",
    Verdict.INCLUDES_ZERO: "not distinguishable from no effect: the interval includes zero",
}


NO_INTERVAL = "no interval: too few customers in the control group to say"


def describe_without_interval(name: str, currency: str, estimate: float) -> str:
    """An estimate whose experiment had too few customers in an arm for a standard error
    (one customer gives no variance): shown, and said to prove nothing."""
    return f"{name}: {money_text(estimate, currency)}; {NO_INTERVAL}"


def describe(effect: Effect, measure: str = "incremental profit") -> str:
    """One campaign's estimate in a line: 'Win-back: EUR 12.00 (95 % CI EUR 3.00 to
    EUR 21.00); it made money: the whole interval is above zero'. What its experiment could
    have detected is in overall_verdict, beside the others'."""
    return f"{effect.name}: {with_interval(effect)}; {PROFIT_INTERVAL_WORDS[effect.verdict]}"


def overall_verdict(
    effects: Iterable[Effect],
    measure: str = "incremental profit",
    without_interval: Sequence[str] = (),
) -> list[str]:
    """What all the estimates together let one conclude: one paragraph per currency, saying
    which campaigns are above or below zero, which cannot be told from zero and what effect
    their experiments could detect, and the sum with the interval of the sum. Campaigns named
    in `without_interval` have an estimate but no standard error: they are named and left out
    of every sum."""
    by_currency: dict[str, list[Effect]] = {}
    for effect in effects:
        by_currency.setdefault(effect.currency, []).append(effect)
    sentences = [_currency_verdict(group, measure) for _, group in sorted(by_currency.items())]
    if not sentences:
        sentences.append(
            f"No {measure} can be judged yet: no campaign has a control group with a closed "
            "outcome window" + (" and enough customers in both arms." if without_interval else ".")
        )
    if without_interval:
        count = len(without_interval)
        sentences.append(
            f"{count} campaign{'s' if count != 1 else ''} ({', '.join(without_interval)}) "
            f"{'have' if count != 1 else 'has'} an estimate but no interval: too few customers "
            "in the control group to say anything, so left out of every sum."
        )
    return sentences


def _currency_verdict(effects: list[Effect], measure: str) -> str:
    above = [e for e in effects if e.verdict is Verdict.ABOVE_ZERO]
    below = [e for e in effects if e.verdict is Verdict.BELOW_ZERO]
    unclear = [e for e in effects if e.verdict is Verdict.INCLUDES_ZERO]
    power = f"{POWER * 100:.0f} % power"
    parts = []
    if not above and not below:
        parts.append(
            f"No campaign is distinguishable from zero yet: every 95 % interval of {measure} "
            f"includes zero. At {_these(unclear)} an effect of "
            f"{_detectable_range(unclear)} would be detected with {power}."
        )
    else:
        found = []
        if above:
            found.append(f"{_campaigns(above, len(effects))} above zero ({_names(above)})")
        if below:
            found.append(f"{_campaigns(below, len(effects))} below zero ({_names(below)})")
        parts.append(f"{measure.capitalize()}: " + "; ".join(found) + ".")
        if unclear:
            parts.append(
                f"{_campaigns(unclear, len(effects))} not distinguishable from zero yet "
                f"({_names(unclear)}): at {_these(unclear)} an effect of "
                f"{_detectable_range(unclear)} would be detected with {power}."
            )
    if len(effects) > 1:
        summed = total(effects)
        word = {
            Verdict.ABOVE_ZERO: "above zero",
            Verdict.BELOW_ZERO: "below zero",
            Verdict.INCLUDES_ZERO: "not distinguishable from zero",
        }[summed.verdict]
        parts.append(
            f"All {len(effects)} together: {with_interval(summed)}, {word} (the interval of "
            "the sum assumes the campaigns' experiments are independent)."
        )
    return " ".join(parts)


def _campaigns(effects: list[Effect], of: int) -> str:
    return f"{len(effects)} of {of} campaign{'s' if of != 1 else ''}"


def _names(effects: list[Effect]) -> str:
    return ", ".join(effect.name for effect in effects)


def _these(effects: list[Effect]) -> str:
    return "this control group size" if len(effects) == 1 else "these control group sizes"


def _detectable_range(effects: list[Effect]) -> str:
    """'EUR 5,000.00' for one campaign; 'EUR 5,000.00 (Win-back) to EUR 9,000.00 (Lunch)'."""
    ranked = sorted(effects, key=lambda e: e.detectable)
    smallest, largest = ranked[0], ranked[-1]
    if len(ranked) == 1:
        return money_text(smallest.detectable, smallest.currency)
    return (
        f"{money_text(smallest.detectable, smallest.currency)} ({smallest.name}) to "
        f"{money_text(largest.detectable, largest.currency)} ({largest.name})"
    )
