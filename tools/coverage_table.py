"""Branch coverage and test counts per package: `hatch run cov [pytest args]`.

Runs the root suite once under coverage.py (branch mode, every package's src measured) and
prints a Markdown table: tests that live in each package's own folder, then line and branch
coverage of its src from the whole run (cross-package tests count too). Code that runs only
in child processes (the service's end-to-end tests) is not measured, so those rows read low.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _sources() -> dict[str, Path]:
    """Package folder name -> its src directory, for every package and service."""
    found: dict[str, Path] = {}
    for folder in sorted([*REPO.glob("packages/*"), *REPO.glob("services/*")]):
        if (folder / "src").is_dir():
            found[folder.name] = folder / "src"
    return found


def _test_counts(pytest_args: list[str]) -> dict[str, int]:
    """Collected tests per package folder (`tests/` at the root counts as `(root)`)."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *pytest_args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    ).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        if "::" not in line:
            continue
        path = line.split("::", 1)[0]
        parts = Path(path).parts
        name = parts[1] if parts[0] in {"packages", "services"} and len(parts) > 1 else "(root)"
        counts[name] = counts.get(name, 0) + 1
    return counts


def main(argv: list[str]) -> int:
    sources = _sources()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / ".coverage"
        report = Path(tmp) / "coverage.json"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "coverage",
                "run",
                "--branch",
                f"--data-file={data}",
                f"--source={','.join(str(s) for s in sources.values())}",
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *argv,
            ],
            cwd=REPO,
            check=False,
        )
        subprocess.run(
            [sys.executable, "-m", "coverage", "json", f"--data-file={data}", "-o", str(report)],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        files = json.loads(report.read_text())["files"]
    counts = _test_counts(argv)
    print("\n| package | tests in package | lines | branches |")
    print("| --- | ---: | ---: | ---: |")
    for name, src in sources.items():
        stmts = covered = branches = covered_branches = 0
        for path, entry in files.items():
            if not Path(path).resolve().is_relative_to(src.resolve()):
                continue
            summary = entry["summary"]
            stmts += summary["num_statements"]
            covered += summary["covered_lines"]
            branches += summary["num_branches"]
            covered_branches += summary["covered_branches"]
        line_pct = 100 * covered / stmts if stmts else 100.0
        branch_pct = 100 * covered_branches / branches if branches else 100.0
        print(f"| {name} | {counts.get(name, 0)} | {line_pct:.0f}% | {branch_pct:.0f}% |")
    print(f"| (root tests/) | {counts.get('(root)', 0)} | | |")
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
