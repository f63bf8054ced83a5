"""KIT: the reminder worker's public API, alone and with the real harness and broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings, SettingsError
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness
from coffeebuddy.infra.kafka.metrics import ReminderMetrics
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.reminder_worker import (
    Fence,
    ReminderSender,
    ReminderSettings,
    ReminderWorker,
    SendOutcome,
    SendResult,
    WorkerHealth,
    WorkerTopics,
)
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
)


class KitSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, datetime]] = []

    async def send(
        self, reminder: ReminderScheduledData, *, claim_time: datetime, fence: Fence
    ) -> SendResult:
        if not fence():  # asked right before the post: the claim is still fresh and ours
            return SendResult.fenced()
        self.sent.append((reminder.reminder_id, datetime.now(UTC)))
        return SendResult.sent("D0KIT", "1700000000.000100")

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        return None

    async def check_auth(self) -> SendResult:
        return SendResult.sent()


def test_send_result_and_protocol() -> None:
    assert isinstance(KitSender(), ReminderSender)
    assert SendResult.sent("D1", "1.1").outcome is SendOutcome.SENT
    rejected = SendResult.permanent("invalid_blocks", dead_letter=True)
    assert rejected.dead_letter
    assert not rejected.ok
    assert SendResult.rate_limited(2.0).retry_after == 2.0
    assert {o.value for o in SendOutcome} == {
        "sent",
        "rate_limited",
        "transient",
        "permanent",
        "configuration",
        "ambiguous",
        "fenced",
    }


def test_invalid_worker_settings_are_named() -> None:
    with pytest.raises(SettingsError, match="REMINDER_MAX_PENDING"):
        ReminderSettings.from_env({"REMINDER_MAX_PENDING": "0"})


async def test_reminder_delivered_once_on_time_through_the_harness(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    reminders = unique_topic(1, event_types=REMINDER_EVENTS_TOPIC.event_types)
    runs = unique_topic(1, event_types=RUN_EVENTS_TOPIC.event_types)
    changelog = unique_topic(  # co-partitioned with the reminder events (same count)
        1,
        key_field="state_key",
        event_types=REMINDER_STATE_CHANGELOG_TOPIC.event_types,
        dead_letter=False,
    )
    sender = KitSender()
    metrics = ReminderMetrics(CollectorRegistry())
    async with (
        KafkaEventProducer(kafka_settings) as producer,
        ReminderWorker(
            sender,
            producer,
            ReminderSettings(history=False),
            kafka_settings,
            topics=WorkerTopics(reminders=reminders, runs=runs, changelog=changelog),
            metrics=metrics,
        ) as worker,
    ):
        harness = KafkaConsumerHarness(
            kafka_settings,
            [reminders, runs],
            f"kit-reminder-worker-{uuid.uuid4().hex[:6]}",
            worker.process_event,
            producer=producer,
            max_incomplete_total=worker.max_pending,
            on_assign=worker.on_assign,
            on_revoke=worker.on_revoke,
            commit_interval=0.2,
        )
        task = asyncio.create_task(harness.run())
        try:
            await wait_until(lambda: harness.health().ready, timeout=20, message="joined")
            due = datetime.now(UTC) + timedelta(seconds=1)
            event = ReminderScheduled.create(
                data=ReminderScheduledData(
                    reminder_id="kit-r1",
                    kind="runner",
                    run_id="kit-run",
                    team_id="T0KIT",
                    channel_id="C0KIT",
                    recipient_user_id="U0KIT",
                    due_at=due,
                    place="Kit Cafe",
                )
            )
            await producer.publish(reminders, event)
            await producer.publish(reminders, event)
            await wait_until(lambda: len(sender.sent) == 1, timeout=20, message="sent")
            await wait_until(lambda: worker.pending_count == 0, timeout=20, message="settled")
            health = worker.health()
            assert isinstance(health, WorkerHealth)
            assert health.ready
            assert worker.ready
        finally:
            await harness.stop()
            await task
    [(rid, at)] = sender.sent
    assert rid == "kit-r1"
    assert at >= due
