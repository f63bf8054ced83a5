"""The KIT's LTC.json lists exactly the KIT's test cases (regenerate with tools/gen_ltc.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ltc_matches_the_kit_tests() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_ltc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_kit_test_file_has_cases_and_a_command() -> None:
    ltc = json.loads((REPO / "runs" / "kit" / "REQ-007" / "LTC.json").read_text())
    files = {p.stem for p in (REPO / "runs" / "kit" / "REQ-007" / "test").glob("test_*.py")}
    covered = {case["id"].split("::")[0] for case in ltc["cases"]}
    assert files == covered
    assert all(
        case["command"].startswith("pytest -q runs/kit/REQ-007/test/") for case in ltc["cases"]
    )
