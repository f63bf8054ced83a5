"""`events` without a broker: the samples, type names, --data, the record view and its lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coffeebuddy.infra.kafka.models import (
    CONTENT_MODES,
    REMINDER_SCHEDULED,
    REMINDER_STATE,
    ContentMode,
    EventDecodeError,
    ReminderScheduled,
    dead_letter_headers,
    decode_record,
    encode_record,
)
from coffeebuddy.infra.kafka.provision.events import (
    EventsError,
    SampleOptions,
    envelope,
    resolve_type,
    sample_data,
)
from coffeebuddy.infra.kafka.provision.events._cli import catalog_topic
from coffeebuddy.infra.kafka.provision.events._format import record_json, record_line
from coffeebuddy.infra.kafka.provision.events._publish import raw_record
from coffeebuddy.infra.kafka.provision.events._samples import (
    SAMPLES,
    merge_data,
    parse_data,
    publishable_types,
    short_name,
    validate_envelope,
)
from coffeebuddy.infra.kafka.provision.events._tail import read_record
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC, RUN_EVENTS_TOPIC

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_every_event_type_of_the_catalogs_event_topics_has_a_sample_the_models_accept() -> None:
    types = publishable_types()
    assert set(types) == set(REMINDER_EVENTS_TOPIC.event_types) | set(RUN_EVENTS_TOPIC.event_types)
    assert set(types) <= set(SAMPLES)
    options = SampleOptions(run_id="run-s1", user="U0SAMPLE", now=NOW)
    for event_type, topic in types.items():
        event = validate_envelope(envelope(event_type, sample_data(event_type, options)))
        assert event.type == event_type
        assert topic.allows(event.type)
        assert topic.key_for(event) == b"run-s1"
        for mode in CONTENT_MODES:
            assert decode_record(*encode_record(event, mode)) == event


def test_the_reminder_sample_is_due_when_asked_for_the_user_asked_for() -> None:
    options = SampleOptions(
        run_id="run-s2", user="U0ME", due_in=timedelta(seconds=30), kind="runner", now=NOW
    )
    event = validate_envelope(
        envelope(REMINDER_SCHEDULED, sample_data(REMINDER_SCHEDULED, options))
    )
    assert isinstance(event, ReminderScheduled)
    data = event.data
    assert (data.due_at, data.recipient_user_id, data.kind) == (
        NOW + timedelta(seconds=30),
        "U0ME",
        "runner",
    )
    assert data.reminder_id == "run-s2:runner"
    assert data.expires_at is not None
    assert data.expires_at > data.due_at
    assert event.subject == "run-s2"
    fresh = SampleOptions()
    assert fresh.run_id.startswith("run-cli-")
    assert fresh.run_id != SampleOptions().run_id


@pytest.mark.parametrize(
    "name", ["reminder.scheduled", "coffeebuddy.reminder.scheduled.v1", " reminder.scheduled "]
)
def test_type_names_short_or_full(name: str) -> None:
    assert resolve_type(name) == (REMINDER_SCHEDULED, REMINDER_EVENTS_TOPIC)


def test_unknown_or_owned_types_are_refused_naming_the_choices() -> None:
    unknown = r"unknown event type 'reminder\.sheduled'; publish one of: reminder\.cancelled, "
    with pytest.raises(EventsError, match=unknown + r"reminder\.scheduled, run\.cancelled"):
        resolve_type("reminder.sheduled")
    with pytest.raises(EventsError, match=r"travels on coffeebuddy\.reminder\.state-changelog "
                       r"\(kind log, written by its owner reminder-worker only\)"):  # fmt: skip
        resolve_type(short_name(REMINDER_STATE))
    with pytest.raises(EventsError, match=r"'coffeebuddy\.nope' is not a catalog topic; one of: "):
        catalog_topic("coffeebuddy.nope")
    assert catalog_topic("coffeebuddy.run.events.dlq").kind == "dead_letter"


def test_data_is_merged_over_the_sample_and_null_removes_a_field() -> None:
    merged = merge_data({"a": 1, "b": 2}, {"b": None, "c": {"x": 1}})
    assert merged == {"a": 1, "c": {"x": 1}}
    assert parse_data('{"place": "Cafe"}', "--data") == {"place": "Cafe"}
    with pytest.raises(EventsError, match=r"--data: not JSON \(line 1: "):
        parse_data("{place", "--data")
    with pytest.raises(EventsError, match="--data - \\(stdin\\): expected a JSON object, got list"):
        parse_data("[1]", "--data - (stdin)")
    data = merge_data(
        sample_data(REMINDER_SCHEDULED, SampleOptions(now=NOW)), {"due_at": "tomorrow"}
    )
    with pytest.raises(EventDecodeError, match=r"data\.due_at: must be an RFC 3339 timestamp"):
        validate_envelope(envelope(REMINDER_SCHEDULED, data))


@pytest.mark.parametrize("mode", CONTENT_MODES)
def test_an_unchecked_record_has_the_bindings_layout(mode: ContentMode) -> None:
    body = envelope(REMINDER_SCHEDULED, sample_data(REMINDER_SCHEDULED, SampleOptions(now=NOW)))
    value, headers, key = raw_record(body, mode, "run_id")
    event = decode_record(value, headers)  # a valid body decodes as the producer's would
    assert event == validate_envelope(body)
    assert key == str(event.data.run_id).encode()
    _, expected_headers = encode_record(event, mode)
    assert sorted(n for n, _ in headers) == sorted(n for n, _ in expected_headers)
    assert dict(headers)["content-type"] == dict(expected_headers)["content-type"]


def test_the_record_view_and_its_lines() -> None:
    body = envelope(
        REMINDER_SCHEDULED,
        sample_data(REMINDER_SCHEDULED, SampleOptions(run_id="run-v", user="U0V", now=NOW)),
        time=NOW,
    )
    value, headers = encode_record(validate_envelope(body), "binary")
    ms = int(NOW.timestamp() * 1000)
    good = read_record("t", 2, 7, ms, b"run-v", value, headers)
    assert good.kind == "event"
    assert good.mode == "binary"
    assert record_line(good) == (
        "09:00:00.000  [2]@7  key=run-v  reminder.scheduled  last_call reminder "
        "run-v:last_call for U0V, due 09:00:30 UTC (binary)"
    )
    as_json = record_json(good)
    assert (as_json["kind"], as_json["mode"], as_json["event"]["id"]) == (
        "event",
        "binary",
        body["id"],
    )
    assert as_json["timestamp"] == "2026-12-02T09:00:00Z"

    bad = read_record("t", 0, 8, ms, None, b"{not json", None)
    assert bad.kind == "undecodable"
    assert record_line(bad).startswith("09:00:00.000  [0]@8  key=-  UNDECODABLE (9 bytes): ")
    assert record_json(bad)["error"]["reason"] == "invalid_json"
    assert record_json(bad)["value"] == "{not json"

    gone = read_record("t", 1, 9, ms, b"k", None, [])
    assert (gone.kind, record_line(gone)) == ("tombstone", "09:00:00.000  [1]@9  key=k  tombstone")

    letter_headers = dead_letter_headers(
        topic="coffeebuddy.reminder.events",
        partition=1,
        offset=4,
        key=b"run-v",
        error=ValueError("data.due_at: must be an RFC 3339 timestamp string"),
        reason="decode_error",
        attempts=1,
        first_seen=NOW.timestamp(),
        original_headers=None,
    )
    dead = read_record("t.dlq", 0, 3, ms, b"run-v", b"{}", letter_headers, dead_letters=True)
    line = record_line(dead)
    assert "DEAD LETTER decode_error from coffeebuddy.reminder.events[1]@4: ValueError: " in line
    assert "original value undecodable" in line
    assert record_json(dead)["dead_letter"]["reason"] == "decode_error"
