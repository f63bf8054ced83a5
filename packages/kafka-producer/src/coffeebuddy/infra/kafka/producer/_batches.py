"""Records sent as whole aiokafka batches (`create_batch` / `send_batch`), and keyed records'
partitions chosen the way Kafka's default partitioner does, so they can go that way too.

`AIOKafkaProducer.send` costs ~15 us of Python per record (metadata wait, partitioner, one future
each); filling a `BatchBuilder` per partition costs ~3 us (`hatch run bench`'s changelog and
producer rows go through here). Order within a partition is the input order: batches of one
partition are queued in order and aiokafka keeps one in flight per partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

__all__ = [
    "BatchingProducer",
    "PartitionLookup",
    "check_record_sizes",
    "partition_by_key",
    "submit_batches",
]


@runtime_checkable
class BatchingProducer(Protocol):
    """The batch half of `AIOKafkaProducer` (test doubles that only `send` go record by record)."""

    def create_batch(self) -> Any: ...

    async def send_batch(
        self, batch: Any, topic: str, *, partition: int
    ) -> asyncio.Future[Any]: ...


@runtime_checkable
class PartitionLookup(Protocol):
    """The metadata half of `AIOKafkaProducer`: the partition ids of a topic (waits for them)."""

    async def partitions_for(self, topic: str) -> set[int]: ...


async def partition_by_key(
    producer: PartitionLookup, topic: str, encoded: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes | None, bytes | None, int]]:
    """`(key, value, partition)` for keyed records: murmur2 of the key modulo the partition count,
    as aiokafka's `DefaultPartitioner` and the Java client choose, so a key lands where `send`
    (and any other Kafka producer) would put it; each distinct key is hashed once per call."""
    partitions = sorted(await producer.partitions_for(topic))
    count = len(partitions)
    chosen: dict[bytes, int] = {}
    out: list[tuple[bytes | None, bytes | None, int]] = []
    append = out.append
    for key, value in encoded:
        partition = chosen.get(key)
        if partition is None:
            partition = chosen[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % count]
        append((key, value, partition))
    return out


def check_record_sizes(
    topic: str,
    encoded: Sequence[tuple[bytes, bytes]],
    headers: Sequence[tuple[str, bytes]],
    limit: int,
) -> None:
    """Raise `MessageSizeTooLargeError` naming the first record over `limit` (max_request_size),
    as `send` would, but before anything of the call is queued."""
    rough = limit // 2  # a record this small cannot exceed the limit: skip the exact estimate
    for i, (key, value) in enumerate(encoded):
        if len(value) + len(key) > rough:
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if size > limit:
                raise MessageSizeTooLargeError(
                    f"record {i} for {topic} is {size} bytes serialized, more than "
                    f"max_request_size ({limit}); nothing of this call was sent"
                )


async def submit_batches(
    producer: BatchingProducer,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None, int]],
    futures: list[asyncio.Future[Any]],
    headers: Sequence[tuple[str, bytes]] = (),
) -> list[tuple[int, int]]:
    """Queue `(key, value, partition)` records (each with `headers`), appending each batch's future
    to `futures` as it is queued (the caller tracks them even if a later batch fails to queue);
    returns, per record, (index of its batch future, its offset within that batch)."""
    hdrs = list(headers)
    where: list[tuple[int, int]] = [(0, 0)] * len(records)
    by_partition: dict[int, list[int]] = {}
    for i, (_, _, partition) in enumerate(records):
        by_partition.setdefault(partition, []).append(i)
    for partition, indexes in by_partition.items():
        batch = producer.create_batch()
        count = 0
        for i in indexes:
            key, value, _ = records[i]
            if batch.append(key=key, value=value, timestamp=None, headers=hdrs) is None:
                if count == 0:
                    raise ValueError(f"record {i} for {topic}[{partition}] exceeds a whole batch")
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                count = 0
                if batch.append(key=key, value=value, timestamp=None, headers=hdrs) is None:
                    raise ValueError(f"record {i} for {topic}[{partition}] exceeds a whole batch")
            where[i] = (len(futures), count)
            count += 1
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return where
