"""Run every package's own `hatch run test` in its own isolated env, one after another.

A shared env hides missing dependencies; an env per package catches them: every test module
is collected (imported) in the package's own env. Tests that use the session broker (marked
`kafka` by the kafka-testing plugin) already ran twice in the root suite, on Apache Kafka and on
the embedded broker, so with `--no-broker` (CI) they are deselected wherever that plugin is
installed. pytest's exit code 5 (no tests collected) counts as a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Package envs run on the deployed image's Python (3.12); the root suite runs on 3.11.
ENV = os.environ.get("COFFEEBUDDY_PKG_ENV", "py312")
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def _python312_dir() -> str | None:
    """A directory holding a working python3.12 (PATH first, then pyenv's versions)."""
    candidates = [shutil.which("python3.12")]
    candidates += [str(p / "python3.12") for p in sorted(PYENV.glob("3.12*/bin"), reverse=True)]
    for exe in filter(None, candidates):
        probe = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.startswith("Python 3.12"):
            return str(Path(exe).parent)
    return None


def _clean_env() -> dict[str, str]:
    """The environment without the outer hatch env's markers, so hatch picks the package's env.

    hatch only finds Python 3.12 on PATH (pyenv's shim refuses a non-global version, and
    hatch would then try to download one), so the interpreter's directory goes first.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HATCH_ENV") and k != "VIRTUAL_ENV"
    }
    py312 = _python312_dir()
    if py312:
        env["PATH"] = f"{py312}{os.pathsep}{env.get('PATH', '')}"
    return env


def _has_testing_plugin(pkg: Path) -> bool:
    """True when the package's test env installs kafka-testing (whose plugin marks `kafka`)."""
    text = (pkg / "pyproject.toml").read_text()
    return 'name = "coffeebuddy-infra-kafka-testing"' in text or (
        '"coffeebuddy-infra-kafka-testing"' in text
    )


def main(argv: list[str]) -> int:
    no_broker = "--no-broker" in argv
    wanted = {a for a in argv[1:] if a != "--no-broker"}
    if ENV == "py312" and _python312_dir() is None:
        print("Python 3.12 not found: package envs cannot run on it", file=sys.stderr)
        return 1
    dirs = sorted([*REPO.glob("packages/*/hatch.toml"), *REPO.glob("services/*/hatch.toml")])
    results: list[tuple[str, int, float]] = []
    for hatch_toml in dirs:
        pkg = hatch_toml.parent
        if wanted and pkg.name not in wanted:
            continue
        print(f"\n=== {pkg.relative_to(REPO)} ===", flush=True)
        started = time.monotonic()
        args = ["-m", "not kafka"] if no_broker and _has_testing_plugin(pkg) else []
        code = subprocess.call(["hatch", "run", f"{ENV}:test", *args], cwd=pkg, env=_clean_env())
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
