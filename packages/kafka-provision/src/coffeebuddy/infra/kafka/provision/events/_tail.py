"""`tail_topic`: follow a topic's records, each decoded through the models' `decode_record`.

Group-less (assign + seek, nothing committed, nothing on the cluster changes), every
partition, from the end (new records) or the beginning. A record that does not decode is
yielded as such, with its partition/offset and the decoder's reason, and the tail goes on.
A dead-letter topic's records also carry what their dead-letter headers say.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

from coffeebuddy.infra.kafka.config import KafkaSettings, check_connection, topic_partitions
from coffeebuddy.infra.kafka.models import (
    ContentMode,
    DeadLetterHeaders,
    Event,
    content_mode,
    decode_record,
    parse_dead_letter_headers,
)
from coffeebuddy.infra.kafka.provision.events._errors import EventsError
from coffeebuddy.infra.kafka.topics import TopicConfig

RecordKind = Literal["event", "tombstone", "undecodable"]


@dataclass(frozen=True)
class TailedRecord:
    """One record of the tailed topic: the event it holds, or why it holds none."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    mode: ContentMode
    event: Event | None = None
    error: str | None = None
    """The decoder's message (`EventDecodeError` or another ValueError) for an undecodable one."""
    error_reason: str | None = None
    """The decoder's bounded reason (`invalid_json`, `validation`, ...) when it gave one."""
    dead_letter: DeadLetterHeaders | None = None

    @property
    def kind(self) -> RecordKind:
        if self.value is None:
            return "tombstone"
        return "event" if self.event is not None else "undecodable"

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def read_record(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    *,
    dead_letters: bool = False,
) -> TailedRecord:
    """Decode one record (both content modes); never raises for a bad value."""
    pairs = tuple((str(k), bytes(v or b"")) for k, v in (headers or ()))
    event: Event | None = None
    error: str | None = None
    reason: str | None = None
    if value is not None:
        try:
            event = decode_record(value, pairs)
        except ValueError as exc:  # EventDecodeError is one; anything else the decoder refuses
            error, reason = str(exc), getattr(exc, "reason", None)
    return TailedRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=datetime.fromtimestamp(timestamp_ms / 1000, UTC),
        key=key,
        value=value,
        headers=pairs,
        mode=content_mode(pairs),
        event=event,
        error=error,
        error_reason=reason,
        dead_letter=parse_dead_letter_headers(pairs) if dead_letters else None,
    )


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[Any, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def tail_topic(
    settings: KafkaSettings,
    topic: TopicConfig,
    *,
    from_beginning: bool = False,
    exit_at_end: bool = False,
    count: int | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[TailedRecord]:
    """Yield `topic`'s records as they arrive, until `stop` is set.

    `from_beginning` starts at each partition's first record instead of its end;
    `exit_at_end` stops at the end offsets seen when the tail started (kcat's `-e`);
    `count` stops after that many records.
    """
    if count is not None and count < 1:
        raise EventsError(f"--count: must be at least 1, got {count}")
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(None))
    try:
        await consumer.start()
    except Exception:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await check_connection(settings, timeout=10.0)  # says why, when it can
        raise
    try:
        if topic.name not in await consumer.topics():
            raise EventsError(
                f"topic {topic.name} does not exist on the cluster; create the catalog's topics "
                "with `coffeebuddy-kafka apply --yes` (same KAFKA_* settings)"
            )
        tps = [
            TopicPartition(topic.name, p)
            for p in sorted(await topic_partitions(consumer, topic.name))
        ]
        consumer.assign(tps)
        ends: dict[Any, int] = await consumer.end_offsets(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                consumer.seek(tp, ends[tp])
        dead_letters = topic.kind == "dead_letter"
        shown = 0
        while stop is None or not stop.is_set():
            if exit_at_end and await _at_end(consumer, ends):
                return
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in sorted(batches.items(), key=lambda item: item[0].partition):
                for r in records:
                    if exit_at_end and r.offset >= ends[tp]:
                        continue
                    yield read_record(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.timestamp,
                        r.key,
                        r.value,
                        r.headers,
                        dead_letters=dead_letters,
                    )
                    shown += 1
                    if count is not None and shown >= count:
                        return
    finally:
        await consumer.stop()
