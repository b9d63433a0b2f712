"""What analysts' review decisions teach the queue, without a model: per source (a rule, an
anomaly forest, a drift rate, the model), how often its flags were judged fraud; and which new
cases repeat what an analyst already called legitimate.

A case is set aside (`suppressed`, with the reason in `suppressed_by`), not deleted, when
- its actor was reviewed legitimate (and never fraud) and every source of the new case was
  among those of the reviewed one: the household an analyst cleared last week is not flagged
  again for the same thing; or
- every one of its sources is noisy: at least MIN_SOURCE_REVIEWS reviews, of which under
  NOISY_PRECISION were fraud.
"""

from __future__ import annotations

import polars as pl

MIN_SOURCE_REVIEWS = 10
NOISY_PRECISION = 0.2
PRECISION_SCHEMA = {
    "source": pl.String,
    "flags": pl.Int64,
    "reviewed": pl.Int64,
    "fraud": pl.Int64,
    "legitimate": pl.Int64,
    "precision": pl.Float64,
}


def _decisions(reviews: pl.DataFrame | None) -> pl.DataFrame:
    if reviews is None or reviews.is_empty():
        return pl.DataFrame(schema={"flag_id": pl.String, "decision": pl.String})
    return reviews.filter(pl.col("decision").is_in(["fraud", "legitimate"])).select(
        "flag_id", "decision"
    )


def source_precision(queue: pl.DataFrame, reviews: pl.DataFrame | None) -> pl.DataFrame:
    """Per source of the queue's flags: flags, reviewed, fraud, legitimate, precision (null
    until a flag of it is reviewed)."""
    if queue.is_empty():
        return pl.DataFrame(schema=PRECISION_SCHEMA)
    decided = queue.select("flag_id", "sources").join(_decisions(reviews), on="flag_id", how="left")
    table = (
        decided.explode("sources")
        .drop_nulls("sources")
        .group_by(source="sources")
        .agg(
            flags=pl.len(),
            reviewed=pl.col("decision").is_not_null().sum(),
            fraud=(pl.col("decision") == "fraud").sum(),
            legitimate=(pl.col("decision") == "legitimate").sum(),
        )
        .with_columns(
            precision=pl.when(pl.col("reviewed") > 0).then(pl.col("fraud") / pl.col("reviewed"))
        )
        .sort("source")
    )
    return table.cast(PRECISION_SCHEMA)  # type: ignore[arg-type]


def apply_reviews(queue: pl.DataFrame, reviews: pl.DataFrame | None) -> pl.DataFrame:
    """The queue with `review` (the latest decision on the flag, if any), `suppressed` and
    `suppressed_by` (see the module docstring)."""
    decided = _decisions(reviews)
    with_review = queue.join(
        decided.rename({"decision": "review"}), on="flag_id", how="left"
    ).with_columns(suppressed_by=pl.lit(None, pl.String))
    if decided.is_empty() or queue.is_empty():
        return with_review.with_columns(suppressed=pl.lit(False))

    reviewed = with_review.filter(pl.col("review").is_not_null())
    fraud_actors = reviewed.filter(pl.col("review") == "fraud").select("entity_type", "entity_id")
    cleared = (
        reviewed.filter(pl.col("review") == "legitimate")
        .join(fraud_actors, on=["entity_type", "entity_id"], how="anti")
        .group_by("entity_type", "entity_id")
        .agg(
            cleared_sources=pl.col("sources").explode().unique(),
            cleared_flag=pl.col("flag_id").first(),
        )
    )
    precision = source_precision(queue, reviews)
    noisy = precision.filter(
        pl.col("reviewed") >= MIN_SOURCE_REVIEWS, pl.col("precision") < NOISY_PRECISION
    )["source"].to_list()
    out = with_review.join(cleared, on=["entity_type", "entity_id"], how="left").with_columns(
        repeat=pl.col("review").is_null()
        & pl.col("cleared_sources").is_not_null()
        & pl.col("sources").list.set_difference(pl.col("cleared_sources")).list.len().eq(0),
        all_noisy=pl.col("review").is_null()
        & pl.col("sources").list.set_difference(pl.lit(noisy, pl.List(pl.String))).list.len().eq(0)
        & pl.lit(len(noisy) > 0),
    )
    return out.with_columns(
        suppressed=pl.col("repeat") | pl.col("all_noisy"),
        suppressed_by=pl.when(pl.col("repeat"))
        .then(pl.format("same actor and reasons as {}, reviewed legitimate", "cleared_flag"))
        .when(pl.col("all_noisy"))
        .then(
            pl.format(
                "every source is noisy in reviews (under {}% fraud)",
                pl.lit(round(NOISY_PRECISION * 100)),
            )
        ),
    ).drop("cleared_sources", "cleared_flag", "repeat", "all_noisy")
