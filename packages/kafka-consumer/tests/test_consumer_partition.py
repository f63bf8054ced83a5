"""One partition's state without a harness: close drops what is queued once and ends waits."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from coffeebuddy.infra.kafka.consumer._partition import Partition
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC


class _KafkaTp(NamedTuple):
    topic: str
    partition: int


def _partition() -> Partition:
    tm: Any = None  # never touched by close / wait
    return Partition(_KafkaTp(REMINDER_EVENTS_TOPIC.name, 0), REMINDER_EVENTS_TOPIC, tm, print)


async def test_close_drops_the_queued_records_once_and_wakes_the_worker() -> None:
    part = _partition()
    part.queue.extend([[1, 2, 3], [4]])
    assert part.close() == 4
    assert part.wake.is_set()
    assert part.queue == type(part.queue)()
    assert part.close() == 0  # idempotent


async def test_a_backoff_wait_pauses_and_ends_early_when_the_partition_closes() -> None:
    part = _partition()
    waiting = asyncio.create_task(part.wait(60, pause=True))
    await asyncio.sleep(0)
    assert part.backoff  # paused while it waits
    part.close()
    assert await asyncio.wait_for(waiting, 5) is False  # not the 60 s
    assert not part.backoff
    assert await part.wait(60, pause=False) is False  # closed already: no wait at all


async def test_a_wait_that_runs_out_says_the_partition_is_still_open() -> None:
    part = _partition()
    assert await part.wait(0.01, pause=False) is True
    assert not part.backoff
