"""The topics the operator commands read and write, and where a key lives in them."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.partitioner import murmur2

from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    TopicConfig,
)

__all__ = ["OperatorTopics", "partition_of"]


@dataclass(frozen=True, slots=True)
class OperatorTopics:
    """The worker's state changelog and history (read) and the reminder events (cancellations
    are published there): the catalog's by default; `named()` for other names (tests)."""

    changelog: TopicConfig = REMINDER_STATE_CHANGELOG_TOPIC
    history: TopicConfig = REMINDER_HISTORY_TOPIC
    reminders: TopicConfig = REMINDER_EVENTS_TOPIC

    @classmethod
    def named(
        cls,
        *,
        changelog: str | None = None,
        history: str | None = None,
        reminders: str | None = None,
    ) -> OperatorTopics:
        """The catalog's topics, or a topic shaped like the catalog's under another name."""
        return cls(
            changelog=_named(REMINDER_STATE_CHANGELOG_TOPIC, changelog),
            history=_named(REMINDER_HISTORY_TOPIC, history),
            reminders=_named(REMINDER_EVENTS_TOPIC, reminders),
        )


def _named(default: TopicConfig, name: str | None) -> TopicConfig:
    if name is None or name == default.name:
        return default
    if name in CATALOG.topic_names:
        return CATALOG.topic(name)
    return default.model_copy(update={"name": name, "dead_letter_topic": None})


def partition_of(key: str, count: int) -> int:
    """The partition Kafka's default partitioner (murmur2 of the key, as the Java client and
    aiokafka choose) gives `key` among `count` partitions."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % count
