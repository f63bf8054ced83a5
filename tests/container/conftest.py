"""The reminder-worker image, run the way services/reminder-worker/deploy/ runs it.

`pod`: the Deployment, its ConfigMap and the Dockerfile, parsed (the one reading of the manifests
both the fast agreement test and the container tests use). `image`: built by tools/image.py
(podman or docker, `build --network none`, cached layers). `docker_api`: the Docker API
testcontainers needs, served by `podman system service` (or a Docker engine). `deployed`: a
factory of `DeployedWorker`s, the image run with the pod's user, read-only root, dropped
capabilities, `/tmp` emptyDir, CA volume, limits, ConfigMap and Secret environment, on the host
network (the broker and the fake Slack listen on loopback).

Tests marked `container` run only when asked (`-m container`, CI's own step): the normal passes
deselect them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest

from coffeebuddy.infra.kafka.testing import ApacheKafka, wait_until, wait_until_sync
from coffeebuddy.services.fake_slack import FakeSlackServer

yaml = pytest.importorskip("yaml", reason="needs PyYAML to read the manifests")

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "services" / "reminder-worker"
DEPLOY = SERVICE / "deploy"
DOCKERFILE = SERVICE / "Dockerfile"
CONTAINER_MARKER = "container"
TEST_LABEL = "coffeebuddy.tests"
#: What a test run changes in the ConfigMap's environment: where the broker and Slack are.
ENDPOINT_OVERRIDES = frozenset({"KAFKA_BOOTSTRAP_SERVERS", "SLACK_API_BASE_URL"})
_REPORT = pytest.StashKey[list[str]]()


# ------------------------------------------------------------------------------ selection
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_REPORT] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Container tests run only under a `-m` that names them (they build and run an image)."""
    if CONTAINER_MARKER in (config.getoption("markexpr") or ""):
        return
    dropped = [item for item in items if item.get_closest_marker(CONTAINER_MARKER)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker(CONTAINER_MARKER)]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("reminder-worker image")
        for line in lines:
            terminalreporter.line(line)


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> list[str]:
    """Lines for the end-of-run "reminder-worker image" section (size, start-to-ready)."""
    return request.config.stash[_REPORT]


# ------------------------------------------------------------------------------ manifests
def quantity(value: str | int) -> float:
    """A Kubernetes quantity (`512Mi`, `100m`, `1`) as a number of bytes or cores."""
    text = str(value)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


@dataclass(frozen=True)
class Probe:
    path: str
    port: int
    period_s: float
    failure_threshold: int
    timeout_s: float

    @property
    def budget_s(self) -> float:
        """How long Kubernetes lets this probe fail before it acts."""
        return self.period_s * self.failure_threshold


@dataclass(frozen=True)
class Dockerfile:
    user: str
    expose: list[int]
    env: dict[str, str]
    healthcheck_path: str | None
    useradd_uid: int | None
    useradd_gid: int | None

    @classmethod
    def read(cls, path: Path = DOCKERFILE) -> Dockerfile:
        text = path.read_text()
        joined = re.sub(r"\\\n", " ", text)
        runtime = joined.split(" AS runtime", 1)[1]
        env: dict[str, str] = {}
        for line in runtime.splitlines():
            if line.startswith("ENV "):
                env.update(re.findall(r"(\w+)=(\S+)", line))
        users = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
        health = re.search(r"^HEALTHCHECK .*?(/\w+)'", runtime, flags=re.MULTILINE)
        uid = re.search(r"useradd .*--uid (\d+)", runtime)
        gid = re.search(r"useradd .*--gid (\d+)", runtime)
        return cls(
            user=users[-1],
            expose=[int(p) for p in re.findall(r"^EXPOSE (\d+)$", runtime, flags=re.MULTILINE)],
            env=env,
            healthcheck_path=health.group(1) if health else None,
            useradd_uid=int(uid.group(1)) if uid else None,
            useradd_gid=int(gid.group(1)) if gid else None,
        )


@dataclass(frozen=True)
class PodSpec:
    """What deploy/ tells the kubelet about the worker container."""

    docs: dict[str, dict[str, Any]]
    container: dict[str, Any]
    uid: int
    gid: int
    run_as_non_root: bool
    read_only_root: bool
    allow_privilege_escalation: bool
    cap_drop: list[str]
    cap_add: list[str]
    config: dict[str, str]
    secret_env: dict[str, str]  # variable -> secret key
    ports: dict[str, int]  # name -> containerPort
    probes: dict[str, Probe]  # startup, liveness, readiness
    grace_s: int
    writable_mounts: dict[str, int]  # emptyDir mountPath -> sizeLimit bytes
    read_only_mounts: dict[str, str]  # configMap/secret mountPath -> volume name
    memory_limit: int
    cpu_limit: float
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def http_port(self) -> int:
        return self.ports["http"]


