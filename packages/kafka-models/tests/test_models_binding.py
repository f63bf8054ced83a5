"""CloudEvents Kafka binding: mode detection, binary-mode rules, one validation for both modes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    EventDecodeError,
    ReminderScheduled,
    ReminderScheduledData,
    RunClosed,
    RunClosedData,
    check_partitionkey,
    content_mode,
    decode_event,
    decode_record,
    encode_event,
    encode_record,
)
from coffeebuddy.infra.kafka.models._codec import DECODE_REASONS, FieldError

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
Headers = list[tuple[str, bytes]]


def _event() -> ReminderScheduled:
    return ReminderScheduled.create(
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
        id="evt-1",
        time=NOW,
    )


def _binary() -> tuple[bytes, Headers]:
    return encode_record(_event(), "binary")


def _reject(value: bytes | None, headers: Headers) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as info:
        decode_record(value, headers)
    assert info.value.reason in DECODE_REASONS
    return info.value


def _replace(headers: Headers, name: str, value: bytes | None) -> Headers:
    out = [(n, v) for n, v in headers if n != name]
    return out if value is None else [*out, (name, value)]


@pytest.mark.parametrize(
    ("headers", "mode"),
    [
        (None, "structured"),
        ([], "structured"),
        ([("content-type", CONTENT_TYPE.encode())], "structured"),
        ([("Content-Type", b"APPLICATION/CloudEvents+JSON")], "structured"),
        # a structured content-type wins over ce_ headers (the binding: MAY carry both)
        ([("ce_id", b"1"), ("content-type", b"application/cloudevents+json")], "structured"),
        ([("ce_id", b"1")], "binary"),
        ([("content-type", b"application/json"), ("CE_ID", b"1")], "binary"),
        # neither a CloudEvents content-type nor ce_ headers: our older records, structured
        ([("content-type", b"application/json"), ("traceparent", b"00-x")], "structured"),
    ],
)
def test_content_mode_follows_the_binding(headers: Headers | None, mode: str) -> None:
    assert content_mode(headers) == mode


def test_binary_layout_is_the_bindings() -> None:
    value, headers = _binary()
    names = [n for n, _ in headers]
    assert names[0] == "content-type"
    assert dict(headers)["content-type"] == b"application/json"
    assert {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time"} <= set(
        names
    )
    assert not any(n in names for n in ("ce_data", "ce_datacontenttype"))
    assert dict(headers)["ce_time"] == b"2026-11-27T09:30:00Z"
    assert json.loads(value) == json.loads(encode_event(_event()))["data"]


def test_binary_decodes_with_extra_headers_any_case_and_charset() -> None:
    value, headers = _binary()
    headers = [(n.upper() if n.startswith("ce_") else n, v) for n, v in headers]
    headers = _replace(headers, "content-type", b"application/json; charset=UTF-8")
    headers.append(("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
    headers.append(("coffeebuddy.dlq.reason", b"decode_error"))
    assert decode_record(value, headers) == _event()


def test_structured_value_still_decodes_with_and_without_headers() -> None:
    raw = encode_event(_event())
    assert decode_record(raw, [("content-type", CONTENT_TYPE.encode())]) == _event()
    assert decode_record(raw) == _event() == decode_event(raw)


def test_binary_missing_attribute_names_the_header() -> None:
    value, headers = _binary()
    error = _reject(value, _replace(headers, "ce_id", None))
    assert error.reason == "validation"
    assert error.errors == [FieldError("ce_id", "missing", "required field is missing")]
    assert str(error) == "coffeebuddy.reminder.scheduled.v1: ce_id: required field is missing"


def test_binary_unknown_type_and_subject_mismatch_name_headers() -> None:
    value, headers = _binary()
    error = _reject(value, _replace(headers, "ce_type", b"com.example.other"))
    assert (error.reason, error.errors[0].field) == ("unknown_type", "ce_type")
    error = _reject(value, _replace(headers, "ce_subject", b"run-2"))
    assert [(e.field, e.rule) for e in error.errors] == [("ce_subject", "subject_mismatch")]


def test_same_field_rules_in_both_modes() -> None:
    doc = json.loads(encode_event(_event()))
    doc["data"]["recipient_user_id"] = "nobody"
    doc["data"]["due_at"] = 1764235800
    with pytest.raises(EventDecodeError) as structured:
        decode_event(json.dumps(doc).encode())
    _, headers = _binary()
    binary = _reject(json.dumps(doc["data"]).encode(), headers)
    assert binary.reason == structured.value.reason == "validation"
    assert binary.errors == structured.value.errors
    assert {e.field for e in binary.errors} == {"data.recipient_user_id", "data.due_at"}


def test_binary_data_must_be_one_json_document() -> None:
    _, headers = _binary()
    # splicing must not let a value smuggle envelope attributes in
    smuggled = b'{"run_id":"run-1"},"subject":"run-9"'
    error = _reject(smuggled, headers)
    assert (error.reason, error.errors[0].field) == ("invalid_json", "data")
    error = _reject(b"\xff\xfe", headers)
    assert (error.reason, error.errors[0].field) == ("invalid_utf8", "data")
    error = _reject(None, headers)  # no value: an event without data (tombstone)
    assert error.errors == [FieldError("data", "missing", "required field is missing")]


def test_binary_header_rules() -> None:
    value, headers = _binary()
    error = _reject(value, [*headers, ("ce_id", b"evt-2")])
    assert error.errors == [FieldError("ce_id", "duplicate", "header appears more than once")]
    error = _reject(value, [*headers, ("ce_data", b"{}")])
    assert [(e.field, e.rule) for e in error.errors] == [("ce_data", "attribute_name")]
    error = _reject(value, [*headers, ("ce_my-ext", b"x")])
    assert [(e.field, e.rule) for e in error.errors] == [("ce_my-ext", "attribute_name")]
    error = _reject(value, _replace(headers, "ce_source", b"\xc3("))
    assert error.reason == "invalid_utf8"
    assert error.errors[0].field == "ce_source"
    error = _reject(value, _replace(headers, "content-type", b"application/xml"))
    assert [(e.field, e.rule) for e in error.errors] == [("content-type", "literal_error")]


def test_binary_without_content_type_means_json_data() -> None:
    value, headers = _binary()
    assert decode_record(value, _replace(headers, "content-type", None)) == _event()


def test_extensions_round_trip_in_both_modes() -> None:
    data = RunClosedData(run_id="run-1", closed_at=NOW)
    ext = {"partitionkey": "run-1", "traceparent": "00-x", "priority": 3, "urgent": True}
    event = RunClosed.create(data=data, time=NOW, extensions=ext)
    assert event.extensions == ext
    doc = json.loads(encode_event(event))
    assert {k: doc[k] for k in ext} == ext  # structured: top-level attributes
    assert decode_record(*encode_record(event)) == event
    value, headers = encode_record(event, "binary")
    assert dict(headers)["ce_partitionkey"] == b"run-1"
    assert dict(headers)["ce_urgent"] == b"true"
    # binary mode has no types: every extension comes back as its string form
    assert decode_record(value, headers).extensions == {
        "partitionkey": "run-1",
        "traceparent": "00-x",
        "priority": "3",
        "urgent": "true",
    }


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ({"Partition-Key": "x"}, "lower-case letters or digits"),
        ({"subject": "x"}, "core CloudEvents attribute"),
        ({"nested": {"a": 1}}, "string, integer or boolean"),
    ],
)
def test_bad_extensions_are_refused(extensions: dict[str, object], message: str) -> None:
    data = RunClosedData(run_id="run-1", closed_at=NOW)
    with pytest.raises(ValueError, match=message):
        RunClosed.create(data=data, extensions=extensions)  # type: ignore[arg-type]


def test_binary_encoding_refuses_an_extension_a_header_cannot_carry() -> None:
    doc = json.loads(encode_event(_event()))
    doc["nested"] = {"a": 1}  # tolerated when read structured, but not a header value
    event = decode_event(json.dumps(doc).encode())
    with pytest.raises(ValueError, match="'nested'"):
        encode_record(event, "binary")
    with pytest.raises(ValueError, match="content mode"):
        encode_record(event, "avro")  # type: ignore[arg-type]


def test_dataschema_travels_as_its_own_header() -> None:
    doc = json.loads(encode_event(_event()))
    doc["dataschema"] = "https://schemas.example/reminder.json"
    event = decode_event(json.dumps(doc).encode())
    value, headers = encode_record(event, "binary")
    assert dict(headers)["ce_dataschema"] == b"https://schemas.example/reminder.json"
    assert decode_record(value, headers) == event


def test_key_mapping_partitionkey() -> None:
    event = _event()
    value, headers = encode_record(event, "binary")
    # opt-in receive-side mapping: the record key becomes partitionkey when the event has none
    mapped = decode_record(value, headers, key=b"run-1")
    assert mapped.extensions == {"partitionkey": "run-1"}
    assert decode_record(encode_event(event), key=b"run-1").extensions == {"partitionkey": "run-1"}
    assert decode_record(value, headers).extensions == {}
    keyed = ReminderScheduled.create(data=event.data, extensions={"partitionkey": "run-1"})
    # an event's own partitionkey is never overwritten by the key
    assert decode_record(encode_event(keyed), key=b"other").extensions == {"partitionkey": "run-1"}
    check_partitionkey(keyed, b"run-1")
    with pytest.raises(ValueError, match="partitionkey extension 'run-1' differs"):
        check_partitionkey(keyed, b"run-2")
    check_partitionkey(event, b"anything")  # no extension: nothing to keep in step


@pytest.mark.parametrize(
    ("media_type", "accepted"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),  # what the Java SDK writes in structured mode
        ("Application/JSON; Charset=UTF-8", True),
        ('application/json;charset="utf-8"', True),
        ("application/xml", False),
        ("application/json; charset=latin-1", False),
        ("text/plain", False),
    ],
)
def test_one_media_type_rule_in_both_content_modes(media_type: str, accepted: bool) -> None:
    """Issue 21, scenario 7: acceptance must not depend on the content mode."""
    doc = json.loads(encode_event(_event()))
    doc["datacontenttype"] = media_type
    value, headers = _binary()
    headers = _replace(headers, "content-type", media_type.encode())
    if accepted:
        assert decode_event(json.dumps(doc).encode()) == _event()
        assert decode_record(value, headers) == _event()
        return
    with pytest.raises(EventDecodeError) as structured:
        decode_event(json.dumps(doc).encode())
    binary = _reject(value, headers)
    assert [e.rule for e in structured.value.errors] == [e.rule for e in binary.errors]
    assert structured.value.errors[0].field == "datacontenttype"
    assert binary.errors[0].field == "content-type"
