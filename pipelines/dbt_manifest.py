"""Keep dbt's manifest.json in step with the project: Dagster builds the dbt assets from it when
the code location loads, so a stale manifest would hide a new model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject


def _newest_source(project_dir: Path) -> float:
    files = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "tests"):
        files += [p for p in (project_dir / folder).rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in files if p.exists())


def prepare_manifest(project: DbtProject) -> Path:
    """Run `dbt parse` when the manifest is missing or older than any project file."""
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source(project.project_dir):
        return manifest
    # parse never connects; the path only has to be set
    env = dict(os.environ, DO_NOT_TRACK="1")
    env.setdefault("PROMO_WAREHOUSE", str(project.project_dir / "target" / "parse.duckdb"))
    dbt = Path(sys.executable).with_name("dbt")
    run = subprocess.run(
        [
            str(dbt),
            "parse",
            "--project-dir",
            str(project.project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{run.stdout}\n{run.stderr}")
    return manifest
