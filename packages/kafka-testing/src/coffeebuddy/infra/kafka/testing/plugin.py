"""pytest plugin: session-scoped real Kafka broker fixtures for any package's tests.

Registered through the ``pytest11`` entry point, so installing the package is enough.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.testing._apache import ApacheKafka, TlsEndpoint
from coffeebuddy.infra.kafka.testing._artifacts import apache_kafka_unavailable
from coffeebuddy.infra.kafka.testing._broker import (
    SESSION_SASL_USERS,
    BrokerHandle,
    start_broker,
)
from coffeebuddy.infra.kafka.testing._capabilities import (
    CAPABILITIES,
    CAPABILITY_SKIP_PREFIX,
    require_capability,
)
from coffeebuddy.infra.kafka.testing._tls import StunnelNotFoundError, TlsBroker, find_stunnel
from coffeebuddy.infra.kafka.testing._topics import TopicFactory

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings

__all__ = [
    "FORBID_CAPABILITY_SKIPS_ENV",
    "KAFKA_MARKER",
    "kafka_broker",
    "kafka_cluster",
    "kafka_settings",
    "kafka_tls_broker",
    "unique_topic",
]


#: Marker put on every test that uses the session broker (``-m kafka`` selects them).
KAFKA_MARKER = "kafka"
#: Set to ``1`` to fail the session when a test was skipped for a missing broker capability.
FORBID_CAPABILITY_SKIPS_ENV = "COFFEEBUDDY_FORBID_CAPABILITY_SKIPS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kafka_requires(*names): skip unless the session broker has these capabilities "
        f"({', '.join(CAPABILITIES)}); the skip names the reason",
    )
    config.addinivalue_line(
        "markers", f"{KAFKA_MARKER}: uses a real broker (added to every test that needs one)"
    )
    config.addinivalue_line(
        "markers", "kafka_cluster: needs the three-node Apache Kafka cluster (fault tests)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixtures reach a broker, so ``-m kafka`` selects them."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "kafka_cluster" in names:
            item.add_marker(pytest.mark.kafka_cluster)
        if "kafka_broker" in names or "kafka_cluster" in names or "kafka_tls_broker" in names:
            item.add_marker(getattr(pytest.mark, KAFKA_MARKER))


def _skips(config: pytest.Config) -> list[tuple[str, str]]:
    """``(test id, reason)`` of every skipped test so far, from the terminal reporter."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    reports = getattr(reporter, "stats", {}).get("skipped", [])
    return [
        (report.nodeid, str(report.longrepr[2]).removeprefix("Skipped: "))
        for report in reports
        if isinstance(report.longrepr, tuple)
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Skips grouped by reason, capability skips first (what CI's skip summary shows)."""
    skips = _skips(terminalreporter.config)
    if not skips:
        return
    reasons = Counter(reason for _, reason in skips)
    terminalreporter.section("skips by reason (coffeebuddy)")
    for reason, count in sorted(
        reasons.items(), key=lambda kv: (not kv[0].startswith(CAPABILITY_SKIP_PREFIX), kv[0])
    ):
        terminalreporter.line(f"{count:4d}  {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get(FORBID_CAPABILITY_SKIPS_ENV) != "1":
        return
    skips = _skips(session.config)
    capability = [(n, r) for n, r in skips if r.startswith(CAPABILITY_SKIP_PREFIX)]
    if capability:
        lines = "\n".join(f"  {node}: {reason}" for node, reason in capability)
        print(f"\n{FORBID_CAPABILITY_SKIPS_ENV}=1, yet tests skipped for capabilities:\n{lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[BrokerHandle]:
    """The session's broker: $KAFKA_BOOTSTRAP_SERVERS, else Docker (apache/kafka), else Tansu."""
    handle = start_broker()
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def kafka_settings(kafka_broker: BrokerHandle) -> KafkaSettings:
    """``KafkaSettings`` for the session broker with short group timeouts for fast rebalances."""
    return kafka_broker.settings()


@pytest.fixture(scope="session")
def kafka_tls_broker(kafka_broker: BrokerHandle) -> Iterator[TlsBroker | TlsEndpoint]:
    """A TLS broker: ``.bootstrap_servers``, ``.ca_file``, ``.settings``, ``.settings_with()``.

    On Apache Kafka, the session broker's native SSL listener; otherwise an embedded broker
    behind stunnel, skipped (naming stunnel) where stunnel is not installed.
    """
    if kafka_broker.apache is not None:
        yield kafka_broker.apache.tls
        return
    try:
        find_stunnel()
    except StunnelNotFoundError as exc:
        pytest.skip(str(exc))
    broker = TlsBroker().start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[ApacheKafka]:
    """A three-node Apache Kafka cluster (KRaft, RF 3) for fault tests; started on first use.

    Skips, naming what is missing, where Java or the Kafka jars cannot be had.
    """
    reason = apache_kafka_unavailable()
    if reason is not None:
        pytest.skip(f"needs a three-node Apache Kafka cluster: {reason}")
    cluster = ApacheKafka(3, users=SESSION_SASL_USERS, name="apache-kafka-cluster").start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def unique_topic(
    kafka_broker: BrokerHandle, request: pytest.FixtureRequest
) -> Iterator[TopicFactory]:
    """Factory ``unique_topic(partitions=3, *, key_field=, event_types=, base=)`` -> TopicConfig."""
    factory = TopicFactory(kafka_broker.settings(), request.node.name)
    yield factory
    if kafka_broker.kind != "embedded":  # the embedded broker's memory dies with the session
        factory.cleanup()


@pytest.fixture(autouse=True)
def _kafka_requires_marker(request: pytest.FixtureRequest) -> None:
    """Apply ``@pytest.mark.kafka_requires(...)``: skip with the broker's reason."""
    names = [name for marker in request.node.iter_markers("kafka_requires") for name in marker.args]
    if not names:
        return
    broker: BrokerHandle = request.getfixturevalue("kafka_broker")
    for name in names:
        require_capability(broker, name)
