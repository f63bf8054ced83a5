"""Fail when a distribution puts __init__.py into a shared PEP 420 namespace folder.

One stray coffeebuddy/__init__.py (or infra/, infra/kafka/, services/) shadows the
namespace and breaks the imports of every other CoffeeBuddy package at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

NAMESPACE_DIRS = (
    ("coffeebuddy",),
    ("coffeebuddy", "infra"),
    ("coffeebuddy", "infra", "kafka"),
    ("coffeebuddy", "services"),
)


def find_violations(repo: Path) -> list[Path]:
    """Return every __init__.py sitting in a namespace folder of any distribution."""
    found: list[Path] = []
    for src in sorted([*repo.glob("packages/*/src"), *repo.glob("services/*/src")]):
        for parts in NAMESPACE_DIRS:
            candidate = src.joinpath(*parts, "__init__.py")
            if candidate.exists():
                found.append(candidate.relative_to(repo))
    return found


def main(argv: list[str]) -> int:
    repo = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    violations = find_violations(repo)
    for path in violations:
        print(f"{path}: namespace folder must not contain __init__.py (PEP 420)", file=sys.stderr)
    if violations:
        return 1
    print("namespace check: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
