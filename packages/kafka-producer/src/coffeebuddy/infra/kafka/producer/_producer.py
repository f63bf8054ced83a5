"""`KafkaEventProducer`: typed CloudEvents publishing, metrics, bounded close, self-repair.

Past 400 lines for one reason: it is a single class whose publish paths share two send paths (record
by record; whole batches, built in `_batches`, for known partitions and for `publish_many`'s keyed
records) and their state (sends in flight, `_inflight`; metrics; fatal-error repair); splitting the
class would expose that state across modules. What a send's outcome counts is in `_outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from coffeebuddy.infra.kafka.config import KafkaSettings, abandon_producer, check_connection
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import ContentMode, check_partitionkey, encode_event
from coffeebuddy.infra.kafka.producer._batches import (
    BatchingProducer,
    PartitionLookup,
    check_record_sizes,
    partition_by_key,
    submit_batches,
)
from coffeebuddy.infra.kafka.producer._errors import (
    FATAL_PRODUCER_ERRORS,
    EventNotAllowedError,
    ProducerClosedError,
    PublishBatchError,
)
from coffeebuddy.infra.kafka.producer._inflight import InFlight
from coffeebuddy.infra.kafka.producer._outcome import TopicMetrics, tally
from coffeebuddy.infra.kafka.producer._records import (
    CONTENT_TYPE_HEADER,
    Headers,
    RecordMetadata,
    encode_for_topic,
    header_list,
    require_topic,
    validate_traceparent,
)
from coffeebuddy.infra.kafka.producer._seam import ProducerFactory, ProducerLike, default_factory
from coffeebuddy.infra.kafka.producer._tracing import (
    producer_span,
    record_send,
    resolve_tracer,
    traced_headers,
)
from coffeebuddy.infra.kafka.topics import TopicConfig

log = logging.getLogger("coffeebuddy.infra.kafka.producer")


@dataclass(frozen=True)
class CloseReport:
    """Outcome of `close()`: records accepted but not acknowledged by the deadline."""

    undelivered: int


class KafkaEventProducer:
    """Publishes CloudEvents to catalog topics; async context manager.

    Settings default to `KafkaSettings.from_env()`. Every outcome is counted; `close()` flushes
    within `close_timeout` seconds and reports what was not delivered. A fatal producer error
    (fenced, out-of-order sequence, unknown producer id) replaces the underlying aiokafka producer,
    so the next publish works instead of failing forever.
    """

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        metrics: KafkaMetrics | None = None,
        close_timeout: float = 10.0,
        producer_factory: ProducerFactory | None = None,
        tracing: bool | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self._settings = settings if settings is not None else KafkaSettings.from_env()
        # None when tracing is off: publish then tests this once and does no tracing work
        self._tracer = resolve_tracer(tracing, tracer_provider, "coffeebuddy.infra.kafka.producer")
        self._metrics = metrics if metrics is not None else KafkaMetrics()
        self._close_timeout = close_timeout
        self._factory: ProducerFactory = producer_factory or default_factory
        self._producer: ProducerLike | None = None
        self._generation = 0
        self._recreate_lock = asyncio.Lock()
        self._pending = InFlight()
        self._topic_metrics: dict[str, TopicMetrics] = {}
        self._closed = False
        self.recreated = 0
        """How many times a fatal error made the wrapper replace the aiokafka producer."""

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def settings(self) -> KafkaSettings:
        return self._settings

    @property
    def tracing(self) -> bool:
        """True when publishes create OpenTelemetry PRODUCER spans."""
        return self._tracer is not None

    @property
    def outstanding(self) -> int:
        """Records sent and not yet acknowledged (or failed)."""
        return self._pending.unacknowledged()

    @property
    def started(self) -> bool:
        return self._producer is not None and not self._closed

    async def start(self) -> None:
        """Connect; on failure `check_connection` explains why (TLS trust, unreachable host)."""
        if self._producer is not None:
            return
        self._closed = False
        self._producer = await self._new_producer()

    async def _new_producer(self) -> ProducerLike:
        producer = self._factory(self._settings.producer_kwargs())
        try:
            await producer.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=2.0)
            await check_connection(self._settings, timeout=5.0)
            raise ConnectionError(f"Kafka producer failed to start: {exc}") from exc
        return producer

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, timeout: float | None = None) -> CloseReport:  # noqa: ASYNC109
        """Flush within `timeout` (default `close_timeout`) seconds, stop, and report records
        that were not delivered. Never waits much longer than the timeout, even with the
        broker gone."""
        producer = self._producer
        if producer is None or self._closed:
            return CloseReport(undelivered=0)
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._close_timeout if timeout is None else timeout)
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(producer.flush(), timeout=max(0.0, deadline - loop.time()))
        undelivered = self._pending.undelivered()
        await self._stop_bounded(producer, max(0.5, deadline - loop.time()))
        self._pending.fail_all(ProducerClosedError("producer closed before delivery"))
        self._producer = None
        if undelivered:
            log.warning("Kafka producer closed with %d undelivered record(s)", undelivered)
        return CloseReport(undelivered=undelivered)

    @staticmethod
    async def _stop_bounded(producer: ProducerLike, budget: float) -> None:
        task = asyncio.ensure_future(producer.stop())
        done, _ = await asyncio.wait({task}, timeout=budget)
        if done:
            # aiokafka's stop() can end in CancelledError (it awaits tasks it cancelled itself).
            with contextlib.suppress(Exception, asyncio.CancelledError):
                task.result()
            return
        task.cancel()
        await abandon_producer(producer, limit=1.0)

    # -- publishing ----------------------------------------------------------------------
    def _tm(self, topic: str) -> TopicMetrics:
        tm = self._topic_metrics.get(topic)
        if tm is None:
            tm = self._topic_metrics[topic] = TopicMetrics(self._metrics, topic)
        return tm

    def _live(self) -> ProducerLike:
        if self._producer is None or self._closed:
            raise ProducerClosedError(
                "KafkaEventProducer is not started (use 'async with' or await start())"
            )
        return self._producer

    async def publish(
        self,
        topic: TopicConfig,
        event: Any,
        *,
        headers: Headers | None = None,
        traceparent: str | None = None,
        content_mode: ContentMode | None = None,
    ) -> RecordMetadata:
        """Encode and send one event; waits for the broker's acknowledgement.

        `content_mode` (default: the topic's, structured unless the catalog says binary)
        picks the CloudEvents content mode. With tracing on, a PRODUCER span is the parent of
        the record's `traceparent` header (a given `traceparent` becomes the span's parent).
        """
        topic = require_topic(topic)
        if traceparent is not None:
            validate_traceparent(traceparent)
        key, value, hdrs = encode_for_topic(topic, event, content_mode or topic.content_mode)
        if self._tracer is not None:
            span = producer_span(self._tracer, topic.name, event, key, traceparent)
            hdrs = traced_headers(hdrs, span, header_list(headers))
            try:
                md = await self._send_one(topic.name, value, key, hdrs)
            except BaseException as exc:
                record_send(span, exc)
                raise
            record_send(span, md)
            return md
        if traceparent is not None:
            hdrs.append(("traceparent", traceparent.encode()))
        hdrs.extend(header_list(headers))
        return await self._send_one(topic.name, value, key, hdrs)

    async def publish_many(
        self,
        topic: TopicConfig,
        events: Iterable[Any],
        *,
        headers: Headers | None = None,
        content_mode: ContentMode | None = None,
    ) -> list[RecordMetadata]:
        """Send all events (validated and encoded first: nothing is sent if one is invalid),
        then wait for all acknowledgements. Order per key is kept. With tracing on, each
        record gets its own PRODUCER span."""
        topic = require_topic(topic)
        mode = content_mode or topic.content_mode
        if mode != "structured" or self._tracer is not None:
            return await self._publish_each(topic, list(events), header_list(headers), mode)
        hdrs = [CONTENT_TYPE_HEADER, *header_list(headers)]
        key_field = topic.key_field
        encoded: list[tuple[bytes, bytes]] = []
        types: set[str] = set()
        try:
            for e in events:  # tight loop: the type check runs once per distinct type below
                types.add(e.type)
                key = str(getattr(e.data, key_field)).encode()
                if getattr(e, "__pydantic_extra__", None):  # a partitionkey must equal the key
                    check_partitionkey(e, key)
                encoded.append((key, encode_event(e)))
        except AttributeError:
            encode_for_topic(topic, e, mode)  # raises the precise error for the offending event
            raise
        for event_type in types:
            if not topic.allows(str(event_type)):
                raise EventNotAllowedError(topic.name, str(event_type), topic.event_types)
        if not encoded:
            return []
        producer = self._live()
        if isinstance(producer, BatchingProducer) and isinstance(producer, PartitionLookup):
            check_record_sizes(topic.name, encoded, hdrs, self._settings.max_request_size)
            generation = self._generation
            try:
                keyed = await partition_by_key(producer, topic.name, encoded)
            except BaseException as exc:  # no metadata: counted as `send` failing would be
                self._tm(topic.name).error.inc(len(encoded))
                await self._on_error(exc, generation)
                raise
            return await self._send_partitioned(producer, topic.name, keyed, hdrs)
        return await self._send_batch(topic.name, encoded, hdrs)

    async def _publish_each(
        self,
        topic: TopicConfig,
        events: list[Any],
        caller: list[tuple[str, bytes]],
        mode: ContentMode,
    ) -> list[RecordMetadata]:
        """publish_many with per-record headers (binary mode, or a span per record)."""
        encoded = [encode_for_topic(topic, e, mode) for e in events]
        if not encoded:
            return []
        tracer = self._tracer
        spans: list[Any] = []
        per_record: list[list[tuple[str, bytes]]] = []
        for event, (key, _, hdrs) in zip(events, encoded, strict=True):
            if tracer is not None:
                span = producer_span(tracer, topic.name, event, key, None)
                spans.append(span)
                per_record.append(traced_headers(hdrs, span, caller))
            else:
                per_record.append([*hdrs, *caller])
        pairs = [(key, value) for key, value, _ in encoded]
        try:
            return await self._send_batch(topic.name, pairs, [], per_record, spans)
        except BaseException as exc:
            for span in spans:  # _send_batch clears the list once it has ended the spans
                record_send(span, exc)
            raise

    async def send_raw(
        self,
        topic: TopicConfig,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> RecordMetadata:
        """Send pre-encoded bytes (dead-letter path, DLQ replay) or, with `value=None`, a
        tombstone on a compacted topic; no event-type check. `partition` pins the record to
        one partition (a changelog co-partitioned with its input); None lets the key decide."""
        topic = require_topic(topic)
        return await self._send_one(topic.name, value, key, header_list(headers), partition)

    async def send_raw_many(
        self,
        topic: TopicConfig,
        records: Sequence[tuple[bytes | None, bytes | None, int | None]],
        *,
        headers: Headers | None = None,
    ) -> list[RecordMetadata]:
        """Send pre-encoded `(key, value, partition)` records (value None: tombstone) in one
        batch and wait for every acknowledgement; raises `PublishBatchError` if any failed."""
        topic = require_topic(topic)
        if not records:
            return []
        hdrs = header_list(headers)
        partitions = [part for _, _, part in records]
        producer = self._live()
        if not hdrs and isinstance(producer, BatchingProducer):
            if None not in partitions:
                # every partition is known (checked above; mypy cannot narrow the tuples)
                return await self._send_partitioned(producer, topic.name, records)  # type: ignore[arg-type]
            keyed = [(k, v) for k, v, p in records if p is None and k is not None and v is not None]
            if len(keyed) == len(records) and isinstance(producer, PartitionLookup):
                # keyed records, partition by key: as whole batches, where send would put them
                generation = self._generation
                try:
                    placed = await partition_by_key(producer, topic.name, keyed)
                except BaseException as exc:
                    self._tm(topic.name).error.inc(len(records))
                    await self._on_error(exc, generation)
                    raise
                return await self._send_partitioned(producer, topic.name, placed)
        return await self._send_batch(
            topic.name,
            [(key, value) for key, value, _ in records],
            hdrs,
            partitions=partitions,
        )

    # -- internals -------------------------------------------------------------------------
    async def _send_one(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> RecordMetadata:
        producer = self._live()
        generation = self._generation
        tm = self._tm(topic)
        start = time.perf_counter()
        try:
            fut = await producer.send(
                topic, value=value, key=key, headers=headers, partition=partition
            )
            future = asyncio.ensure_future(fut)
            self._pending.add((future,))
            try:
                md = await future
            finally:
                self._pending.forget((future,))
        except BaseException as exc:
            tm.error.inc()
            await self._on_error(exc, generation)
            raise
        tm.duration.observe(time.perf_counter() - start)
        tm.success.inc()
        if value:
            tm.bytes.inc(len(value))
        return RecordMetadata(md.topic, md.partition, md.offset)

    async def _send_batch(
        self,
        topic: str,
        encoded: Sequence[tuple[bytes | None, bytes | None]],
        headers: list[tuple[str, bytes]],
        per_record: list[list[tuple[str, bytes]]] | None = None,
        spans: list[Any] | None = None,
        partitions: Sequence[int | None] | None = None,
    ) -> list[RecordMetadata]:
        producer = self._live()
        generation = self._generation
        tm = self._tm(topic)
        start = time.perf_counter()
        futures: list[asyncio.Future[Any]] = []
        send = producer.send
        pending = self._pending
        try:
            for i, (key, value) in enumerate(encoded):
                part = None if partitions is None else partitions[i]
                hdrs = headers if per_record is None else per_record[i]
                future = asyncio.ensure_future(
                    await send(topic, value=value, key=key, headers=hdrs, partition=part)
                )
                futures.append(future)
            pending.add(futures)
            results = await asyncio.gather(*futures, return_exceptions=True)
        except BaseException as exc:
            pending.forget(futures)
            tm.error.inc(len(encoded))
            await self._on_error(exc, generation)
            raise
        pending.forget(futures)
        if spans:
            for span, result in zip(spans, results, strict=True):
                record_send(span, result)
            spans.clear()
        metas = [
            md
            if isinstance(md, BaseException)
            else RecordMetadata(md.topic, md.partition, md.offset)
            for md in results
        ]
        return await self._settle(tm, start, generation, [v for _, v in encoded], metas)

    async def _settle(
        self,
        tm: TopicMetrics,
        start: float,
        generation: int,
        values: Sequence[bytes | None],
        metas: list[RecordMetadata | BaseException],
    ) -> list[RecordMetadata]:
        """Count a batch's outcome; raise `PublishBatchError` naming every failed record."""
        out, failures = tally(tm, start, values, metas)
        if failures:
            await self._on_error(failures[0], generation)
            raise PublishBatchError(len(values), failures) from failures[0]
        return out

    async def _send_partitioned(
        self,
        producer: BatchingProducer,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None, int]],
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> list[RecordMetadata]:
        """`_send_batch` for records whose partitions are known, as whole aiokafka batches."""
        generation = self._generation
        tm = self._tm(topic)
        start = time.perf_counter()
        futures: list[asyncio.Future[Any]] = []
        try:
            where = await submit_batches(producer, topic, records, futures, headers)
            per_batch = [0] * len(futures)
            for b, _ in where:
                per_batch[b] += 1
            self._pending.add(futures, per_batch)
            results = await asyncio.gather(*futures, return_exceptions=True)
        except BaseException as exc:
            self._pending.forget(futures)
            tm.error.inc(len(records))
            await self._on_error(exc, generation)
            raise
        self._pending.forget(futures)
        metas: list[RecordMetadata | BaseException] = []
        for (_, _, partition), (b, rel) in zip(records, where, strict=True):
            md = results[b]
            metas.append(
                md
                if isinstance(md, BaseException)
                else RecordMetadata(topic, partition, md.offset + rel)
            )
        return await self._settle(tm, start, generation, [v for _, v, _ in records], metas)

    async def _on_error(self, exc: BaseException, generation: int) -> None:
        if isinstance(exc, FATAL_PRODUCER_ERRORS):
            await self._recreate(generation, exc)

    async def _recreate(self, generation: int, cause: BaseException) -> None:
        async with self._recreate_lock:
            if generation != self._generation or self._closed or self._producer is None:
                return  # another caller already replaced it
            old = self._producer
            log.error("fatal Kafka producer error %s: replacing the producer", type(cause).__name__)
            try:
                new = await self._new_producer()
            except Exception:
                log.exception("could not replace the Kafka producer; keeping the old one")
                return
            self._generation += 1
            self.recreated += 1
            self._producer = new
            await self._stop_bounded(old, budget=2.0)
