"""ReminderWorker (group "reminders"): memory per pending reminder, restart-to-ready and committed
lag with 100,000 pending, and lateness / throughput when 1,000 reminders fall due within the same
second (no-op in-process sender, real changelog topic on the embedded broker).

Memory baseline: keeping the decoded `ReminderScheduled` event per pending reminder (what a naive
scheduler holds). The worker keeps a `__slots__` entry with the data as JSON bytes, its store and
timer-heap slots, all counted. Records complete once their state is acknowledged, so the harness
holds nothing per pending reminder.

The process runs with the deployable's garbage collector thresholds (`tune_gc`, as the service's
main sets them); `BENCH_PYTHON_GC=1` keeps Python's defaults, for comparison.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import BenchContext, BenchRow, merge_rounds
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, TopicPartition
from coffeebuddy.infra.kafka.models import (
    ReminderScheduled,
    ReminderScheduledData,
    decode_event,
    encode_event,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.reminder_worker import (
    Fence,
    KafkaChangelog,
    ReminderSettings,
    ReminderWorker,
    SendResult,
    WorkerTopics,
    tune_gc,
)
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
    TopicConfig,
)

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
    """Minimal stand-in for the harness's RecordContext (topic, partition, offset, defer)."""

    __slots__ = ("completion", "offset", "partition", "topic")

    def __init__(self, completion: Any, offset: int = 0) -> None:
        self.topic = REMINDER_EVENTS_TOPIC.name
        self.partition = 0
        self.offset = offset
        self.completion = completion

    def defer(self) -> Any:
        return self.completion


class _NoopSender:
    def __init__(self, expect: int = 0) -> None:
        self.sent_at: dict[str, float] = {}
        self.expect = expect
        self.all_sent = asyncio.Event()

    async def send(
        self, reminder: ReminderScheduledData, *, claim_time: datetime, fence: Fence
    ) -> SendResult:
        if not fence():
            return SendResult.fenced()
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


async def _topic(ctx: BenchContext, base: TopicConfig, partitions: int = 1) -> TopicConfig:
    topic = base.model_copy(
        update={"name": f"bench.{base.name}.{uuid.uuid4().hex[:8]}", "partitions": partitions}
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


async def _worker(
    ctx: BenchContext,
    producer: KafkaEventProducer,
    changelog: TopicConfig,
    *,
    sender: Any = None,
    reminders: TopicConfig = REMINDER_EVENTS_TOPIC,
    runs: TopicConfig = RUN_EVENTS_TOPIC,
    **settings: Any,
) -> ReminderWorker:
    """A started worker with its own changelog topic. The history is off here: its cost is
    measured in the service group, end to end, against the same run without it."""
    worker = ReminderWorker(
        sender or _NoopSender(),
        producer,
        ReminderSettings(history=False, **settings),
        changelog=KafkaChangelog(ctx.settings, changelog, producer),
        topics=WorkerTopics(reminders=reminders, runs=runs, changelog=changelog),
    )
    await worker.start()
    return worker


async def _settled(worker: ReminderWorker, limit: float = 120.0) -> None:
    async with asyncio.timeout(limit):
        while worker.health().unflushed:  # noqa: ASYNC110 - polling a counter, no event exists
            await asyncio.sleep(0.01)


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

    changelog = await _topic(ctx, REMINDER_STATE_CHANGELOG_TOPIC)
    worker = await _worker(ctx, producer, changelog, max_pending=n + 10)
    await worker.on_assign([TopicPartition(REMINDER_EVENTS_TOPIC.name, 0)])
    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i, (event, context) in enumerate(zip(events, contexts, strict=True)):
            await worker.process_event(event, context)  # type: ignore[arg-type]
            if i % 1000 == 0:
                await asyncio.sleep(0)  # let the changelog writer and the clients breathe
        await _settled(worker)
        gc.collect()
        used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
        tracemalloc.stop()
        assert worker.pending_count == n
    finally:
        await worker.stop()
    # restart to ready: a fresh worker restores the partition (n pending) from the changelog
    fresh = await _worker(ctx, producer, changelog, max_pending=n + 10)
    try:
        t0 = time.perf_counter()
        await fresh.on_assign([TopicPartition(REMINDER_EVENTS_TOPIC.name, 0)])
        restart = time.perf_counter() - t0
        assert fresh.pending_count == n, fresh.pending_count
        assert fresh.ready
    finally:
        await fresh.stop()
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
        ),
        BenchRow(
            GROUP,
            f"restart to ready, {n:,} pending (changelog restore)",
            restart,
            "s",
            target="<= 5 s",
            met=restart <= 5.0,
        ),
    ]


