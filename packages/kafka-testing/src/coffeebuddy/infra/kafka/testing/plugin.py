"""pytest plugin: session-scoped real Kafka broker fixtures for any package's tests.

Registered through the ``pytest11`` entry point, so installing the package is enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.testing._broker import BrokerHandle, start_broker
from coffeebuddy.infra.kafka.testing._capabilities import CAPABILITIES, require_capability
from coffeebuddy.infra.kafka.testing._slack import fake_slack
from coffeebuddy.infra.kafka.testing._tls import StunnelNotFoundError, TlsBroker, find_stunnel
from coffeebuddy.infra.kafka.testing._topics import TopicFactory

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings

__all__ = [
    "fake_slack",
    "kafka_broker",
    "kafka_settings",
    "kafka_tls_broker",
    "unique_topic",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kafka_requires(*names): skip unless the session broker has these capabilities "
        f"({', '.join(CAPABILITIES)}); the skip names the reason",
    )


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
def kafka_tls_broker() -> Iterator[TlsBroker]:
    """An embedded broker behind stunnel TLS: ``.bootstrap_servers``, ``.ca_file``, ``.settings``.

    Skips (naming stunnel) where stunnel is not installed.
    """
    try:
        find_stunnel()
    except StunnelNotFoundError as exc:
        pytest.skip(str(exc))
    broker = TlsBroker().start()
    try:
        yield broker
    finally:
        broker.stop()


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
