"""Issue done-when: a reminder Slack rejected (invalid_blocks) is dead-lettered, can be inspected,
and once the fix is deployed is replayed and delivered as exactly one DM.

Real parts throughout: embedded broker, consumer harness, producer, ReminderWorker, the service's
SlackDMSender over HTTP to the fake Slack, and the `coffeebuddy-kafka dlq` Python API.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RetryPolicy
from coffeebuddy.infra.kafka.metrics import KafkaMetrics, ReminderMetrics
from coffeebuddy.infra.kafka.models import (
    DLQ_REPLAYED_FROM,
    DeadLetterReplayed,
    ReminderScheduled,
    ReminderScheduledData,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision.dlq import (
    DeadLetter,
    DeadLetterFilter,
    TopicReplayLedger,
    inspect_dead_letters,
    replay_dead_letters,
)
from coffeebuddy.infra.kafka.reminder_worker import ReminderSettings, ReminderWorker, WorkerTopics
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until
from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    DLQ_REPLAYS_TOPIC,
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
    TopicConfig,
)
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import SlackDMSender

WAIT = 20.0
USER = "U0REPLAY1"


@dataclass
class Topics:
    reminders: TopicConfig
    runs: TopicConfig
    changelog: TopicConfig
    ledger: TopicConfig


@dataclass
class Running:
    worker: ReminderWorker
    producer: KafkaEventProducer
    registry: CollectorRegistry

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


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
        # the replay ledger, shaped like the catalog's coffeebuddy.dlq.replays (dev sizing)
        ledger=unique_topic(
            1, base=CATALOG.for_environment("dev").topic(DLQ_REPLAYS_TOPIC.name), dead_letter=False
        ),
    )


@asynccontextmanager
async def worker_running(
    settings: KafkaSettings, topics: Topics, slack: FakeSlackServer, group: str
) -> AsyncIterator[Running]:
    """The reminder worker as the service composes it, with test-sized timings."""
    registry = CollectorRegistry()
    reminder_metrics = ReminderMetrics(registry)
    kafka_metrics = KafkaMetrics(registry)
    sender = SlackDMSender.create(
        slack.token, base_url=slack.base_url, timeout=5.0, metrics=reminder_metrics
    )
    try:
        async with KafkaEventProducer(settings, metrics=kafka_metrics) as producer:
            worker = ReminderWorker(
                sender,
                producer,
                ReminderSettings(
                    retry_initial_s=0.1,
                    retry_max_s=1.0,
                    auth_probe_initial_s=0.2,
                    auth_probe_max_s=1.0,
                    history=False,
                ),
                settings,
                topics=WorkerTopics(
                    reminders=topics.reminders,
                    runs=topics.runs,
                    changelog=topics.changelog,
                    group=group,
                ),
                metrics=reminder_metrics,
                kafka_metrics=kafka_metrics,
            )
            async with worker:
                harness = KafkaConsumerHarness(
                    settings,
                    [topics.reminders, topics.runs],
                    group,
                    worker.process_event,
                    producer=producer,
                    metrics=kafka_metrics,
                    max_incomplete_total=worker.max_pending,
                    on_assign=worker.on_assign,
                    on_revoke=worker.on_revoke,
                    commit_interval=0.2,
                    retry_policy=RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.2),
                    stop_timeout=10.0,
                )
                task = asyncio.create_task(harness.run())
                try:
                    await wait_until(
                        lambda: (harness.health().ready and worker.ready) or task.done(),
                        timeout=WAIT,
                        message="worker joined its group and is ready",
                    )
                    if task.done():
                        task.result()
                    yield Running(worker, producer, registry)
                finally:
                    await harness.stop()
                    await asyncio.wait_for(task, 15.0)
    finally:
        await sender.close()


def reminder(run_id: str, reminder_id: str) -> ReminderScheduled:
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run_id,
            reminder_id=reminder_id,
            kind="runner",
            team_id="T0OPS",
            channel_id="C0OPS",
            recipient_user_id=USER,
            due_at=datetime.now(UTC) + timedelta(milliseconds=200),
            place="Cafe Replay",
        )
    )


async def test_rejected_reminder_is_inspected_replayed_and_delivered_once(
    kafka_settings: KafkaSettings, topics: Topics, fake_slack: FakeSlackServer
) -> None:
    dlq = topics.reminders.dead_letter_topic
    assert dlq is not None
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    event = reminder(run_id, f"rem-{uuid.uuid4().hex[:8]}")
    # One group for both runs: the restarted worker resumes after the dead-lettered record, so
    # the only way the reminder can reach Slack afterwards is the replay.
    group = f"test-ops-dlq-{uuid.uuid4().hex[:8]}"
    fake_slack.fail("invalid_blocks", count=1)  # the bad renderer: Slack refuses the message

    async with worker_running(kafka_settings, topics, fake_slack, group) as running:
        sent = await running.producer.publish(topics.reminders, event)
        letters: list[DeadLetter] = []

        async def dead_lettered() -> bool:
            letters[:] = await inspect_dead_letters(dlq, settings=kafka_settings)
            return bool(letters)

        await wait_until(dead_lettered, timeout=WAIT, message="the rejected reminder dead-lettered")
        assert fake_slack.messages() == []
        assert [c.ok for c in fake_slack.calls("chat.postMessage")] == [False]
        await wait_until(
            lambda: (
                running.sample(
                    "coffeebuddy_kafka_dead_lettered_total",
                    topic=topics.reminders.name,
                    group=group,
                    reason="non_retryable",
                )
                == 1.0
            ),
            timeout=WAIT,
            message="dead_lettered_total counted it",
        )
        assert (
            running.sample(
                "coffeebuddy_reminders_failed_total", kind="runner", error_class="permanent"
            )
            == 1.0
        )

    [letter] = letters
    assert letter.origin_topic == topics.reminders.name
    assert (letter.origin_partition, letter.origin_offset) == (sent.partition, sent.offset)
    assert letter.origin_key == run_id.encode()
    assert letter.reason == "non_retryable"
    assert "invalid_blocks" in letter.error_message
    assert letter.run_id == run_id
    assert letter.attempts is not None
    assert letter.attempts >= 1
    assert letter.first_seen is not None
    assert letter.event_type == "coffeebuddy.reminder.scheduled.v1"
    filtered = await inspect_dead_letters(
        dlq, settings=kafka_settings, where=DeadLetterFilter(run_id=run_id, reason="non_retryable")
    )
    assert [d.ref for d in filtered] == [letter.ref]

    # The fix is deployed: Slack accepts the message now. Replay, then replay again.
    fake_slack.clear_script()
    ledger = TopicReplayLedger(topics.ledger, settings=kafka_settings)
    async with worker_running(kafka_settings, topics, fake_slack, group) as running:
        dry = await replay_dead_letters(dlq, ledger=ledger, settings=kafka_settings, dry_run=True)
        assert [d.ref for d in dry.to_replay] == [letter.ref]

        report = await replay_dead_letters(
            dlq, ledger=ledger, settings=kafka_settings, topics=[topics.reminders]
        )
        [(replayed, target)] = report.replayed
        assert target.topic == topics.reminders.name

        messages = await fake_slack.wait_for_messages(1, timeout=WAIT, user=USER)
        await wait_until(
            lambda: running.worker.pending_count == 0,
            timeout=WAIT,
            message="the replayed reminder settled",
        )
        # another operator's run: a fresh ledger reads the entry back from the topic
        fresh = TopicReplayLedger(topics.ledger, settings=kafka_settings)
        again = await replay_dead_letters(dlq, ledger=fresh, settings=kafka_settings)
        assert again.replayed == []
        assert [d.ref for d in again.already_replayed] == [letter.ref]
        assert running.sample("coffeebuddy_reminders_sent_total", kind="runner") == 1.0
        # the restarted worker read only the replayed record, not the dead-lettered original
        consumed = running.sample(
            "coffeebuddy_kafka_messages_consumed_total", topic=topics.reminders.name, group=group
        )
        assert consumed == 1.0

    assert len(fake_slack.messages()) == 1
    assert messages[0].channel == fake_slack.channel_for(USER)
    assert replayed.ref == letter.ref
    assert DLQ_REPLAYED_FROM in {k for k, _ in replayed.replay_headers()}
    [entry] = fresh.entries.values()
    assert entry.ref == letter.ledger_key
    assert entry.run_id == run_id
    assert (entry.origin_topic, entry.target_partition, entry.target_offset) == target
    assert DeadLetterReplayed.create(data=entry).subject == run_id
