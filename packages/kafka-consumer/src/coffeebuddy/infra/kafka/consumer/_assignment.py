"""The partitions this member owns: assign, revoke (drain, commit, drop) and the aiokafka
rebalance listener that drives both."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiokafka.abc import ConsumerRebalanceListener

from coffeebuddy.infra.kafka.consumer._partition import DeferredFailure, Partition

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer._commits import Committer
    from coffeebuddy.infra.kafka.consumer._context import TopicPartition
    from coffeebuddy.infra.kafka.consumer._flow import FlowControl
    from coffeebuddy.infra.kafka.consumer._topic_metrics import TopicMetrics
    from coffeebuddy.infra.kafka.consumer._types import PartitionsCallback
    from coffeebuddy.infra.kafka.metrics import KafkaMetrics
    from coffeebuddy.infra.kafka.topics import TopicConfig

log = logging.getLogger("coffeebuddy.infra.kafka.consumer")


class Assignment:
    """Owns the `Partition`s of the current assignment and their workers."""

    def __init__(
        self,
        *,
        topics: Mapping[str, TopicConfig],
        topic_metrics: Mapping[str, TopicMetrics],
        metrics: KafkaMetrics,
        group: str,
        committer: Committer,
        flow: FlowControl,
        on_fail: DeferredFailure,
        worker: Callable[[Partition], Any],
        on_assign: PartitionsCallback | None,
        on_revoke: PartitionsCallback | None,
        revoke_timeout: float,
        commit_timeout: float,
    ) -> None:
        self._topics = topics
        self._topic_metrics = topic_metrics
        self._metrics = metrics
        self._group = group
        self._committer = committer
        self._flow = flow
        self._on_fail = on_fail
        self._worker = worker
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._revoke_timeout = revoke_timeout
        self._commit_timeout = commit_timeout
        self.partitions: dict[Any, Partition] = {}
        self.joined = False

    async def assigned(self, assigned: Iterable[Any]) -> None:
        self.joined = True
        self._metrics.rebalances.labels(self._group, "assigned").inc()
        new: list[TopicPartition] = []
        for ktp in assigned:
            if ktp in self.partitions:
                continue
            config = self._topics.get(ktp.topic)
            if config is None:
                continue
            p = Partition(ktp, config, self._topic_metrics[ktp.topic], self._on_fail)
            p.task = asyncio.ensure_future(self._worker(p))
            self.partitions[ktp] = p
            new.append(p.tp)
        self._committer.last_progress = time.monotonic()
        if new and self._on_assign is not None:
            await call_user(self._on_assign, new, self._revoke_timeout)

    async def revoked(self, revoked: Iterable[Any]) -> None:
        """Drain (bounded), `on_revoke`, commit, drop; lost when the commit is refused."""
        parts = [self.partitions[tp] for tp in revoked if tp in self.partitions]
        if not parts:
            return
        for p in parts:
            self.close(p)
        await self.await_workers(parts, self._revoke_timeout)
        if self._on_revoke is not None:
            await call_user(self._on_revoke, [p.tp for p in parts], self._revoke_timeout)
        await self._committer.wait_background(self._commit_timeout)
        ok = await self._committer.commit(parts, budget=self._commit_timeout)
        if not ok:
            log.warning(
                "could not commit revoked partitions %s: treating them as lost "
                "(their records are redelivered)",
                [p.tp for p in parts],
            )
        self._metrics.rebalances.labels(self._group, "revoked" if ok else "lost").inc()
        for p in parts:
            self.drop(p)
        if not self.partitions:
            self.joined = False

    def close(self, p: Partition) -> None:
        """No new handler calls for `p`; its queued records are dropped (refetched later)."""
        if not p.closed:
            self._flow.release(p.close())

    def close_all(self) -> None:
        for p in list(self.partitions.values()):
            self.close(p)

    def drop(self, p: Partition) -> None:
        """`p` is no longer ours: its completions turn stale, its series are removed."""
        p.revoked = True
        if p.task is not None and not p.task.done():
            p.task.cancel()
        self.partitions.pop(p.kafka_tp, None)
        self._flow.paused.discard(p.kafka_tp)
        self._metrics.remove_partition(p.tp.topic, self._group, p.tp.partition)

    def owns(self, task: asyncio.Task[Any]) -> bool:
        """True if `task` is the worker of a partition of this assignment."""
        return any(p.task is task for p in self.partitions.values())

    def cancel_workers(self) -> None:
        for p in list(self.partitions.values()):
            if p.task is not None:
                p.task.cancel()

    @staticmethod
    async def await_workers(parts: list[Partition], budget: float) -> None:
        """Let running handlers of `parts` finish within `budget`; cancel the rest."""
        tasks = {p.task for p in parts if p.task is not None and not p.task.done()}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=budget)
        if pending:
            log.warning(
                "%d handler(s) still running after %.1fs: cancelling them (not committed)",
                len(pending),
                budget,
            )
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=1.0)


_CALLBACK_TASKS: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


def in_partition_callback(task: asyncio.Task[Any] | None) -> bool:
    """`task` runs a user's partition callback (a `stop()` from there must not wait for the
    shutdown, which waits for the callback)."""
    return task is not None and task in _CALLBACK_TASKS


async def call_user(callback: PartitionsCallback, tps: list[TopicPartition], budget: float) -> None:
    """Await a user's partition callback within `budget`; its failure is logged, not raised.

    In a task of its own, not under asyncio.timeout: aiokafka calls the rebalance listener from
    its coordination task, and an overrun would then cancel aiokafka's own task.
    """
    task = asyncio.ensure_future(callback(sorted(tps)))
    _CALLBACK_TASKS.add(task)
    try:
        await asyncio.wait_for(task, timeout=max(0.1, budget))
    except Exception:
        log.exception("partition callback %r failed", callback)


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks, forwarded to the `Assignment`."""

    def __init__(self, assignment: Assignment) -> None:
        self._assignment = assignment

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._assignment.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._assignment.assigned(list(assigned))
