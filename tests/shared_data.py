"""The real data in shared/ beside the checkout (the session's and CI's layout).

A newcomer's fresh clone has no shared/ beside it: tests that read it skip there, naming the
folder they looked for. CI sets PROMO_REQUIRE_SHARED_DATA=1 (in .ci/run), which turns that skip
into a failure, so CI can never skip them silently. PROMO_SHARED_DIR points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(
    os.environ.get("PROMO_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared"
)
DUNNHUMBY = SHARED / "data" / "dunnhumby_complete_journey_partial"


def require_dunnhumby() -> Path:
    """The dunnhumby folder; skips (or fails under PROMO_REQUIRE_SHARED_DATA) when missing."""
    if (DUNNHUMBY / "README.md").exists():
        return DUNNHUMBY
    message = (
        f"the dunnhumby data is missing: expected {DUNNHUMBY} (shared/ beside the repository, "
        "or PROMO_SHARED_DIR)"
    )
    if os.environ.get("PROMO_REQUIRE_SHARED_DATA"):
        pytest.fail(message + "; PROMO_REQUIRE_SHARED_DATA is set, so this is a failure")
    pytest.skip(message)