def read_pod() -> PodSpec:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") not in (None, "Kustomization"):
                docs[doc["kind"]] = doc
    template = docs["Deployment"]["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    config_names = [s["configMapRef"]["name"] for s in container.get("envFrom", [])]
    assert config_names == [docs["ConfigMap"]["metadata"]["name"]], config_names
    ports = {p["name"]: int(p["containerPort"]) for p in container["ports"]}

    def probe(kind: str) -> Probe:
        spec = container[f"{kind}Probe"]
        port = spec["httpGet"]["port"]
        return Probe(
            path=spec["httpGet"]["path"],
            port=ports[port] if isinstance(port, str) else int(port),
            period_s=float(spec.get("periodSeconds", 10)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
            timeout_s=float(spec.get("timeoutSeconds", 1)),
        )

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    writable: dict[str, int] = {}
    read_only: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume and not mount.get("readOnly", False):
            writable[mount["mountPath"]] = int(
                quantity(volume["emptyDir"].get("sizeLimit", "64Mi"))
            )
        else:
            assert mount.get("readOnly", False), f"{mount} is writable and not an emptyDir"
            read_only[mount["mountPath"]] = mount["name"]
    capabilities = security.get("capabilities", {})
    return PodSpec(
        docs=docs,
        container=container,
        uid=int(security["runAsUser"]),
        gid=int(security["runAsGroup"]),
        run_as_non_root=bool(security.get("runAsNonRoot", False)),
        read_only_root=bool(security.get("readOnlyRootFilesystem", False)),
        allow_privilege_escalation=bool(security.get("allowPrivilegeEscalation", True)),
        cap_drop=list(capabilities.get("drop", [])),
        cap_add=list(capabilities.get("add", [])),
        config={k: str(v) for k, v in docs["ConfigMap"]["data"].items()},
        secret_env={
            e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        },
        ports=ports,
        probes={k: probe(k) for k in ("startup", "liveness", "readiness")},
        grace_s=int(pod["terminationGracePeriodSeconds"]),
        writable_mounts=writable,
        read_only_mounts=read_only,
        memory_limit=int(quantity(container["resources"]["limits"]["memory"])),
        cpu_limit=quantity(container["resources"]["limits"]["cpu"]),
        annotations=dict(template["metadata"].get("annotations", {})),
    )


@pytest.fixture(scope="session")
def pod() -> PodSpec:
    return read_pod()


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return Dockerfile.read()


# ------------------------------------------------------------------------------ engine, image
def _missing(what: str) -> None:
    """A missing engine fails the run where no skip is allowed (CI), else skips naming it."""
    if os.environ.get("COFFEEBUDDY_FORBID_CAPABILITY_SKIPS") == "1":
        pytest.fail(f"{what} (COFFEEBUDDY_FORBID_CAPABILITY_SKIPS=1: no skip allowed)")
    pytest.skip(what)


def image_tool() -> ModuleType:
    """tools/image.py, the one owner of how the engine is called and the image built."""
    name = "coffeebuddy_image_tool"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "image.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def engine() -> Any:
    tool = image_tool()
    try:
        return tool.Engine.find()
    except tool.ImageError as exc:
        _missing(f"needs a container engine to run the image: {exc}")


@pytest.fixture(scope="session")
def image_sources() -> dict[str, Path]:
    """Each package folder the Dockerfile copies and builds, by name, with its `src` folder."""
    return {package: ROOT / package / "src" for package in image_tool().dockerfile_packages()}


@pytest.fixture(scope="session")
def image(engine: Any, report: list[str]) -> str:
    """The image tag, built now (seconds when the base and layers are cached)."""
    built = image_tool().build_image(engine)
    report.append(f"image {built.summary()}")
    return str(built.tag)


@pytest.fixture(scope="session")
def docker_api(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """testcontainers' `docker_client_kw`: podman's Docker-compatible API on a private socket
    (given to these containers only: DOCKER_HOST stays as it is for everything else)."""
    try:
        import docker
        from testcontainers.core.config import testcontainers_config
    except ImportError as exc:
        _missing(f"needs testcontainers and docker (root hatch env): {exc}")
    # Ryuk (the reaper) is an image from Docker Hub, which no registry here serves; every
    # container is removed by `deployed` instead, and leftovers of a killed run at the next start.
    testcontainers_config.ryuk_disabled = True
    client_kw: dict[str, Any] = {}
    service: subprocess.Popen[bytes] | None = None
    if engine.name == "podman":
        socket_path = tmp_path_factory.mktemp("podman") / "podman.sock"
        log_path = socket_path.parent / "service.log"
        with log_path.open("wb") as log:  # the service keeps its own copy of the descriptor
            service = subprocess.Popen(
                engine.command("system", "service", "--time=600", f"unix://{socket_path}"),
                env=engine.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        client_kw["environment"] = {"DOCKER_HOST": f"unix://{socket_path}"}

        def answers() -> bool:
            assert service is not None
            if service.poll() is not None:
                raise AssertionError(f"podman system service exited: {log_path.read_text()}")
            try:
                client = docker.from_env(timeout=5, **client_kw)
                try:
                    return bool(client.ping())
                finally:
                    client.close()
            except docker.errors.DockerException:
                return False

        wait_until_sync(answers, timeout=30, message="podman system service answers")
    _remove_leftovers(engine)
    try:
        yield client_kw
    finally:
        _remove_leftovers(engine)
        if service is not None:
            os.killpg(service.pid, signal.SIGTERM)
            try:
                service.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
                service.wait(15)


def _remove_leftovers(engine: Any) -> None:
    ids = engine.run("ps", "-aq", "--filter", f"label={TEST_LABEL}=reminder-worker").stdout.split()
    if ids:
        engine.run("rm", "-f", *ids, check=False, timeout=120)


# ------------------------------------------------------------------------------ the container
class DeployedWorker:
    """The image run as the Deployment runs it (testcontainers over the engine's Docker API)."""

    def __init__(
        self,
        pod: PodSpec,
        image: str,
        env: dict[str, str],
        volumes: dict[str, str],
        client_kw: dict[str, Any],
    ) -> None:
        from testcontainers.core.container import DockerContainer

        self.pod = pod
        self.name = f"coffeebuddy-worker-{uuid.uuid4().hex[:8]}"
        container = DockerContainer(image, docker_client_kw=client_kw).with_name(self.name)
        for key, value in env.items():
            container.with_env(key, value)
        for mount, size in pod.writable_mounts.items():
            container.with_tmpfs_mount(mount, f"size={size}")
        for host_dir, mount in volumes.items():
            container.with_volume_mapping(host_dir, mount, mode="ro")
        security_opt = [] if pod.allow_privilege_escalation else ["no-new-privileges"]
        container.with_kwargs(
            user=f"{pod.uid}:{pod.gid}",
            read_only=pod.read_only_root,
            cap_drop=pod.cap_drop,
            cap_add=pod.cap_add or None,
            security_opt=security_opt,
            mem_limit=pod.memory_limit,
            nano_cpus=int(pod.cpu_limit * 1e9),
            network_mode="host",
            labels={TEST_LABEL: "reminder-worker"},
        )
        self._container = container
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.pod.http_port}"

    def start(self) -> DeployedWorker:
        port = self.pod.http_port
        with socket.socket() as probe:
            taken = probe.connect_ex(("127.0.0.1", port)) == 0
        assert not taken, (
            f"port {port} (the Deployment's containerPort) is taken on this host; the container "
            "runs on the host network, so nothing else may listen there"
        )
        self.started_at = time.monotonic()
        self._container.start()
        return self

    @property
    def wrapped(self) -> Any:
        return self._container.get_wrapped_container()

    def state(self) -> dict[str, Any]:
        self.wrapped.reload()
        return dict(self.wrapped.attrs["State"])

    def logs(self) -> str:
        out, err = self._container.get_logs()
        return (out + err).decode(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """The worker's JSON log lines (one object per line on stderr)."""
        found = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    found.append(record)
        return found

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    async def get(self, path: str, timeout: float = 3.0) -> tuple[int, str]:  # noqa: ASYNC109
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(self.url + path) as response,
        ):
            return response.status, await response.text()

    async def wait_ready(self) -> float:
        """Seconds from start to the readiness probe's 200, after the startup probe passed,
        each within the startup probe's budget (period x failureThreshold)."""
        startup, readiness = self.pod.probes["startup"], self.pod.probes["readiness"]

        def probing(probe: Probe) -> Any:
            async def ok() -> bool:
                if not self.state()["Running"]:
                    raise AssertionError(f"container exited:\n{self.log_tail()}")
                status, _ = await self.get(probe.path, timeout=probe.timeout_s)
                return status == 200

            return ok

        await wait_until(
            probing(startup),
            timeout=startup.budget_s,
            message=f"startup probe {startup.path}",
            ignore=(OSError, aiohttp.ClientError, asyncio.TimeoutError),
        )
        await wait_until(
            probing(readiness),
            timeout=startup.budget_s,
            message=f"readiness probe {readiness.path}",
            ignore=(OSError, aiohttp.ClientError, asyncio.TimeoutError),
        )
        return time.monotonic() - self.started_at

    async def metric(self, name: str) -> float:
        _, text = await self.get(self.pod.annotations.get("prometheus.io/path", "/metrics"))
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name)] in " {"
        ]
        return sum(values)

    def exec_python(self, code: str) -> str:
        result = self.wrapped.exec_run(["python", "-c", code])
        assert result.exit_code == 0, result.output.decode(errors="replace")
        return str(result.output.decode())

    def terminate(self) -> tuple[int, float]:
        """SIGTERM, SIGKILL after the pod's grace period (as the kubelet does): exit code and
        seconds to exit."""
        started = time.monotonic()
        self.wrapped.stop(timeout=self.pod.grace_s)
        code = int(self.wrapped.wait(timeout=self.pod.grace_s + 30)["StatusCode"])
        return code, time.monotonic() - started

    def kill(self) -> int:
        self.wrapped.kill(signal="SIGKILL")
        return int(self.wrapped.wait(timeout=60)["StatusCode"])

    def remove(self) -> None:
        """SIGTERM first, as a rollout does: a SIGKILLed member would hold the group's
        partitions for its session timeout (45 s) and slow the next test's start."""
        with contextlib.suppress(Exception):
            if self.state().get("Running"):
                self.wrapped.stop(timeout=self.pod.grace_s)
        with contextlib.suppress(Exception):
            self.wrapped.remove(force=True)


