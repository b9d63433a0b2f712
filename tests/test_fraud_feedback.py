"""Reviews teach the queue without a model: per-source precision, a cleared actor not flagged
again for the same thing, sources that reviews keep finding wrong set aside."""

from __future__ import annotations

import polars as pl

from models_ml.fraud_detect import QUEUE_SCHEMA
from models_ml.fraud_feedback import MIN_SOURCE_REVIEWS, apply_reviews, source_precision


def queue(*flags: tuple[str, str, str, list[str]]) -> pl.DataFrame:
    rows = [
        {name: None for name in QUEUE_SCHEMA}
        | {"flag_id": f, "entity_type": t, "entity_id": e, "sources": s, "score": 0.9}
        for f, t, e, s in flags
    ]
    return pl.DataFrame(rows, schema=QUEUE_SCHEMA)


def reviews(*decisions: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"flag_id": f, "decision": d} for f, d in decisions],
        schema={"flag_id": pl.String, "decision": pl.String},
    )


def test_per_source_precision_counts_the_decisions_on_its_flags() -> None:
    flags = queue(
        ("device:a@1", "device", "a", ["new_accounts_on_device", "anomaly:device"]),
        ("device:b@1", "device", "b", ["new_accounts_on_device"]),
        ("code:c@1", "code", "c", ["code_velocity"]),
    )

    table = source_precision(flags, reviews(("device:a@1", "fraud"), ("device:b@1", "legitimate")))

    rows = {r["source"]: r for r in table.iter_rows(named=True)}
    assert (
        rows["new_accounts_on_device"]["reviewed"],
        rows["new_accounts_on_device"]["precision"],
    ) == (2, 0.5)
    assert rows["anomaly:device"]["precision"] == 1.0
    assert rows["code_velocity"]["reviewed"] == 0 and rows["code_velocity"]["precision"] is None


def test_an_actor_reviewed_legitimate_is_not_flagged_again_for_the_same_sources() -> None:
    flags = queue(
        ("device:home@2026-01-05", "device", "home", ["accounts_redeeming_on_device"]),
        ("device:home@2026-02-01", "device", "home", ["accounts_redeeming_on_device"]),
        ("device:home@2026-03-01", "device", "home", ["device_failed_attempts"]),
    )

    applied = apply_reviews(flags, reviews(("device:home@2026-01-05", "legitimate")))

    suppressed = dict(applied.select("flag_id", "suppressed").iter_rows())
    assert suppressed == {
        "device:home@2026-01-05": False,  # decided: the console hides it as reviewed
        "device:home@2026-02-01": True,
        "device:home@2026-03-01": False,  # a new reason: an analyst must see it
    }


def test_cases_whose_every_source_reviews_keep_finding_wrong_are_set_aside() -> None:
    noisy = [
        (f"store:s{i}@1", "store", f"s{i}", ["drift:small_basket_share"])
        for i in range(MIN_SOURCE_REVIEWS)
    ]
    flags = queue(
        *noisy,
        ("store:new@2", "store", "new", ["drift:small_basket_share"]),
        ("store:both@2", "store", "both", ["drift:small_basket_share", "drift:refund_rate"]),
    )

    applied = apply_reviews(flags, reviews(*[(f, "legitimate") for f, *_ in noisy]))

    waiting = applied.filter(pl.col("review").is_null())
    assert dict(waiting.select("flag_id", "suppressed").iter_rows()) == {
        "store:new@2": True,
        "store:both@2": False,
    }
    assert "noisy" in waiting.filter(pl.col("suppressed"))["suppressed_by"].item()
