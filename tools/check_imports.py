"""Enforce the package graph of docs/ARCHITECTURE.md and "no private module of another package".

Reads every import (module level and inside functions) of every source and test file:
- a package's src may import only the CoffeeBuddy packages `ALLOWED` gives it, and must declare
  each of them in its pyproject (dependencies or an extra);
- nobody (src, tests, benchmarks, tools) imports a `_private` module of another package.
`hatch run lint` runs it; tests/test_repo_layout.py proves it catches both kinds of violation.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

KAFKA = "coffeebuddy.infra.kafka."
SERVICES = "coffeebuddy.services."

#: package -> the packages its src may import (the arrows of docs/ARCHITECTURE.md).
ALLOWED: dict[str, frozenset[str]] = {
    "config": frozenset(),
    "topics": frozenset({"models"}),  # event-type names: models owns the event contract
    "models": frozenset(),
    "metrics": frozenset(),
    "producer": frozenset({"config", "topics", "models", "metrics"}),
    "consumer": frozenset({"config", "topics", "models", "metrics", "producer"}),
    "reminder_worker": frozenset({"config", "topics", "models", "metrics", "producer", "consumer"}),
    "provision": frozenset({"config", "topics", "models", "producer"}),  # events publish
    "testing": frozenset({"config", "topics"}),
    "services.reminder_worker": frozenset(
        {"config", "topics", "models", "metrics", "producer", "consumer", "reminder_worker"}
    ),
    "services.fake_slack": frozenset(),  # a test double: no CoffeeBuddy package at all
}


def package_of(module: str) -> tuple[str, list[str]] | None:
    """``coffeebuddy.infra.kafka.consumer._harness`` -> ``("consumer", ["_harness"])``."""
    for prefix, label in ((KAFKA, ""), (SERVICES, "services.")):
        if module.startswith(prefix):
            parts = module[len(prefix) :].split(".")
            return label + parts[0], parts[1:]
    return None


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from pkg import _private` (dunders are public)
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    yield node.lineno, f"{node.module}.{alias.name}"


def _distributions(repo: Path) -> Iterator[tuple[str, Path]]:
    for folder in sorted([*repo.glob("packages/*"), *repo.glob("services/*")]):
        pyproject = folder / "pyproject.toml"
        if not pyproject.exists():
            continue
        src = folder / "src" / "coffeebuddy"
        leaf = next((p for p in src.rglob("__init__.py")), None)
        if leaf is None:
            continue
        module = ".".join(leaf.parent.relative_to(folder / "src").parts)
        found = package_of(module)
        if found is not None:
            yield found[0], folder


def _declared(folder: Path) -> set[str]:
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    names = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        names += extra
    out = set()
    for name in names:
        base = name.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip()
        if base.startswith("coffeebuddy-infra-kafka-"):
            out.add(base.removeprefix("coffeebuddy-infra-kafka-").replace("-", "_"))
        elif base.startswith("coffeebuddy-"):
            out.add("services." + base.removeprefix("coffeebuddy-").replace("-", "_"))
    return out


def find_violations(repo: Path) -> list[str]:
    """Every broken rule as ``path:line: message``."""
    problems: list[str] = []
    owners: dict[Path, str] = {folder: name for name, folder in _distributions(repo)}
    roots = [*owners, repo / "tests", repo / "benchmarks", repo / "tools", repo / "runs"]
    for root in roots:
        own = owners.get(root)
        declared = _declared(root) if own else set()
        for path in sorted(root.rglob("*.py")):
            if ".venv" in path.parts or "node_modules" in path.parts:
                continue
            in_src = own is not None and (root / "src") in path.parents
            for line, module in _imports(path):
                found = package_of(module)
                if found is None:
                    continue
                target, rest = found
                where = f"{path.relative_to(repo)}:{line}"
                if target != own and any(part.startswith("_") for part in rest):
                    problems.append(f"{where}: imports {module}, a private module of {target}")
                if not in_src or target == own:
                    continue
                assert own is not None
                if target not in ALLOWED.get(own, frozenset()):
                    problems.append(
                        f"{where}: {own} may not import {target} (docs/ARCHITECTURE.md graph)"
                    )
                elif target not in declared:
                    problems.append(f"{where}: {own} imports {target} without declaring it")
    return sorted(set(problems))


def main(argv: list[str]) -> int:
    repo = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems = find_violations(repo)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print("import contract: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
