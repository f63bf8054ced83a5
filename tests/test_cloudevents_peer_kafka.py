"""Peer tests over the real broker with the official CloudEvents Python SDK's Kafka binding:
SDK-built records (binary and structured) through our consumer harness, and records from our
producer parsed by the SDK; every event type, attributes, extensions, key and data intact."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RecordContext
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    EVENT_TYPES,
    CloudEvent,
    DeadLetterReplayed,
    DeadLetterReplayedData,
    Event,
    OrderAdded,
    OrderAddedData,
    OrderLine,
    ReminderCancelled,
    ReminderCancelledData,
    ReminderScheduled,
    ReminderScheduledData,
    ReminderState,
    ReminderStateData,
    ReminderStatus,
    RunCancelled,
    RunCancelledData,
    RunClosed,
    RunClosedData,
    RunCreated,
    RunCreatedData,
    RunnerAssigned,
    RunnerAssignedData,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until

NOW = datetime(2026, 11, 27, 9, 30, 15, 250000, tzinfo=UTC)
WAIT = 20.0


def sample_events(run_id: str) -> list[CloudEvent[Any]]:
    """One event of every type we define, each with extensions (partitionkey = run id)."""
    later = NOW + timedelta(minutes=10)
    rid = f"{run_id}:runner"
    datas: list[tuple[type[CloudEvent[Any]], Any]] = [
        (
            RunCreated,
            RunCreatedData(
                run_id=run_id,
                team_id="T1",
                channel_id="C1",
                organizer_user_id="U1",
                place="Blue Bottle ☕",
                closes_at=later,
            ),
        ),
        (OrderAdded, OrderAddedData(run_id=run_id, user_id="U2", item="flat white")),
        (RunnerAssigned, RunnerAssignedData(run_id=run_id, runner_user_id="U3")),
        (RunClosed, RunClosedData(run_id=run_id, closed_at=later)),
        (RunCancelled, RunCancelledData(run_id=run_id, reason="rain")),
        (
            ReminderScheduled,
            ReminderScheduledData(
                reminder_id=rid,
                kind="runner",
                run_id=run_id,
                team_id="T1",
                channel_id="C1",
                recipient_user_id="U3",
                due_at=later,
                place="Blue Bottle",
                orders=[OrderLine(user_id="U2", item="flat white")],
                order_count=1,
            ),
        ),
        (ReminderCancelled, ReminderCancelledData(reminder_id=rid, run_id=run_id)),
        (
            ReminderState,
            ReminderStateData(
                state_key=rid,
                run_id=run_id,
                status="claimed",
                reminder_id=rid,
                owner="reminder-worker-1",
                epoch=3,
                claimed_at=NOW,
                deadline=later,
                keep_until=later,
                recorded_at=NOW,
            ),
        ),
        (  # the fields the state record gained with the history topic
            ReminderState,
            ReminderStateData(
                state_key=rid,
                run_id=run_id,
                status=ReminderStatus.DEAD_LETTERED,
                reminder_id=rid,
                event_id="evt-1",
                event_source="/coffeebuddy/slack-app",
                origin_topic="coffeebuddy.reminder.events",
                origin_partition=2,
                origin_offset=41,
                traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                reason="slack: msg_too_long",
                cause_event_id="evt-0",
                dlq_topic="coffeebuddy.reminder.events.dlq",
                dlq_partition=1,
                dlq_offset=7,
                run_closed=True,
                run_cancelled=False,
                keep_until=later,
                recorded_at=NOW,
            ),
        ),
        (
            DeadLetterReplayed,
            DeadLetterReplayedData(
                ref="t.dlq/0/5@1764235800000",
                dlq_topic="t.dlq",
                dlq_partition=0,
                dlq_offset=5,
                origin_topic="t",
                target_partition=0,
                target_offset=9,
                replayed_at=later,
                run_id=run_id,
            ),
        ),
    ]
    ext = {"partitionkey": run_id, "tenant": "acme"}
    events = [cls.create(data=data, time=NOW, extensions=ext) for cls, data in datas]
    assert {e.type for e in events} == set(EVENT_TYPES)
    return events


def to_sdk(event: CloudEvent[Any], media_type: str = "application/json") -> SdkEvent:
    attributes = event.model_dump(mode="json", exclude={"data"}, exclude_none=True)
    attributes["time"] = event.time
    attributes["datacontenttype"] = media_type
    return SdkEvent(attributes, json.loads(event.data.model_dump_json(exclude_none=True)))


@pytest.mark.parametrize(
    "media_type",
    [
        "application/json",
        # what the CloudEvents Java SDK (cloudevents-kafka 4.0.1) writes; issue 21, scenario 7
        "application/json; charset=utf-8",
    ],
)
@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_sdk_records_through_our_harness(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, mode: str, media_type: str
) -> None:
    topic = unique_topic(2, event_types=EVENT_TYPES)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    events = sample_events(run_id)
    convert = ce_kafka.to_binary if mode == "binary" else ce_kafka.to_structured
    messages = [convert(to_sdk(e, media_type), JSONFormat()) for e in events]
    producer = AIOKafkaProducer(**kafka_settings.producer_kwargs())
    await producer.start()
    try:
        for m in messages:
            key = m.key.encode() if isinstance(m.key, str) else m.key
            await producer.send_and_wait(
                topic.name, m.value, key=key, headers=list(m.headers.items())
            )
    finally:
        await producer.stop()
    seen: list[tuple[Event, bytes | None]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        seen.append((event, ctx.key))

    group = f"test-peer-{uuid.uuid4().hex[:8]}"
    metrics = KafkaMetrics(CollectorRegistry())
    harness = KafkaConsumerHarness(kafka_settings, [topic], group, handler, metrics=metrics)
    task = asyncio.create_task(harness.run())
    try:
        await wait_until(lambda: len(seen) >= len(events), timeout=WAIT, message="all handled")
    finally:
        await harness.stop()
        await asyncio.wait_for(task, 15.0)
    assert [e for e, _ in seen] == events  # one key, one partition: in order
    assert all(e.extensions == {"partitionkey": run_id, "tenant": "acme"} for e, _ in seen)
    assert {key for _, key in seen} == {run_id.encode()}  # the SDK keys by partitionkey
    dead = metrics.registry.get_sample_value(
        "coffeebuddy_kafka_dead_lettered_total",
        {"topic": topic.name, "group": group, "reason": "decode_error"},
    )
    assert not dead


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_our_producer_records_parsed_by_the_sdk(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, mode: str
) -> None:
    topic = unique_topic(2, event_types=EVENT_TYPES)
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    events = sample_events(run_id)
    async with KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(CollectorRegistry())) as p:
        await p.publish_many(topic, events, content_mode=mode)  # type: ignore[arg-type]
    consumer = AIOKafkaConsumer(topic.name, **kafka_settings.consumer_kwargs(None))
    await consumer.start()
    records: list[Any] = []
    try:

        async def enough() -> bool:
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                records.extend(batch)
            return len(records) >= len(events)

        await wait_until(enough, timeout=WAIT, message="all records readable")
    finally:
        await consumer.stop()
    records.sort(key=lambda r: r.offset)
    for event, record in zip(events, records, strict=True):
        message = ce_kafka.KafkaMessage(
            headers=dict(record.headers), key=record.key, value=record.value
        )
        sdk = ce_kafka.from_kafka(message, JSONFormat(), None)  # the SDK's own mode detection
        assert (sdk.get_id(), sdk.get_type(), sdk.get_source()) == (
            event.id,
            event.type,
            event.source,
        )
        assert sdk.get_specversion() == "1.0"
        assert sdk.get_subject() == event.subject
        assert sdk.get_time() == event.time
        assert sdk.get_datacontenttype() == "application/json"
        assert sdk.get_data() == json.loads(event.data.model_dump_json(exclude_none=True))
        assert sdk.get_extension("tenant") == "acme"
        assert sdk.get_extension("partitionkey") == run_id == record.key.decode()
        binary = any(name.startswith("ce_") for name, _ in record.headers)
        assert binary is (mode == "binary")
