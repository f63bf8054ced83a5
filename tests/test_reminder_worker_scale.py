"""Issue 10 scenarios on the real broker: the schedule lives in the changelog, records commit at
once, capacity never dead-letters, a fenced post is sent once, background failures are seen.

Each test broke on the delivery-log design (held offsets, local pruning, unfenced claims)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from coffeebuddy.infra.kafka.config import KafkaSettings, topic_partitions
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.reminder_worker import KafkaChangelog
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.services.fake_slack import FakeSlackServer

_spec = importlib.util.spec_from_file_location(
    "reminder_worker_kafka_helpers", Path(__file__).with_name("test_reminder_worker_kafka.py")
)
assert _spec is not None
assert _spec.loader is not None
_h = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("reminder_worker_kafka_helpers", _h)
_spec.loader.exec_module(_h)

RecordingSender = _h.RecordingSender
Topics = _h.Topics
topics = _h.topics  # the fixture
running = _h.running
reminder = _h.reminder
soon = _h.soon
read_all = _h.read_all
changelog_states = _h.changelog_states
WAIT = _h.WAIT


async def committed(settings: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets on `topic` on the broker (what lag monitors read)."""
    from aiokafka import TopicPartition

    kwargs = settings.consumer_kwargs(group)
    kwargs.update(enable_auto_commit=False)
    consumer = AIOKafkaConsumer(**kwargs)
    await consumer.start()
    try:
        parts = await topic_partitions(consumer, topic)
        out = {}
        for p in sorted(parts):
            offset = await consumer.committed(TopicPartition(topic, p))
            if offset is not None:
                out[p] = offset
        return out
    finally:
        await consumer.stop()


async def end_offsets(settings: KafkaSettings, topic: str) -> dict[int, int]:
    kwargs = settings.consumer_kwargs(None)
    kwargs.pop("group_id", None)
    consumer = AIOKafkaConsumer(**kwargs)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        parts = await topic_partitions(consumer, topic)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    finally:
        await consumer.stop()
    return {tp.partition: off for tp, off in ends.items()}


async def test_due_now_is_sent_on_time_behind_10k_pending_on_its_key_and_commits_run_ahead(
    kafka_settings: KafkaSettings, topics: Any
) -> None:
    sender = RecordingSender()
    group = f"test-hot-key-{uuid.uuid4().hex[:8]}"
    async with running(kafka_settings, topics, sender, group=group) as r:
        later = soon(3600)
        events = [reminder(f"later-{i}", run_id="hot", due=later) for i in range(10_500)]
        for i in range(0, len(events), 1000):
            await r.producer.publish_many(topics.reminders, events[i : i + 1000])
        due = soon(3.0)
        await r.producer.publish(topics.reminders, reminder("now", run_id="hot", due=due))
        await wait_until(lambda: "now" in sender.ids(), timeout=WAIT, message="due-now sent")
        [sent] = sender.sent
        assert sent.at >= due
        assert (sent.at - due).total_seconds() < 10.0  # the old worker: not within 40 s
        ends = await end_offsets(kafka_settings, topics.reminders.name)

        async def caught_up() -> bool:
            return await committed(kafka_settings, group, topics.reminders.name) == {
                p: off for p, off in ends.items() if off > 0
            }

        # committed although 10,500 reminders are an hour away: lag monitors see 0
        await wait_until(caught_up, timeout=WAIT, message="input committed to its end")
        assert r.worker.pending_count == 10_500


async def test_ten_times_max_pending_far_future_none_dead_lettered_all_kept(
    kafka_settings: KafkaSettings, topics: Any
) -> None:
    sender = RecordingSender()
    group = f"test-capacity-{uuid.uuid4().hex[:8]}"
    far = soon(7 * 86400)
    async with running(kafka_settings, topics, sender, group=group, max_pending=3) as r:
        for i in range(30):
            await r.producer.publish(
                topics.reminders, reminder(f"far-{i}", run_id=f"run-{i}", due=far)
            )
        await wait_until(lambda: r.worker.health().at_capacity, timeout=WAIT, message="at capacity")
        health = r.worker.health()
        assert "max_pending=3" in health.detail
        assert "nothing dropped" in health.detail
        assert r.count("coffeebuddy_reminder_worker_at_capacity") == 1
        assert r.worker.pending_count == 3
    assert topics.reminders.dead_letter_topic is not None
    dead = await end_offsets(kafka_settings, topics.reminders.dead_letter_topic)
    assert set(dead.values()) <= {0}, f"valid reminders dead-lettered: {dead}"
    # the operator raises the limit: every record is still there, none was refused
    async with running(kafka_settings, topics, sender, group=group, max_pending=100) as r2:
        await wait_until(lambda: r2.worker.pending_count == 30, timeout=WAIT, message="all 30")
        assert not r2.worker.health().at_capacity
    assert sender.sent == []


