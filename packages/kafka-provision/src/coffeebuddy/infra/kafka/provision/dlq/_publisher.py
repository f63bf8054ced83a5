"""Publishing replayed records and ledger entries: the `Publisher` seam and its aiokafka one.

Plain aiokafka with `KafkaSettings.producer_kwargs()`, the same acks and idempotence as every
CoffeeBuddy producer. A replay sends pre-encoded records one at a time and waits for each
acknowledgement before recording it, so `KafkaEventProducer`'s extras (metrics, tracing spans,
replacing a fenced producer, event-type checks) would add nothing here: a failed send ends
the run, and the ledger holds exactly what was acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, Self

from aiokafka import AIOKafkaProducer

from coffeebuddy.infra.kafka.config import KafkaSettings, check_connection


class RecordPosition(NamedTuple):
    """Where a published record landed."""

    topic: str
    partition: int
    offset: int


class Publisher(Protocol):
    """Sends one record and returns once the broker acknowledged it."""

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> RecordPosition: ...


class KafkaPublisher:
    """`Publisher` over `AIOKafkaProducer`; `async with` starts and stops it."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    def __repr__(self) -> str:
        return f"KafkaPublisher({self.settings.describe()!r})"

    async def __aenter__(self) -> Self:
        producer = AIOKafkaProducer(**self.settings.producer_kwargs())
        try:
            await producer.start()
        except Exception:
            await producer.stop()
            await check_connection(self.settings, timeout=10.0)
            raise
        self._producer = producer
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> RecordPosition:
        if self._producer is None:
            raise RuntimeError(f"{self!r}: send() outside `async with`")
        sent = await self._producer.send_and_wait(topic, value, key=key, headers=list(headers))
        return RecordPosition(sent.topic, sent.partition, sent.offset)
