"""Tests that read shared/ skip on a newcomer's clone and fail in CI, never skip silently there."""

from __future__ import annotations

from pathlib import Path

import pytest
import shared_data


def test_missing_shared_data_skips_naming_the_folder_it_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_data, "DUNNHUMBY", tmp_path / "nowhere")
    monkeypatch.delenv("PROMO_REQUIRE_SHARED_DATA", raising=False)

    with pytest.raises(pytest.skip.Exception, match=str(tmp_path / "nowhere")):
        shared_data.require_dunnhumby()


def test_missing_shared_data_fails_when_ci_requires_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_data, "DUNNHUMBY", tmp_path / "nowhere")
    monkeypatch.setenv("PROMO_REQUIRE_SHARED_DATA", "1")

    with pytest.raises(pytest.fail.Exception, match="PROMO_REQUIRE_SHARED_DATA"):
        shared_data.require_dunnhumby()


def test_ci_requires_the_shared_data() -> None:
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()

    assert "PROMO_REQUIRE_SHARED_DATA=1" in ci
