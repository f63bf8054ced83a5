"""ReminderWorker end to end in one process: the real consumer harness, producer and embedded
broker, with a recording in-process sender (the Slack HTTP path is tested by the service)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RetryPolicy
from coffeebuddy.infra.kafka.metrics import KafkaMetrics, ReminderMetrics
from coffeebuddy.infra.kafka.models import (
    ReminderScheduled,
    ReminderScheduledData,
    ReminderState,
    RunCancelled,
    RunCancelledData,
    RunClosed,
    RunClosedData,
    decode_event,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.reminder_worker import (
    Fence,
    ReminderSettings,
    ReminderWorker,
    SendResult,
    WorkerTopics,
)
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
    TopicConfig,
)
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import SlackDMSender

WAIT = 20.0


@dataclass
class Sent:
    reminder_id: str
    at: datetime


@dataclass
class RecordingSender:
    """A ReminderSender that records posts; per-reminder scripted results, switchable auth."""

    sent: list[Sent] = field(default_factory=list)
    attempts: list[Sent] = field(default_factory=list)
    script: dict[str, list[SendResult]] = field(default_factory=dict)
    broken: bool = False
    auth_calls: int = 0
    posted_before: set[str] = field(default_factory=set)
    find_calls: list[str] = field(default_factory=list)

    async def send(
        self, reminder: ReminderScheduledData, *, claim_time: datetime, fence: Fence
    ) -> SendResult:
        if not fence():
            return SendResult.fenced()
        now = datetime.now(UTC)
        self.attempts.append(Sent(reminder.reminder_id, now))
        if self.broken:
            return SendResult.configuration("invalid_auth")
        queue = self.script.get(reminder.reminder_id)
        if queue:
            return queue.pop(0)
        self.sent.append(Sent(reminder.reminder_id, now))
        return SendResult.sent("D0001", f"{int(now.timestamp())}.{len(self.sent):06d}")

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        self.find_calls.append(reminder.reminder_id)
        if reminder.reminder_id in self.posted_before:
            return SendResult.sent("D0001", "1.000002")
        for s in self.sent:
            if s.reminder_id == reminder.reminder_id and s.at >= since - timedelta(seconds=1):
                return SendResult.sent("D0001", "1.000001")
        return None

    async def check_auth(self) -> SendResult:
        self.auth_calls += 1
        return SendResult.configuration("invalid_auth") if self.broken else SendResult.sent()

    def ids(self) -> list[str]:
        return [s.reminder_id for s in self.sent]


@dataclass
class Topics:
    reminders: TopicConfig
    runs: TopicConfig
    changelog: TopicConfig


@pytest.fixture
def topics(unique_topic: TopicFactory) -> Topics:
    return Topics(
        reminders=unique_topic(2, event_types=REMINDER_EVENTS_TOPIC.event_types),
        runs=unique_topic(2, event_types=RUN_EVENTS_TOPIC.event_types),
        changelog=unique_topic(
            2,
            key_field="state_key",
            event_types=REMINDER_STATE_CHANGELOG_TOPIC.event_types,
            dead_letter=False,
        ),
    )


@dataclass
class Running:
    worker: ReminderWorker
    harness: KafkaConsumerHarness
    producer: KafkaEventProducer
    metrics: ReminderMetrics
    kafka_metrics: KafkaMetrics

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        if value is None:
            value = self.kafka_metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@asynccontextmanager
async def running(
    settings: KafkaSettings,
    topics: Topics,
    sender: RecordingSender,
    *,
    group: str | None = None,
    slow_revoke: float = 0.0,
    revoke_timeout: float | None = None,
    changelog_for: Any = None,
    **worker_kwargs: Any,
) -> AsyncIterator[Running]:
    registry = CollectorRegistry()
    metrics = ReminderMetrics(registry)
    kafka_metrics = KafkaMetrics(registry)
    async with KafkaEventProducer(settings) as producer:
        worker_kwargs.setdefault("retry_initial_s", 0.1)
        worker_kwargs.setdefault("retry_max_s", 1.0)
        worker_kwargs.setdefault("history", False)
        changelog = changelog_for(producer) if changelog_for is not None else None
        clock = worker_kwargs.pop("clock", None)
        worker = ReminderWorker(
            sender,
            producer,
            ReminderSettings(**worker_kwargs),
            settings,
            changelog=changelog,
            topics=WorkerTopics(
                reminders=topics.reminders, runs=topics.runs, changelog=topics.changelog
            ),
            metrics=metrics,
            clock=clock,
        )

        async def on_revoke(partitions: Any) -> None:
            if slow_revoke:
                await asyncio.sleep(slow_revoke)  # overruns revoke_timeout: cancelled
            await worker.on_revoke(partitions)

        async with worker:
            harness = KafkaConsumerHarness(
                settings,
                [topics.reminders, topics.runs],
                group or f"test-reminder-worker-{uuid.uuid4().hex[:8]}",
                worker.process_event,
                producer=producer,
                metrics=kafka_metrics,
                max_incomplete_total=worker.max_pending,
                on_assign=worker.on_assign,
                on_revoke=on_revoke,
                commit_interval=0.2,
                retry_policy=RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.2),
                stop_timeout=10.0,
                revoke_timeout=revoke_timeout,
            )
            task = asyncio.create_task(harness.run())
            try:
                await wait_until(
                    lambda: harness.health().ready or task.done(),
                    timeout=WAIT,
                    message="harness joined the group",
                )
                if task.done():
                    task.result()
                yield Running(worker, harness, producer, metrics, kafka_metrics)
            finally:
                await harness.stop()
                await asyncio.wait_for(task, 15.0)


def reminder(
    rid: str,
    *,
    run_id: str = "run-1",
    kind: str = "runner",
    due: datetime,
    expires: datetime | None = None,
    user: str = "U100",
) -> ReminderScheduled:
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run_id,
            reminder_id=rid,
            kind=kind,  # type: ignore[arg-type]
            team_id="T1",
            channel_id="C1",
            recipient_user_id=user,
            due_at=due,
            expires_at=expires,
            place="Cafe",
        )
    )


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def read_all(settings: KafkaSettings, topic: str, expect: int) -> list[Any]:
    """Every record of `topic` (group-less), once at least `expect` arrived."""
    kwargs = settings.consumer_kwargs(None)
    kwargs.pop("group_id", None)
    consumer = AIOKafkaConsumer(topic, **{**kwargs, "auto_offset_reset": "earliest"})
    await consumer.start()
    records: list[Any] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
            return len(records) >= expect

        await wait_until(enough, timeout=WAIT, message=f"{expect} records on {topic}")
    finally:
        await consumer.stop()
    return records


async def changelog_states(
    settings: KafkaSettings, topic: TopicConfig, expect: int
) -> list[tuple[str, str | None]]:
    """(state_key, status or None for a tombstone) of every changelog record, in offset order
    per partition; each value must validate as the models package's `ReminderState`."""
    out: list[tuple[str, str | None]] = []
    for rec in await read_all(settings, topic.name, expect):
        key = rec.key.decode()
        if rec.value is None:
            out.append((key, None))
            continue
        event = decode_event(rec.value)
        assert isinstance(event, ReminderState)
        assert event.data.state_key == key
        out.append((key, str(event.data.status)))
    return out


