"""The SQL behind Fraud review and Personalisation: the model outputs the pipeline publishes in
schema `ml`, and the model versions in the registry.

Both ml tables appear only once a model has been trained, promoted and scored; until then the
pages say which commands produce them. Values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pandas as pd

from app_streamlit import db
from models_ml.registry import ModelCard, Registry
from redemption_core import promo_home

FRAUD_QUEUE = "ml.fraud_review_queue"
NEXT_BEST_OFFERS = "ml.next_best_offers"
QUEUE_LIMIT = 500


@dataclass(frozen=True)
class QueueSearch:
    entity_types: tuple[str, ...] = ()
    min_score: float = 0.0
    set_aside: bool = False  # also the cases reviews set aside (fraud_feedback)


def _queue_where(search: QueueSearch, reviewed: Collection[str]) -> tuple[str, dict[str, object]]:
    clauses = ["NOT list_contains($reviewed::VARCHAR[], flag_id)", "score >= $min_score"]
    params: dict[str, object] = {"reviewed": sorted(reviewed), "min_score": search.min_score}
    if not search.set_aside:
        clauses.append("NOT coalesce(suppressed, false)")
    if search.entity_types:
        clauses.append("list_contains($entity_types::VARCHAR[], entity_type)")
        params["entity_types"] = list(search.entity_types)
    return " AND ".join(clauses), params


def fraud_queue(search: QueueSearch, reviewed: Collection[str]) -> pd.DataFrame:
    """Cases not reviewed yet, highest score first (at most QUEUE_LIMIT), with their evidence:
    reasons, a small daily series, the ids involved."""
    where, params = _queue_where(search, reviewed)
    return db.query(
        f"""
        SELECT flag_id, entity_type, entity_id, score, layers, sources, reasons, series,
            series_label, attempts, customer_id, voucher_id, redemption_id, store_id, staff_id,
            customer_ids, codes, device_hashes, ip_hashes, payment_hashes, redemption_ids,
            first_seen, last_seen, first_flagged_at, suppressed_by, model_version, scored_at,
        FROM {FRAUD_QUEUE}
        WHERE {where}
        ORDER BY score DESC, flag_id
        LIMIT {QUEUE_LIMIT}
        """,
        params,
    )


def fraud_queue_summary(reviewed: Collection[str]) -> pd.DataFrame:
    """Per entity type: cases waiting (not reviewed, not set aside), reviewed, set aside."""
    return db.query(
        f"""
        SELECT entity_type,
            count(*) FILTER (WHERE NOT list_contains($reviewed::VARCHAR[], flag_id)
                AND NOT coalesce(suppressed, false)) AS waiting,
            count(*) FILTER (WHERE list_contains($reviewed::VARCHAR[], flag_id)) AS reviewed,
            count(*) FILTER (WHERE NOT list_contains($reviewed::VARCHAR[], flag_id)
                AND coalesce(suppressed, false)) AS set_aside,
            max(score) FILTER (WHERE NOT list_contains($reviewed::VARCHAR[], flag_id)
                AND NOT coalesce(suppressed, false)) AS top_score,
        FROM {FRAUD_QUEUE}
        GROUP BY entity_type
        ORDER BY waiting DESC, entity_type
        """,
        {"reviewed": sorted(reviewed)},
    )


def source_precision(decisions: Mapping[str, str]) -> pd.DataFrame:
    """Per source of the queue's cases (a rule, an anomaly forest, a drift rate, the model):
    cases, reviewed, judged fraud, judged legitimate, and precision among the reviewed, from
    the decisions in the ledger (flag id -> decision). Noisy sources first."""
    return db.query(
        f"""
        WITH decided AS (
            SELECT unnest($flags::VARCHAR[]) AS flag_id,
                unnest($decisions::VARCHAR[]) AS decision
        ),
        sourced AS (
            SELECT flag_id, unnest(sources) AS source FROM {FRAUD_QUEUE}
        )
        SELECT source,
            count(*) AS cases,
            count(decision) AS reviewed,
            count(*) FILTER (WHERE decision = 'fraud') AS fraud,
            count(*) FILTER (WHERE decision = 'legitimate') AS legitimate,
            count(*) FILTER (WHERE decision = 'fraud') / nullif(count(decision), 0) AS precision,
        FROM sourced LEFT JOIN decided USING (flag_id)
        GROUP BY source
        ORDER BY precision ASC NULLS LAST, reviewed DESC, source
        """,
        {"flags": list(decisions), "decisions": list(decisions.values())},
    )


def next_best_offers(customer: str, campaigns: Collection[str]) -> pd.DataFrame:
    """The ranked offers of customers whose id contains `customer` (all when empty), of the
    chosen campaigns (all when none)."""
    clauses, params = ["TRUE"], {}
    if customer.strip():
        clauses.append("customer_id ILIKE $customer ESCAPE '\\'")
        escaped = customer.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["customer"] = f"%{escaped}%"
    if campaigns:
        clauses.append("list_contains($campaigns::VARCHAR[], campaign_id)")
        params["campaigns"] = list(campaigns)
    return db.query(
        f"""
        SELECT customer_id, rank, campaign_id, campaign_name, propensity, uplift, score,
            model_version, scored_at,
        FROM {NEXT_BEST_OFFERS}
        WHERE {" AND ".join(clauses)}
        ORDER BY customer_id, rank
        LIMIT 2000
        """,
        params,
    )


def offers_by_campaign(campaigns: Collection[str]) -> pd.DataFrame:
    """How often each campaign is a customer's best offer, with its mean propensity/uplift."""
    where = "list_contains($campaigns::VARCHAR[], campaign_id)" if campaigns else "TRUE"
    return db.query(
        f"""
        SELECT campaign_id, any_value(campaign_name) AS campaign_name,
            count(*) FILTER (WHERE rank = 1) AS best_offer_for,
            count(*) AS offered_to,
            avg(propensity) AS mean_propensity,
            avg(uplift) AS mean_uplift,
        FROM {NEXT_BEST_OFFERS}
        WHERE {where}
        GROUP BY campaign_id
        ORDER BY best_offer_for DESC, campaign_id
        """,
        {"campaigns": list(campaigns)} if campaigns else None,
    )


def offers_scored() -> pd.DataFrame:
    return db.query(
        f"""
        SELECT count(DISTINCT customer_id) AS customers, count(*) AS offers,
            max(scored_at) AS scored_at, any_value(model_version) AS model_version,
        FROM {NEXT_BEST_OFFERS}
        """
    )


def model_versions(kind: str) -> pd.DataFrame:
    """The registry's versions of a kind with their metrics, newest first; `promoted` marks
    the one scoring uses. Read from PROMO_HOME at each call: it is a handful of small files."""
    registry = Registry(promo_home())
    cards: list[ModelCard] = registry.list(kind)
    promoted = registry.promoted(kind)
    rows = []
    for card in reversed(cards):
        rows.append(
            {
                "version": card.version,
                "promoted": promoted is not None and card.version == promoted.version,
                "created_at": card.created_at,
                "training_from": card.training_window.get("from"),
                "training_to": card.training_window.get("to"),
                "primary_metric": card.primary_metric,
                **{f"metric_{name}": value for name, value in sorted(card.metrics.items())},
            }
        )
    return pd.DataFrame(rows)
