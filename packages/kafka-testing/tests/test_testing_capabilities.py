"""Capability probe: what a broker lacks is reported with reasons, what it has works, tests skip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from coffeebuddy.infra.kafka.testing import (
    CAPABILITIES,
    BrokerHandle,
    TopicFactory,
    require_capability,
    start_broker,
    wait_until,
)
from coffeebuddy.infra.kafka.testing._broker import BROKER_KIND_ENV
from coffeebuddy.infra.kafka.testing._capabilities import BrokerCapabilities

pytest_plugins = ("pytester",)


@pytest.fixture(scope="module")
def embedded(kafka_broker: BrokerHandle) -> Iterator[BrokerHandle]:
    """The session broker when it is the embedded one, else a private embedded broker."""
    if kafka_broker.kind == "embedded":
        yield kafka_broker
        return
    handle = start_broker(kind="embedded")
    try:
        yield handle
    finally:
        handle.close()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("acls", "has no working CreateAcls/DescribeAcls API"),
        ("alter_configs", "has no AlterConfigs API"),
        ("create_partitions", "has no CreatePartitions API"),
        ("idempotent_producer", "idempotent producer fails to start"),
        ("transactions", "idempotent producer fails to start"),
        ("sasl", "cannot exercise SASL"),
        ("log_compaction", "has no log cleaner"),
    ],
)
def test_embedded_broker_reports_what_it_lacks(
    embedded: BrokerHandle, name: str, reason: str
) -> None:
    caps = embedded.capabilities
    missing = caps.missing(name)
    assert missing is not None
    assert missing.startswith(f"{caps.label} ")
    assert caps.label.startswith("embedded Tansu ")
    assert reason in missing
    assert not caps.supports(name)
    with pytest.raises(pytest.skip.Exception, match=reason):
        require_capability(embedded, name)


async def test_create_partitions_works_exactly_where_reported(
    kafka_broker: BrokerHandle, unique_topic: TopicFactory
) -> None:
    """The probe is honest on the session broker: CreatePartitions works iff it is reported."""
    topic = unique_topic(partitions=2)
    admin = AIOKafkaAdminClient(**kafka_broker.settings().admin_kwargs())
    await admin.start()
    try:
        described = await admin.describe_topics([topic.name])
        assert len(described[0]["partitions"]) == 2
        grow = admin.create_partitions({topic.name: NewPartitions(total_count=4)})
        if kafka_broker.capabilities.supports("create_partitions"):
            await grow

            async def four() -> bool:
                described = await admin.describe_topics([topic.name])
                return len(described[0]["partitions"]) == 4

            assert await wait_until(four, timeout=15, message="four partitions")
        else:
            with pytest.raises(Exception, match=r"(?i)version|unsupported|not support"):
                await grow
    finally:
        await admin.close()


def test_session_broker_capabilities_are_consistent(kafka_broker: BrokerHandle) -> None:
    """On any broker each reason names it and agrees with supports(); on Apache Kafka nothing may
    be reported missing (CI forbids capability skips there)."""
    caps = kafka_broker.capabilities
    for name, reason in caps.summary().items():
        assert caps.supports(name) is (reason is None)
        if reason is not None:
            assert reason.startswith(f"{caps.label} "), reason
    if kafka_broker.kind == "apache":
        assert caps.summary() == dict.fromkeys(CAPABILITIES)
    if kafka_broker.kind == "embedded":
        assert not caps.supports("sasl")  # memory storage has no SASL users, whatever it advertises


def test_capabilities_from_api_versions_alone() -> None:
    full = dict.fromkeys((17, 22, 24, 26, 29, 30, 33, 37, 44), (0, 9))
    caps = BrokerCapabilities(label="broker X", kind="external", api_versions=full)
    assert caps.summary() == dict.fromkeys(CAPABILITIES)
    bare = BrokerCapabilities(label="broker X", kind="external", api_versions={44: (0, 1)})
    assert bare.missing("acls") == "broker X has no CreateAcls/DescribeAcls API"
    assert bare.missing("alter_configs") == (
        "broker X has no AlterConfigs API (it has IncrementalAlterConfigs, which aiokafka "
        "cannot send)"
    )
    assert bare.missing("sasl") == "broker X has no SaslHandshake API"
    probed = BrokerCapabilities(
        label="broker X",
        kind="external",
        api_versions=full,
        probe_failures={"idempotent_producer": "advertises InitProducerId but it fails"},
    )
    assert probed.missing("idempotent_producer") == (
        "broker X advertises InitProducerId but it fails"
    )
    with pytest.raises(ValueError, match="unknown broker capability 'teleport'"):
        caps.missing("teleport")


def test_kafka_requires_marker_skips_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BROKER_KIND_ENV, "embedded")  # the inner session's broker lacks it
    pytester.makepyfile(
        test_marker="""
        import pytest

        @pytest.mark.kafka_requires("create_partitions")
        def test_needs_partitions():
            raise AssertionError("must not run on a broker without CreatePartitions")

        @pytest.mark.kafka_requires()
        def test_needs_nothing(kafka_broker):
            assert kafka_broker.bootstrap_servers
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs broker capability 'create_partitions'*CreatePartitions*"])


async def test_transactions_work_exactly_where_reported(
    kafka_broker: BrokerHandle, unique_topic: TopicFactory
) -> None:
    """Where `transactions` is reported, an aborted write stays invisible to read_committed."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import KafkaError

    topic = unique_topic(partitions=1, dead_letter=False)
    settings = kafka_broker.settings()
    producer = AIOKafkaProducer(
        **{**settings.producer_kwargs(), "enable_idempotence": True, "acks": "all"},
        transactional_id=f"coffeebuddy.test.{topic.name}",
    )
    if not kafka_broker.capabilities.supports("transactions"):
        with pytest.raises(KafkaError):  # the embedded broker: InitProducerId -> UnknownError
            await producer.start()
        await producer.stop()
        return
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic.name, b"committed", key=b"k")
        await producer.begin_transaction()
        await producer.send(topic.name, b"aborted", key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic.name, b"after", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic.name,
        **{**settings.consumer_kwargs(None), "isolation_level": "read_committed"},
    )
    await consumer.start()
    seen: list[bytes | None] = []
    try:

        async def both() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            seen.extend(r.value for records in batch.values() for r in records)
            return len(seen) >= 2

        await wait_until(both, timeout=15, message="the committed records")
    finally:
        await consumer.stop()
    assert seen == [b"committed", b"after"]
