"""Monitors as Dagster asset checks, so an operator sees in Dagster what System health and
Campaign health show in the console: the same statuses, computed once by the marts.

Not blocking: a warning must not keep tonight's numbers (which show the problem) from the
console. A warning is a failed check of severity WARN, a failure one of severity ERROR; the
description gives the rule that set each status (pipelines/monitors.py).
"""

import dagster as dg

from pipelines import monitors
from pipelines.defs.ingest import RAW_EVENTS
from pipelines.defs.ml import FRAUD_QUEUE, NEXT_BEST_OFFERS
from pipelines.resources import PromoHomeResource

SYSTEM_HEALTH = dg.AssetKey(["marts", "fct_system_health"])
CAMPAIGN_HEALTH = dg.AssetKey(["marts", "fct_campaign_health"])


def _result(finding: monitors.Finding) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=finding.passed,
        severity=(
            dg.AssetCheckSeverity.ERROR
            if finding.status == "failing"
            else dg.AssetCheckSeverity.WARN
        ),
        description=finding.text()[:4000],
        metadata={"status": finding.status, **finding.figures},
    )


@dg.asset_check(asset=SYSTEM_HEALTH, name="system_health_monitors")
def system_health_monitors(promo: PromoHomeResource) -> dg.AssetCheckResult:
    """Completeness (missing or lagging events), redemption rejections and delivery failures
    against their baselines and ceilings: fct_system_health's statuses and rules."""
    return _result(monitors.system_health(promo.build_warehouse))


@dg.asset_check(asset=CAMPAIGN_HEALTH, name="campaign_health_monitors")
def campaign_health_monitors(promo: PromoHomeResource) -> dg.AssetCheckResult:
    """Every campaign ok: no silence while customers wait, no failure rate above its own
    baseline with confidence, no stuck triggers (fct_campaign_health)."""
    return _result(monitors.campaign_health(promo.build_warehouse))


@dg.asset_check(asset=RAW_EVENTS, name="daily_event_volume")
def daily_event_volume(promo: PromoHomeResource) -> dg.AssetCheckResult:
    """The last complete day's ledger events against the 28 days before it."""
    return _result(monitors.event_volume(monitors.daily_event_counts(promo.build_warehouse)))


@dg.asset_check(asset=FRAUD_QUEUE, name="fraud_queue_scored")
def fraud_queue_scored(promo: PromoHomeResource) -> dg.AssetCheckResult:
    """The review queue was written by a promoted model (it may hold no flag at all)."""
    return _result(
        monitors.ml_output(promo.build_warehouse, "fraud_review_queue", may_be_empty=True)
    )


@dg.asset_check(asset=NEXT_BEST_OFFERS, name="next_best_offers_scored")
def next_best_offers_scored(promo: PromoHomeResource) -> dg.AssetCheckResult:
    """Offers were scored by a promoted model, for at least one customer."""
    return _result(
        monitors.ml_output(promo.build_warehouse, "next_best_offers", may_be_empty=False)
    )


defs = dg.Definitions(
    asset_checks=[
        system_health_monitors,
        campaign_health_monitors,
        daily_event_volume,
        fraud_queue_scored,
        next_best_offers_scored,
    ]
)
