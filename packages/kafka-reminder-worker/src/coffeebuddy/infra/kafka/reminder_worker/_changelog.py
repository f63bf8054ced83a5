"""The schedule changelog on Kafka: a writer that never drops a record and a supervised reader
that restores the owned partitions to their end offsets, then tails them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from coffeebuddy.infra.kafka.consumer import Backoff

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.producer import KafkaEventProducer
    from coffeebuddy.infra.kafka.reminder_worker._supervisor import Supervisor
    from coffeebuddy.infra.kafka.topics import TopicConfig

__all__ = ["Changelog", "ConsumerFactory", "KafkaChangelog", "RecordSink"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker.changelog")

RecordSink = Callable[[int, int, bytes | None, bytes | None, bool], None]
"""(partition, offset, key, value, restoring) for every record read; it never raises."""
ConsumerFactory = Callable[[dict[str, Any]], Any]
"""Builds the reader's consumer from its keyword arguments (tests pass one that fails)."""

_BATCH = 2000
_WRITE_BACKOFF = Backoff(0.05, 2.0)


class Changelog(Protocol):
    """What the worker needs from its changelog (Kafka here, memory in unit tests)."""

    @property
    def error(self) -> str | None:
        """Why writing or reading is failing right now (None: healthy)."""

    @property
    def unflushed(self) -> int:
        """State records written but not acknowledged yet."""

    async def start(self, sink: RecordSink, supervisor: Supervisor) -> None:
        """Start reading and writing (as tasks of `supervisor`)."""

    async def stop(self) -> None: ...

    def write(self, partition: int, key: str, value: bytes | None) -> asyncio.Future[int]:
        """Queue a record for `partition`; the future resolves with its offset once acked."""

    async def restore(self, partitions: set[int]) -> None:
        """Start reading `partitions` from the beginning; return once read to the end offsets
        seen now (every record before that went to the sink with restoring=True)."""

    def release(self, partitions: set[int]) -> None:
        """Stop reading `partitions`."""

    async def read_past(self, partition: int, offset: int, limit: float) -> bool:
        """Wait until the reader is past `offset` of `partition`; False after `limit` s."""


class _Write(NamedTuple):
    partition: int
    key: bytes
    value: bytes | None
    future: asyncio.Future[int]


