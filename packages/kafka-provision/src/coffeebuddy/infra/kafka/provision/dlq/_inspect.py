"""`inspect_dead_letters`: which DLQ a name means, and its dead letters, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision.dlq._errors import DlqError
from coffeebuddy.infra.kafka.provision.dlq._filter import DeadLetterFilter
from coffeebuddy.infra.kafka.provision.dlq._letter import DeadLetter
from coffeebuddy.infra.kafka.provision.dlq._reader import (
    KafkaTopicReader,
    StoredRecord,
    TopicReader,
)
from coffeebuddy.infra.kafka.topics import CATALOG, TopicConfig


def dlq_name(topic: str | TopicConfig) -> str:
    """A DLQ topic name from a DLQ name, a DLQ/origin `TopicConfig` or a catalog origin name."""
    if isinstance(topic, TopicConfig):
        if topic.kind == "dead_letter" or topic.dead_letter_topic is None:
            return topic.name
        return topic.dead_letter_topic
    if not topic or not isinstance(topic, str):
        raise DlqError(f"dead-letter topic: expected a topic name, got {topic!r}")
    if topic in CATALOG.topic_names:
        config = CATALOG.topic(topic)
        if config.kind != "dead_letter" and config.dead_letter_topic:
            return config.dead_letter_topic
    return topic


def dead_letter_of(record: StoredRecord) -> DeadLetter:
    return DeadLetter(
        dlq_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
        key=record.key,
        value=record.value or b"",
        headers=record.headers,
    )


async def inspect_dead_letters(
    topic: str | TopicConfig,
    *,
    settings: KafkaSettings | None = None,
    where: DeadLetterFilter | None = None,
    limit: int | None = None,
    now: datetime | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109
    reader: TopicReader | None = None,
) -> list[DeadLetter]:
    """Dead letters of `topic` (a DLQ name, or an origin topic of the catalog), oldest first.

    Reads every partition from its start to the end offsets seen at call time; commits nothing.
    `reader` defaults to a `KafkaTopicReader` for `settings` (default `KafkaSettings.from_env()`).
    """
    if reader is None:
        reader = KafkaTopicReader(settings or KafkaSettings.from_env(), timeout=timeout)
    where = where or DeadLetterFilter()
    now = now or datetime.now(UTC)
    letters = [dead_letter_of(r) for r in await reader.read(dlq_name(topic))]
    letters.sort(key=lambda d: (d.timestamp, d.partition, d.offset))
    selected = [d for d in letters if where.matches(d, now)]
    return selected[:limit] if limit is not None else selected
