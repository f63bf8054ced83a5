"""Run every package's own `hatch run test` in its own isolated env, one after another.

A shared env hides missing dependencies; an env per package catches them. pytest's
exit code 5 (no tests collected) counts as a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Package envs run on the deployed image's Python (3.12); the root suite runs on 3.11.
ENV = os.environ.get("COFFEEBUDDY_PKG_ENV", "py312")


def _clean_env() -> dict[str, str]:
    """The environment without the outer hatch env's markers, so hatch picks the package's env."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith("HATCH_ENV") and k != "VIRTUAL_ENV"
    }


def main(argv: list[str]) -> int:
    wanted = set(argv[1:])
    dirs = sorted([*REPO.glob("packages/*/hatch.toml"), *REPO.glob("services/*/hatch.toml")])
    results: list[tuple[str, int, float]] = []
    for hatch_toml in dirs:
        pkg = hatch_toml.parent
        if wanted and pkg.name not in wanted:
            continue
        print(f"\n=== {pkg.relative_to(REPO)} ===", flush=True)
        started = time.monotonic()
        code = subprocess.call(["hatch", "run", f"{ENV}:test"], cwd=pkg, env=_clean_env())
        results.append((str(pkg.relative_to(REPO)), code, time.monotonic() - started))
    print("\npackage                               exit   seconds")
    for name, code, secs in results:
        print(f"{name:<37} {code:>4} {secs:>9.1f}")
    failed = [name for name, code, _ in results if code != 0]
    if not results:
        print("no package matched", file=sys.stderr)
        return 1
    if failed:
        print(f"failed (exit 5 means no tests ran): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