@dataclass
class Deployed:
    """Starts `DeployedWorker`s against a cluster and a fake Slack; removes them at teardown."""

    pod: PodSpec
    image: str
    folder: Path
    client_kw: dict[str, Any]
    started: list[DeployedWorker] = field(default_factory=list)

    def env(self, cluster: ApacheKafka, slack: FakeSlackServer) -> dict[str, str]:
        """The ConfigMap as is but for ENDPOINT_OVERRIDES; the Secret's keys from the test."""
        user = self.pod.config["KAFKA_SASL_USERNAME"]
        assert user in cluster.users, (
            f"the ConfigMap's KAFKA_SASL_USERNAME {user!r} is no SASL user of the cluster "
            f"({sorted(cluster.users)}): the catalog's principals are the users"
        )
        secrets = {
            "SLACK_BOT_TOKEN": slack.token,
            "KAFKA_SASL_PASSWORD": cluster.users[user].password,
        }
        assert set(secrets) == set(self.pod.secret_env), self.pod.secret_env
        overrides = {
            "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap(
                self.pod.config["KAFKA_SECURITY_PROTOCOL"]
            ),
            "SLACK_API_BASE_URL": slack.base_url,
        }
        assert set(overrides) == ENDPOINT_OVERRIDES
        return {**self.pod.config, **overrides, **secrets}

    def ca_volume(self, cluster: ApacheKafka) -> dict[str, str]:
        """The cluster's CA where the ConfigMap's KAFKA_SSL_CAFILE expects it (a configMap
        volume in the Deployment), readable by the pod's user as kubelet makes it (0644)."""
        ca_path = Path(self.pod.config["KAFKA_SSL_CAFILE"])
        mount = str(ca_path.parent)
        assert mount in self.pod.read_only_mounts, (mount, self.pod.read_only_mounts)
        folder = self.folder / "kafka-ca"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(cluster.ca_file, folder / ca_path.name)
        folder.chmod(0o755)
        (folder / ca_path.name).chmod(0o644)
        return {str(folder): mount}

    def start(self, cluster: ApacheKafka, slack: FakeSlackServer) -> DeployedWorker:
        worker = DeployedWorker(
            self.pod, self.image, self.env(cluster, slack), self.ca_volume(cluster), self.client_kw
        )
        self.started.append(worker)
        return worker.start()


@pytest.fixture
def deployed(
    pod: PodSpec,
    image: str,
    docker_api: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    factory = Deployed(pod, image, tmp_path_factory.mktemp("deployed"), docker_api)
    yield factory
    for worker in factory.started:
        worker.remove()
