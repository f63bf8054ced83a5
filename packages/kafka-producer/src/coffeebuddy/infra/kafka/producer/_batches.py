"""Records with known partitions sent as whole aiokafka batches (`create_batch` / `send_batch`).

`AIOKafkaProducer.send` costs ~15 us of Python per record (metadata wait, partitioner, one future
each); filling a `BatchBuilder` per partition costs ~3 us (`hatch run bench`'s changelog rows
write every state change through here). Order within a partition is the input order: batches of
one partition are queued in order and aiokafka keeps one in flight per partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["BatchingProducer", "submit_batches"]


@runtime_checkable
class BatchingProducer(Protocol):
    """The batch half of `AIOKafkaProducer` (test doubles that only `send` go record by record)."""

    def create_batch(self) -> Any: ...

    async def send_batch(
        self, batch: Any, topic: str, *, partition: int
    ) -> asyncio.Future[Any]: ...


async def submit_batches(
    producer: BatchingProducer,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None, int]],
    futures: list[asyncio.Future[Any]],
) -> list[tuple[int, int]]:
    """Queue `(key, value, partition)` records, appending each batch's future to `futures` as it
    is queued (the caller tracks them even if a later batch fails to queue); returns, per record,
    (index of its batch future, its offset within that batch)."""
    where: list[tuple[int, int]] = [(0, 0)] * len(records)
    by_partition: dict[int, list[int]] = {}
    for i, (_, _, partition) in enumerate(records):
        by_partition.setdefault(partition, []).append(i)
    for partition, indexes in by_partition.items():
        batch = producer.create_batch()
        count = 0
        for i in indexes:
            key, value, _ = records[i]
            if batch.append(key=key, value=value, timestamp=None) is None:
                if count == 0:
                    raise ValueError(f"record {i} for {topic}[{partition}] exceeds a whole batch")
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                count = 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"record {i} for {topic}[{partition}] exceeds a whole batch")
            where[i] = (len(futures), count)
            count += 1
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return where
