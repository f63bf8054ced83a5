"""ReminderWorker (group "reminders"): memory per pending reminder, and lateness / throughput when
1,000 reminders fall due within the same second (no-op in-process sender, real delivery log).

Memory baseline: keeping the decoded `ReminderScheduled` event per pending reminder (what a naive
scheduler holds). The worker keeps a `__slots__` entry with the data as JSON bytes instead. The
harness's own per-record state (`Completion`, the consumer record) is not counted here.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import BenchContext, BenchRow
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from coffeebuddy.infra.kafka.models import (
    ReminderScheduled,
    ReminderScheduledData,
    decode_event,
    encode_event,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.reminder_worker import ReminderWorker, SendResult
from coffeebuddy.infra.kafka.topics import REMINDER_DELIVERIES_TOPIC, TopicConfig

GROUP = "reminders"


class _Completion:
    __slots__ = ("done_at",)
    is_stale = False

    def __init__(self) -> None:
        self.done_at = 0.0

    def done(self) -> None:
        self.done_at = time.monotonic()

    def fail(self, exc: BaseException) -> None:
        raise exc


class _Context:
    """Minimal stand-in for the harness's RecordContext (topic, partition, defer)."""

    __slots__ = ("completion", "partition", "topic")

    def __init__(self, completion: Any) -> None:
        self.topic = "coffeebuddy.reminder.events"
        self.partition = 0
        self.completion = completion

    def defer(self) -> Any:
        return self.completion


class _NoopSender:
    def __init__(self, expect: int = 0) -> None:
        self.sent_at: dict[str, float] = {}
        self.expect = expect
        self.all_sent = asyncio.Event()

    async def send(self, reminder: ReminderScheduledData, *, claim_time: datetime) -> SendResult:
        self.sent_at[reminder.reminder_id] = time.time()
        if len(self.sent_at) >= self.expect:
            self.all_sent.set()
        return SendResult.sent("D0123ABCD", "1700000000.000100")

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        return None

    async def check_auth(self) -> SendResult:
        return SendResult.sent()


def _event(i: int, due: datetime) -> ReminderScheduled:
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            reminder_id=f"{run_id}:runner",
            kind="runner",
            run_id=run_id,
            team_id="T024BE7LD",
            channel_id="C0123ABCD",
            recipient_user_id=f"U{i:08d}",
            due_at=due,
            expires_at=due + timedelta(minutes=15),
            place="Blue Bottle",
        )
    )


async def _deliveries_topic(ctx: BenchContext) -> TopicConfig:
    topic = REMINDER_DELIVERIES_TOPIC.model_copy(
        update={"name": f"bench.reminder.deliveries.{uuid.uuid4().hex[:8]}", "partitions": 3}
    )
    admin = AIOKafkaAdminClient(**ctx.settings.admin_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic.name, topic.partitions, 1)])
        for _ in range(100):
            described = await admin.describe_topics([topic.name])
            if described and len(described[0].get("partitions", [])) == topic.partitions:
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return topic


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _memory_rows(ctx: BenchContext, producer: KafkaEventProducer) -> list[BenchRow]:
    n = 10_000 if ctx.quick else 100_000
    due = datetime.now(UTC) + timedelta(hours=1)
    events = [_event(i, due) for i in range(n)]
    raw = [encode_event(e) for e in events]
    completion = _Completion()
    contexts = [_Context(completion) for _ in range(n)]

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    decoded = [decode_event(r) for r in raw]
    gc.collect()
    naive = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    del decoded

    worker = ReminderWorker(
        _NoopSender(),
        producer,
        ctx.settings,
        deliveries_topic=await _deliveries_topic(ctx),
        max_pending=n + 10,
    )
    await worker.start()
    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i, (event, context) in enumerate(zip(events, contexts, strict=True)):
            await worker.process_event(event, context)  # type: ignore[arg-type]
            if i % 1000 == 0:
                await asyncio.sleep(0)  # let the delivery-log tail and the clients breathe
        gc.collect()
        used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
        assert worker.pending_count == n
    finally:
        await worker.stop()
    per = used / n
    return [
        BenchRow(
            GROUP,
            f"memory per pending reminder ({n:,} pending)",
            per,
            "bytes",
            baseline="decoded event kept",
            baseline_value=naive / n,
            target="<= 1024 bytes",
            met=per <= 1024,
        )
    ]


async def _fire(
    ctx: BenchContext, producer: KafkaEventProducer, n: int, spread: float
) -> tuple[dict[str, float], dict[str, float], float]:
    """Schedule `n` reminders falling due over `spread` seconds (starting 2 s from now) and wait
    until all were sent. Returns (due, sent_at, start) as epoch seconds."""
    sender = _NoopSender(expect=n)
    worker = ReminderWorker(
        sender, producer, ctx.settings, deliveries_topic=await _deliveries_topic(ctx)
    )
    await worker.start()
    try:
        start = datetime.now(UTC) + timedelta(seconds=2)
        events = [_event(i, start + timedelta(seconds=spread * i / n)) for i in range(n)]
        completion = _Completion()
        for event in events:
            await worker.process_event(event, _Context(completion))  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(sender.all_sent.wait(), 60)
        except TimeoutError:
            raise RuntimeError(
                f"only {len(sender.sent_at)} of {n} reminders sent within 60 s"
            ) from None
    finally:
        await worker.stop()
    due = {e.data.reminder_id: e.data.due_at.timestamp() for e in events}
    return due, sender.sent_at, start.timestamp()


async def _burst_rows(ctx: BenchContext, producer: KafkaEventProducer) -> list[BenchRow]:
    n = 1000
    due, sent_at, _ = await _fire(ctx, producer, n, spread=1.0)
    lateness = [sent_at[rid] - due[rid] for rid in due]
    early = sum(1 for x in lateness if x < 0)
    p99 = _percentile(lateness, 0.99)
    _, sent_now, start = await _fire(ctx, producer, n, spread=0.0)
    drain = max(sent_now.values()) - start
    return [
        BenchRow(GROUP, "lateness p50, 1,000 due in 1 s", _percentile(lateness, 0.5) * 1000, "ms"),
        BenchRow(
            GROUP,
            "lateness p99, 1,000 due in 1 s",
            p99 * 1000,
            "ms",
            target="<= 1000 ms",
            met=p99 <= 1.0,
        ),
        BenchRow(GROUP, "lateness max, 1,000 due in 1 s", max(lateness) * 1000, "ms"),
        BenchRow(
            GROUP, "sent before due_at", float(early), "reminders", target="0", met=early == 0
        ),
        BenchRow(
            GROUP,
            "throughput, 1,000 due at one instant (claim+send+sent)",
            n / drain,
            "reminders/s",
        ),
        BenchRow(GROUP, "last of 1,000 due at one instant sent after", drain * 1000, "ms"),
    ]


async def run(ctx: BenchContext) -> list[BenchRow]:
    async with KafkaEventProducer(ctx.settings) as producer:
        rows = await _burst_rows(ctx, producer)
        rows += await _memory_rows(ctx, producer)
    return rows
