"""Parking a reminder the sender rejected outright on the reminder events' dead-letter topic,
in the models package's dead-letter contract (so `coffeebuddy-kafka dlq replay` works on it)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.consumer import NonRetryableError
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    ReminderScheduled,
    ReminderScheduledData,
    dead_letter_headers,
    encode_event,
)
from coffeebuddy.infra.kafka.reminder_worker._timers import backoff_delay
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
    headers = dead_letter_headers(
        topic=events_topic.name,
        partition=entry.partition,
        offset=max(entry.origin_offset, 0),
        key=entry.run_id.encode(),
        error=NonRetryableError(message),
        reason="non_retryable",
        attempts=1,
        first_seen=time.time(),
        original_headers=[("content-type", CONTENT_TYPE.encode())],
    )
    attempt = 0
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
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt, 0.1, 5.0))
