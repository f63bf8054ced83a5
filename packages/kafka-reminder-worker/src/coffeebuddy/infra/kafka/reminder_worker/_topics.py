"""The worker's topics, and the co-partitioning they rest on (checked before the worker runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer

from coffeebuddy.infra.kafka.config import topic_partitions
from coffeebuddy.infra.kafka.reminder_worker._errors import CopartitioningError
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_WORKER_GROUP,
    RUN_EVENTS_TOPIC,
    TopicConfig,
)

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings

__all__ = ["WorkerTopics", "check_copartitioned"]


@dataclass(frozen=True, slots=True)
class WorkerTopics:
    """The topics the worker reads and writes, and the consumer group it runs in (labels of its
    dead-letter metric): the catalog's by default; tests pass their own."""

    reminders: TopicConfig = REMINDER_EVENTS_TOPIC
    runs: TopicConfig = RUN_EVENTS_TOPIC
    changelog: TopicConfig = REMINDER_STATE_CHANGELOG_TOPIC
    history: TopicConfig = REMINDER_HISTORY_TOPIC
    group: str = REMINDER_WORKER_GROUP.name


async def check_copartitioned(settings: KafkaSettings, topics: WorkerTopics) -> None:
    """Raise `CopartitioningError` naming each topic's partition count unless the reminder
    events, run events and changelog topics have the same number of partitions (as Kafka
    Streams refuses to start): a run's reminders, its run events and their state must share
    one partition number, or a restore misses state and a cancelled run's reminders go out."""
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(None))  # group-less, no commits
    await consumer.start()
    try:
        names = (topics.reminders.name, topics.runs.name, topics.changelog.name)
        counts = {name: len(await topic_partitions(consumer, name)) for name in names}
    finally:
        await consumer.stop()
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} has {count}" for name, count in counts.items())
        raise CopartitioningError(
            f"co-partitioned topics differ in partition count: {listed}. Give them the same "
            "count (coffeebuddy-kafka plan/apply from the catalog) before starting the worker."
        )
