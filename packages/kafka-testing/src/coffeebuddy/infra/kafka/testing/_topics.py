"""Unique, created-on-the-broker topics for tests (each test gets its own, plus its ``.dlq``)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from coffeebuddy.infra.kafka.testing._probe import run_sync
from coffeebuddy.infra.kafka.testing._wait import wait_until

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.topics import TopicConfig

__all__ = ["TopicFactory", "create_topics", "unique_topic_name"]

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")


def unique_topic_name(test_name: str, prefix: str = "test") -> str:
    """``test.<sanitised test name>.<8 hex>``, a legal Kafka topic name of at most ~120 chars."""
    stem = _UNSAFE.sub("_", test_name).strip("_")[:80] or "topic"
    return f"{prefix}.{stem}.{uuid.uuid4().hex[:8]}"


async def create_topics(
    settings: KafkaSettings,
    topics: Iterable[tuple[str, int]],
    *,
    replication_factor: int = 1,
    configs: dict[str, str] | None = None,
    limit: float = 15.0,
) -> None:
    """Create ``(name, partitions)`` topics; wait until every partition has a leader."""
    wanted = dict(topics)
    admin = AIOKafkaAdminClient(**settings.admin_kwargs())
    await admin.start()
    try:
        new = [
            NewTopic(name, partitions, replication_factor, topic_configs=dict(configs or {}))
            for name, partitions in wanted.items()
        ]
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new, timeout_ms=int(limit * 1000))

        async def all_ready() -> bool:
            described: list[dict[str, Any]] = await admin.describe_topics(list(wanted))
            ready = {
                d["topic"]
                for d in described
                if d.get("error_code", 0) == 0
                and len(d.get("partitions", [])) == wanted[d["topic"]]
                and all(  # a partition without a leader is listed but cannot be used yet
                    p.get("error_code", 0) == 0 and p.get("leader", -1) >= 0
                    for p in d["partitions"]
                )
            }
            return ready == set(wanted)

        await wait_until(all_ready, timeout=limit, message=f"topics {sorted(wanted)} created")
    finally:
        await admin.close()


async def delete_topics(settings: KafkaSettings, names: Iterable[str]) -> None:
    """Delete topics (best effort, used to tidy external brokers)."""
    admin = AIOKafkaAdminClient(**settings.admin_kwargs())
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()


def _default_event_types() -> frozenset[str]:
    try:
        from coffeebuddy.infra.kafka.topics import CATALOG
    except ImportError:
        return frozenset()
    types: set[str] = set()
    for topic in CATALOG.topics:
        if topic.kind == "events":
            types.update(topic.event_types)
    return frozenset(types)


class TopicFactory:
    """``unique_topic(partitions=3, *, key_field="run_id", event_types=None, base=None)``.

    Returns a ``TopicConfig`` with a unique name (its ``dead_letter_topic`` is ``<name>.dlq``),
    after creating both topics on the broker. ``event_types`` defaults to every event type of the
    catalog's event topics (or ``base``'s).
    """

    def __init__(self, settings: KafkaSettings, test_name: str) -> None:
        self._settings = settings
        self._test_name = test_name
        self.created: list[str] = []

    def __call__(
        self,
        partitions: int = 3,
        *,
        key_field: str = "run_id",
        event_types: Iterable[str] | None = None,
        base: TopicConfig | None = None,
        dead_letter: bool = True,
    ) -> TopicConfig:
        if partitions < 1:
            raise ValueError(f"unique_topic: partitions must be >= 1, got {partitions}")
        from coffeebuddy.infra.kafka.topics import TopicConfig

        name = unique_topic_name(self._test_name)
        dlq = f"{name}.dlq" if dead_letter else None
        if base is not None:
            update: dict[str, Any] = {
                "name": name,
                "partitions": partitions,
                "replication_factor": 1,
                "dead_letter_topic": dlq,
            }
            if event_types is not None:
                update["event_types"] = frozenset(event_types)
            topic = TopicConfig.model_validate({**base.model_dump(), **update})
        else:
            types = frozenset(event_types) if event_types is not None else _default_event_types()
            topic = TopicConfig(
                name=name,
                partitions=partitions,
                replication_factor=1,
                key_field=key_field,
                event_types=types,
                owner="tests",
                description=f"test topic for {self._test_name}",
                dead_letter_topic=dlq,
                kind="events",
            )
        configs = dict(topic.configs)
        run_sync(lambda: create_topics(self._settings, [(name, partitions)], configs=configs))
        self.created.append(name)
        if dlq:
            run_sync(lambda: create_topics(self._settings, [(dlq, 1)]))
            self.created.append(dlq)
        return topic

    def dead_letter(self, topic: TopicConfig) -> TopicConfig:
        """The ``TopicConfig`` of ``topic``'s dead-letter topic (already created)."""
        from coffeebuddy.infra.kafka.topics import TopicConfig

        if not topic.dead_letter_topic:
            raise ValueError(f"topic {topic.name!r} was made without a dead-letter topic")
        return TopicConfig(
            name=topic.dead_letter_topic,
            partitions=1,
            replication_factor=1,
            key_field=topic.key_field,
            event_types=topic.event_types,
            owner=topic.owner,
            description=f"dead letters of {topic.name}",
            dead_letter_topic=None,
            kind="dead_letter",
        )

    def cleanup(self) -> None:
        """Delete what this factory created (only worth it on shared external brokers)."""
        if self.created:
            names, self.created = self.created, []
            run_sync(lambda: delete_topics(self._settings, names))