class KafkaChangelog:
    """Writer: batches through the shared producer, in order, retrying a failed batch with
    backoff until acknowledged (never dropped; `unflushed` counts what waits). Reader: one
    group-less consumer on the owned partitions. Both run under the worker's supervisor; `error`
    says why either is failing."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: TopicConfig,
        producer: KafkaEventProducer,
        *,
        consumer_factory: ConsumerFactory | None = None,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._producer = producer
        self._factory = consumer_factory or (lambda kwargs: AIOKafkaConsumer(**kwargs))
        self._queue: list[_Write] = []
        self._wake = asyncio.Event()
        self._flushed = asyncio.Event()
        self._supervisor: Supervisor | None = None
        self._sink: RecordSink | None = None
        self._owned: set[int] = set()
        self._positions: dict[int, int] = {}
        self._restoring: dict[int, tuple[int | None, asyncio.Future[None]]] = {}
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()
        self.write_error: str | None = None
        self.read_error: str | None = None
        self._in_flight = 0

    @property
    def error(self) -> str | None:
        if self.write_error is not None:
            return f"changelog writer: {self.write_error}"
        if self.read_error is not None:
            return f"changelog reader: {self.read_error}"
        return None

    @property
    def unflushed(self) -> int:
        return len(self._queue) + self._in_flight

    async def start(self, sink: RecordSink, supervisor: Supervisor) -> None:
        self._sink = sink
        self._supervisor = supervisor
        supervisor.start("changelog-writer", self._write_loop)
        supervisor.start("changelog-reader", self._read_failing)

    async def stop(self, flush_timeout: float = 10.0) -> None:
        """Flush what is queued (bounded); the supervisor stops the tasks, then this fails
        what is left."""
        if self._supervisor is not None and self.unflushed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_timeout):
                    await self._flushed.wait()
        for w in self._queue:
            w.future.cancel()
        self._queue.clear()
        for _, fut in self._restoring.values():
            fut.cancel()
        for _, _, fut in self._waiters:
            fut.cancel()

    def write(self, partition: int, key: str, value: bytes | None) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(partition, key.encode(), value, fut))
        self._flushed.clear()
        self._wake.set()
        return fut

    async def _write_loop(self) -> None:
        failures = 0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
            self._in_flight = len(batch)
            records = [(w.key, w.value, w.partition) for w in batch]
            while True:
                try:
                    metas = await self._producer.send_raw_many(self._topic, records)
                    break
                except asyncio.CancelledError:
                    self._queue[:0] = batch
                    self._in_flight = 0
                    raise
                except Exception as exc:
                    failures += 1
                    self.write_error = f"{type(exc).__name__}: {exc}"[:300]
                    delay = _WRITE_BACKOFF.delay(failures)
                    log.warning(
                        "changelog write of %d records failed (%s, attempt %d); retrying in "
                        "%.2f s (kept, never dropped)",
                        len(batch),
                        type(exc).__name__,
                        failures,
                        delay,
                        extra={"error_class": type(exc).__name__, "unflushed": self.unflushed},
                    )
                    await asyncio.sleep(delay)
            failures = 0
            self.write_error = None
            self._in_flight = 0
            if self._supervisor is not None:
                self._supervisor.ok("changelog-writer")
            if not self._queue:
                self._flushed.set()
            for w, md in zip(batch, metas, strict=True):
                if not w.future.done():
                    w.future.set_result(md.offset)

    async def restore(self, partitions: set[int]) -> None:
        loop = asyncio.get_running_loop()
        futs = []
        for p in partitions:
            if p in self._owned and p not in self._restoring:
                continue
            if p not in self._restoring:
                self._restoring[p] = (None, loop.create_future())
            self._owned.add(p)
            futs.append(self._restoring[p][1])
        self._changed.set()
        if futs:
            await asyncio.gather(*(asyncio.shield(f) for f in futs))

    def release(self, partitions: set[int]) -> None:
        for p in partitions:
            self._owned.discard(p)
            self._positions.pop(p, None)
            entry = self._restoring.pop(p, None)
            if entry is not None:
                entry[1].cancel()
        self._changed.set()

    async def read_past(self, partition: int, offset: int, limit: float) -> bool:
        if self._positions.get(partition, -1) > offset and partition not in self._restoring:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((partition, offset, fut))
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(fut)
        except TimeoutError:
            return False
        return True

    async def _read_failing(self) -> None:
        """The reader; a failure is named in `error` until it reads again."""
        try:
            await self._read()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.read_error = f"{type(exc).__name__}: {exc}"[:300]
            raise

    async def _read(self) -> None:
        kwargs = self._settings.consumer_kwargs(None)  # group-less, auto-commit off
        kwargs.update(auto_offset_reset="earliest", fetch_max_wait_ms=20)
        consumer = self._factory(kwargs)
        await consumer.start()
        name = self._topic.name
        assigned: set[int] = set()
        try:
            self._changed.set()
            while True:
                if self._changed.is_set():
                    self._changed.clear()
                    await self._reassign(consumer)
                    assigned = set(self._owned)
                if not assigned:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await self._changed.wait()
                    continue
                batches = await consumer.getmany(timeout_ms=100, max_records=5000)
                if self.read_error is not None and self._supervisor is not None:
                    self._supervisor.ok("changelog-reader")
                self.read_error = None
                sink = self._sink
                for tp, records in batches.items():
                    p = tp.partition
                    if p not in self._owned:
                        continue
                    restoring = p in self._restoring
                    if sink is not None:
                        for rec in records:
                            sink(p, rec.offset, rec.key, rec.value, restoring)
                for p in assigned & self._owned:
                    self._positions[p] = await consumer.position(TopicPartition(name, p))
                self._release_waiters()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _reassign(self, consumer: Any) -> None:
        tps = [TopicPartition(self._topic.name, p) for p in sorted(self._owned)]
        consumer.assign(tps)
        fresh = [
            tp
            for tp in tps
            if tp.partition in self._restoring or tp.partition not in self._positions
        ]
        for tp in tps:
            if tp not in fresh:
                consumer.seek(tp, self._positions[tp.partition])
        if fresh:
            await consumer.seek_to_beginning(*fresh)
            ends = await consumer.end_offsets(fresh)
            for tp in fresh:
                p = tp.partition
                # a restarted reader re-reads its old partitions: restoring again
                _, fut = self._restoring.get(p) or (
                    None,
                    asyncio.get_running_loop().create_future(),
                )
                self._restoring[p] = (int(ends[tp]), fut)
                self._positions[p] = await consumer.position(tp)
        self._release_waiters()

    def _release_waiters(self) -> None:
        for p, (target, fut) in list(self._restoring.items()):
            if target is not None and self._positions.get(p, -1) >= target:
                del self._restoring[p]
                if not fut.done():
                    fut.set_result(None)
        keep = []
        for p, offset, fut in self._waiters:
            if fut.done():
                continue
            if p not in self._owned:
                fut.cancel()
            elif self._positions.get(p, -1) > offset and p not in self._restoring:
                fut.set_result(None)
            else:
                keep.append((p, offset, fut))
        self._waiters = keep
