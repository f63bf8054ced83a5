"""KIT: building, encoding and decoding events (public API of coffeebuddy.infra.kafka.models)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    EVENT_TYPES,
    EventDecodeError,
    OrderLine,
    ReminderScheduled,
    ReminderScheduledData,
    RunCancelled,
    RunCancelledData,
    content_mode,
    decode_event,
    decode_events,
    decode_record,
    encode_event,
    encode_record,
)

DUE = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def _reminder() -> ReminderScheduled:
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            reminder_id="run-1:runner",
            kind="runner",
            run_id="run-1",
            team_id="T0001",
            channel_id="C0001",
            recipient_user_id="U0001",
            due_at=DUE,
            expires_at=DUE + timedelta(minutes=10),
            place="Corner Café",
            order_count=2,
            orders=[
                OrderLine(user_id="U0002", item="flat white"),
                OrderLine(user_id="W3", item="tea"),
            ],
        ),
        source="/coffeebuddy/slack-app",
    )


def test_kit_round_trip_and_wire_format() -> None:
    event = _reminder()
    raw = encode_event(event)
    doc = json.loads(raw)
    assert doc["specversion"] == "1.0"
    assert doc["type"] == "coffeebuddy.reminder.scheduled.v1"
    assert doc["subject"] == doc["data"]["run_id"] == "run-1"
    assert doc["datacontenttype"] == "application/json"
    assert decode_event(raw) == event
    assert CONTENT_TYPE == "application/cloudevents+json; charset=utf-8"
    assert len(EVENT_TYPES) == 9


def test_kit_errors_name_field_and_rule() -> None:
    doc = json.loads(encode_event(_reminder()))
    doc["data"]["recipient_user_id"] = "bob"
    with pytest.raises(EventDecodeError) as info:
        decode_event(json.dumps(doc).encode())
    assert info.value.reason == "validation"
    assert "data.recipient_user_id: must look like a Slack user id (U… or W…)" in str(info.value)
    assert [e.field for e in info.value.errors] == ["data.recipient_user_id"]


def test_kit_batch_decode_isolates_bad_records() -> None:
    good = encode_event(
        RunCancelled.create(data=RunCancelledData(run_id="run-1", reason="rain"), time=DUE)
    )
    results = decode_events([good, b"\xff", b'{"type": "coffeebuddy.nope.v1"}'])
    assert isinstance(results[0], RunCancelled)
    assert [r.reason for r in results[1:] if isinstance(r, EventDecodeError)] == [
        "invalid_utf8",
        "unknown_type",
    ]


def test_kit_models_both_cloudevents_content_modes() -> None:
    """kit models both CloudEvents content modes (binding), extensions kept"""
    event = ReminderScheduled.create(data=_reminder().data, extensions={"tenant": "acme"})
    value, headers = encode_record(event, "binary")
    assert content_mode(headers) == "binary"
    assert dict(headers)["ce_id"] == event.id.encode()
    assert dict(headers)["ce_tenant"] == b"acme"
    assert decode_record(value, headers) == event
    value, headers = encode_record(event)  # structured, the default
    assert headers == [("content-type", CONTENT_TYPE.encode())]
    assert decode_record(value, headers).extensions == {"tenant": "acme"}
    keyed = decode_record(value, headers, key=b"run-1")  # opt-in: record key -> partitionkey
    assert keyed.extensions == {"tenant": "acme", "partitionkey": "run-1"}
    bad = [(n, v) for n, v in encode_record(event, "binary")[1] if n != "ce_source"]
    with pytest.raises(EventDecodeError) as info:
        decode_record(encode_record(event, "binary")[0], bad)
    assert info.value.errors[0].field == "ce_source"


def test_kit_models_cloudevents_sdk_peer() -> None:
    """kit models interoperate with the official CloudEvents SDK's Kafka binding"""
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent as SdkEvent

    event = _reminder()
    attributes = event.model_dump(mode="json", exclude={"data"}, exclude_none=True)
    attributes["time"] = event.time
    sdk_event = SdkEvent(attributes, json.loads(event.data.model_dump_json(exclude_none=True)))
    message = ce_kafka.to_binary(sdk_event, JSONFormat())
    assert decode_record(message.value, list(message.headers.items())) == event
    for mode in ("binary", "structured"):
        value, headers = encode_record(event, mode)  # type: ignore[arg-type]
        parsed = ce_kafka.from_kafka(
            ce_kafka.KafkaMessage(headers=dict(headers), key=b"run-1", value=value), JSONFormat()
        )
        assert (parsed.get_id(), parsed.get_type()) == (event.id, event.type)
        assert parsed.get_extension("partitionkey") == "run-1"  # the SDK maps the key
