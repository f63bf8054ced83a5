"""The broker a test session runs against: external, testcontainers, Apache Kafka or embedded."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from coffeebuddy.infra.kafka.testing._apache import ApacheKafka
from coffeebuddy.infra.kafka.testing._artifacts import KAFKA_VERSION, apache_kafka_unavailable
from coffeebuddy.infra.kafka.testing._capabilities import BrokerCapabilities, probe_capabilities
from coffeebuddy.infra.kafka.testing._defaults import TEST_CLIENT_DEFAULTS
from coffeebuddy.infra.kafka.testing._embedded import EmbeddedBroker
from coffeebuddy.infra.kafka.testing._ports import free_port
from coffeebuddy.infra.kafka.testing._probe import fetch_api_versions, run_sync
from coffeebuddy.infra.kafka.topics import CATALOG

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings

__all__ = [
    "APACHE_KAFKA_IMAGE",
    "BROKER_KIND_ENV",
    "SESSION_SASL_USERS",
    "TEST_CLIENT_DEFAULTS",
    "BrokerHandle",
    "BrokerKind",
    "docker_available",
    "local_broker_kind",
    "start_broker",
]

BrokerKind = Literal["external", "testcontainers", "apache", "embedded"]
_KINDS: tuple[BrokerKind, ...] = ("external", "testcontainers", "apache", "embedded")

#: Environment variable forcing the broker kind instead of the resolution order.
BROKER_KIND_ENV = "COFFEEBUDDY_KAFKA_BROKER"

#: Image used when Docker is reachable (override with COFFEEBUDDY_KAFKA_IMAGE).
APACHE_KAFKA_IMAGE = "apache/kafka:4.1.1"

#: SASL users of a session's Apache Kafka broker besides ``admin``: one per catalog principal.
SESSION_SASL_USERS: tuple[str, ...] = tuple(
    principal.name.removeprefix("User:") for principal in CATALOG.principals
)


@dataclass
class BrokerHandle:
    """A running broker for tests: where it is, what it can do, how to build settings for it."""

    bootstrap_servers: str
    kind: BrokerKind
    capabilities: BrokerCapabilities
    env: Mapping[str, str]
    """``KAFKA_*`` variables that describe this broker (fed to ``KafkaSettings.from_env``)."""
    _log_tail: Callable[[int], str] = field(repr=False, default=lambda lines: "")
    _close: Callable[[], None] = field(repr=False, default=lambda: None)
    embedded: EmbeddedBroker | None = field(repr=False, default=None)
    apache: ApacheKafka | None = field(repr=False, default=None)
    """The session's Apache Kafka (its SASL and SSL listeners, users, nodes) or ``None``."""

    def log_tail(self, lines: int = 40) -> str:
        """The broker's last log lines (empty for an external broker)."""
        return self._log_tail(lines)

    def settings(self, **overrides: str) -> KafkaSettings:
        """Fresh ``KafkaSettings`` for this broker; ``overrides``: extra ``KAFKA_*`` variables."""
        from coffeebuddy.infra.kafka.config import KafkaSettings

        return KafkaSettings.from_env({**self.env, **overrides})

    def close(self) -> None:
        """Stop the broker if this process started it."""
        self._close()


