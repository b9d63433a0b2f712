"""docs/fraud-rules.md, generated from the code: the rule table (fraud_rules.RULES) and the
settings of the other label-free layers, so that every threshold is written down in one place
and cannot drift from what runs. tests/test_fraud_rules.py fails when the page differs.

    python -m models_ml.fraud_docs > docs/fraud-rules.md
"""

from __future__ import annotations

from models_ml import fraud_anomaly as anomaly
from models_ml import fraud_detect as detect
from models_ml import fraud_drift as drift
from models_ml import fraud_feedback as feedback
from models_ml import fraud_rules as rules


def rules_markdown() -> str:
    lines = [
        "# Fraud rules and thresholds",
        "",
        "Generated from the code by `python -m models_ml.fraud_docs > docs/fraud-rules.md`;",
        "`tests/test_fraud_rules.py` fails when this page and the code differ.",
        "",
        "## Named rules (`models_ml/fraud_rules.py`)",
        "",
        "A rule fires on an attempt when its value there reaches",
        "`max(floor, times baseline x the baseline of the attempt's segment)`. The baseline of a",
        f"segment is the {rules.BASELINE_QUANTILE:.0%} quantile of the value over the actor-days",
        "of that segment in the merchant's own history (one device, code or staff member on one",
        "day, at its highest value that day). A segment with fewer than",
        f"{rules.MIN_BASELINE_ACTOR_DAYS} actor-days uses the merchant-wide baseline; with fewer",
        "than that overall only the floor applies. A low quantile, scaled up, so that attackers",
        f"would have to be over {1 - rules.BASELINE_QUANTILE:.0%} of a segment's actor-days to",
        "raise the bar they are measured against. Rules are in priority order: an attempt that",
        "sets off several joins the case of the first.",
        "",
        "Quiet hours: the hours in which a store (or, without a store, a sales channel) has under",
        f"{rules.QUIET_HOUR_SHARE:.0%} of its attempts; a place with fewer than",
        f"{rules.MIN_PROFILE_ATTEMPTS} attempts uses the merchant's own hour profile.",
        "",
        "Households: several accounts sharing a device or card is not a rule. Many accounts that",
        "each took a welcome offer (a new-customers-only campaign, or a redemption within",
        "48 h of signing up) on one device or card within days is.",
        "",
        "| rule | about | value | window | floor | baseline per | times baseline | what it means |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rule in rules.RULES.items():
        segment = f"`{rule.segment}`" if rule.segment else "— (floor only)"
        times = f"{rule.times_baseline:g}" if rule.segment else "—"
        lines.append(
            f"| `{name}` | {rule.entity_type} | `{rule.value}` | {rule.window} | "
            f"{rule.at_least:g} | {segment} | {times} | {rule.why} |"
        )
    lines += [
        "",
        "## Anomaly forests (`models_ml/fraud_anomaly.py`)",
        "",
        f"One IsolationForest per entity kind ({', '.join(anomaly.KINDS)}) over its actor-days,",
        f"{anomaly.FOREST['n_estimators']} trees. An actor-day is flagged when its score is in the",
        f"top {anomaly.ANOMALY_TOP_SHARE:.1%} of its kind, it has at least",
        f"{anomaly.MIN_ATTEMPTS} attempts, and one of its measures is at least",
        f"{anomaly.EXTREME_TIMES:g}x and {anomaly.EXTREME_MARGIN:g} above both the kind's",
        f"{anomaly.EXTREME_QUANTILE:.1%} quantile and the actor's own usual day (the",
        f"{anomaly.OWN_QUANTILE:.0%} quantile of its days, or the {anomaly.OWN_WEEKDAY_QUANTILE:.0%}",
        f"quantile of its days on the same weekday, for actors seen on {anomaly.OWN_MIN_DAYS}+ days).",
        f"A kind with fewer than {anomaly.MIN_ACTOR_DAYS} actor-days is not scored.",
        "",
        "## Drift and spikes (`models_ml/fraud_drift.py`)",
        "",
        f"Watched per {', '.join(drift.DIMENSIONS)} (campaigns and codes with at least",
        f"{drift.MIN_ACTOR_ATTEMPTS} attempts), daily: rejections, rollbacks, refunds, manual",
        "entries, quiet-hour attempts, new accounts, non-holders, small baskets and the share of",
        "each sales channel. Not watched: "
        + "; ".join(f"{k}: {', '.join(v)}" for k, v in drift.NOT_WATCHED.items())
        + ". Peers (same-kind actors) for "
        + ", ".join(drift.PEER_DIMENSIONS)
        + ".",
        "",
        "| test | compares | significance | at least | times the rate before | events |",
        "|---|---|---|---|---|---|",
        f"| spike | a day with the {drift.BASELINE_DAYS} days before (net of the peers' trend) | "
        f"z >= {drift.Z_SPIKE:g} | +{drift.MIN_POINTS:.0%} | {drift.MIN_RATIO['spike']:g} | "
        f"{drift.MIN_COUNT['spike']} |",
        f"| week | 7 days with the {drift.BASELINE_DAYS} days before (net of the peers' trend) | "
        f"z >= {drift.Z_SPIKE:g} | +{drift.MIN_POINTS:.0%} | {drift.MIN_RATIO['week']:g} | "
        f"{drift.MIN_COUNT['week']} |",
        f"| drift | the stretch of {drift.MIN_SEGMENT_DAYS}+ days that differs most from the rest "
        f"(change point) | likelihood ratio >= {drift.LLR_DRIFT:g} | +{drift.MIN_POINTS:.0%} | "
        f"{drift.MIN_RATIO['drift']:g} (x the peers' own rise) | {drift.MIN_COUNT['drift']} |",
        f"| peers | {drift.BASELINE_DAYS} days with the other actors of its kind | "
        f"z >= {drift.Z_PEERS:g} | +{drift.MIN_POINTS:.0%} | {drift.MIN_RATIO['peers']:g} | "
        f"{drift.MIN_COUNT['peers']} |",
        "",
        "z and likelihood ratios are divided by the actor's own day-to-day dispersion. An actor",
        f"is compared with its past once it has {drift.MIN_HISTORY_DAYS} days and",
        f"{drift.MIN_BASELINE_N} attempts of one; {drift.PRIOR_WEIGHT:g} pseudo-attempts at the",
        "peers' rate steady a thin baseline.",
        "",
        "## Cases and reviews",
        "",
        f"Signals about the same actor within {detect.CASE_GAP_H:g} h, or sharing",
        f"{detect.SHARED_ATTEMPTS:.0%} of both their attempts, are one case; a drift joins the",
        "case holding most of its attempts. After reviews, a new case is set aside when its actor",
        "was reviewed legitimate for the same sources, or when every source it has is noisy",
        f"({feedback.MIN_SOURCE_REVIEWS}+ reviews, under {feedback.NOISY_PRECISION:.0%} fraud).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(rules_markdown(), end="")
