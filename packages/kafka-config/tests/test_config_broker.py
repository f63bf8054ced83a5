"""check_connection against real brokers from the testing plugin (plaintext, TLS, bad listener)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from coffeebuddy.infra.kafka.config import KafkaConnectionError, KafkaSettings, check_connection
from coffeebuddy.infra.kafka.testing import EmbeddedBroker, free_port


async def test_config_broker_check_connection_passes_on_the_session_broker(
    kafka_settings: KafkaSettings,
) -> None:
    await check_connection(kafka_settings, timeout=10)
    # The same settings really work for a client built from admin_kwargs().
    admin = AIOKafkaAdminClient(**kafka_settings.admin_kwargs())
    await admin.start()
    try:
        assert isinstance(await admin.list_topics(), list)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def misadvertised_broker() -> Iterator[EmbeddedBroker]:
    """A Tansu broker that advertises a port where nothing listens."""
    broker = EmbeddedBroker(advertised_port=free_port())
    broker.start()  # a broker that cannot start is a failure here, not a skip
    try:
        yield broker
    finally:
        broker.stop()


async def test_config_broker_wrong_advertised_listener_is_explained(
    misadvertised_broker: EmbeddedBroker,
) -> None:
    settings = KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": misadvertised_broker.listener_address,
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
        }
    )
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(settings, timeout=10)
    message = str(info.value)
    advertised = misadvertised_broker.bootstrap_servers
    assert "brokers it advertises (its advertised listeners)" in message
    assert f"nothing listens at {advertised} (advertised by broker" in message
    assert [f.address for f in info.value.failures] == [advertised]


async def test_config_broker_tls_check_connection(kafka_tls_broker: Any) -> None:
    await check_connection(kafka_tls_broker.settings, timeout=10)
    untrusted = kafka_tls_broker.settings.with_overrides(ssl_cafile=None)
    with pytest.raises(KafkaConnectionError) as info:
        await check_connection(untrusted, timeout=10)
    assert "is not trusted" in str(info.value)
    assert "set KAFKA_SSL_CAFILE" in str(info.value)
