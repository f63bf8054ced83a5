"""The history writer: a copy of every reminder state record on a time-retained topic, so a
reminder's story outlives the changelog's tombstones (`coffeebuddy-kafka reminders show`).

Off the delivery path: a supervised task sends queued records in batches, lingering up to a
second for a batch to fill (a burst of DMs then costs a few produce requests, not one per
record); a failed batch is retried a few times, then counted and dropped. A failure never blocks
or repeats a DM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.consumer import Backoff

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.producer import KafkaEventProducer
    from coffeebuddy.infra.kafka.reminder_worker._supervisor import Supervisor
    from coffeebuddy.infra.kafka.topics import TopicConfig

__all__ = ["History"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker.history")

_BATCH = 2000
_LINGER_S = 1.0
_ATTEMPTS = 5
_BACKOFF = Backoff(0.1, 2.0)


class History:
    """Queues `(key, value)` records for the history topic (keyed by reminder id, partitioned
    by key as any producer would). Bounded: past `limit` queued the oldest are dropped."""

    def __init__(
        self, producer: KafkaEventProducer, topic: TopicConfig, *, limit: int = 100_000
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._limit = limit
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._full = asyncio.Event()
        self._draining = False
        self.dropped = 0

    def append(self, key: str, value: bytes) -> None:
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((key.encode(), value))
        self._idle.clear()
        self._wake.set()
        if len(self._queue) >= _BATCH:
            self._full.set()

    def start(self, supervisor: Supervisor) -> None:
        supervisor.start("history-writer", self._run)

    async def flush(self, timeout: float) -> None:  # noqa: ASYNC109 - a bounded drain at stop
        """Give what is queued up to `timeout` seconds to go out (at stop), without lingering."""
        self._draining = True
        self._full.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_LINGER_S):
                    await self._full.wait()
            if len(self._queue) <= _BATCH and not self._draining:
                self._full.clear()
            batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
            records = [(key, value, None) for key, value in batch]
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    await self._producer.send_raw_many(self._topic, records)
                    break
                except Exception as exc:
                    if attempt < _ATTEMPTS:
                        await asyncio.sleep(_BACKOFF.delay(attempt))
                        continue
                    self.dropped += len(batch)
                    log.warning(
                        "history write of %d records failed %d times (%s); dropped "
                        "(the changelog and the DMs are not affected)",
                        len(batch),
                        attempt,
                        type(exc).__name__,
                        extra={"error_class": type(exc).__name__},
                    )
