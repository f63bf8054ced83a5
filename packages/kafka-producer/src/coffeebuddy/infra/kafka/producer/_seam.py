"""The slice of aiokafka's producer the wrapper drives, and the factory seam that builds it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer


class ProducerLike(Protocol):
    """The slice of `AIOKafkaProducer` the wrapper uses (a test double implements the same)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def flush(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]: ...


ProducerFactory = Callable[[dict[str, Any]], ProducerLike]


def default_factory(kwargs: dict[str, Any]) -> ProducerLike:
    producer: ProducerLike = AIOKafkaProducer(**kwargs)
    return producer
