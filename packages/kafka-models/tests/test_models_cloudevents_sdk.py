"""Peer tests against the official CloudEvents Python SDK's Kafka binding, both modes, both
directions, every event type: attributes, extensions, key and data must come through intact."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent

from coffeebuddy.infra.kafka.models import (
    EVENT_TYPES,
    CloudEvent,
    DeadLetterReplayed,
    DeadLetterReplayedData,
    OrderAdded,
    OrderAddedData,
    OrderLine,
    ReminderCancelled,
    ReminderCancelledData,
    ReminderScheduled,
    ReminderScheduledData,
    ReminderState,
    ReminderStateData,
    RunCancelled,
    RunCancelledData,
    RunClosed,
    RunClosedData,
    RunCreated,
    RunCreatedData,
    RunnerAssigned,
    RunnerAssignedData,
    decode_record,
    encode_record,
)

NOW = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)
EXTENSIONS = {"partitionkey": "run-7", "tenant": "acme", "traceparent": "00-a-b-01"}


def sample_events() -> list[CloudEvent[Any]]:
    """One event of every type we define, with extensions."""
    later = NOW + timedelta(minutes=10)
    datas: list[tuple[type[CloudEvent[Any]], Any]] = [
        (
            RunCreated,
            RunCreatedData(
                run_id="run-7",
                team_id="T1",
                channel_id="C1",
                organizer_user_id="U1",
                place="Blue Bottle ☕",
                closes_at=later,
            ),
        ),
        (OrderAdded, OrderAddedData(run_id="run-7", user_id="U2", item="flat white")),
        (RunnerAssigned, RunnerAssignedData(run_id="run-7", runner_user_id="U3")),
        (RunClosed, RunClosedData(run_id="run-7", closed_at=later)),
        (RunCancelled, RunCancelledData(run_id="run-7", reason="rain")),
        (
            ReminderScheduled,
            ReminderScheduledData(
                reminder_id="run-7:runner",
                kind="runner",
                run_id="run-7",
                team_id="T1",
                channel_id="C1",
                recipient_user_id="U3",
                due_at=later,
                place="Blue Bottle",
                orders=[OrderLine(user_id="U2", item="flat white")],
                order_count=1,
            ),
        ),
        (ReminderCancelled, ReminderCancelledData(reminder_id="run-7:runner", run_id="run-7")),
        (
            ReminderState,
            ReminderStateData(
                state_key="run-7:runner",
                run_id="run-7",
                status="claimed",
                reminder_id="run-7:runner",
                owner="reminder-worker-1",
                epoch=3,
                claimed_at=NOW,
                deadline=later,
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
                run_id="run-7",
            ),
        ),
    ]
    return [cls.create(data=data, time=NOW, extensions=EXTENSIONS) for cls, data in datas]


def test_samples_cover_every_event_type() -> None:
    assert {e.type for e in sample_events()} == set(EVENT_TYPES)


def _sdk_event(event: CloudEvent[Any]) -> SdkEvent:
    attributes = event.model_dump(mode="json", exclude={"data"}, exclude_none=True)
    attributes["time"] = event.time
    data = json.loads(event.data.model_dump_json(exclude_none=True))
    return SdkEvent(attributes, data)


def _headers(message: ce_kafka.KafkaMessage) -> list[tuple[str, bytes]]:
    return list(message.headers.items())


def _assert_same(ours: CloudEvent[Any], sdk: SdkEvent, *, key: bytes | None) -> None:
    assert sdk.get_specversion() == ours.specversion
    assert sdk.get_id() == ours.id
    assert sdk.get_source() == ours.source
    assert sdk.get_type() == ours.type
    assert sdk.get_subject() == ours.subject
    assert sdk.get_time() == ours.time
    assert sdk.get_datacontenttype() == "application/json"
    assert sdk.get_data() == json.loads(ours.data.model_dump_json(exclude_none=True))
    for name, value in ours.extensions.items():
        assert sdk.get_extension(name) == value
    # the SDK maps the record key to partitionkey on receipt
    assert sdk.get_extension("partitionkey") == (key.decode() if key else None)


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_sdk_binary_to_our_decoder(event: CloudEvent[Any]) -> None:
    message = ce_kafka.to_binary(_sdk_event(event), JSONFormat())
    assert message.key == b"run-7" or message.key == "run-7"  # partitionkey -> key
    decoded = decode_record(message.value, _headers(message))
    assert decoded == event
    assert decoded.extensions == EXTENSIONS


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_sdk_structured_to_our_decoder(event: CloudEvent[Any]) -> None:
    message = ce_kafka.to_structured(_sdk_event(event), JSONFormat())
    decoded = decode_record(message.value, _headers(message))
    assert decoded == event
    assert decoded.extensions == EXTENSIONS


@pytest.mark.parametrize("mode", ["binary", "structured"])
@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_our_encoding_to_sdk_parser(event: CloudEvent[Any], mode: str) -> None:
    value, headers = encode_record(event, mode)  # type: ignore[arg-type]
    key = event.data.run_id.encode()
    message = ce_kafka.KafkaMessage(headers=dict(headers), key=key, value=value)
    parse = ce_kafka.from_binary if mode == "binary" else ce_kafka.from_structured
    sdk = parse(message, JSONFormat(), None)
    _assert_same(event, sdk, key=key)
    # and the SDK's own mode detection agrees with ours
    assert ce_kafka.from_kafka(message, JSONFormat(), None).get_id() == event.id
