"""The reminder worker's Dockerfile and Kubernetes manifests agree with the code and each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from coffeebuddy.services.reminder_worker import ServiceSettings

yaml = pytest.importorskip("yaml", reason="needs PyYAML to read the manifests")

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "services" / "reminder-worker"
DEPLOY = SERVICE / "deploy"


def _docs() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and doc["kind"] != "Kustomization":
                docs[doc["kind"]] = doc
    return docs


def _container() -> dict[str, Any]:
    (container,) = _docs()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}


def test_probes_point_at_the_served_endpoints_and_port() -> None:
    container = _container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (port,) = container["ports"]
    config = _docs()["ConfigMap"]["data"]
    assert port["containerPort"] == int(config["WORKER_HTTP_PORT"]) == 8080
    annotations = _docs()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_drain_budget_fits_the_grace_period() -> None:
    pod = _docs()["Deployment"]["spec"]["template"]["spec"]
    config = _docs()["ConfigMap"]["data"]
    settings = ServiceSettings.from_env({**config, "SLACK_BOT_TOKEN": "xoxb-manifest-check"})
    assert settings.drain_timeout_s + 5 <= pod["terminationGracePeriodSeconds"] == 30


def test_secrets_come_from_the_secret_and_never_from_the_configmap() -> None:
    env = {e["name"]: e for e in _container()["env"]}
    for name in ("SLACK_BOT_TOKEN", "KAFKA_SASL_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "coffeebuddy-reminder-worker"
    config = _docs()["ConfigMap"]["data"]
    assert not {k for k in config if "TOKEN" in k or "PASSWORD" in k}


def test_pod_runs_non_root_read_only_with_limits_and_a_pdb() -> None:
    container = _container()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert _docs()["Deployment"]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert _docs()["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def _local_closure() -> set[str]:
    """Folders of the monorepo packages the service needs at runtime (dependencies of deps)."""
    folders = {
        tomllib.loads(p.read_text())["project"]["name"]: p.parent.relative_to(ROOT).as_posix()
        for p in [*ROOT.glob("packages/*/pyproject.toml"), SERVICE / "pyproject.toml"]
    }
    todo, seen = ["coffeebuddy-reminder-worker"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        project = tomllib.loads((ROOT / folders[name] / "pyproject.toml").read_text())["project"]
        for dep in project.get("dependencies", []):
            dep_name = re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0]
            if dep_name in folders:
                todo.append(dep_name)
    return {folders[n] for n in seen}


def test_dockerfile_builds_exactly_the_runtime_closure() -> None:
    dockerfile = (SERVICE / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile, flags=re.MULTILINE))
    assert copied == _local_closure()
    assert "USER 10001" in dockerfile
    assert "EXPOSE 8080" in dockerfile
    assert "/healthz" in dockerfile
    assert 'ENTRYPOINT ["coffeebuddy-reminder-worker"]' in dockerfile
    assert "FROM ${PYTHON_IMAGE} AS runtime" in dockerfile
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in dockerfile
