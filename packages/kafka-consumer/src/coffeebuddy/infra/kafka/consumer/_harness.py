"""`KafkaConsumerHarness`: at-least-once, ordered-per-partition, poison-proof consumption."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    IllegalStateError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from coffeebuddy.infra.kafka.config import (
    EMBEDDED_CLUSTER_ID,
    KafkaSettings,
    abandon_consumer,
    check_connection,
    cluster_id,
    leave_group_from_generation_zero,
)
from coffeebuddy.infra.kafka.consumer._context import (
    Completion,
    HealthStatus,
    RecordContext,
    TopicPartition,
)
from coffeebuddy.infra.kafka.consumer._errors import (
    ErrorClass,
    ErrorClassifier,
    RetryPolicy,
    default_classifier,
)
from coffeebuddy.infra.kafka.consumer._tracker import OffsetTracker
from coffeebuddy.infra.kafka.metrics import KafkaMetrics, observe_many
from coffeebuddy.infra.kafka.models import Event, decode_record
from coffeebuddy.infra.kafka.producer import KafkaEventProducer, resolve_tracer
from coffeebuddy.infra.kafka.topics import ConsumerGroup, TopicConfig

log = logging.getLogger("coffeebuddy.infra.kafka.consumer")
#: Turns a record's value and headers into an event, raising `EventDecodeError` on bad input
#: (the CoffeeBuddy default: `decode_record`, both CloudEvents content modes).
RecordDecoder = Callable[[bytes | None, Any], Event]

Handler = Callable[[Event, RecordContext], Awaitable[None]]
PartitionsCallback = Callable[[list[TopicPartition]], Awaitable[None]]

DLQ_PREFIX = "coffeebuddy.dlq."
DLQ_ORIGIN_TOPIC = DLQ_PREFIX + "origin.topic"
DLQ_ORIGIN_PARTITION = DLQ_PREFIX + "origin.partition"
DLQ_ORIGIN_OFFSET = DLQ_PREFIX + "origin.offset"
DLQ_ORIGIN_KEY = DLQ_PREFIX + "origin.key"
DLQ_ERROR_TYPE = DLQ_PREFIX + "error.type"
DLQ_ERROR_MESSAGE = DLQ_PREFIX + "error.message"
DLQ_REASON = DLQ_PREFIX + "reason"
DLQ_ATTEMPTS = DLQ_PREFIX + "attempts"
DLQ_FIRST_SEEN = DLQ_PREFIX + "first_seen"
DLQ_HEADERS = (
    DLQ_ORIGIN_TOPIC,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_KEY,
    DLQ_ERROR_TYPE,
    DLQ_ERROR_MESSAGE,
    DLQ_REASON,
    DLQ_ATTEMPTS,
    DLQ_FIRST_SEEN,
)
_MAX_ERROR_MESSAGE = 2000
_GENERATION_ERRORS = (
    CommitFailedError,
    IllegalGenerationError,
    UnknownMemberIdError,
    RebalanceInProgressError,
    IllegalStateError,
)
_METRICS_PERIOD = 0.5
_PAUSED_POLL_MS = 50
_CAPACITY_WAIT = 0.2


class _TopicMetrics:
    """Label children resolved once per topic, so the per-record path does no label lookups."""

    __slots__ = (
        "age",
        "consumed",
        "dead_letter",
        "deferred",
        "group",
        "metrics",
        "retry",
        "success",
        "topic",
    )

    def __init__(self, metrics: KafkaMetrics, topic: str, group: str) -> None:
        self.metrics = metrics
        self.topic = topic
        self.group = group
        self.consumed = metrics.messages_consumed.labels(topic, group)
        self.age = metrics.record_age.labels(topic, group)
        self.success = metrics.handler_duration.labels(topic, group, "success")
        self.deferred = metrics.handler_duration.labels(topic, group, "deferred")
        self.retry = metrics.handler_duration.labels(topic, group, "retry")
        self.dead_letter = metrics.handler_duration.labels(topic, group, "dead_letter")

    def error(self, exc: BaseException) -> None:
        label = self.metrics.error_type_label(type(exc).__name__)
        self.metrics.handler_errors.labels(self.topic, self.group, label).inc()


class _Partition:
    """State of one assigned partition: its queue, worker, tracker and pause reasons."""

    __slots__ = (
        "backoff",
        "closed",
        "config",
        "harness",
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
        self,
        harness: KafkaConsumerHarness,
        kafka_tp: Any,
        config: TopicConfig,
        tm: _TopicMetrics,
    ) -> None:
        self.harness = harness
        self.kafka_tp = kafka_tp
        self.tp = TopicPartition(kafka_tp.topic, kafka_tp.partition)
        self.config = config
        self.tm = tm
        self.tracker = OffsetTracker()
        self.queue: deque[list[Any]] = deque()  # fetched batches, not yet handled
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.closed = False  # no new handler calls (revoking / stopping)
        self.revoked = False  # no longer ours: completions are stale
        self.backoff = False  # paused for a retry backoff or a failing dead-letter write
        self.position: int | None = None  # next offset after the last delivered record


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, harness: KafkaConsumerHarness) -> None:
        self._harness = harness

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._harness._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._harness._on_assigned(list(assigned))


class KafkaConsumerHarness:
    """Consumes catalog topics with at-least-once delivery and a poison-proof error path.

    Records are decoded per fetched batch and handed to ``handler(event, context)`` in offset
    order per partition, partitions concurrently. Offsets are committed only up to the lowest
    record whose handling has not finished. Decode failures and permanent handler errors go to
    the topic's dead-letter topic; transient errors are retried with exponential backoff while
    the partition is paused and the poll loop keeps running (no rebalance for slow work).
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
        self._settings = settings
        self._topics = {t.name: t for t in topics}
        self._group = group.name if isinstance(group, ConsumerGroup) else str(group)
        if not self._group:
            raise ValueError("group must be a non-empty consumer group name")
        self._handler = handler
        # tracing on: the handler is wrapped once in a CONSUMER span; off: nothing changes
        self._tracer = resolve_tracer(tracing, tracer_provider, "coffeebuddy.infra.kafka.consumer")
        self._decode = decoder
        if self._tracer is not None:
            from coffeebuddy.infra.kafka.consumer._tracing import traced_handler

            self._handler = traced_handler(handler, self._tracer, self._group)
        self._producer = producer
        self._own_producer = producer is None
        self._metrics = metrics if metrics is not None else KafkaMetrics()
        self._max_in_flight = max_in_flight
        self._max_incomplete = max_incomplete_per_partition
        self._max_incomplete_total = max_incomplete_total
        self._retry = retry_policy if retry_policy is not None else RetryPolicy()
        self._classify = classify_error
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._commit_interval = commit_interval
        self._stop_timeout = stop_timeout
        self._revoke_timeout = (
            revoke_timeout
            if revoke_timeout is not None
            else min(stop_timeout, settings.max_poll_interval_ms / 2000)
        )
        self._commit_timeout = commit_timeout
        self._max_records = max_records or settings.max_poll_records
        self._poll_timeout_ms = max(1, int(poll_timeout * 1000))
        self._stall_timeout = stall_timeout
        self._poll_stale_after = (
            poll_stale_after
            if poll_stale_after is not None
            else max(10.0, settings.max_poll_interval_ms / 1000)
        )

        self._topic_metrics = {
            name: _TopicMetrics(self._metrics, name, self._group) for name in self._topics
        }
        self._dlq_topics = {
            t.name: TopicConfig(
                name=t.dead_letter_topic,
                partitions=t.partitions,
                replication_factor=t.replication_factor,
                key_field=t.key_field,
                kind="dead_letter",
                description=f"dead letters of {t.name}",
            )
            for t in topics
            if t.dead_letter_topic is not None
        }
        self._consumer: Any = None
        self._embedded_broker = False  # its group quirks get a workaround; no other broker does
        self._partitions: dict[Any, _Partition] = {}
        self._paused: set[Any] = set()
        self._inflight = 0
        self._capacity: asyncio.Event | None = None
        self._global_pause = False
        self._detached: set[asyncio.Task[None]] = set()
        self._commit_task: asyncio.Task[bool] | None = None
        self._stopping = asyncio.Event()
        self._force = False
        self._running = False
        self._stopped = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._signals = 0
        self._last_poll = time.monotonic()
        self._last_progress = time.monotonic()
        self._lag_total = 0
        self._joined = False
        self._assigned_once = False

    # ------------------------------------------------------------------ public API
    @property
    def group(self) -> str:
        return self._group

    def assignment(self) -> list[TopicPartition]:
        """Partitions this member currently owns."""
        return sorted(p.tp for p in self._partitions.values())

    def health(self) -> HealthStatus:
        """Readiness (joined and assigned) and liveness (polling, commits advance under lag)."""
        now = time.monotonic()
        running = self._running and not self._stopping.is_set()
        ready = running and self._joined and bool(self._partitions)
        problems: list[str] = []
        if not running:
            problems.append("not running")
        poll_age = now - self._last_poll
        if running and poll_age > self._poll_stale_after:
            problems.append(f"poll loop stalled for {poll_age:.1f}s")
        stalled = now - self._last_progress
        if running and self._lag_total > 0 and stalled > self._stall_timeout:
            problems.append(
                f"lag {self._lag_total} and no commit progress for {stalled:.0f}s "
                f"(limit {self._stall_timeout:.0f}s)"
            )
        live = not problems
        if ready:
            detail = f"assigned {len(self._partitions)} partition(s), lag {self._lag_total}"
        elif running:
            detail = "waiting for a partition assignment"
        else:
            detail = "stopped"
        if problems:
            detail = "; ".join(problems) + f" ({detail})"
        return HealthStatus(ready=ready, live=live and self._running, detail=detail)

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
        for p in list(self._partitions.values()):
            self._close_partition(p)

    async def stop(self) -> None:
        """Stop fetching, let running handlers finish (bounded), commit, close; idempotent."""
        self._begin_stop()
        task = self._run_task
        if task is None or task is asyncio.current_task():
            return
        # run() enforces its own deadline; this bound only guards against a wedged event loop.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self._stopped.wait()), self._stop_timeout + 5)

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
            poll = asyncio.ensure_future(self._poll_loop())
            stop_wait = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({poll, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop_wait.cancel()
            if not poll.done():
                # The poll loop notices the stop flag after its current getmany; a getmany stuck
                # on an unreachable coordinator is cancelled.
                done, _ = await asyncio.wait({poll}, timeout=self._poll_timeout_ms / 1000 + 1.0)
                if not done:
                    poll.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await poll
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
        if self._producer is None:
            self._producer = KafkaEventProducer(self._settings, metrics=self._metrics)
        if not self._producer.started:
            await self._producer.start()
        consumer = AIOKafkaConsumer(**self._settings.consumer_kwargs(self._group))
        consumer.subscribe(topics=list(self._topics), listener=_Listener(self))
        try:
            await consumer.start()
        except Exception as exc:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(consumer.stop(), timeout=2.0)
            await check_connection(self._settings, timeout=5.0)
            raise ConnectionError(f"Kafka consumer failed to start: {exc}") from exc
        self._consumer = consumer
        self._embedded_broker = await cluster_id(consumer) == EMBEDDED_CLUSTER_ID
        self._last_poll = self._last_progress = time.monotonic()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s received: stopping gracefully (send again to force)", sig.name)
            self._begin_stop()
        else:
            log.warning("%s received again: forcing stop", sig.name)
            self._force = True
            self._begin_stop()
            for p in list(self._partitions.values()):
                if p.task is not None:
                    p.task.cancel()
            for t in list(self._detached):
                t.cancel()

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout
        # Budget kept for commit and close after draining handlers.
        reserve = min(self._commit_timeout + 2.0, self._stop_timeout * 0.4)

        def left(floor: float = 0.1) -> float:
            return max(floor, deadline - loop.time())

        parts = list(self._partitions.values())
        for p in parts:
            self._close_partition(p)
        drain = 0.0 if self._force else max(0.0, deadline - reserve - loop.time())
        await self._await_workers(parts, drain)
        for t in list(self._detached):
            t.cancel()
        if parts and self._on_revoke is not None and not self._force:
            await self._call_user(self._on_revoke, [p.tp for p in parts], left() * 0.3)
        if parts and self._consumer is not None:
            await self._wait_commit_task(min(1.0, left()))
            await self._commit(parts, budget=min(self._commit_timeout, left() * 0.5))
        for p in parts:
            self._drop_partition(p)
        self._paused.clear()
        if self._consumer is not None:
            if self._embedded_broker:
                leave_group_from_generation_zero(self._consumer)
            await self._stop_consumer(self._consumer, left(0.5) * 0.7)
            self._consumer = None
        if self._own_producer and self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.close(timeout=left(0.5))
            self._producer = None
        self._update_gauges()

    @staticmethod
    async def _stop_consumer(consumer: Any, budget: float) -> None:
        task = asyncio.ensure_future(consumer.stop())
        done, _ = await asyncio.wait({task}, timeout=budget)
        if done:
            # aiokafka's stop() can end in CancelledError (it awaits tasks it cancelled itself).
            with contextlib.suppress(Exception, asyncio.CancelledError):
                task.result()
            return
        # aiokafka's stop() can wait forever on an unreachable coordinator (aiokafka#659).
        log.warning("Kafka consumer did not stop within %.1fs; abandoning it", budget)
        task.cancel()
        await abandon_consumer(consumer, limit=0.5)

    async def _call_user(
        self, callback: PartitionsCallback, tps: list[TopicPartition], budget: float
    ) -> None:
        try:
            await asyncio.wait_for(callback(sorted(tps)), timeout=max(0.1, budget))
        except Exception:
            log.exception("partition callback %r failed", callback)

    # ------------------------------------------------------------------ rebalance
    async def _on_assigned(self, assigned: list[Any]) -> None:
        self._joined = True
        self._metrics.rebalances.labels(self._group, "assigned").inc()
        new: list[TopicPartition] = []
        for ktp in assigned:
            if ktp in self._partitions:
                continue
            config = self._topics.get(ktp.topic)
            if config is None:
                continue
            p = _Partition(self, ktp, config, self._topic_metrics[ktp.topic])
            p.task = asyncio.ensure_future(self._worker(p))
            self._partitions[ktp] = p
            new.append(p.tp)
        self._last_progress = time.monotonic()
        if new and self._on_assign is not None:
            await self._call_user(self._on_assign, new, self._revoke_timeout)

    async def _on_revoked(self, revoked: list[Any]) -> None:
        parts = [self._partitions[tp] for tp in revoked if tp in self._partitions]
        if not parts:
            return
        for p in parts:
            self._close_partition(p)
        await self._await_workers(parts, self._revoke_timeout)
        if self._on_revoke is not None:
            await self._call_user(self._on_revoke, [p.tp for p in parts], self._revoke_timeout)
        await self._wait_commit_task(self._commit_timeout)
        ok = await self._commit(parts, budget=self._commit_timeout)
        kind = "revoked" if ok else "lost"
        if not ok:
            log.warning(
                "could not commit revoked partitions %s: treating them as lost "
                "(their records are redelivered)",
                [p.tp for p in parts],
            )
        self._metrics.rebalances.labels(self._group, kind).inc()
        for p in parts:
            self._drop_partition(p)
        if not self._partitions:
            self._joined = False

    def _close_partition(self, p: _Partition) -> None:
        """Stop starting handlers for ``p``; queued records are dropped (they will be refetched)."""
        if p.closed:
            return
        p.closed = True
        self._inflight -= sum(len(batch) for batch in p.queue)
        p.queue.clear()
        p.wake.set()
        self._signal_capacity()

    def _drop_partition(self, p: _Partition) -> None:
        p.revoked = True
        if p.task is not None and not p.task.done():
            p.task.cancel()
        self._partitions.pop(p.kafka_tp, None)
        self._paused.discard(p.kafka_tp)
        self._metrics.remove_partition(p.tp.topic, self._group, p.tp.partition)

    async def _await_workers(self, parts: list[_Partition], budget: float) -> None:
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

    # ------------------------------------------------------------------ poll loop
    async def _poll_loop(self) -> None:
        consumer = self._consumer
        max_records = self._max_records
        next_commit = time.monotonic() + self._commit_interval
        next_metrics = 0.0
        stopping = self._stopping
        while not stopping.is_set():
            capacity = self._max_in_flight - self._inflight
            if capacity <= 0:
                capacity = await self._wait_capacity()
            self._update_pauses()
            timeout = _PAUSED_POLL_MS if self._paused else self._poll_timeout_ms
            try:
                batches = await consumer.getmany(
                    timeout_ms=timeout, max_records=max(1, min(max_records, capacity))
                )
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:
                if getattr(exc, "retriable", False) or isinstance(exc, _GENERATION_ERRORS):
                    log.warning("poll failed (%s: %s); continuing", type(exc).__name__, exc)
                    await asyncio.sleep(0.1)
                    continue
                raise
            now = time.monotonic()
            self._last_poll = now
            if batches:
                wall = time.time()
                for ktp, records in batches.items():
                    p = self._partitions.get(ktp)
                    if p is None or p.closed or not records:
                        continue
                    self._dispatch(p, records, wall)
            if now >= next_commit:
                next_commit = now + self._commit_interval
                self._start_commit()
            if now >= next_metrics:
                next_metrics = now + _METRICS_PERIOD
                self._update_lag()
                self._update_gauges()

    def _dispatch(self, p: _Partition, records: list[Any], wall: float) -> None:
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
        self._inflight += n
        tm = p.tm
        tm.consumed.inc(n)
        # Age of the batch's oldest record: one observation per fetched batch keeps it cheap.
        if records[0].timestamp > 0:
            tm.age.observe(max(0.0, wall - records[0].timestamp / 1000))
        p.wake.set()

    async def _wait_capacity(self) -> int:
        """Wait briefly for handlers to free in-flight slots; on a longer stall pause everything
        (getmany keeps being called, so the member stays in the group)."""
        low = max(1, self._max_in_flight // 2)
        if self._capacity is None:
            self._capacity = asyncio.Event()
        self._capacity.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._capacity.wait(), timeout=_CAPACITY_WAIT)
        capacity = self._max_in_flight - self._inflight
        self._global_pause = capacity <= 0 or (
            self._global_pause and self._max_in_flight - self._inflight < low
        )
        return max(1, capacity)

    def _signal_capacity(self) -> None:
        ev = self._capacity
        if ev is not None and not ev.is_set() and self._inflight <= self._max_in_flight // 2:
            ev.set()

    def _update_pauses(self) -> None:
        cap = self._max_incomplete
        total_cap = self._max_incomplete_total
        pause_all = self._global_pause and self._inflight >= self._max_in_flight
        if not pause_all:
            self._global_pause = False
        if total_cap is not None and not pause_all:
            total = sum(p.tracker.incomplete for p in self._partitions.values())
            pause_all = total >= total_cap
        desired = {
            ktp
            for ktp, p in self._partitions.items()
            if pause_all or p.backoff or p.tracker.incomplete >= cap
        }
        paused = self._paused
        if desired == paused:
            return
        consumer = self._consumer
        to_pause = desired - paused
        to_resume = paused - desired
        assigned = consumer.assignment()
        if to_pause:
            consumer.pause(*[tp for tp in to_pause if tp in assigned])
        if to_resume:
            consumer.resume(*[tp for tp in to_resume if tp in assigned])
        self._paused = desired
        self._metrics.paused_partitions.labels(self._group).set(len(desired))

    # ------------------------------------------------------------------ metrics, health
    def _update_lag(self) -> None:
        consumer = self._consumer
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
        self._lag_total = total

    def _update_gauges(self) -> None:
        group = self._group
        self._metrics.inflight.labels(group).set(max(0, self._inflight))
        self._metrics.incomplete.labels(group).set(
            sum(p.tracker.incomplete for p in self._partitions.values())
        )
        self._metrics.paused_partitions.labels(group).set(len(self._paused))

    # ------------------------------------------------------------------ commits
    def _start_commit(self) -> None:
        if self._commit_task is not None and not self._commit_task.done():
            return
        parts = [p for p in self._partitions.values() if not p.closed]
        if not any(p.tracker.to_commit() is not None for p in parts):
            return
        self._commit_task = asyncio.ensure_future(self._commit(parts, self._commit_timeout))

    async def _wait_commit_task(self, budget: float) -> None:
        task = self._commit_task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=budget)

    async def _commit(self, parts: list[_Partition], budget: float) -> bool:
        """Commit the committable position of ``parts``; False when the group lost them."""
        offsets: dict[Any, int] = {}
        for p in parts:
            pos = p.tracker.to_commit()
            if pos is not None:
                offsets[p.kafka_tp] = pos
        if not offsets or self._consumer is None:
            return True
        try:
            await asyncio.wait_for(self._consumer.commit(offsets), timeout=max(0.1, budget))
        except _GENERATION_ERRORS as exc:
            self._metrics.commit_failures.labels(self._group).inc()
            log.warning("offset commit rejected (%s): partitions lost", type(exc).__name__)
            return False
        except (TimeoutError, Exception) as exc:
            self._metrics.commit_failures.labels(self._group).inc()
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
        self._last_progress = time.monotonic()
        return True

    # ------------------------------------------------------------------ handling
    async def _worker(self, p: _Partition) -> None:
        """Decodes and handles one partition's batches, one record at a time, in offset order."""
        queue = p.queue
        handler = self._handler
        complete = p.tracker.complete
        tm = p.tm
        perf = time.perf_counter
        decode = self._decode
        # Handler durations are collected in plain lists and flushed per batch.
        success: list[float] = []
        deferred: list[float] = []
        try:
            while not p.closed:
                if not queue:
                    p.wake.clear()
                    await p.wake.wait()
                    continue
                records = queue.popleft()
                try:
                    for record in records:
                        if p.closed:  # revoked or stopping: the rest is refetched later
                            break  # type: ignore[unreachable]
                        # Decoded right before handling: events that die young never reach
                        # the cyclic GC's older generations (batch decoding costs ~50% more).
                        try:
                            event = decode(record.value, record.headers)
                        except Exception as error:  # an injected decoder may raise anything
                            self._trace_decode_failure(record, error)
                            await self._dead_letter_inline(
                                p, record, error, "decode_error", 1, time.time()
                            )
                            continue
                        ctx = RecordContext(p, record, event, 1, 0.0)
                        start = perf()
                        try:
                            await handler(event, ctx)
                        except Exception as exc:
                            await self._after_failure_inline(p, record, event, ctx, exc, start)
                        else:
                            if ctx._completion is None:
                                complete(record.offset)
                                success.append(perf() - start)
                            else:
                                deferred.append(perf() - start)
                finally:
                    self._inflight -= len(records)
                    if self._capacity is not None:
                        self._signal_capacity()
                    if success:
                        observe_many(tm.success, success)
                        success.clear()
                    if deferred:
                        observe_many(tm.deferred, deferred)
                        deferred.clear()
        finally:
            observe_many(tm.success, success)
            observe_many(tm.deferred, deferred)

    def _trace_decode_failure(self, record: Any, error: Exception) -> None:
        if self._tracer is not None:  # (opentelemetry is imported only when tracing is on)
            from coffeebuddy.infra.kafka.consumer._tracing import decode_failed

            decode_failed(self._tracer, self._group, record, error)

    async def _after_failure_inline(
        self,
        p: _Partition,
        record: Any,
        event: Any,
        ctx: RecordContext,
        exc: BaseException,
        start: float,
    ) -> None:
        """Retry in place (partition paused, later records wait) or dead-letter."""
        first_seen = time.time() - (time.perf_counter() - start)
        attempt = 1
        while True:
            elapsed = time.perf_counter() - start
            p.tm.error(exc)
            retry = self._classify(exc) is ErrorClass.RETRYABLE
            if retry and self._retry.should_retry(attempt):
                p.tm.retry.observe(elapsed)
                if not await self._backoff(p, self._retry.backoff(attempt)):
                    return  # revoked or stopping: left incomplete, redelivered later
                attempt += 1
                ctx = RecordContext(p, record, event, attempt, first_seen)
                start = time.perf_counter()
                try:
                    await self._handler(event, ctx)
                except Exception as again:
                    exc = again
                    continue
                if ctx._completion is None:
                    p.tracker.complete(record.offset)
                    p.tm.success.observe(time.perf_counter() - start)
                else:
                    p.tm.deferred.observe(time.perf_counter() - start)
                return
            p.tm.dead_letter.observe(elapsed)
            reason = "retries_exhausted" if retry else "non_retryable"
            await self._dead_letter_inline(p, record, exc, reason, attempt, first_seen)
            return

    async def _backoff(self, p: _Partition, delay: float) -> bool:
        """Pause ``p`` for ``delay`` seconds without blocking the poll loop; False if closed."""
        p.backoff = True
        try:
            deadline = time.monotonic() + delay
            while not p.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                p.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.wake.wait(), timeout=remaining)
            return False
        finally:
            p.backoff = False

    async def _dead_letter_inline(
        self,
        p: _Partition,
        record: Any,
        error: BaseException,
        reason: str,
        attempts: int,
        first_seen: float,
    ) -> None:
        """Write the record to the dead-letter topic (retrying the write), then complete it."""
        if reason == "decode_error":
            p.tm.error(error)
        delay_attempt = 1
        while not p.closed:
            if await self._send_dead_letter(p, record, error, reason, attempts, first_seen):
                p.tracker.complete(record.offset)
                return
            if not await self._backoff(p, self._retry.backoff(delay_attempt)):
                return
            delay_attempt += 1

    async def _send_dead_letter(
        self,
        p: _Partition,
        record: Any,
        error: BaseException,
        reason: str,
        attempts: int,
        first_seen: float,
    ) -> bool:
        producer = self._producer
        if producer is None:
            return False
        message = str(error)
        if len(message) > _MAX_ERROR_MESSAGE:
            message = message[:_MAX_ERROR_MESSAGE] + "..."
        key = record.key
        headers: list[tuple[str, bytes]] = [
            (DLQ_ORIGIN_TOPIC, record.topic.encode()),
            (DLQ_ORIGIN_PARTITION, str(record.partition).encode()),
            (DLQ_ORIGIN_OFFSET, str(record.offset).encode()),
            (DLQ_ORIGIN_KEY, key if key is not None else b""),
            (DLQ_ERROR_TYPE, type(error).__name__.encode()),
            (DLQ_ERROR_MESSAGE, message.encode("utf-8", "replace")),
            (DLQ_REASON, reason.encode()),
            (DLQ_ATTEMPTS, str(attempts).encode()),
            (DLQ_FIRST_SEEN, _rfc3339(first_seen).encode()),
        ]
        headers.extend(
            (name, value) for name, value in (record.headers or ()) if name not in DLQ_HEADERS
        )
        try:
            await producer.send_raw(
                self._dlq_topics[p.config.name],
                record.value if record.value is not None else b"",
                key=key,
                headers=headers,
            )
        except Exception as exc:
            log.error(
                "dead-letter write for %s[%d]@%d failed (%s); retrying",
                record.topic,
                record.partition,
                record.offset,
                type(exc).__name__,
            )
            return False
        self._metrics.dead_lettered.labels(p.config.name, self._group, reason).inc()
        log.warning(
            "record %s[%d]@%d dead-lettered (%s: %s)",
            record.topic,
            record.partition,
            record.offset,
            reason,
            type(error).__name__,
        )
        return True

    # ------------------------------------------------------------------ deferred completion
    def _complete_deferred(self, p: _Partition, offset: int) -> None:
        p.tracker.complete(offset)

    def _fail_deferred(
        self,
        p: _Partition,
        record: Any,
        event: Any,
        attempt: int,
        first_seen: float,
        exc: BaseException,
    ) -> None:
        if not first_seen:
            first_seen = time.time()
        task = asyncio.ensure_future(
            self._retry_detached(p, record, event, attempt, first_seen, exc)
        )
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def _retry_detached(
        self,
        p: _Partition,
        record: Any,
        event: Any,
        attempt: int,
        first_seen: float,
        exc: BaseException,
    ) -> None:
        """Error path of a deferred record: it is already out of order, so no partition pause."""
        while not p.revoked and not self._stopping.is_set():
            p.tm.error(exc)
            retry = self._classify(exc) is ErrorClass.RETRYABLE
            if not (retry and self._retry.should_retry(attempt)):
                reason = "retries_exhausted" if retry else "non_retryable"
                delay_attempt = 1
                while not p.revoked and not self._stopping.is_set():
                    if await self._send_dead_letter(p, record, exc, reason, attempt, first_seen):
                        p.tracker.complete(record.offset)
                        return
                    await asyncio.sleep(self._retry.backoff(delay_attempt))
                    delay_attempt += 1
                return
            await asyncio.sleep(self._retry.backoff(attempt))
            if p.revoked or self._stopping.is_set():
                return
            attempt += 1
            ctx = RecordContext(p, record, event, attempt, first_seen)
            start = time.perf_counter()
            try:
                await self._handler(event, ctx)
            except Exception as again:
                p.tm.retry.observe(time.perf_counter() - start)
                exc = again
                continue
            if ctx._completion is None:
                p.tracker.complete(record.offset)
                p.tm.success.observe(time.perf_counter() - start)
            else:
                p.tm.deferred.observe(time.perf_counter() - start)
            return


def _rfc3339(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


__all__ = [
    "DLQ_ATTEMPTS",
    "DLQ_ERROR_MESSAGE",
    "DLQ_ERROR_TYPE",
    "DLQ_FIRST_SEEN",
    "DLQ_HEADERS",
    "DLQ_ORIGIN_KEY",
    "DLQ_ORIGIN_OFFSET",
    "DLQ_ORIGIN_PARTITION",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_REASON",
    "Completion",
    "Handler",
    "KafkaConsumerHarness",
    "PartitionsCallback",
]
