"""The poll loop: fetch within the in-flight bound, queue batches per partition, and on its
clock start background commits and refresh lag and gauges. It never waits for handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.consumer._seam import GENERATION_ERRORS

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer._commits import Committer
    from coffeebuddy.infra.kafka.consumer._flow import FlowControl
    from coffeebuddy.infra.kafka.consumer._partition import Partition
    from coffeebuddy.infra.kafka.consumer._seam import ConsumerLike
    from coffeebuddy.infra.kafka.metrics import KafkaMetrics

log = logging.getLogger("coffeebuddy.infra.kafka.consumer")

_METRICS_PERIOD = 0.5
_PAUSED_POLL_MS = 50


class Poller:
    """Runs the poll loop over `partitions` (the live assignment); `last_poll` and `lag_total`
    feed the harness's health."""

    def __init__(
        self,
        *,
        partitions: dict[Any, Partition],
        flow: FlowControl,
        committer: Committer,
        metrics: KafkaMetrics,
        group: str,
        max_records: int,
        poll_timeout_ms: int,
        commit_interval: float,
    ) -> None:
        self._partitions = partitions
        self._flow = flow
        self._committer = committer
        self._metrics = metrics
        self._group = group
        self._max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self._commit_interval = commit_interval
        self.last_poll = time.monotonic()
        self.lag_total = 0

    async def run(self, consumer: ConsumerLike, stopping: asyncio.Event) -> None:
        partitions = self._partitions
        flow = self._flow
        max_records = self._max_records
        next_commit = time.monotonic() + self._commit_interval
        next_metrics = 0.0
        while not stopping.is_set():
            capacity = flow.max_in_flight - flow.inflight
            if capacity <= 0:
                capacity = await flow.wait_capacity()
            if flow.update_pauses(consumer, partitions):
                self._metrics.paused_partitions.labels(self._group).set(len(flow.paused))
            timeout = _PAUSED_POLL_MS if flow.paused else self.poll_timeout_ms
            try:
                batches = await consumer.getmany(
                    timeout_ms=timeout, max_records=max(1, min(max_records, capacity))
                )
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:
                if getattr(exc, "retriable", False) or isinstance(exc, GENERATION_ERRORS):
                    log.warning("poll failed (%s: %s); continuing", type(exc).__name__, exc)
                    await asyncio.sleep(0.1)
                    continue
                raise
            now = time.monotonic()
            self.last_poll = now
            if batches:
                wall = time.time()
                for ktp, records in batches.items():
                    p = partitions.get(ktp)
                    if p is None or p.closed or not records:
                        continue
                    self._dispatch(p, records, wall)
            if now >= next_commit:
                next_commit = now + self._commit_interval
                self._committer.start_background(partitions.values())
            if now >= next_metrics:
                next_metrics = now + _METRICS_PERIOD
                self._update_lag(consumer)
                self.update_gauges()

    def _dispatch(self, p: Partition, records: list[Any], wall: float) -> None:
        if p.position is not None and records[0].offset < p.position:
            records = [r for r in records if r.offset >= p.position]  # never hand out twice
            if not records:
                return
        n = len(records)
        p.tracker.add_many([r.offset for r in records])
        # Records are queued as fetched batches and decoded by the partition's worker just
        # before handling: few decoded events are alive at once, which keeps GC cheap.
        p.queue.append(records)
        p.position = records[-1].offset + 1
        self._flow.inflight += n
        tm = p.tm
        tm.consumed.inc(n)
        # Age of the batch's oldest record: one observation per fetched batch keeps it cheap.
        if records[0].timestamp > 0:
            tm.age.observe(max(0.0, wall - records[0].timestamp / 1000))
        p.wake.set()

    def _update_lag(self, consumer: ConsumerLike) -> None:
        total = 0
        lag_gauge = self._metrics.consumer_lag
        for p in self._partitions.values():
            hw = consumer.highwater(p.kafka_tp)
            if hw is None:
                continue
            position = p.position if p.position is not None else p.tracker.committed
            if position is None:
                continue
            lag = max(0, hw - position)
            total += lag
            lag_gauge.labels(p.tp.topic, self._group, str(p.tp.partition)).set(lag)
        self.lag_total = total

    def update_gauges(self) -> None:
        group = self._group
        partitions = self._partitions.values()
        self._metrics.inflight.labels(group).set(max(0, self._flow.inflight))
        self._metrics.incomplete.labels(group).set(sum(p.tracker.incomplete for p in partitions))
        self._metrics.paused_partitions.labels(group).set(len(self._flow.paused))
