"""Writing dead letters: the record byte for byte plus the models' `coffeebuddy.dlq.*` headers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import dead_letter_headers
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.topics import TopicConfig, dead_letter_of

log = logging.getLogger("coffeebuddy.infra.kafka.consumer")


class DeadLetterWriter:
    """Sends records of the harness's topics to their `dead_letter_topic`, through a given
    `KafkaEventProducer` or one it creates (and then closes) itself."""

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[TopicConfig],
        group: str,
        metrics: KafkaMetrics,
        producer: KafkaEventProducer | None,
    ) -> None:
        self._settings = settings
        self._group = group
        self._metrics = metrics
        self._producer = producer
        self._own_producer = producer is None
        self._topics = {t.name: dead_letter_of(t) for t in topics if t.dead_letter_topic}

    async def start(self) -> None:
        if self._producer is None:
            self._producer = KafkaEventProducer(self._settings, metrics=self._metrics)
        if not self._producer.started:
            await self._producer.start()

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109
        """Close the producer if this writer created it (a given one stays the caller's)."""
        if self._own_producer and self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.close(timeout=timeout)
            self._producer = None

    async def write(
        self,
        topic: str,
        record: Any,
        error: BaseException,
        reason: str,
        attempts: int,
        first_seen: float,
    ) -> bool:
        """Dead-letter `record` of `topic`; False (logged, to be retried) if the write failed."""
        producer = self._producer
        if producer is None:
            return False
        key = record.key
        headers = dead_letter_headers(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=key,
            error=error,
            reason=reason,
            attempts=attempts,
            first_seen=first_seen,
            original_headers=record.headers,
        )
        try:
            await producer.send_raw(
                self._topics[topic],
                record.value if record.value is not None else b"",
                key=key,
                headers=headers,
            )
        except Exception as exc:
            log.error(
                "dead-letter write for %s[%d]@%d failed (%s); retrying",
                record.topic,
                record.partition,
                record.offset,
                type(exc).__name__,
            )
            return False
        self._metrics.dead_lettered.labels(topic, self._group, reason).inc()
        log.warning(
            "record %s[%d]@%d dead-lettered (%s: %s)",
            record.topic,
            record.partition,
            record.offset,
            reason,
            type(error).__name__,
        )
        return True
