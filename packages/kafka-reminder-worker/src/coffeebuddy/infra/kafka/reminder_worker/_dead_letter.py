"""Parking a reminder the sender rejected outright on the reminder events' dead-letter topic,
in the models' dead-letter contract (so `coffeebuddy-kafka dlq replay` works on it)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.consumer import Backoff, NonRetryableError
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    SLACK_APP_SOURCE,
    ReminderScheduled,
    ReminderScheduledData,
    dead_letter_headers,
    encode_event,
)
from coffeebuddy.infra.kafka.topics import TopicConfig, dead_letter_of

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.metrics import KafkaMetrics
    from coffeebuddy.infra.kafka.producer import KafkaEventProducer
    from coffeebuddy.infra.kafka.reminder_worker._entry import Pending

__all__ = ["DeadLetters"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")

_BACKOFF = Backoff(0.1, 5.0)


class DeadLetters:
    """Writes rejected reminders to `events_topic`'s dead-letter topic, retrying until acked."""

    def __init__(
        self,
        producer: KafkaEventProducer,
        events_topic: TopicConfig,
        *,
        group: str,
        kafka_metrics: KafkaMetrics | None = None,
    ) -> None:
        self._producer = producer
        self._events_topic = events_topic
        self._dlq = dead_letter_of(events_topic) if events_topic.dead_letter_topic else None
        self._group = group
        self._kafka_metrics = kafka_metrics

    async def publish(
        self, entry: Pending, reminder: ReminderScheduledData, error: str
    ) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of the dead letter; None when the topic has no DLQ."""
        if self._dlq is None:
            log.error(
                "no dead-letter topic for %s; rejected reminder only logged", entry.reminder_id
            )
            return None
        event = ReminderScheduled(
            id=entry.event_id or str(uuid.uuid4()),
            source=entry.source or SLACK_APP_SOURCE,
            subject=reminder.run_id,
            time=datetime.fromtimestamp(entry.event_time or time.time(), UTC),
            data=reminder,
        )
        message = (
            f"reminder {entry.reminder_id} (run {entry.run_id}) rejected by the sender: {error}"
        )
        headers = dead_letter_headers(
            topic=self._events_topic.name,
            partition=entry.partition,
            offset=max(entry.origin_offset, 0),
            key=entry.run_id.encode(),
            error=NonRetryableError(message),
            reason="non_retryable",
            attempts=1,
            first_seen=time.time(),
            original_headers=[("content-type", CONTENT_TYPE.encode())],
        )
        for attempt in itertools.count(1):
            try:
                meta = await self._producer.send_raw(
                    self._dlq, encode_event(event), key=entry.run_id.encode(), headers=headers
                )
                break
            except Exception as exc:
                log.warning(
                    "dead-letter write failed (%s); retrying",
                    type(exc).__name__,
                    extra={"reminder_id": entry.reminder_id, "error_class": type(exc).__name__},
                )
                await asyncio.sleep(_BACKOFF.delay(attempt))
        if self._kafka_metrics is not None:  # dead letters count the same as the harness's
            self._kafka_metrics.dead_lettered.labels(
                self._events_topic.name, self._group, "non_retryable"
            ).inc()
        return self._dlq.name, meta.partition, meta.offset
