"""The delivery log: a compacted topic keyed by reminder_id, read fully at start and then tailed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from coffeebuddy.infra.kafka.config import topic_partitions
from coffeebuddy.infra.kafka.models import (
    EventDecodeError,
    ReminderDelivery,
    ReminderDeliveryData,
    decode_event,
)

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.producer import KafkaEventProducer
    from coffeebuddy.infra.kafka.topics import TopicConfig

__all__ = ["CLAIMED", "DROPPED", "SENT", "DeliveryLog", "LogState"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker.delivery_log")

CLAIMED = "claimed"
SENT = "sent"
DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class LogState:
    """What the log says about one reminder (the latest record for its key)."""

    status: str
    claimed_at: float | None
    seen_at: float


class DeliveryLog:
    """Reader and writer of REMINDER_DELIVERIES_TOPIC.

    A group-less consumer is assigned every partition, reads to the end offsets found at start
    (`caught_up`), then tails so claims and deliveries of other workers become visible.
    `barrier()` waits until everything written before the call has been read. A tombstone
    (null value) releases a claim: the reminder has no state again.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: TopicConfig,
        producer: KafkaEventProducer,
        *,
        source: str,
        clock: Callable[[], float],
        retention: float,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._producer = producer
        self._source = source
        self._clock = clock
        self._retention = retention
        self._states: dict[str, LogState] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._waiters: list[tuple[dict[TopicPartition, int], asyncio.Future[None]]] = []
        self._caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self._queue: list[ReminderDeliveryData] = []
        self._flusher: asyncio.Task[None] | None = None
        self.error: str | None = None

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def __len__(self) -> int:
        return len(self._states)

    async def start(self) -> None:
        """Assign all partitions, seek to the beginning and start tailing (does not wait)."""
        kwargs: dict[str, Any] = self._settings.consumer_kwargs(None)
        # short fetch wait: a barrier waits for the tail to see the latest records
        kwargs.update(enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=20)
        kwargs.pop("group_id", None)
        kwargs.pop("group_instance_id", None)
        consumer = AIOKafkaConsumer(**kwargs)
        await consumer.start()
        try:
            parts = await topic_partitions(consumer, self._topic.name)
            if not parts:
                raise RuntimeError(
                    f"delivery log topic {self._topic.name!r} has no partitions on the broker "
                    "(create it first, e.g. with the provisioning CLI)"
                )
            self._partitions = [TopicPartition(self._topic.name, p) for p in sorted(parts)]
            consumer.assign(self._partitions)
            await consumer.seek_to_beginning(*self._partitions)
            ends = await consumer.end_offsets(self._partitions)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        for tp in self._partitions:
            self._positions[tp] = -1
        self._waiters.append((dict(ends), asyncio.get_running_loop().create_future()))
        initial = self._waiters[-1][1]
        initial.add_done_callback(lambda _f: self._caught_up.set())
        self._task = asyncio.create_task(self._tail(), name="reminder-delivery-log")

    async def stop(self) -> None:
        await self.flush()
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await consumer.stop()
            except asyncio.CancelledError:
                # aiokafka's fetcher re-raises the cancellation of its own fetch task on close;
                # only swallow it when nobody is cancelling us
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    async def wait_caught_up(self, limit: float) -> bool:
        """True once the log was read to the end offsets seen at start (waits up to `limit` s)."""
        if self._caught_up.is_set():
            return True
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await self._caught_up.wait()
        return self._caught_up.is_set()

    async def barrier(self, limit: float) -> bool:
        """Wait until every record written before this call has been read; False on timeout."""
        consumer = self._consumer
        if consumer is None:
            return False
        try:
            async with asyncio.timeout(limit):
                ends = await consumer.end_offsets(self._partitions)
        except Exception as exc:  # broker unreachable: the caller decides not to send
            log.warning("delivery log end offsets failed: %s", type(exc).__name__)
            return False
        if self._reached(ends):
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((dict(ends), fut))
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(fut)
        except TimeoutError:
            return False
        return True

    def get(self, reminder_id: str) -> LogState | None:
        return self._states.get(reminder_id)

    async def write(self, data: ReminderDeliveryData) -> None:
        """Publish one delivery record and apply it locally at once (read-your-writes)."""
        await self.write_many([data])

    async def write_many(self, records: list[ReminderDeliveryData]) -> None:
        """Publish records in one batch (all or nothing for the caller), then apply them."""
        if not records:
            return
        events = [ReminderDelivery.create(data=d, source=self._source) for d in records]
        await self._producer.publish_many(self._topic, events)
        for data in records:
            self._apply(data)

    async def release(self, reminder_id: str) -> None:
        """Write a tombstone for `reminder_id` (its claim is void: nothing was posted), then
        forget the claim locally. Raises if the write fails (the claim then stays)."""
        await self._producer.send_raw(self._topic, None, key=reminder_id.encode())
        self._forget(reminder_id)

    def enqueue(self, data: ReminderDeliveryData) -> None:
        """Apply now; publish in the background with other queued records (sent / dropped
        notes, whose loss the claim already covers). Retried a few times, then logged."""
        self._apply(data)
        self._queue.append(data)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="reminder-log-writer")

    async def flush(self, limit: float = 10.0) -> None:
        """Wait (up to `limit` s) until the queued records were published."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher], timeout=limit)

    async def _flush_loop(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            for attempt in range(1, 4):
                try:
                    events = [ReminderDelivery.create(data=d, source=self._source) for d in batch]
                    await self._producer.publish_many(self._topic, events)
                    break
                except Exception as exc:
                    log.warning(
                        "delivery log write failed (%s, attempt %d, %d records)",
                        type(exc).__name__,
                        attempt,
                        len(batch),
                    )
                    await asyncio.sleep(0.2 * attempt)

    def remember(self, data: ReminderDeliveryData) -> None:
        """Apply a record locally before (or without) its write completing."""
        self._apply(data)

    def _apply(self, data: ReminderDeliveryData) -> None:
        claimed_at = data.claimed_at.timestamp() if data.claimed_at is not None else None
        prev = self._states.get(data.reminder_id)
        status = str(data.status)
        if prev is not None and prev.status in (SENT, DROPPED) and status == CLAIMED:
            return  # a late claim never hides a final state
        if prev is not None and prev.status == SENT and status == DROPPED:
            return
        self._states[data.reminder_id] = LogState(status, claimed_at, self._clock())

    def _forget(self, reminder_id: str) -> None:
        """Apply a tombstone: a released claim means no state. A tombstone only ever releases a
        claim, so like a late claim it never hides a final state (sent / dropped)."""
        prev = self._states.get(reminder_id)
        if prev is not None and prev.status == CLAIMED:
            del self._states[reminder_id]

    async def _tail(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("delivery log read failed: %s", self.error)
                await asyncio.sleep(0.5)
                continue
            self.error = None
            for records in batches.values():
                for rec in records:
                    if rec.value is None:
                        if rec.key is not None:
                            self._forget(rec.key.decode(errors="replace"))
                        continue
                    try:
                        event = decode_event(rec.value)
                    except EventDecodeError as exc:
                        log.warning(
                            "undecodable delivery log record skipped",
                            extra={
                                "partition": rec.partition,
                                "offset": rec.offset,
                                "error": str(exc),
                            },
                        )
                        continue
                    if isinstance(event, ReminderDelivery):
                        self._apply(event.data)
            for tp in self._partitions:
                self._positions[tp] = await consumer.position(tp)
            self._release_waiters()
            now = self._clock()
            if now - self._last_prune > 60.0:
                self._last_prune = now
                self._prune(now)

    def _reached(self, targets: dict[TopicPartition, int]) -> bool:
        return all(self._positions.get(tp, -1) >= off for tp, off in targets.items())

    def _release_waiters(self) -> None:
        keep = []
        for targets, fut in self._waiters:
            if fut.done():
                continue
            if self._reached(targets):
                fut.set_result(None)
            else:
                keep.append((targets, fut))
        self._waiters = keep

    def _prune(self, now: float) -> None:
        limit = now - self._retention
        for rid in [
            r for r, s in self._states.items() if s.seen_at < limit and s.status != CLAIMED
        ]:
            del self._states[rid]


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