async def changelog_data(
    settings: KafkaSettings, topic: TopicConfig, key: str
) -> list[dict[str, Any]]:
    """The `data` of every changelog record of `key` so far, in offset order."""
    kwargs = settings.consumer_kwargs(None)
    kwargs.pop("group_id", None)
    consumer = AIOKafkaConsumer(**{**kwargs, "auto_offset_reset": "earliest"})
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(
                    json.loads(r.value)["data"]
                    for r in recs
                    if r.key == key.encode() and r.value is not None
                )
    finally:
        await consumer.stop()
    return out


async def test_delivers_on_time_never_early_and_drops_expired(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    sender = RecordingSender()
    async with running(kafka_settings, topics, sender, late_grace_s=60) as r:
        events = [
            reminder("r-1", run_id="run-a", due=soon(1.0)),
            reminder("r-2", run_id="run-b", due=soon(1.5)),
            reminder("r-late", run_id="run-c", due=soon(-30)),  # worker was "down": within grace
            reminder("r-expired", run_id="run-d", due=soon(-120)),  # past late_grace
        ]
        for ev in events:
            await r.producer.publish(topics.reminders, ev)
        await wait_until(lambda: len(sender.sent) >= 3, timeout=WAIT, message="3 reminders sent")
        await wait_until(
            lambda: (
                r.count("coffeebuddy_reminders_dropped_total", kind="runner", reason="expired") == 1
            ),
            timeout=WAIT,
            message="expired reminder dropped",
        )
        await wait_until(lambda: r.worker.pending_count == 0, timeout=WAIT, message="no pending")
        assert r.worker.ready
    assert sorted(sender.ids()) == ["r-1", "r-2", "r-late"]
    due = {ev.data.reminder_id: ev.data.due_at for ev in events}
    for s in sender.sent:
        assert s.at >= due[s.reminder_id], f"{s.reminder_id} sent before its due time"
    statuses = await changelog_states(kafka_settings, topics.changelog, 10)
    assert ("r-expired", "dropped") in statuses
    for rid in ("r-1", "r-2", "r-late"):
        assert (
            statuses.index((rid, "scheduled"))
            < statuses.index((rid, "claimed"))
            < statuses.index((rid, "sent"))
        )


async def test_duplicates_suppressed_on_republish_and_after_restart(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    sender = RecordingSender()
    event = reminder("r-dup", due=soon(1.0))
    async with running(kafka_settings, topics, sender) as r:
        await r.producer.publish(topics.reminders, event)
        await r.producer.publish(topics.reminders, event)  # re-published by the app
        await wait_until(lambda: sender.ids() == ["r-dup"], timeout=WAIT, message="sent once")
        await wait_until(lambda: r.worker.pending_count == 0, timeout=WAIT, message="settled")
    # A fresh worker process: new group (replays the topic from the start, as after a crash
    # before the commit), empty memory, only the changelog to know what was sent.
    async with running(kafka_settings, topics, sender) as r2:
        await r2.producer.publish(topics.reminders, event)
        await wait_until(
            lambda: (
                r2.count("coffeebuddy_reminders_dropped_total", kind="runner", reason="duplicate")
                >= 3
            ),
            timeout=WAIT,
            message="all three copies recognised as duplicates",
        )
        assert r2.worker.pending_count == 0
    assert sender.ids() == ["r-dup"]


@pytest.mark.parametrize("run_event_first", [True, False], ids=["run-first", "reminder-first"])
async def test_cancellation_holds_in_either_arrival_order(
    kafka_settings: KafkaSettings, topics: Topics, run_event_first: bool
) -> None:
    sender = RecordingSender()
    cancelled = RunCancelled.create(data=RunCancelledData(run_id="run-x"))
    closed = RunClosed.create(data=RunClosedData(run_id="run-y", closed_at=datetime.now(UTC)))
    async with running(kafka_settings, topics, sender) as r:
        due = soon(2.0)
        reminders = [
            reminder("x-runner", run_id="run-x", kind="runner", due=due),
            reminder("x-last", run_id="run-x", kind="last_call", due=due),
            reminder("y-runner", run_id="run-y", kind="runner", due=due),
            reminder("y-last", run_id="run-y", kind="last_call", due=due),
        ]

        def consumed(topic: TopicConfig) -> float:
            return sum(
                r.count(
                    "coffeebuddy_kafka_messages_consumed_total",
                    topic=topic.name,
                    group=r.harness.group,
                )
                for _ in (0,)
            )

        async def publish_runs() -> None:
            await r.producer.publish(topics.runs, cancelled)
            await r.producer.publish(topics.runs, closed)
            await wait_until(lambda: consumed(topics.runs) >= 2, timeout=WAIT, message="runs seen")

        async def publish_reminders() -> None:
            for ev in reminders:
                await r.producer.publish(topics.reminders, ev)
            await wait_until(
                lambda: consumed(topics.reminders) >= 4, timeout=WAIT, message="reminders seen"
            )

        first, second = (
            (publish_runs, publish_reminders)
            if run_event_first
            else (publish_reminders, publish_runs)
        )
        await first()
        await second()
        assert datetime.now(UTC) < due, (
            "test setup too slow: reminders fell due before the run events"
        )
        await wait_until(lambda: "y-runner" in sender.ids(), timeout=WAIT, message="runner sent")
        drops = {
            ("runner", "run_cancelled"): 1,
            ("last_call", "run_cancelled"): 1,
            ("last_call", "run_closed"): 1,
        }

        def dropped() -> dict[tuple[str, str], float]:
            return {
                key: r.count("coffeebuddy_reminders_dropped_total", kind=key[0], reason=key[1])
                for key in drops
            }

        await wait_until(
            lambda: dropped() == drops,
            timeout=WAIT,
            message=f"drops by kind and reason (sent {sender.ids()})",
        )
        await wait_until(lambda: r.worker.pending_count == 0, timeout=WAIT, message="settled")
    assert sender.ids() == ["y-runner"]


async def test_configuration_error_keeps_backlog_then_resumes(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    sender = RecordingSender(broken=True)
    async with running(
        kafka_settings, topics, sender, auth_probe_initial_s=0.1, auth_probe_max_s=0.3
    ) as r:
        for i in range(3):
            await r.producer.publish(
                topics.reminders, reminder(f"c-{i}", run_id=f"run-{i}", due=soon(0.5))
            )
        # Not ready for the right reason: a partition still restoring also reads "not ready".
        await wait_until(
            lambda: not r.worker.ready and not r.worker.health().slack_auth_ok,
            timeout=WAIT,
            message="worker not ready because Slack auth fails",
        )
        await wait_until(lambda: r.worker.pending_count == 3, timeout=WAIT, message="3 pending")
        await wait_until(lambda: sender.auth_calls >= 2, timeout=WAIT, message="auth probed")
        assert sender.sent == []
        assert r.worker.pending_count == 3  # backlog kept, nothing burned
        assert sender.attempts == []  # the start-up credentials check found it before any post
        assert r.metrics.registry.get_sample_value(
            "coffeebuddy_reminders_dropped_total", {"kind": "runner", "reason": "expired"}
        ) in (None, 0.0)
        sender.broken = False
        await wait_until(lambda: len(sender.sent) == 3, timeout=WAIT, message="backlog delivered")
        await wait_until(lambda: r.worker.ready, timeout=WAIT, message="ready again")
        assert r.worker.health().slack_auth_ok
    assert sorted(sender.ids()) == ["c-0", "c-1", "c-2"]


async def test_rate_limit_honours_retry_after_while_others_go_out(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    sender = RecordingSender(script={"slow": [SendResult.rate_limited(1.5)]})
    async with running(kafka_settings, topics, sender) as r:
        due = soon(0.5)
        await r.producer.publish(
            topics.reminders, reminder("slow", run_id="run-1", user="U1", due=due)
        )
        await r.producer.publish(
            topics.reminders, reminder("fast", run_id="run-2", user="U2", due=due)
        )
        await wait_until(lambda: len(sender.sent) == 2, timeout=WAIT, message="both sent")
    assert sender.ids() == ["fast", "slow"]
    first_try = next(a.at for a in sender.attempts if a.reminder_id == "slow")
    delivered = next(s.at for s in sender.sent if s.reminder_id == "slow")
    assert (delivered - first_try).total_seconds() >= 1.5


async def test_format_rejection_is_dead_lettered_and_replay_delivers_once(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    sender = RecordingSender(
        script={"bad": [SendResult.permanent("invalid_blocks", dead_letter=True)]}
    )
    assert topics.reminders.dead_letter_topic is not None
    async with running(kafka_settings, topics, sender) as r:
        meta = await r.producer.publish(topics.reminders, reminder("bad", due=soon(0.3)))
        [dead] = await read_all(kafka_settings, topics.reminders.dead_letter_topic, 1)
        headers = {k: v.decode() for k, v in dead.headers}
        assert headers["coffeebuddy.dlq.origin.topic"] == topics.reminders.name
        assert headers["coffeebuddy.dlq.origin.partition"] == str(meta.partition)
        assert headers["coffeebuddy.dlq.origin.offset"] == str(meta.offset)
        assert "invalid_blocks" in headers["coffeebuddy.dlq.error.message"]
        assert sender.sent == []
        await wait_until(lambda: r.worker.pending_count == 0, timeout=WAIT, message="settled")
        # settled as dead-lettered (where it was parked); a replay is a fresh schedule
        states = await changelog_states(kafka_settings, topics.changelog, 3)
        assert [st for key, st in states if key == "bad"] == [
            "scheduled",
            "claimed",
            "dead_lettered",
        ]
        # ops fixed the template and replays the dead letter: delivered exactly once, at once
        await r.producer.send_raw(topics.reminders, dead.value, key=dead.key, headers=[])
        await r.producer.send_raw(topics.reminders, dead.value, key=dead.key, headers=[])
        await wait_until(
            lambda: sender.ids() == ["bad"],
            timeout=15.0,
            message="replay sent at once (a dead letter holds no claim)",
        )
        await wait_until(
            lambda: (
                r.count("coffeebuddy_reminders_dropped_total", kind="runner", reason="duplicate")
                >= 1
            ),
            timeout=WAIT,
            message="second replay is a duplicate",
        )
    assert sender.ids() == ["bad"]
    assert [a.reminder_id for a in sender.attempts] == ["bad", "bad"]
    assert sender.find_calls == []  # a dead letter leaves no claim: no history check


async def test_two_workers_in_one_group_send_each_reminder_once(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    sender = RecordingSender()
    group = f"test-reminder-worker-pair-{uuid.uuid4().hex[:8]}"
    n = 20
    async with running(kafka_settings, topics, sender, group=group) as a:
        due = soon(2.5)
        for i in range(n):
            await a.producer.publish(
                topics.reminders, reminder(f"p-{i}", run_id=f"run-{i}", due=due)
            )
        await wait_until(lambda: a.worker.pending_count == n, timeout=WAIT, message="A holds all")
        # B joins while A holds every reminder: A's revoked partitions are redelivered to B
        async with running(kafka_settings, topics, sender, group=group) as b:
            await wait_until(
                lambda: b.harness.assignment() and a.harness.assignment(),
                timeout=WAIT,
                message="partitions split between A and B",
            )
            await wait_until(lambda: len(sender.sent) >= n, timeout=WAIT, message="all sent")
            await wait_until(
                lambda: a.worker.pending_count + b.worker.pending_count == 0,
                timeout=WAIT,
                message="both settled",
            )
            assert b.count("coffeebuddy_reminders_sent_total", kind="runner") > 0
    assert sorted(sender.ids()) == sorted(f"p-{i}" for i in range(n))
    for s in sender.sent:
        assert s.at >= due


async def test_the_fence_covers_the_whole_slack_exchange(
    kafka_settings: KafkaSettings, topics: Topics, fake_slack: FakeSlackServer
) -> None:
    """Issue 21, scenario 1: with Slack answering conversations.open slowly (just under the
    client timeout), no chat.postMessage may start later than the claim's start window after
    the claim, or a new owner that waited out the deadline posts a second DM."""
    window, timeout, open_delay = 0.5, 3.0, 1.5
    fake_slack.slow(open_delay, count=None, method="conversations.open")
    sender = SlackDMSender.create(fake_slack.token, base_url=fake_slack.base_url, timeout=timeout)
    try:
        async with running(
            kafka_settings,
            topics,
            sender,  # type: ignore[arg-type]
            claim_start_window_s=window,
            send_timeout_s=timeout,
            prepare_ahead_s=0,
        ) as r:
            await r.producer.publish(
                topics.reminders, reminder("r-open", user="U0FENCE", due=soon(1))
            )
            await wait_until(
                lambda: fake_slack.messages_for("U0FENCE") != [],
                timeout=WAIT,
                message="the reminder is posted",
            )
            await wait_until(lambda: r.worker.pending_count == 0, timeout=WAIT, message="settled")
    finally:
        await sender.close()
    claims = [
        datetime.fromisoformat(d["claimed_at"]).timestamp()
        for d in await changelog_data(kafka_settings, topics.changelog, "r-open")
        if d["status"] == "claimed"
    ]
    [post] = [c for c in fake_slack.calls("chat.postMessage") if c.ok]
    started = post.time  # the fake records a call when its request arrives
    latest_claim = max(c for c in claims if c <= started)
    assert started - latest_claim <= window + 0.25, (
        f"chat.postMessage arrived {started - latest_claim:.2f} s after its claim "
        f"(start window {window} s)"
    )
    assert len(fake_slack.messages_for("U0FENCE")) == 1
