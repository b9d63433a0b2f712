"""Blocking data-quality gates (Great Expectations): a failure stops everything downstream, so
nothing reaches the published warehouse, and the check's description names the offending rows."""

import dagster as dg

from pipelines.defs.ingest import RAW_EVENTS
from pipelines.quality import QualityReport, check_marts, check_raw_events
from pipelines.resources import PromoHomeResource

KEY_MARTS = dg.AssetKey(["marts", "fct_campaign_performance"])
RECONCILED_MARTS = [
    dg.AssetKey(["marts", "fct_campaign_funnel"]),
    dg.AssetKey(["marts", "fct_redemptions"]),
]


def _result(report: QualityReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=report.message()[:4000],
        metadata={
            "rows_checked": report.rows_checked,
            "expectations": report.expectations,
            "failed": len(report.failures),
            "failures": dg.MetadataValue.md(report.message()),
        },
    )


@dg.asset_check(asset=RAW_EVENTS, blocking=True, name="great_expectations_raw_events")
def raw_events_expectations(promo: PromoHomeResource) -> dg.AssetCheckResult:
    """Unique seq and event ids, known event types, plausible timestamps, no negative money, no
    redemption taking off more than its order, known currencies, no reference to a voucher,
    campaign or redemption the ledger never created."""
    return _result(check_raw_events(promo.build_warehouse))


@dg.asset_check(
    asset=KEY_MARTS,
    blocking=True,
    name="great_expectations_key_marts",
    additional_deps=RECONCILED_MARTS,
)
def key_marts_expectations(promo: PromoHomeResource) -> dg.AssetCheckResult:
    """Redemptions, publications and net discount in the marts reconcile with the ledger;
    funnel keys unique, its shares of the published cohort between 0 and 1 (redeemed per
    accepted too where a campaign requires acceptance), no rate negative."""
    return _result(check_marts(promo.build_warehouse))


defs = dg.Definitions(asset_checks=[raw_events_expectations, key_marts_expectations])
