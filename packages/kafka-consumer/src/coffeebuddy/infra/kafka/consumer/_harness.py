"""`KafkaConsumerHarness`: at-least-once, ordered-per-partition, poison-proof consumption.

This module holds the lifecycle (run, stop, signals, shutdown) and the poll loop; the parts it
wires together live in their own modules (see the package README's layout table).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from coffeebuddy.infra.kafka.config import (
    EMBEDDED_CLUSTER_ID,
    KafkaSettings,
    check_connection,
    cluster_id,
    leave_group_from_generation_zero,
)
from coffeebuddy.infra.kafka.consumer._assignment import (
    Assignment,
    Listener,
    call_user,
    in_partition_callback,
)
from coffeebuddy.infra.kafka.consumer._commits import Committer
from coffeebuddy.infra.kafka.consumer._context import HealthStatus, TopicPartition
from coffeebuddy.infra.kafka.consumer._dead_letter import DeadLetterWriter
from coffeebuddy.infra.kafka.consumer._errors import (
    ErrorClassifier,
    RetryPolicy,
    default_classifier,
)
from coffeebuddy.infra.kafka.consumer._failure import FailurePath
from coffeebuddy.infra.kafka.consumer._flow import FlowControl
from coffeebuddy.infra.kafka.consumer._partition import Partition
from coffeebuddy.infra.kafka.consumer._poller import Poller
from coffeebuddy.infra.kafka.consumer._seam import (
    ConsumerFactory,
    ConsumerLike,
    default_consumer_factory,
    stop_consumer,
)
from coffeebuddy.infra.kafka.consumer._topic_metrics import TopicMetrics
from coffeebuddy.infra.kafka.consumer._types import Handler, PartitionsCallback, RecordDecoder
from coffeebuddy.infra.kafka.consumer._worker import run_worker
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import decode_record
from coffeebuddy.infra.kafka.producer import KafkaEventProducer, resolve_tracer
from coffeebuddy.infra.kafka.topics import ConsumerGroup, TopicConfig

log = logging.getLogger("coffeebuddy.infra.kafka.consumer")


def _validate(
    topics: Sequence[TopicConfig],
    max_in_flight: int,
    stop_timeout: float,
    max_incomplete_per_partition: int,
    max_incomplete_total: int | None,
) -> None:
    if not topics:
        raise ValueError("topics must be a non-empty sequence of TopicConfig")
    for topic in topics:
        if not isinstance(topic, TopicConfig):
            raise TypeError(
                f"topics must be TopicConfig objects from coffeebuddy.infra.kafka.topics, "
                f"got {type(topic).__name__} {topic!r}"
            )
        if topic.dead_letter_topic is None:
            raise ValueError(
                f"topic {topic.name!r} has no dead_letter_topic: the harness needs one to park "
                "records it cannot decode or handle"
            )
    for name, value in (("max_in_flight", max_in_flight), ("stop_timeout", stop_timeout)):
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if max_incomplete_per_partition < 1:
        raise ValueError("max_incomplete_per_partition must be >= 1")
    if max_incomplete_total is not None and max_incomplete_total < 1:
        raise ValueError("max_incomplete_total must be >= 1 or None")


class KafkaConsumerHarness:
    """Consumes catalog topics with at-least-once delivery and a poison-proof error path.

    Records are decoded by each partition's worker and handed to ``handler(event, context)`` in
    offset order per partition, partitions concurrently. Offsets are committed only up to the
    lowest record whose handling has not finished. Decode failures and permanent handler errors
    go to the topic's dead-letter topic; transient errors are retried with exponential backoff
    while the partition is paused and the poll loop keeps running (no rebalance for slow work).
    ``consumer_factory`` builds the consumer from the settings' consumer kwargs (default: a real
    ``AIOKafkaConsumer``); tests pass a fake there.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[TopicConfig],
        group: ConsumerGroup | str,
        handler: Handler,
        *,
        producer: KafkaEventProducer | None = None,
        metrics: KafkaMetrics | None = None,
        max_in_flight: int = 1000,
        max_incomplete_per_partition: int = 10_000,
        max_incomplete_total: int | None = None,
        retry_policy: RetryPolicy | None = None,
        classify_error: ErrorClassifier = default_classifier,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
        commit_interval: float = 1.0,
        stop_timeout: float = 20.0,
        revoke_timeout: float | None = None,
        commit_timeout: float = 5.0,
        max_records: int | None = None,
        poll_timeout: float = 0.2,
        stall_timeout: float = 120.0,
        poll_stale_after: float | None = None,
        tracing: bool | None = None,
        tracer_provider: Any = None,
        decoder: RecordDecoder = decode_record,
        consumer_factory: ConsumerFactory | None = None,
    ) -> None:
        _validate(
            topics, max_in_flight, stop_timeout, max_incomplete_per_partition, max_incomplete_total
        )
        self._settings = settings
        self._topics = {t.name: t for t in topics}
        self._group = group.name if isinstance(group, ConsumerGroup) else str(group)
        if not self._group:
            raise ValueError("group must be a non-empty consumer group name")
        self._handler = handler
        # tracing on: the handler is wrapped once in a CONSUMER span; off: nothing changes
        self._tracer = resolve_tracer(tracing, tracer_provider, "coffeebuddy.infra.kafka.consumer")
        self._decode = decoder
        self._decode_failed: Callable[[Any, Exception], None] | None = None
        if self._tracer is not None:
            from coffeebuddy.infra.kafka.consumer._tracing import decode_failed, traced_handler

            self._handler = traced_handler(handler, self._tracer, self._group)
            self._decode_failed = functools.partial(decode_failed, self._tracer, self._group)
        self._consumer_factory = consumer_factory or default_consumer_factory
        self._metrics = metrics if metrics is not None else KafkaMetrics()
        self._stop_timeout = stop_timeout
        revoke_timeout = (
            revoke_timeout
            if revoke_timeout is not None
            else min(stop_timeout, settings.max_poll_interval_ms / 2000)
        )
        self._commit_timeout = commit_timeout
        self._stall_timeout = stall_timeout
        self._poll_stale_after = (
            poll_stale_after
            if poll_stale_after is not None
            else max(10.0, settings.max_poll_interval_ms / 1000)
        )
        self._dead_letters = DeadLetterWriter(
            settings, topics, self._group, self._metrics, producer
        )
        self._failures = FailurePath(
            self._handler,
            classify_error,
            retry_policy if retry_policy is not None else RetryPolicy(),
            self._dead_letters,
        )
        self._flow = FlowControl(max_in_flight, max_incomplete_per_partition, max_incomplete_total)
        self._committer = Committer(self._metrics, self._group, commit_timeout)
        self._assignment = Assignment(
            topics=self._topics,
            topic_metrics={n: TopicMetrics(self._metrics, n, self._group) for n in self._topics},
            metrics=self._metrics,
            group=self._group,
            committer=self._committer,
            flow=self._flow,
            on_fail=self._failures.detach,
            worker=self._worker,
            on_assign=on_assign,
            on_revoke=on_revoke,
            revoke_timeout=revoke_timeout,
            commit_timeout=commit_timeout,
        )
        self._poller = Poller(
            partitions=self._assignment.partitions,
            flow=self._flow,
            committer=self._committer,
            metrics=self._metrics,
            group=self._group,
            max_records=max_records or settings.max_poll_records,
            poll_timeout_ms=max(1, int(poll_timeout * 1000)),
            commit_interval=commit_interval,
        )
        self._on_revoke = on_revoke
        self._consumer: ConsumerLike | None = None
        self._embedded_broker = False  # its group quirks get a workaround; no other broker does
        self._stopping = asyncio.Event()
        self._force = False
        self._running = False
        self._stopped = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._signals = 0

    # ------------------------------------------------------------------ public API
    @property
    def group(self) -> str:
        return self._group

    def assignment(self) -> list[TopicPartition]:
        """Partitions this member currently owns."""
        return sorted(p.tp for p in self._assignment.partitions.values())

    def health(self) -> HealthStatus:
        """Readiness (joined and assigned) and liveness (polling, commits advance under lag)."""
        now = time.monotonic()
        running = self._running and not self._stopping.is_set()
        owned = len(self._assignment.partitions)
        ready = running and self._assignment.joined and owned > 0
        problems: list[str] = []
        if not running:
            problems.append("not running")
        poll_age = now - self._poller.last_poll
        if running and poll_age > self._poll_stale_after:
            problems.append(f"poll loop stalled for {poll_age:.1f}s")
        stalled = now - self._committer.last_progress
        lag = self._poller.lag_total
        if running and lag > 0 and stalled > self._stall_timeout:
            problems.append(
                f"lag {lag} and no commit progress for {stalled:.0f}s "
                f"(limit {self._stall_timeout:.0f}s)"
            )
        if ready:
            detail = f"assigned {owned} partition(s), lag {lag}"
        elif running:
            detail = "waiting for a partition assignment"
        else:
            detail = "stopped"
        if problems:
            detail = "; ".join(problems) + f" ({detail})"
        return HealthStatus(ready=ready, live=not problems and self._running, detail=detail)

    def install_signal_handlers(
        self, signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """First signal: graceful stop. Second: force (cancel handlers, skip the drain)."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _begin_stop(self) -> None:
        """From now on no handler starts; running ones may finish within the stop deadline."""
        self._stopping.set()
        self._assignment.close_all()

    async def stop(self) -> None:
        """Stop fetching, let running handlers finish (bounded), commit, close; idempotent.

        A caller cancelled while waiting sees `CancelledError`; the shutdown goes on. Called from
        a handler or a partition callback, it returns at once: the shutdown waits for those.
        """
        self._begin_stop()
        task = self._run_task
        current = asyncio.current_task()
        if task is None or task is current or self._owns(current):
            return  # not running, or called from a task the shutdown itself waits for
        waiter = asyncio.ensure_future(self._stopped.wait())
        try:
            # run() enforces its own deadline; this bound only guards against a wedged loop.
            await asyncio.wait({waiter}, timeout=self._stop_timeout + 5)
        finally:
            waiter.cancel()

    def _owns(self, task: asyncio.Task[Any] | None) -> bool:
        """`task` is one the shutdown waits for: the poll loop, a partition callback, a partition
        worker or a detached retry."""
        if task is None:
            return False
        return (
            task is self._poll_task
            or in_partition_callback(task)
            or self._assignment.owns(task)
            or self._failures.owns(task)
        )

    async def run(self) -> None:
        """Consume until `stop()` (or a signal); returns after a graceful shutdown."""
        if self._run_task is not None:
            raise RuntimeError(
                "KafkaConsumerHarness.run() can be called once; create a new harness"
            )
        self._run_task = asyncio.current_task()
        self._stopped.clear()
        self._running = True
        error: BaseException | None = None
        try:
            await self._start()
            assert self._consumer is not None
            poll = self._poll_task = asyncio.ensure_future(
                self._poller.run(self._consumer, self._stopping)
            )
            stop_wait = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({poll, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop_wait.cancel()
            if not poll.done():
                # The poll loop notices the stop flag after its current getmany; a getmany stuck
                # on an unreachable coordinator is cancelled.
                done, _ = await asyncio.wait(
                    {poll}, timeout=self._poller.poll_timeout_ms / 1000 + 1.0
                )
                if not done:
                    poll.cancel()
                    await asyncio.wait({poll})
            if poll.done() and not poll.cancelled() and poll.exception() is not None:
                error = poll.exception()
        except BaseException as exc:
            error = exc
        finally:
            try:
                await self._shutdown()
            finally:
                self._running = False
                self._stopped.set()
        if error is not None:
            raise error

    # ------------------------------------------------------------------ lifecycle
    async def _start(self) -> None:
        await self._dead_letters.start()
        consumer = self._consumer_factory(self._settings.consumer_kwargs(self._group))
        consumer.subscribe(topics=list(self._topics), listener=Listener(self._assignment))
        try:
            await consumer.start()
        except Exception as exc:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(consumer.stop(), timeout=2.0)
            await check_connection(self._settings, timeout=5.0)
            raise ConnectionError(f"Kafka consumer failed to start: {exc}") from exc
        self._consumer = consumer
        self._committer.consumer = consumer
        self._embedded_broker = await cluster_id(consumer) == EMBEDDED_CLUSTER_ID
        self._poller.last_poll = self._committer.last_progress = time.monotonic()

    def _worker(self, p: Partition) -> Any:
        return run_worker(
            p, self._handler, self._decode, self._failures, self._flow, self._decode_failed
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s received: stopping gracefully (send again to force)", sig.name)
            self._begin_stop()
        else:
            log.warning("%s received again: forcing stop", sig.name)
            self._force = True
            self._begin_stop()
            self._assignment.cancel_workers()
            self._failures.cancel_detached()

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout
        # Budget kept for commit and close after draining handlers.
        reserve = min(self._commit_timeout + 2.0, self._stop_timeout * 0.4)

        def left(floor: float = 0.1) -> float:
            return max(floor, deadline - loop.time())

        assignment = self._assignment
        parts = list(assignment.partitions.values())
        assignment.close_all()
        drain = 0.0 if self._force else max(0.0, deadline - reserve - loop.time())
        await assignment.await_workers(parts, drain)
        self._failures.cancel_detached()
        if parts and self._on_revoke is not None and not self._force:
            await call_user(self._on_revoke, [p.tp for p in parts], left() * 0.3)
        if parts and self._consumer is not None:
            await self._committer.wait_background(min(1.0, left()))
            await self._committer.commit(parts, budget=min(self._commit_timeout, left() * 0.5))
        for p in parts:
            assignment.drop(p)
        self._flow.paused.clear()
        if self._consumer is not None:
            if self._embedded_broker:
                leave_group_from_generation_zero(self._consumer)
            await stop_consumer(self._consumer, left(0.5) * 0.7)
            self._consumer = self._committer.consumer = None
        await self._dead_letters.close(timeout=left(0.5))
        self._poller.update_gauges()


__all__ = ["KafkaConsumerHarness"]
