"""Offset commits: each partition's committable position, in the background and on demand."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.consumer._seam import GENERATION_ERRORS

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer._partition import Partition
    from coffeebuddy.infra.kafka.consumer._seam import ConsumerLike
    from coffeebuddy.infra.kafka.metrics import KafkaMetrics

log = logging.getLogger("coffeebuddy.infra.kafka.consumer")


class Committer:
    """Commits what the partitions' trackers allow; `last_progress` is when one last succeeded."""

    def __init__(self, metrics: KafkaMetrics, group: str, timeout: float) -> None:
        self._metrics = metrics
        self._group = group
        self._timeout = timeout
        self.consumer: ConsumerLike | None = None
        self._task: asyncio.Task[bool] | None = None
        self.last_progress = time.monotonic()

    def start_background(self, parts: Iterable[Partition]) -> None:
        """Commit `parts` in a task, unless one is running or nothing moved."""
        if self._task is not None and not self._task.done():
            return
        live = [p for p in parts if not p.closed]
        if not any(p.tracker.to_commit() is not None for p in live):
            return
        self._task = asyncio.ensure_future(self.commit(live, self._timeout))

    async def wait_background(self, budget: float) -> None:
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=budget)

    async def commit(self, parts: list[Partition], budget: float) -> bool:
        """Commit the committable position of `parts`; False when it failed (partitions lost
        if the group moved on)."""
        offsets: dict[Any, int] = {}
        for p in parts:
            pos = p.tracker.to_commit()
            if pos is not None:
                offsets[p.kafka_tp] = pos
        if not offsets or self.consumer is None:
            return True
        failures = self._metrics.commit_failures.labels(self._group)
        try:
            await asyncio.wait_for(self.consumer.commit(offsets), timeout=max(0.1, budget))
        except GENERATION_ERRORS as exc:
            failures.inc()
            log.warning("offset commit rejected (%s): partitions lost", type(exc).__name__)
            return False
        except (TimeoutError, Exception) as exc:
            failures.inc()
            log.warning("offset commit failed (%s: %s)", type(exc).__name__, exc)
            return False
        self._metrics.commits.labels(self._group).inc()
        committed_gauge = self._metrics.committed_offset
        for p in parts:
            pos = offsets.get(p.kafka_tp)
            if pos is None:
                continue
            p.tracker.mark_committed(pos)
            if not p.revoked:
                committed_gauge.labels(p.tp.topic, self._group, str(p.tp.partition)).set(pos)
        self.last_progress = time.monotonic()
        return True
