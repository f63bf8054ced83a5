"""Regenerate runs/kit/REQ-007/LTC.json: the KIT's machine-readable list of test cases.

Each entry is one test function under runs/kit/REQ-007/test with the command that runs it.
`--check` exits 1 when the checked-in file is stale (a test in tests/ enforces this).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KIT = REPO / "runs" / "kit" / "REQ-007"
LTC = KIT / "LTC.json"


def _module_of(test_file: Path) -> str:
    stem = test_file.stem.removeprefix("test_kit_")
    return (
        f"coffeebuddy.infra.kafka.{stem}"
        if stem != "service"
        else "coffeebuddy.services.reminder_worker"
    )


def render() -> str:
    """The LTC document for the tests currently in the KIT."""
    cases = []
    for test_file in sorted((KIT / "test").glob("test_*.py")):
        tree = ast.parse(test_file.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                rel = test_file.relative_to(REPO).as_posix()
                doc = ast.get_docstring(node) or node.name.removeprefix("test_").replace("_", " ")
                cases.append(
                    {
                        "id": f"{test_file.stem}::{node.name}",
                        "module": _module_of(test_file),
                        "title": doc.splitlines()[0],
                        "command": f"pytest -q {rel}::{node.name}",
                    }
                )
    document = {
        "kit": "REQ-007",
        "schema_version": 1,
        "setup": "pip install -r runs/kit/REQ-007/requirements.txt",
        "run_all": "pytest -q runs/kit/REQ-007/test",
        "cases": cases,
    }
    return json.dumps(document, indent=2) + "\n"


def main(argv: list[str]) -> int:
    content = render()
    if "--check" in argv:
        if not LTC.exists() or LTC.read_text() != content:
            print(
                f"{LTC.relative_to(REPO)} is stale: run `python tools/gen_ltc.py`", file=sys.stderr
            )
            return 1
        return 0
    LTC.write_text(content)
    cases = len(json.loads(content)["cases"])
    print(f"wrote {LTC.relative_to(REPO)} ({cases} cases)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