async def test_revoke_overrun_same_member_reassigned_then_restart_loses_nothing(
    kafka_settings: KafkaSettings, topics: Any
) -> None:
    """on_revoke overruns the harness's revoke_timeout (cancelled), the same member gets the
    partitions back; the committed offsets pass a reminder due in an hour. A restart must still
    know it: it lives in the changelog, not in memory behind the offset."""
    sender = RecordingSender()
    group = f"test-overrun-{uuid.uuid4().hex[:8]}"
    async with running(
        kafka_settings, topics, sender, group=group, slow_revoke=2.0, revoke_timeout=0.3
    ) as a:
        await a.producer.publish(topics.reminders, reminder("hour", run_id="r-1", due=soon(3600)))
        await a.producer.publish(topics.reminders, reminder("now", run_id="r-2", due=soon(0.5)))
        await wait_until(lambda: "now" in sender.ids(), timeout=WAIT, message="now sent")
        async with running(kafka_settings, topics, RecordingSender(), group=group) as b:
            await wait_until(
                lambda: bool(b.harness.assignment()), timeout=WAIT, message="B took partitions"
            )
        await wait_until(
            lambda: len(a.harness.assignment()) == 4, timeout=WAIT, message="A has all again"
        )
        await wait_until(lambda: a.worker.pending_count == 1, timeout=WAIT, message="A holds 1")
        ends = await end_offsets(kafka_settings, topics.reminders.name)

        async def caught_up() -> bool:
            got = await committed(kafka_settings, group, topics.reminders.name)
            return all(got.get(p) == off for p, off in ends.items() if off > 0)

        await wait_until(caught_up, timeout=WAIT, message="offsets committed past 'hour'")
    async with running(kafka_settings, topics, sender, group=group) as fresh:
        await wait_until(
            lambda: fresh.worker.pending_count == 1, timeout=WAIT, message="restored from log"
        )
    assert sender.ids() == ["now"]


async def test_post_held_in_flight_across_a_handover_gives_one_dm(
    kafka_settings: KafkaSettings, unique_topic: Any, fake_slack: FakeSlackServer
) -> None:
    """Worker A's chat.postMessage is held by Slack for 3 s; A stops meanwhile and B takes the
    partition. B sees A's claim, waits out its deadline plus the skew margin, then finds the
    post in the DM history: one DM."""
    from coffeebuddy.services.reminder_worker import SlackDMSender, block_id_for

    one = Topics(
        reminders=unique_topic(2, event_types=_h.REMINDER_EVENTS_TOPIC.event_types),
        runs=unique_topic(2, event_types=_h.RUN_EVENTS_TOPIC.event_types),
        changelog=unique_topic(
            2,
            key_field="state_key",
            event_types=_h.REMINDER_STATE_CHANGELOG_TOPIC.event_types,
            dead_letter=False,
        ),
    )
    group = f"test-handover-{uuid.uuid4().hex[:8]}"
    timing = {"send_timeout_s": 4.0, "claim_start_window_s": 1.0, "clock_skew_s": 0.5}
    senders = [
        SlackDMSender.create(fake_slack.token, base_url=fake_slack.base_url, timeout=4.0)
        for _ in range(2)
    ]
    try:
        async with (
            running(kafka_settings, one, senders[0], group=group, **timing) as w1,
            running(kafka_settings, one, senders[1], group=group, **timing) as w2,
        ):
            await wait_until(
                lambda: bool(w1.harness.assignment() and w2.harness.assignment()),
                timeout=WAIT,
                message="each member owns a partition",
            )
            fake_slack.slow(3.0)
            meta = await w1.producer.publish(
                one.reminders, reminder("held", user="U0HELD", due=soon(0))
            )
            held = (one.reminders.name, meta.partition)
            owner, other = (w1, w2) if held in w1.harness.assignment() else (w2, w1)
            await wait_until(
                lambda: bool(fake_slack.calls("chat.postMessage")),
                timeout=WAIT,
                message="the post is in flight",
            )
            stop = asyncio.create_task(owner.harness.stop())
            await wait_until(
                lambda: held in other.harness.assignment(), timeout=WAIT, message="handed over"
            )
            await stop
            await wait_until(
                lambda: other.worker.pending_count == 0 and other.worker.ready,
                timeout=WAIT,
                message="the new owner settled it",
            )
            await asyncio.sleep(0)
        assert len(fake_slack.messages_with_block_id(block_id_for("held"))) == 1
        assert len(fake_slack.calls("chat.postMessage")) == 1
    finally:
        for s in senders:
            await s.close()


