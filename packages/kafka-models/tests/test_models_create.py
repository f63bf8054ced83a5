"""`create` fills the envelope; constants and the wire format are as documented."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    DLQ_REPLAYED,
    EVENT_TYPES,
    REMINDER_STATE,
    RUN_CREATED,
    DeadLetterReplayed,
    DeadLetterReplayedData,
    ReminderState,
    ReminderStateData,
    RunCreated,
    RunCreatedData,
    decode_event,
    encode_event,
)

CLOSES = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _run_created_data() -> RunCreatedData:
    return RunCreatedData(
        run_id="run-1",
        team_id="T1",
        channel_id="C1",
        organizer_user_id="U1",
        place="Café Olé",
        closes_at=CLOSES,
    )


def test_create_fills_id_time_subject_source_and_type() -> None:
    before = datetime.now(UTC)
    event = RunCreated.create(data=_run_created_data())
    assert uuid.UUID(event.id).version == 4
    assert before <= event.time <= datetime.now(UTC)
    assert event.time.tzinfo is not None
    assert event.subject == "run-1"
    assert event.source == "/coffeebuddy/slack-app"
    assert event.type == RUN_CREATED == RunCreated.EVENT_TYPE
    assert event.specversion == "1.0"
    assert event.datacontenttype == "application/json"


def test_create_keeps_explicit_values_and_state_defaults_to_worker_source() -> None:
    data = ReminderStateData(
        state_key="r1",
        reminder_id="r1",
        run_id="run-1",
        status="sent",
        keep_until=CLOSES,
        recorded_at=CLOSES + timedelta(seconds=2),
        slack_channel="D123",
        slack_ts="1700000000.000100",
    )
    event = ReminderState.create(data=data, id="fixed", time=CLOSES)
    assert (event.id, event.time, event.type) == ("fixed", CLOSES, REMINDER_STATE)
    assert event.source == "/coffeebuddy/reminder-worker"


def test_create_rejects_naive_time() -> None:
    with pytest.raises(ValidationError, match="time"):
        RunCreated.create(data=_run_created_data(), time=datetime(2026, 1, 1))


def test_wire_format_is_compact_utf8_structured_json() -> None:
    event = RunCreated.create(data=_run_created_data(), id="e1", time=CLOSES)
    raw = encode_event(event)
    assert (
        raw
        == (
            '{"specversion":"1.0","id":"e1","source":"/coffeebuddy/slack-app",'
            '"type":"coffeebuddy.run.created.v1","subject":"run-1","time":"2026-11-27T10:00:00Z",'
            '"datacontenttype":"application/json","data":{"run_id":"run-1","team_id":"T1",'
            '"channel_id":"C1","organizer_user_id":"U1","place":"Café Olé",'
            '"closes_at":"2026-11-27T10:00:00Z"}}'
        ).encode()
    )
    assert json.loads(raw)["data"]["place"] == "Café Olé"
    assert CONTENT_TYPE == "application/cloudevents+json; charset=utf-8"


def test_optional_fields_are_omitted_when_unset() -> None:
    data = ReminderStateData(
        state_key="r1", run_id="run-1", status="cancelled", keep_until=CLOSES, recorded_at=CLOSES
    )
    doc = json.loads(encode_event(ReminderState.create(data=data)))
    # a reminder's id is its key when not given (as the codec reads a record without one)
    assert set(doc["data"]) == {"run_id", "state_key", "status", "keep_until", "recorded_at"} | {
        "reminder_id"
    }
    assert doc["data"]["reminder_id"] == "r1"


def test_event_types_mapping_is_complete() -> None:
    assert set(EVENT_TYPES) == {
        "coffeebuddy.run.created.v1",
        "coffeebuddy.run.order_added.v1",
        "coffeebuddy.run.runner_assigned.v1",
        "coffeebuddy.run.closed.v1",
        "coffeebuddy.run.cancelled.v1",
        "coffeebuddy.reminder.scheduled.v1",
        "coffeebuddy.reminder.cancelled.v1",
        "coffeebuddy.reminder.state.v1",
        "coffeebuddy.dlq.replayed.v1",
    }
    for name, cls in EVENT_TYPES.items():
        assert name == cls.EVENT_TYPE
        assert cls.model_fields["type"].default == name


def test_events_are_frozen() -> None:
    event = RunCreated.create(data=_run_created_data())
    with pytest.raises(ValidationError):
        event.subject = "other"


def _replayed_data(run_id: str | None) -> DeadLetterReplayedData:
    return DeadLetterReplayedData(
        ref="coffeebuddy.run.events.dlq/2/41@1764237600000",
        dlq_topic="coffeebuddy.run.events.dlq",
        dlq_partition=2,
        dlq_offset=41,
        origin_topic="coffeebuddy.run.events",
        origin_partition=7,
        origin_offset=1200,
        target_partition=7,
        target_offset=1305,
        replayed_at=CLOSES,
        replayed_by="alice@ops-1",
        run_id=run_id,
    )


def test_replayed_subject_is_the_run_id_when_known_else_the_ref() -> None:
    with_run = DeadLetterReplayed.create(data=_replayed_data("run-7"))
    assert with_run.subject == "run-7"
    assert with_run.type == DLQ_REPLAYED == "coffeebuddy.dlq.replayed.v1"
    assert with_run.source == "/coffeebuddy/dlq-replayer"
    no_run = DeadLetterReplayed.create(data=_replayed_data(None))
    assert no_run.subject == "coffeebuddy.run.events.dlq/2/41@1764237600000"
    assert "run_id" not in json.loads(encode_event(no_run))["data"]
    assert decode_event(encode_event(no_run)) == no_run
    assert EVENT_TYPES[DLQ_REPLAYED] is DeadLetterReplayed
