"""One reminder followed by OpenTelemetry from the slack-app's publish through the harness and
the worker to the (fake) Slack call: real broker, real SlackDMSender over HTTP, in-memory
exporter. The send happens after a delay, so it starts its own trace linked to the publish."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness
from coffeebuddy.infra.kafka.metrics import KafkaMetrics, ReminderMetrics
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.reminder_worker import ReminderSettings, ReminderWorker, WorkerTopics
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
)
from coffeebuddy.services.fake_slack import FakeSlackServer
from coffeebuddy.services.reminder_worker import SlackDMSender

WAIT = 20.0


@pytest.mark.parametrize("mode", ["structured", "binary"])
async def test_one_trace_from_publish_through_harness_and_worker_to_slack(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    fake_slack: FakeSlackServer,
    mode: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reminders = unique_topic(2, event_types=REMINDER_EVENTS_TOPIC.event_types)
    reminders = reminders.model_copy(update={"content_mode": mode})
    runs = unique_topic(2, event_types=RUN_EVENTS_TOPIC.event_types)
    changelog = unique_topic(  # co-partitioned with the reminder events
        2,
        key_field="state_key",
        event_types=REMINDER_STATE_CHANGELOG_TOPIC.event_types,
        dead_letter=False,
    )
    registry = CollectorRegistry()
    metrics, reminder_metrics = KafkaMetrics(registry), ReminderMetrics(registry)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    event = ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run_id,
            reminder_id=f"{run_id}:runner",
            kind="runner",
            team_id="T0TRACE",
            channel_id="C0TRACE",
            recipient_user_id="U0TRACE",
            due_at=datetime.now(UTC) + timedelta(milliseconds=500),
            place="Cafe Trace",
        )
    )
    sender = SlackDMSender.create(
        fake_slack.token, base_url=fake_slack.base_url, timeout=5.0, metrics=reminder_metrics
    )
    app_tracer = provider.get_tracer("slack-app")
    try:
        async with (
            KafkaEventProducer(kafka_settings, metrics=metrics, tracing=False) as worker_producer,
            KafkaEventProducer(kafka_settings, metrics=metrics, tracer_provider=provider) as app,
        ):
            worker = ReminderWorker(
                sender,
                worker_producer,
                ReminderSettings(history=False),
                kafka_settings,
                topics=WorkerTopics(reminders=reminders, runs=runs, changelog=changelog),
                metrics=reminder_metrics,
                tracer_provider=provider,
            )
            async with worker:
                harness = KafkaConsumerHarness(
                    kafka_settings,
                    [reminders, runs],
                    f"test-trace-{uuid.uuid4().hex[:8]}",
                    worker.process_event,
                    producer=worker_producer,
                    metrics=metrics,
                    on_assign=worker.on_assign,
                    on_revoke=worker.on_revoke,
                    tracer_provider=provider,
                )
                task = asyncio.create_task(harness.run())
                try:
                    await wait_until(
                        lambda: harness.health().ready or task.done(), timeout=WAIT, message="ready"
                    )
                    with app_tracer.start_as_current_span("slack-app: /coffee remind") as root:
                        md = await app.publish(reminders, event)
                    await fake_slack.wait_for_messages(1, timeout=WAIT)
                    await wait_until(
                        lambda: _named(exporter, "reminder.send"), timeout=WAIT, message="send span"
                    )
                finally:
                    await harness.stop()
                    await asyncio.wait_for(task, 15.0)
    finally:
        await sender.close()

    [publish] = _named(exporter, f"send {reminders.name}")
    [process] = _named(exporter, f"process {reminders.name}")
    [slack] = _named(exporter, "reminder.send")
    [message] = fake_slack.messages()
    [post] = fake_slack.calls("chat.postMessage")
    # publish -> process: one trace, parent and child, under the slack-app's own span
    trace_id = root.get_span_context().trace_id
    assert publish.context.trace_id == process.context.trace_id == trace_id
    assert publish.parent is not None
    assert publish.parent.span_id == root.get_span_context().span_id
    assert process.parent is not None
    assert process.parent.span_id == publish.context.span_id
    assert process.kind is trace.SpanKind.CONSUMER
    assert process.attributes["messaging.message.id"] == event.id
    assert process.attributes["messaging.kafka.offset"] == md.offset
    assert process.attributes["messaging.destination.partition.id"] == str(md.partition)
    assert process.attributes["coffeebuddy.deferred"] is True  # the send comes later
    # the Slack call: a CLIENT span in a new trace, linked to the scheduling record's context
    assert slack.kind is trace.SpanKind.CLIENT
    assert slack.parent is None
    assert slack.context.trace_id != trace_id
    [link] = slack.links
    assert link.context.trace_id == trace_id
    assert link.context.span_id == publish.context.span_id
    assert slack.attributes["cloudevents.event_id"] == event.id
    assert slack.attributes["coffeebuddy.reminder.id"] == event.data.reminder_id
    assert slack.attributes["coffeebuddy.reminder.outcome"] == "sent"
    assert slack.attributes["coffeebuddy.slack.ts"] == message.ts
    assert slack.attributes["coffeebuddy.sender"] == "SlackDMSender"
    assert slack.start_time is not None
    assert slack.end_time is not None
    assert slack.start_time <= post.time * 1e9 <= slack.end_time
    assert slack.status.status_code is trace.StatusCode.UNSET


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]