async def test_25_hours_of_uptime_then_a_redelivery_gives_no_second_dm(
    kafka_settings: KafkaSettings, topics: Any
) -> None:
    class Clock:
        offset = timedelta(0)

        def __call__(self) -> datetime:
            return datetime.now(UTC) + self.offset

    clock = Clock()
    sender = RecordingSender()
    event = reminder("long", due=soon(0.2), expires=soon(3 * 86400))
    async with running(kafka_settings, topics, sender, clock=clock) as r:
        await r.producer.publish(topics.reminders, event)
        await wait_until(lambda: sender.ids() == ["long"], timeout=WAIT, message="sent")
        clock.offset = timedelta(hours=25)
        await asyncio.sleep(1.5)  # let the scheduler prune with the new time (it must keep it)
        await r.producer.publish(topics.reminders, event)  # redelivered / republished
        await wait_until(
            lambda: (
                r.count("coffeebuddy_reminders_dropped_total", kind="runner", reason="duplicate")
                >= 1
            ),
            timeout=WAIT,
            message="recognised as a duplicate after 25 h",
        )
    async with running(kafka_settings, topics, sender, clock=clock) as fresh:  # fresh process
        await wait_until(
            lambda: (
                fresh.count(
                    "coffeebuddy_reminders_dropped_total", kind="runner", reason="duplicate"
                )
                >= 2
            ),
            timeout=WAIT,
            message="a fresh worker decides the same",
        )
    assert sender.ids() == ["long"]


class FlakyProducer:
    """The real producer, but the first `failures` changelog batches fail."""

    def __init__(self, real: KafkaEventProducer, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.failed = 0

    async def send_raw_many(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed < self.failures:
            self.failed += 1
            await asyncio.sleep(0.2)
            raise ConnectionError("broker unreachable (injected)")
        return await self.real.send_raw_many(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_state_writes_failing_at_first_still_land_and_hold_the_commit(
    kafka_settings: KafkaSettings, topics: Any
) -> None:
    sender = RecordingSender()
    seen: list[str] = []

    def changelog_for(producer: KafkaEventProducer) -> KafkaChangelog:
        return KafkaChangelog(kafka_settings, topics.changelog, FlakyProducer(producer, 6))  # type: ignore[arg-type]

    async with running(kafka_settings, topics, sender, changelog_for=changelog_for) as r:
        await r.producer.publish(topics.reminders, reminder("w-1", due=soon(2)))

        def not_ready() -> bool:
            health = r.worker.health()
            if not health.ready and "changelog writer" in health.detail:
                seen.append(health.detail)
            return bool(seen) and health.unflushed > 0

        await wait_until(not_ready, timeout=WAIT, message="readiness names the writer")
        assert any("changelog writer" in d and "ConnectionError" in d for d in seen)
        assert r.count("coffeebuddy_reminder_state_unflushed") >= 1
        await wait_until(lambda: sender.ids() == ["w-1"], timeout=WAIT, message="still sent")
        await wait_until(lambda: r.worker.ready, timeout=WAIT, message="ready again")
    states = await changelog_states(kafka_settings, topics.changelog, 3)
    assert [s for k, s in states if k == "w-1"] == ["scheduled", "claimed", "sent"]


class KillableConsumer:
    """aiokafka's consumer, whose reads can be made to fail (a dead changelog reader)."""

    dead = False

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self._real = AIOKafkaConsumer(**kwargs)

    async def getmany(self, *args: Any, **kwargs: Any) -> Any:
        if KillableConsumer.dead:
            raise RuntimeError("changelog fetch killed (injected)")
        return await self._real.getmany(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def test_a_killed_changelog_reader_turns_readiness_false_then_recovers(
    kafka_settings: KafkaSettings, topics: Any
) -> None:
    sender = RecordingSender()
    KillableConsumer.dead = False

    def changelog_for(producer: KafkaEventProducer) -> KafkaChangelog:
        return KafkaChangelog(
            kafka_settings, topics.changelog, producer, consumer_factory=KillableConsumer
        )

    async with running(kafka_settings, topics, sender, changelog_for=changelog_for) as r:
        await wait_until(lambda: r.worker.ready, timeout=WAIT, message="ready")
        KillableConsumer.dead = True
        # between two failed restarts the detail may name the re-restore instead: wait for the
        # reader's own failure to be named while not ready
        named = "changelog reader: RuntimeError: changelog fetch killed (injected)"
        await wait_until(
            lambda: not r.worker.ready and named in r.worker.health().detail,
            timeout=WAIT,
            message="not ready, naming the changelog reader's failure",
        )
        KillableConsumer.dead = False
        await wait_until(lambda: r.worker.ready, timeout=WAIT, message="reader restarted")
        await r.producer.publish(topics.reminders, reminder("after", due=soon(0.2)))
        await wait_until(lambda: sender.ids() == ["after"], timeout=WAIT, message="delivering")
