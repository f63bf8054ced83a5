"""Shared fixtures for kafka-provision tests: a recorded fake admin, an in-memory cluster for
the dlq tools (their `TopicReader` and `Publisher`), a dedicated broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision._admin import TopicShape
from coffeebuddy.infra.kafka.provision._types import AclSpec, ConfigValue, DesiredTopic
from coffeebuddy.infra.kafka.provision.dlq import TopicMissingError
from coffeebuddy.infra.kafka.provision.dlq._cli import DlqClients
from coffeebuddy.infra.kafka.provision.dlq._publisher import RecordPosition
from coffeebuddy.infra.kafka.provision.dlq._reader import StoredRecord
from coffeebuddy.infra.kafka.testing import EmbeddedBroker
from coffeebuddy.infra.kafka.topics import (
    Catalog,
    ConsumerRole,
    ProducerRole,
    ServicePrincipal,
    TopicConfig,
)

# ApiVersions of a full Apache Kafka 3.x broker (the keys this tool looks at).
FULL_APIS: dict[int, tuple[int, int]] = {
    18: (0, 3),
    19: (0, 7),
    20: (0, 6),
    29: (0, 3),
    30: (0, 3),
    31: (0, 3),
    32: (0, 4),
    33: (0, 2),
    37: (0, 3),
}


@dataclass
class FakeAdmin:
    """`ClusterAdmin` holding cluster state in memory and recording every mutating call."""

    apis: dict[int, tuple[int, int]] = field(default_factory=lambda: dict(FULL_APIS))
    topics: dict[str, TopicShape] = field(default_factory=dict)
    configs: dict[str, dict[str, ConfigValue]] = field(default_factory=dict)
    acls: list[AclSpec] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_topics: dict[str, str] = field(default_factory=dict)
    acl_probe_problem: str | None = None
    report_configs: bool = True

    async def api_versions(self) -> Mapping[int, tuple[int, int]]:
        return self.apis

    async def cluster_id(self) -> str | None:
        return "fake-cluster"

    async def list_topics(self) -> Mapping[str, TopicShape]:
        return dict(self.topics)

    async def describe_topic_configs(
        self, names: Sequence[str]
    ) -> Mapping[str, Mapping[str, ConfigValue] | None]:
        if not self.report_configs:
            return dict.fromkeys(names)
        return {n: dict(self.configs.get(n, {})) for n in names}

    async def describe_acls(self) -> list[AclSpec]:
        return sorted(self.acls)

    async def probe_create_acls(self) -> str | None:
        return self.acl_probe_problem

    async def create_topics(self, topics: Sequence[DesiredTopic]) -> Mapping[str, str | None]:
        self.calls.append(("create_topics", [t.name for t in topics]))
        out: dict[str, str | None] = {}
        for t in topics:
            if t.name in self.fail_topics:
                out[t.name] = self.fail_topics[t.name]
                continue
            self.topics[t.name] = TopicShape(t.partitions, t.replication_factor)
            self.configs[t.name] = {k: ConfigValue(v, True) for k, v in t.configs.items()}
            out[t.name] = None
        return out

    async def alter_topic_configs(self, name: str, configs: Mapping[str, str]) -> str | None:
        self.calls.append(("alter_topic_configs", (name, dict(configs))))
        # Legacy AlterConfigs semantics: the given set replaces every override.
        self.configs[name] = {k: ConfigValue(v, True) for k, v in configs.items()}
        return None

    async def create_partitions(self, name: str, total: int) -> str | None:
        self.calls.append(("create_partitions", (name, total)))
        self.topics[name] = TopicShape(total, self.topics[name].replication_factor)
        return None

    async def delete_topics(self, names: Sequence[str]) -> Mapping[str, str | None]:
        self.calls.append(("delete_topics", list(names)))
        for n in names:
            self.topics.pop(n, None)
        return dict.fromkeys(names)

    async def create_acls(self, acls: Sequence[AclSpec]) -> list[str | None]:
        self.calls.append(("create_acls", list(acls)))
        self.acls.extend(acls)
        return [None] * len(acls)

    async def delete_acls(self, acls: Sequence[AclSpec]) -> list[str | None]:
        self.calls.append(("delete_acls", list(acls)))
        gone = {a.identity for a in acls}
        self.acls = [a for a in self.acls if a.identity not in gone]
        return [None] * len(acls)

    async def close(self) -> None:
        return None


@pytest.fixture
def fake_admin() -> FakeAdmin:
    return FakeAdmin()


#: Record timestamps of the fake cluster: 2026-11-27 09:00 UTC plus one second per record.
FAKE_T0_MS = 1_795_770_000_000


@dataclass
class FakeCluster:
    """Topics in memory, one partition each unless `partitions` says more: a `TopicReader` and
    a `Publisher` for the dlq tools. `fail_sends_after` makes later sends raise."""

    topics: dict[str, list[StoredRecord]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    sends: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )
    fail_sends_after: int | None = None

    def create(self, name: str) -> None:
        self.topics.setdefault(name, [])

    def put(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int = 0,
        timestamp_ms: int | None = None,
    ) -> StoredRecord:
        records = self.topics.setdefault(topic, [])
        offset = sum(1 for r in records if r.partition == partition)
        record = StoredRecord(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp_ms=FAKE_T0_MS + 1000 * len(records) if timestamp_ms is None else timestamp_ms,
            key=key,
            value=value,
            headers=tuple(headers),
        )
        records.append(record)
        return record

    async def read(self, topic: str, *, what: str = "dead-letter topic") -> list[StoredRecord]:
        self.reads.append(topic)
        if topic not in self.topics:
            raise TopicMissingError(f"{what} {topic!r} does not exist on the cluster", topic)
        return list(self.topics[topic])

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> RecordPosition:
        if self.fail_sends_after is not None and len(self.sends) >= self.fail_sends_after:
            raise ConnectionError(f"fake cluster: send to {topic} failed")
        self.sends.append((topic, value, key, list(headers)))
        record = self.put(topic, value, key=key, headers=headers)
        return RecordPosition(topic, record.partition, record.offset)

    @property
    def clients(self) -> DlqClients:
        return DlqClients(reader=self, publisher=self)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def make_catalog(prefix: str) -> Catalog:
    """A small catalog (keyed events topic, unkeyed log topic, producer + consumer ACLs)."""
    events = TopicConfig(
        name=f"{prefix}.orders",
        partitions=3,
        replication_factor=1,
        configs={"retention.ms": "604800000", "cleanup.policy": "delete"},
        key_field="run_id",
        owner="test",
    )
    audit = TopicConfig(
        name=f"{prefix}.audit",
        partitions=2,
        replication_factor=1,
        configs={"retention.ms": "86400000"},
        key_field="run_id",
        kind="log",
        owner="test",
    )
    principals = (
        ServicePrincipal(
            name=f"User:{prefix}-api",
            service="orders-api",
            roles=(ProducerRole(topic=events.name),),
        ),
        ServicePrincipal(
            name=f"User:{prefix}-worker",
            service="orders-worker",
            roles=(ConsumerRole(topic=events.name, group=f"{prefix}.worker"),),
        ),
    )
    return Catalog(topics=(events, audit), principals=principals)


@pytest.fixture
def test_prefix() -> str:
    return f"provtest-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def test_catalog(test_prefix: str) -> Catalog:
    return make_catalog(test_prefix)


@pytest.fixture(scope="module")
def provision_broker() -> Iterator[EmbeddedBroker]:
    """A dedicated embedded broker: no other test's topics for the plan to see."""
    with EmbeddedBroker(name="tansu-provision") as broker:
        yield broker


@pytest.fixture
def provision_settings(provision_broker: EmbeddedBroker) -> KafkaSettings:
    return KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": provision_broker.bootstrap_servers,
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
        }
    )
