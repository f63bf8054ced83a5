"""State of one assigned partition: queued batches, offset tracking, close and backoff waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.consumer._context import TopicPartition
from coffeebuddy.infra.kafka.consumer._tracker import OffsetTracker

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer._topic_metrics import TopicMetrics
    from coffeebuddy.infra.kafka.topics import TopicConfig

#: Runs the error path of a deferred record: (partition, record, event, attempt, first_seen, exc).
DeferredFailure = Callable[["Partition", Any, Any, int, float, BaseException], None]


class Partition:
    """One assigned partition: its fetched batches, worker task, tracker and pause reasons.

    `closed`: no new handler calls (revoking or stopping). `revoked`: no longer ours, so
    completions are stale. `backoff`: paused for a retry or a failing dead-letter write.
    """

    __slots__ = (
        "_closing",
        "_on_fail",
        "backoff",
        "closed",
        "config",
        "kafka_tp",
        "position",
        "queue",
        "revoked",
        "task",
        "tm",
        "tp",
        "tracker",
        "wake",
    )

    def __init__(
        self, kafka_tp: Any, config: TopicConfig, tm: TopicMetrics, on_fail: DeferredFailure
    ) -> None:
        self.kafka_tp = kafka_tp
        self.tp = TopicPartition(kafka_tp.topic, kafka_tp.partition)
        self.config = config
        self.tm = tm
        self.tracker = OffsetTracker()
        self.queue: deque[list[Any]] = deque()  # fetched batches, not yet handled
        self.wake = asyncio.Event()  # a batch was queued, or the partition closed
        self._closing = asyncio.Event()  # set once, by close()
        self._on_fail = on_fail
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self.revoked = False
        self.backoff = False
        self.position: int | None = None  # next offset after the last delivered record

    def complete(self, offset: int) -> None:
        """The record at `offset` is handled (or dead-lettered): it may be committed."""
        self.tracker.complete(offset)

    def fail(
        self, record: Any, event: Any, attempt: int, first_seen: float, exc: BaseException
    ) -> None:
        """A deferred record failed: hand it to the harness's error path (retry or DLQ)."""
        self._on_fail(self, record, event, attempt, first_seen, exc)

    def close(self) -> int:
        """No new handler calls; drops the queued records (refetched later) and returns their
        count. Wakes the worker and every backoff wait. Idempotent (0 after the first call)."""
        if self.closed:
            return 0
        self.closed = True
        dropped = sum(len(batch) for batch in self.queue)
        self.queue.clear()
        self.wake.set()
        self._closing.set()
        return dropped

    async def wait(self, delay: float, *, pause: bool) -> bool:
        """Wait `delay` seconds (paused while waiting if `pause`); False if closed meanwhile."""
        if self.closed:
            return False
        if pause:
            self.backoff = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay)
        finally:
            if pause:
                self.backoff = False
        return not self.closed
