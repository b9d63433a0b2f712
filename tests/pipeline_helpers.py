"""Running the Dagster code location from tests: its environment, and what a failed run said."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.paths import PipelinePaths


def pipeline_env(home: Path) -> dict[str, str]:
    return {
        "PROMO_HOME": str(home),
        "PROMO_WAREHOUSE": str(PipelinePaths(home).build_warehouse),
        "DAGSTER_HOME": str(home / "dagster"),
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "False",
    }


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    texts = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                texts.append(str(evaluation.description))
        elif event.is_step_failure:
            texts.append(str(event.event_specific_data.error))
    return "\n".join(texts)
