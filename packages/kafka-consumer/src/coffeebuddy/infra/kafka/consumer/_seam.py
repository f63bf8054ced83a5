"""The consumer seam (`ConsumerLike`, `ConsumerFactory`) and the aiokafka behaviours the harness
works around (bounded stop, the errors that mean "this generation is gone").

aiokafka private attributes are touched only through kafka-config's compat helpers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    IllegalStateError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from coffeebuddy.infra.kafka.config import abandon_consumer

log = logging.getLogger("coffeebuddy.infra.kafka.consumer")

#: A commit or poll failing with one of these means the group moved on without this member.
GENERATION_ERRORS = (
    CommitFailedError,
    IllegalGenerationError,
    UnknownMemberIdError,
    RebalanceInProgressError,
    IllegalStateError,
)


class ConsumerLike(Protocol):
    """The slice of `AIOKafkaConsumer` the harness uses (a test double implements the same).

    Partitions are aiokafka `TopicPartition`s (or anything equal to and hashing like them);
    `subscribe` gets an `aiokafka.abc.ConsumerRebalanceListener` whose callbacks the consumer
    awaits inside `getmany` when the group rebalances.
    """

    def subscribe(self, topics: Sequence[str], *, listener: Any) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[Any, list[Any]]: ...

    async def commit(self, offsets: dict[Any, int]) -> None: ...

    def assignment(self) -> set[Any]: ...

    def pause(self, *partitions: Any) -> None: ...

    def resume(self, *partitions: Any) -> None: ...

    def highwater(self, partition: Any) -> int | None: ...


#: Builds the consumer from `KafkaSettings.consumer_kwargs(group)`.
ConsumerFactory = Callable[[dict[str, Any]], ConsumerLike]


ASSIGNORS = (RangePartitionAssignor,)
"""Range: partition N of every subscribed topic goes to one member, so co-partitioned topics
(reminder events, run events and the worker's changelog) stay together, as in Kafka Streams.
Only one: aiokafka 0.14 sends a JoinGroup per assignor (aio-libs/aiokafka#1168), and with two,
members starting together kept each other rebalancing."""


def default_consumer_factory(kwargs: dict[str, Any]) -> ConsumerLike:
    """A real `AIOKafkaConsumer` (the harness's default), co-partition aware."""
    kwargs.setdefault("partition_assignment_strategy", ASSIGNORS)
    consumer: ConsumerLike = AIOKafkaConsumer(**kwargs)
    return consumer


async def stop_consumer(consumer: ConsumerLike, budget: float) -> None:
    """`consumer.stop()` within `budget` seconds; past it the consumer is abandoned."""
    task = asyncio.ensure_future(consumer.stop())
    done, _ = await asyncio.wait({task}, timeout=budget)
    if done:
        # aiokafka's stop() can end in CancelledError (it awaits tasks it cancelled itself);
        # this is the finished task's outcome, never the caller's cancellation. Ended so, it
        # never reached the client's close(): the coordinator's connection would leak.
        try:
            task.result()
        except (Exception, asyncio.CancelledError):
            await abandon_consumer(consumer, limit=0.5)
        return
    # aiokafka's stop() can wait forever on an unreachable coordinator (aiokafka#659).
    log.warning("Kafka consumer did not stop within %.1fs; abandoning it", budget)
    task.cancel()
    await abandon_consumer(consumer, limit=0.5)