async def _lag_rows(ctx: BenchContext, producer: KafkaEventProducer) -> list[BenchRow]:
    """Schedule n reminders a week ahead through the real harness (published by a child process,
    as the app would): how long after the last one was acknowledged is the group's committed
    offset at the end (lag 0 for external monitors)?"""
    n = 10_000 if ctx.quick else 100_000
    reminders = await _topic(ctx, REMINDER_EVENTS_TOPIC, 3)
    reminders = reminders.model_copy(update={"dead_letter_topic": reminders.name + ".dlq"})
    runs = await _topic(ctx, RUN_EVENTS_TOPIC, 3)
    runs = runs.model_copy(update={"dead_letter_topic": runs.name + ".dlq"})
    changelog = await _topic(ctx, REMINDER_STATE_CHANGELOG_TOPIC, 3)
    worker = await _worker(
        ctx, producer, changelog, reminders=reminders, runs=runs, max_pending=n + 10
    )
    group = f"bench-lag-{uuid.uuid4().hex[:6]}"
    harness = KafkaConsumerHarness(
        ctx.settings,
        [reminders, runs],
        group,
        worker.process_event,
        producer=producer,
        on_assign=worker.on_assign,
        on_revoke=worker.on_revoke,
        commit_interval=0.5,
    )
    task = asyncio.create_task(harness.run())
    try:
        async with asyncio.timeout(30):
            while not harness.health().ready:  # noqa: ASYNC110 - polling the harness's status
                await asyncio.sleep(0.05)
        published = await _publish_in_child(ctx, reminders, n)
        async with asyncio.timeout(120):
            committed_at = await _committed_equals_end(ctx, group, reminders)
        assert worker.pending_count == n, worker.pending_count
        lag_time = committed_at - published
    finally:
        await harness.stop()
        await task
        await worker.stop()
    return [
        BenchRow(
            GROUP,
            f"committed lag 0 after scheduling {n:,} a week ahead (s after the last publish)",
            lag_time,
            "s",
            target="<= 5 s",
            met=lag_time <= 5.0,
        )
    ]


_CHILD_PUBLISHER = """
import asyncio, sys, uuid
from datetime import UTC, datetime, timedelta
from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC

async def main(bootstrap, name, n):
    settings = KafkaSettings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": "false"}
    )
    topic = REMINDER_EVENTS_TOPIC.model_copy(update={"name": name, "partitions": 3})
    week = datetime.now(UTC) + timedelta(days=7)
    async with KafkaEventProducer(settings) as producer:
        for start in range(0, n, 2000):
            events = []
            for i in range(start, min(n, start + 2000)):
                run_id = f"run-{uuid.uuid4().hex[:12]}"
                events.append(ReminderScheduled.create(data=ReminderScheduledData(
                    reminder_id=f"{run_id}:runner", kind="runner", run_id=run_id,
                    team_id="T024BE7LD", channel_id="C0123ABCD", recipient_user_id=f"U{i:08d}",
                    due_at=week, expires_at=week + timedelta(minutes=15), place="Blue Bottle")))
            await producer.publish_many(topic, events)
    print("published", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _publish_in_child(ctx: BenchContext, topic: TopicConfig, n: int) -> float:
    """The app publishing from its own process (own core, as in production); returns the
    perf_counter time at which the last record was acknowledged."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_PUBLISHER,
        ctx.bootstrap_servers,
        topic.name,
        str(n),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    published = time.perf_counter()
    await proc.wait()
    if b"published" not in line or proc.returncode != 0:
        raise RuntimeError(f"child publisher failed ({proc.returncode}): {line!r}")
    return published


async def _committed_equals_end(ctx: BenchContext, group: str, topic: TopicConfig) -> float:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as KafkaTopicPartition

    kwargs = ctx.settings.consumer_kwargs(group)
    kwargs.update(enable_auto_commit=False)
    consumer = AIOKafkaConsumer(**kwargs)
    await consumer.start()
    try:
        tps = [KafkaTopicPartition(topic.name, p) for p in range(topic.partitions)]
        while True:
            ends = await consumer.end_offsets(tps)  # re-read: the embedded broker's can trail
            offsets = [await consumer.committed(tp) for tp in tps]
            if all((off or 0) >= ends[tp] for off, tp in zip(offsets, tps, strict=True)):
                return time.perf_counter()
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


async def _fire(
    ctx: BenchContext, producer: KafkaEventProducer, n: int, spread: float
) -> tuple[dict[str, float], dict[str, float], float]:
    """Schedule `n` reminders falling due over `spread` seconds (starting 2 s from now) and wait
    until all were sent. Returns (due, sent_at, start) as epoch seconds."""
    sender = _NoopSender(expect=n)
    changelog = await _topic(ctx, REMINDER_STATE_CHANGELOG_TOPIC)
    worker = await _worker(ctx, producer, changelog, sender=sender)
    await worker.on_assign([TopicPartition(REMINDER_EVENTS_TOPIC.name, 0)])
    try:
        start = datetime.now(UTC) + timedelta(seconds=2)
        events = [_event(i, start + timedelta(seconds=spread * i / n)) for i in range(n)]
        completion = _Completion()
        for i, event in enumerate(events):
            await worker.process_event(event, _Context(completion, i))  # type: ignore[arg-type]
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
    per_round: list[list[BenchRow]] = []
    # the deployable's GC setting (its main calls the same), restored after
    old = tune_gc(None) if os.environ.get("BENCH_PYTHON_GC") else tune_gc()
    try:
        async with KafkaEventProducer(ctx.settings) as producer:
            for _ in range(ctx.rounds):
                rows = await _burst_rows(ctx, producer)
                rows += await _memory_rows(ctx, producer)
                rows += await _lag_rows(ctx, producer)
                per_round.append(rows)
    finally:
        gc.set_threshold(*old)
    return merge_rounds(per_round)
