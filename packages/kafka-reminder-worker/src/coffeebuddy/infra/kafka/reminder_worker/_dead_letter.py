"""Parking a reminder the sender rejected outright on the reminder events' dead-letter topic,
in the consumer harness's header format (so `coffeebuddy-kafka dlq replay` works on it)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.consumer import (
    DLQ_ATTEMPTS,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_TYPE,
    DLQ_FIRST_SEEN,
    DLQ_ORIGIN_KEY,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
    DLQ_REASON,
)
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    ReminderScheduled,
    ReminderScheduledData,
    encode_event,
)
from coffeebuddy.infra.kafka.topics import TopicConfig

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.producer import KafkaEventProducer
    from coffeebuddy.infra.kafka.reminder_worker._entry import Pending

__all__ = ["publish_dead_letter"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")


async def publish_dead_letter(
    producer: KafkaEventProducer, events_topic: TopicConfig, entry: Pending, error: str
) -> None:
    """Write the reminder to the dead-letter topic, retrying until it is acknowledged."""
    dlq_name = events_topic.dead_letter_topic
    if dlq_name is None:
        log.error("no dead-letter topic for %s; rejected reminder only logged", entry.reminder_id)
        return
    dlq = TopicConfig(
        name=dlq_name,
        partitions=events_topic.partitions,
        replication_factor=events_topic.replication_factor,
        key_field=events_topic.key_field,
        kind="dead_letter",
    )
    data = ReminderScheduledData.model_validate_json(entry.payload)
    event = ReminderScheduled(
        id=entry.event_id or str(uuid.uuid4()),
        source="/coffeebuddy/slack-app",
        subject=data.run_id,
        time=datetime.fromtimestamp(entry.event_time or datetime.now(UTC).timestamp(), UTC),
        data=data,
    )
    message = f"reminder {entry.reminder_id} (run {entry.run_id}) rejected by the sender: {error}"
    headers = [
        (DLQ_ORIGIN_TOPIC, events_topic.name.encode()),
        (DLQ_ORIGIN_PARTITION, str(entry.partition).encode()),
        (DLQ_ORIGIN_OFFSET, str(max(entry.origin_offset, 0)).encode()),
        (DLQ_ORIGIN_KEY, entry.run_id.encode()),
        (DLQ_ERROR_TYPE, b"NonRetryableError"),
        (DLQ_ERROR_MESSAGE, message.encode()),
        (DLQ_REASON, b"non_retryable"),
        (DLQ_ATTEMPTS, b"1"),
        (DLQ_FIRST_SEEN, datetime.now(UTC).isoformat().encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    delay = 0.1
    while True:
        try:
            await producer.send_raw(
                dlq, encode_event(event), key=entry.run_id.encode(), headers=headers
            )
            return
        except Exception as exc:
            log.warning(
                "dead-letter write failed (%s); retrying",
                type(exc).__name__,
                extra={"reminder_id": entry.reminder_id, "error_class": type(exc).__name__},
            )
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)