def settings_env(
    bootstrap_servers: str, capabilities: BrokerCapabilities | None, base: Mapping[str, str] = {}
) -> dict[str, str]:
    """``KAFKA_*`` variables for tests: ``base`` wins; idempotence off only where it cannot work."""
    env = {key: value for key, value in base.items() if key.startswith("KAFKA_")}
    env.setdefault("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers)
    for key, value in TEST_CLIENT_DEFAULTS.items():
        env.setdefault(key, value)
    if capabilities is not None and not capabilities.supports("idempotent_producer"):
        env["KAFKA_ENABLE_IDEMPOTENCE"] = "false"
    return env


def docker_available(timeout: float = 2.0) -> bool:
    """True when testcontainers is importable and a Docker engine answers a ping."""
    try:
        docker: Any = importlib.import_module("docker")
        importlib.import_module("testcontainers.core.container")
    except ImportError:
        return False
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False  # nothing to ask (and docker-py leaks the socket of a failed connect)
    try:
        client = docker.from_env(timeout=int(max(1, timeout)), version="1.24")
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def start_broker(
    environ: Mapping[str, str] | None = None, *, kind: BrokerKind | None = None
) -> BrokerHandle:
    """Resolve and start a broker: external, testcontainers, local Apache Kafka, embedded Tansu.

    ``environ`` defaults to ``os.environ``; ``kind`` (or ``$COFFEEBUDDY_KAFKA_BROKER``) forces
    one way: ``"embedded"`` always works, ``"external"`` needs ``KAFKA_BOOTSTRAP_SERVERS``,
    ``"testcontainers"`` needs Docker, ``"apache"`` needs Java 17+ and Maven (or ``KAFKA_HOME``).
    Apache Kafka is picked on its own when Java is present and its jars are cached or resolvable.
    """
    env = os.environ if environ is None else environ
    if kind is None and env.get(BROKER_KIND_ENV):
        forced = env[BROKER_KIND_ENV]
        if forced not in _KINDS:
            raise ValueError(f"{BROKER_KIND_ENV}={forced!r} must be one of {', '.join(_KINDS)}")
        kind = forced
    if kind == "external" or (kind is None and env.get("KAFKA_BOOTSTRAP_SERVERS")):
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            raise ValueError("an external broker needs KAFKA_BOOTSTRAP_SERVERS")
        return _external(env)
    if kind == "testcontainers" or (kind is None and docker_available()):
        return _testcontainers(env)
    if kind == "apache" or (kind is None and apache_kafka_unavailable(env) is None):
        return _apache()
    return _embedded()


def local_broker_kind(environ: Mapping[str, str] | None = None) -> Literal["apache", "embedded"]:
    """The kind of a broker a test can own (fixed catalog topic names, a broker to kill).

    Apache Kafka where it can run here, unless ``$COFFEEBUDDY_KAFKA_BROKER`` says ``embedded``;
    ``start_broker(kind=local_broker_kind())`` starts a fresh one.
    """
    env = os.environ if environ is None else environ
    if env.get(BROKER_KIND_ENV) == "embedded" or apache_kafka_unavailable(env) is not None:
        return "embedded"
    return "apache"


def _external(env: Mapping[str, str]) -> BrokerHandle:
    from coffeebuddy.infra.kafka.config import KafkaSettings

    settings = KafkaSettings.from_env(env)
    bootstrap = ",".join(settings.bootstrap_servers)
    caps = run_sync(
        lambda: probe_capabilities(
            bootstrap,
            kind="external",
            label=f"external broker {bootstrap}",
            client_kwargs=settings.admin_kwargs(),
        )
    )
    return BrokerHandle(
        bootstrap_servers=bootstrap,
        kind="external",
        capabilities=caps,
        env=settings_env(bootstrap, caps, env),
    )


def _testcontainers(env: Mapping[str, str]) -> BrokerHandle:
    # testcontainers' KafkaContainer drives Confluent images; apache/kafka is configured through
    # its documented KRaft variables on a generic container (Ryuk removes it if Python dies).
    from testcontainers.core.container import DockerContainer

    image = env.get("COFFEEBUDDY_KAFKA_IMAGE", APACHE_KAFKA_IMAGE)
    port = free_port()
    container: Any = DockerContainer(image)
    container.with_bind_ports(9092, port)
    for key, value in {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }.items():
        container.with_env(key, value)
    container.start()
    bootstrap = f"127.0.0.1:{port}"
    try:
        from coffeebuddy.infra.kafka.testing._wait import wait_until_sync

        wait_until_sync(
            lambda: run_sync(lambda: fetch_api_versions(bootstrap, limit=2.0)),
            timeout=90.0,
            interval=0.5,
            message=f"Kafka container {image} answering on {bootstrap}",
            ignore=(Exception,),
        )
        caps = run_sync(
            lambda: probe_capabilities(
                bootstrap, kind="testcontainers", label=f"Kafka container {image}"
            )
        )
    except BaseException:
        with contextlib.suppress(Exception):
            container.stop()
        raise

    def tail(lines: int) -> str:
        logs = container.get_logs()
        text = b"".join(part or b"" for part in logs).decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    return BrokerHandle(
        bootstrap_servers=bootstrap,
        kind="testcontainers",
        capabilities=caps,
        env=settings_env(bootstrap, caps),
        _log_tail=tail,
        _close=container.stop,
    )


def _apache() -> BrokerHandle:
    cluster = ApacheKafka(users=SESSION_SASL_USERS, name="apache-kafka-session").start()
    return _local_handle(
        cluster, "apache", f"Apache Kafka {KAFKA_VERSION} broker", cluster.log_tail, apache=cluster
    )


def _embedded() -> BrokerHandle:
    broker = EmbeddedBroker(name="tansu-session").start()
    return _local_handle(
        broker,
        "embedded",
        f"embedded Tansu {broker.version} broker",
        broker.log_tail,
        embedded=broker,
    )


def _local_handle(
    broker: ApacheKafka | EmbeddedBroker,
    kind: Literal["apache", "embedded"],
    label: str,
    log_tail: Callable[[int], str],
    **which: Any,
) -> BrokerHandle:
    """The handle of a started broker this process owns: probed, and stopped if probing fails."""
    bootstrap = broker.bootstrap_servers
    try:
        caps = run_sync(lambda: probe_capabilities(bootstrap, kind=kind, label=label))
    except BaseException:
        broker.stop()
        raise
    return BrokerHandle(
        bootstrap_servers=bootstrap,
        kind=kind,
        capabilities=caps,
        env=settings_env(bootstrap, caps),
        _log_tail=log_tail,
        _close=broker.stop,
        **which,
    )
