"""Every console script of every package answers `--version` (exit 0, its name and version)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _scripts() -> list[tuple[str, str]]:
    """(script name, version of its distribution) for every [project.scripts] entry."""
    found = []
    for pyproject in sorted(
        [*REPO.glob("packages/*/pyproject.toml"), *REPO.glob("services/*/pyproject.toml")]
    ):
        project = tomllib.loads(pyproject.read_text())
        scripts = project["project"].get("scripts", {})
        version_path = project["tool"]["hatch"]["version"]["path"]
        text = (pyproject.parent / version_path).read_text()
        version = text.split("=", 1)[1].strip().strip("\"'")
        found += [(name, version) for name in scripts]
    return found


def test_the_repo_has_console_scripts() -> None:
    assert {name for name, _ in _scripts()} >= {"coffeebuddy-kafka", "coffeebuddy-reminder-worker"}


@pytest.mark.parametrize(("script", "version"), _scripts())
def test_console_script_version(script: str, version: str) -> None:
    path = shutil.which(script, path=str(Path(sys.executable).parent)) or shutil.which(script)
    assert path is not None, f"console script {script} is not installed in this env"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    done = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{script} {version}", done.stdout
    assert done.stderr == ""
