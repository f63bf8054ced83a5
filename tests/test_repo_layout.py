"""Repository rules every package must keep: PEP 420 namespace, typed leaves, own test env."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECK = REPO / "tools" / "check_namespace.py"
PACKAGE_DIRS = sorted(
    p.parent
    for p in [*REPO.glob("packages/*/pyproject.toml"), *REPO.glob("services/*/pyproject.toml")]
)


def _run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), str(root)], capture_output=True, text=True, check=False
    )


def test_namespace_check_passes_on_this_repository() -> None:
    result = _run_check(REPO)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "stray",
    [
        "coffeebuddy/__init__.py",
        "coffeebuddy/infra/__init__.py",
        "coffeebuddy/infra/kafka/__init__.py",
    ],
)
def test_namespace_check_catches_a_stray_init(tmp_path: Path, stray: str) -> None:
    leaf = tmp_path / "packages" / "kafka-demo" / "src" / "coffeebuddy" / "infra" / "kafka" / "demo"
    leaf.mkdir(parents=True)
    (leaf / "__init__.py").write_text("")
    assert _run_check(tmp_path).returncode == 0

    (tmp_path / "packages" / "kafka-demo" / "src" / stray).write_text("")
    result = _run_check(tmp_path)
    assert result.returncode == 1
    assert f"packages/kafka-demo/src/{stray}" in result.stderr


def test_namespace_check_covers_services(tmp_path: Path) -> None:
    ns = tmp_path / "services" / "demo" / "src" / "coffeebuddy" / "services"
    ns.mkdir(parents=True)
    (ns / "__init__.py").write_text("")
    assert _run_check(tmp_path).returncode == 1


@pytest.mark.parametrize("pkg", PACKAGE_DIRS, ids=lambda p: p.name)
def test_package_follows_the_layout(pkg: Path) -> None:
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    project = meta["project"]
    if pkg.parent.name == "packages":
        assert project["name"] == f"coffeebuddy-infra-{pkg.name}"
    assert project["dynamic"] == ["version"], "version comes from one place: _version.py"
    leaves = [p.parent for p in (pkg / "src").rglob("py.typed")]
    assert len(leaves) == 1, f"{pkg.name}: exactly one typed leaf package, found {leaves}"
    assert (leaves[0] / "__init__.py").exists()
    assert "__all__" in (leaves[0] / "__init__.py").read_text()
    assert (pkg / "README.md").exists()
    assert any((pkg / "tests").glob("test_*.py")), f"{pkg.name} has no tests"
    hatch = tomllib.loads((pkg / "hatch.toml").read_text())
    assert hatch["envs"]["default"]["installer"] == "uv"
    assert "test" in hatch["envs"]["default"]["scripts"]
    assert hatch["envs"]["py312"] == {"template": "default", "python": "3.12"}, (
        "pkg:test runs py312"
    )
    deps = project["dependencies"]
    assert not any("@" in d for d in deps), "no direct references in published metadata"
    for dep in deps:
        if dep.startswith("coffeebuddy-"):
            assert dep in meta["tool"]["uv"]["sources"], f"{pkg.name}: {dep} needs a uv source"


def test_no_init_in_test_folders() -> None:
    offenders = [
        p.relative_to(REPO)
        for p in REPO.glob("**/__init__.py")
        if "tests" in p.parts and "src" not in p.parts and ".hatch" not in p.parts
    ]
    assert offenders == []


IMPORTS = REPO / "tools" / "check_imports.py"


def _run_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(IMPORTS), str(root)], capture_output=True, text=True, check=False
    )


def _package(root: Path, name: str, deps: list[str], body: str) -> Path:
    folder = root / "packages" / f"kafka-{name}"
    leaf = folder / "src" / "coffeebuddy" / "infra" / "kafka" / name
    leaf.mkdir(parents=True)
    (leaf / "__init__.py").write_text(body)
    quoted = ", ".join(f'"coffeebuddy-infra-kafka-{d}"' for d in deps)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "x"\ndependencies = [{quoted}]\n')
    return folder


def test_import_contract_passes_on_this_repository() -> None:
    result = _run_imports(REPO)
    assert result.returncode == 0, result.stderr


def test_import_contract_catches_an_arrow_against_the_graph(tmp_path: Path) -> None:
    _package(tmp_path, "config", ["consumer"], "from coffeebuddy.infra.kafka.consumer import X\n")
    result = _run_imports(tmp_path)
    assert result.returncode == 1
    assert "config may not import consumer" in result.stderr


def test_import_contract_catches_an_undeclared_dependency(tmp_path: Path) -> None:
    _package(tmp_path, "producer", [], "import coffeebuddy.infra.kafka.config\n")
    result = _run_imports(tmp_path)
    assert "producer imports config without declaring it" in result.stderr


def test_import_contract_catches_a_private_import_in_tests(tmp_path: Path) -> None:
    folder = _package(tmp_path, "producer", ["config"], "")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_x.py").write_text(
        "def test_x():\n    from coffeebuddy.infra.kafka.config._settings import Y\n"
    )
    result = _run_imports(tmp_path)
    assert result.returncode == 1
    assert "a private module of config" in result.stderr
