"""One test per class of invalid input; each names the field, the rule and a bounded reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coffeebuddy.infra.kafka.models import (
    DeadLetterReplayed,
    DeadLetterReplayedData,
    EventDecodeError,
    ReminderScheduled,
    ReminderScheduledData,
    decode_event,
    decode_events,
    encode_event,
)
from coffeebuddy.infra.kafka.models._codec import DECODE_REASONS, FieldError

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def _valid() -> dict[str, Any]:
    event = ReminderScheduled.create(
        data=ReminderScheduledData(
            reminder_id="run-1:runner",
            kind="runner",
            run_id="run-1",
            team_id="T0123",
            channel_id="C0456",
            recipient_user_id="U0789",
            due_at=NOW,
            expires_at=NOW + timedelta(minutes=15),
            place="Blue Bottle",
        ),
        time=NOW,
    )
    doc: dict[str, Any] = json.loads(encode_event(event))
    return doc


def _reject(raw: bytes | dict[str, Any]) -> EventDecodeError:
    payload = json.dumps(raw).encode() if isinstance(raw, dict) else raw
    with pytest.raises(EventDecodeError) as info:
        decode_event(payload)
    assert info.value.reason in DECODE_REASONS
    return info.value


def _fields(error: EventDecodeError) -> dict[str, str]:
    return {e.field: e.rule for e in error.errors}


def test_valid_fixture_decodes() -> None:
    assert isinstance(decode_event(json.dumps(_valid()).encode()), ReminderScheduled)


def test_bad_json() -> None:
    error = _reject(b'{"specversion": "1.0",')
    assert error.reason == "invalid_json"
    assert error.errors[0].rule == "json"
    assert str(error).startswith("payload is not valid JSON")


def test_invalid_utf8() -> None:
    raw = json.dumps(_valid()).encode().replace(b"Blue", b"Bl\xffe")
    error = _reject(raw)
    assert error.reason == "invalid_utf8"
    assert "not valid UTF-8" in str(error)


@pytest.mark.parametrize("raw", [b"[]", b'"event"', b"42", b"null"])
def test_not_an_object(raw: bytes) -> None:
    error = _reject(raw)
    assert error.reason == "not_an_object"
    assert str(error) == "payload must be a JSON object"


def test_unknown_type() -> None:
    doc = _valid() | {"type": "coffeebuddy.run.teleported.v1"}
    error = _reject(doc)
    assert error.reason == "unknown_type"
    assert error.errors == [
        FieldError("type", "unknown_type", error.errors[0].message),
    ]
    assert "'coffeebuddy.run.teleported.v1'" in str(error)


def test_missing_type_and_missing_fields() -> None:
    doc = _valid()
    del doc["type"]
    assert _fields(_reject(doc)) == {"type": "union_tag_not_found"}
    doc = _valid()
    del doc["id"]
    del doc["data"]["due_at"]
    error = _reject(doc)
    assert error.reason == "validation"
    assert error.event_type == "coffeebuddy.reminder.scheduled.v1"
    assert _fields(error) == {"id": "missing", "data.due_at": "missing"}
    assert "data.due_at: required field is missing" in str(error)


def test_wrong_types() -> None:
    doc = _valid()
    doc["data"]["order_count"] = "many"
    doc["data"]["orders"] = {"user_id": "U1"}
    doc["specversion"] = "0.3"
    error = _reject(doc)
    assert _fields(error) == {
        "specversion": "literal_error",
        "data.order_count": "int_parsing",
        "data.orders": "list_type",
    }
    assert "specversion: must be '1.0'" in str(error)


def test_naive_time_rejected() -> None:
    doc = _valid()
    doc["time"] = "2026-11-27T09:30:00"
    doc["data"]["due_at"] = "2026-11-27T09:30:00"
    error = _reject(doc)
    assert _fields(error) == {"time": "timezone_aware", "data.due_at": "timezone_aware"}
    assert "time: must be timezone-aware" in str(error)


@pytest.mark.parametrize("value", [1764235800, "2026-11-27", "tomorrow at nine"])
def test_time_must_be_an_rfc3339_string(value: object) -> None:
    doc = _valid()
    doc["data"]["due_at"] = value
    error = _reject(doc)
    assert list(_fields(error)) == ["data.due_at"]
    assert str(error).endswith(
        "data.due_at: must be an RFC 3339 timestamp string, e.g. 2026-01-05T09:30:00Z"
    )


def test_subject_must_equal_run_id() -> None:
    doc = _valid() | {"subject": "run-2"}
    error = _reject(doc)
    assert error.errors == [FieldError("subject", "subject_mismatch", "must equal data.run_id")]


def _replayed(**data: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ref": "coffeebuddy.reminder.events.dlq/0/3@1764237600000",
        "dlq_topic": "coffeebuddy.reminder.events.dlq",
        "dlq_partition": 0,
        "dlq_offset": 3,
        "origin_topic": "coffeebuddy.reminder.events",
        "target_partition": 1,
        "target_offset": 10,
        "replayed_at": NOW,
    }
    event = DeadLetterReplayed.create(data=DeadLetterReplayedData(**(fields | data)), time=NOW)
    doc: dict[str, Any] = json.loads(encode_event(event))
    return doc


def test_replayed_subject_follows_run_id_then_ref() -> None:
    error = _reject(
        _replayed(run_id="run-1") | {"subject": "coffeebuddy.reminder.events.dlq/0/3@1764237600000"}
    )
    rule = "must equal data.run_id, or data.ref when there is no run_id"
    assert error.errors == [FieldError("subject", "subject_mismatch", rule)]
    assert _reject(_replayed() | {"subject": "run-1"}).errors == [
        FieldError("subject", "subject_mismatch", rule)
    ]


@pytest.mark.parametrize(
    ("field", "value", "rule", "message"),
    [
        (
            "ref",
            "somewhere else",
            "string_pattern_mismatch",
            "must look like <dlq topic>/<partition>/<offset>@<timestamp ms>",
        ),
        ("dlq_offset", -1, "greater_than_equal", "input should be greater than or equal to 0"),
        ("target_offset", "10", "int_type", "input should be a valid integer"),
        (
            "origin_topic",
            "run events",
            "string_pattern_mismatch",
            "must be a Kafka topic name (letters, digits, '.', '_' and '-')",
        ),
        (
            "replayed_at",
            "2026-11-27T09:30:00",
            "timezone_aware",
            "must be timezone-aware (RFC 3339 with an offset, e.g. 2026-01-05T09:30:00Z)",
        ),
        ("replayed_by", "x" * 201, "string_too_long", "must be at most 200 characters"),
    ],
)
def test_replayed_field_rules(field: str, value: Any, rule: str, message: str) -> None:
    doc = _replayed()
    doc["data"][field] = value
    if field == "ref":
        doc["subject"] = value
    error = _reject(doc)
    assert FieldError(f"data.{field}", rule, message) in error.errors, error.errors


def test_replayed_ref_must_name_the_dead_letter() -> None:
    doc = _replayed()
    doc["data"]["dlq_offset"] = 4
    error = _reject(doc)
    assert error.errors == [
        FieldError(
            "data.ref", "ref_mismatch", "must start with <dlq_topic>/<dlq_partition>/<dlq_offset>@"
        )
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("recipient_user_id", "X0789", "must look like a Slack user id (U… or W…)"),
        ("recipient_user_id", "u0789", "must look like a Slack user id (U… or W…)"),
        ("team_id", "W123", "must look like a Slack team id (T…)"),
        ("channel_id", "U123", "must look like a Slack channel id (C…, G… or D…)"),
        ("run_id", "run 1/2", "must contain only letters, digits, '_' and '-'"),
    ],
)
def test_bad_slack_and_run_ids(field: str, value: str, message: str) -> None:
    doc = _valid()
    doc["data"][field] = value
    if field == "run_id":
        doc["subject"] = value
    error = _reject(doc)
    assert f"data.{field}" in _fields(error)
    assert f"data.{field}: {message}" in str(error)


@pytest.mark.parametrize(
    ("field", "length", "limit"),
    [("place", 121, 120), ("reminder_id", 256, 255), ("run_id", 65, 64)],
)
def test_too_long_text(field: str, length: int, limit: int) -> None:
    doc = _valid()
    doc["data"][field] = "x" * length
    error = _reject(doc)
    assert _fields(error)[f"data.{field}"] == "string_too_long"
    assert f"data.{field}: must be at most {limit} characters" in str(error)


def test_too_long_order_item_is_located_in_the_list() -> None:
    doc = _valid()
    doc["data"]["orders"] = [
        {"user_id": "U1", "item": "latte"},
        {"user_id": "U2", "item": "x" * 201},
    ]
    assert _fields(_reject(doc)) == {"data.orders.1.item": "string_too_long"}


def test_expires_at_before_due_at() -> None:
    doc = _valid()
    doc["data"]["expires_at"] = "2026-11-27T09:00:00+00:00"
    error = _reject(doc)
    assert error.errors == [
        FieldError("data.expires_at", "expires_before_due", "must be after due_at")
    ]


def test_negative_order_count_and_bad_enum() -> None:
    doc = _valid()
    doc["data"]["order_count"] = -1
    doc["data"]["kind"] = "nag"
    assert _fields(_reject(doc)) == {
        "data.order_count": "greater_than_equal",
        "data.kind": "literal_error",
    }


def test_errors_do_not_echo_the_payload() -> None:
    doc = _valid()
    doc["data"]["recipient_user_id"] = "secret-value-xyz"
    assert "secret-value-xyz" not in str(_reject(doc))


def test_batch_decode_returns_errors_in_place() -> None:
    good = json.dumps(_valid()).encode()
    results = decode_events([good, b"{", good])
    assert isinstance(results[0], ReminderScheduled)
    assert isinstance(results[1], EventDecodeError)
    assert results[1].reason == "invalid_json"
    assert results[2] == results[0]
