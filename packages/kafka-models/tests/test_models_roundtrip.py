"""Property tests: every event type survives bytes -> model -> bytes unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    ReminderStatus,
    RunCancelled,
    RunCancelledData,
    RunClosed,
    RunClosedData,
    RunCreated,
    RunCreatedData,
    RunnerAssigned,
    RunnerAssignedData,
    content_mode,
    decode_event,
    decode_events,
    decode_record,
    encode_event,
    encode_record,
)

OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(OFFSETS),
)
run_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
team_ids = st.from_regex(r"\AT[A-Z0-9]{1,12}\Z")
channel_ids = st.from_regex(r"\A[CGD][A-Z0-9]{1,12}\Z")
user_ids = st.from_regex(r"\A[UW][A-Z0-9]{1,12}\Z")
reminder_ids = st.from_regex(r"\A[!-~]{1,255}\Z")
places = st.text(min_size=1, max_size=120)
items = st.text(min_size=1, max_size=200)
reasons = st.none() | st.text(max_size=500)
sources = st.sampled_from(["/coffeebuddy/slack-app", "/coffeebuddy/reminder-worker", "urn:x:y"])
ids = st.text(min_size=1, max_size=64)


@st.composite
def scheduled_data(draw: st.DrawFn) -> ReminderScheduledData:
    due = draw(times)
    expires = draw(
        st.none()
        | st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)).map(
            lambda d: due + d
        )
    )
    return ReminderScheduledData(
        reminder_id=draw(reminder_ids),
        kind=draw(st.sampled_from(["runner", "last_call"])),
        run_id=draw(run_ids),
        team_id=draw(team_ids),
        channel_id=draw(channel_ids),
        recipient_user_id=draw(user_ids),
        due_at=due,
        expires_at=expires,
        place=draw(places),
        closes_at=draw(st.none() | times),
        order_count=draw(st.none() | st.integers(min_value=0, max_value=10_000)),
        orders=draw(
            st.none() | st.lists(st.builds(OrderLine, user_id=user_ids, item=items), max_size=5)
        ),
    )


topic_names = st.from_regex(r"\A[A-Za-z0-9._-]{1,60}\Z")
offsets = st.integers(min_value=0, max_value=2**63 - 1)


@st.composite
def replayed_data(draw: st.DrawFn) -> DeadLetterReplayedData:
    dlq, partition, offset = draw(topic_names), draw(offsets), draw(offsets)
    stamp = draw(st.integers(min_value=0, max_value=2**42))
    return DeadLetterReplayedData(
        ref=f"{dlq}/{partition}/{offset}@{stamp}",
        dlq_topic=dlq,
        dlq_partition=partition,
        dlq_offset=offset,
        origin_topic=draw(topic_names),
        origin_partition=draw(st.none() | offsets),
        origin_offset=draw(st.none() | offsets),
        target_partition=draw(offsets),
        target_offset=draw(offsets),
        replayed_at=draw(times),
        replayed_by=draw(st.none() | st.text(min_size=1, max_size=200)),
        run_id=draw(st.none() | run_ids),
    )


DATA: dict[type[CloudEvent[Any]], st.SearchStrategy[Any]] = {
    RunCreated: st.builds(
        RunCreatedData,
        run_id=run_ids,
        team_id=team_ids,
        channel_id=channel_ids,
        organizer_user_id=user_ids,
        place=places,
        closes_at=times,
    ),
    OrderAdded: st.builds(OrderAddedData, run_id=run_ids, user_id=user_ids, item=items),
    RunnerAssigned: st.builds(RunnerAssignedData, run_id=run_ids, runner_user_id=user_ids),
    RunClosed: st.builds(RunClosedData, run_id=run_ids, closed_at=times),
    RunCancelled: st.builds(RunCancelledData, run_id=run_ids, reason=reasons),
    ReminderScheduled: scheduled_data(),
    ReminderCancelled: st.builds(
        ReminderCancelledData, run_id=run_ids, reminder_id=reminder_ids, reason=reasons
    ),
    ReminderState: st.builds(
        ReminderStateData,
        run_id=run_ids,
        state_key=reminder_ids,
        status=st.sampled_from(list(ReminderStatus)),
        reminder_id=st.none() | reminder_ids,
        reminder=st.none() | scheduled_data(),
        event_id=st.none() | ids,
        event_time=st.none() | times,
        reason=reasons,
        owner=st.none() | st.text(min_size=1, max_size=40),
        epoch=st.none() | st.integers(min_value=0, max_value=2**31),
        claimed_at=st.none() | times,
        deadline=st.none() | times,
        slack_channel=st.none() | channel_ids,
        slack_ts=st.none() | st.from_regex(r"\A[0-9]{10}\.[0-9]{6}\Z"),
        dlq_offset=st.none() | st.integers(min_value=0, max_value=2**40),
        run_cancelled=st.none() | st.booleans(),
        keep_until=times,
        recorded_at=times,
    ),
    DeadLetterReplayed: replayed_data(),
}


@st.composite
def events(draw: st.DrawFn) -> CloudEvent[Any]:
    cls = draw(st.sampled_from(sorted(DATA, key=lambda c: c.EVENT_TYPE)))
    event: CloudEvent[Any] = cls.create(
        data=draw(DATA[cls]), source=draw(sources), id=draw(ids), time=draw(times)
    )
    return event


def test_every_event_type_has_a_strategy() -> None:
    assert {cls.EVENT_TYPE for cls in DATA} == set(EVENT_TYPES)


@settings(max_examples=150, deadline=None)
@given(events())
def test_bytes_model_bytes_round_trip(event: CloudEvent[Any]) -> None:
    raw = encode_event(event)
    decoded = decode_event(raw)
    assert type(decoded) is type(event)
    assert decoded == event
    assert encode_event(decoded) == raw
    # Compact UTF-8 JSON: exactly what a separator-free json.dumps of the same document gives.
    compact = json.dumps(json.loads(raw.decode("utf-8")), separators=(",", ":"), ensure_ascii=False)
    assert raw == compact.encode("utf-8")


@settings(max_examples=60, deadline=None)
@given(events(), st.dictionaries(st.from_regex(r"\Ax[a-z]{1,8}\Z"), st.integers(), max_size=3))
def test_unknown_data_fields_are_ignored_and_envelope_extensions_kept(
    event: CloudEvent[Any], extras: dict[str, int]
) -> None:
    doc = json.loads(encode_event(event))
    doc.update(extras)
    doc["data"].update(extras)
    decoded = decode_event(json.dumps(doc).encode())
    assert decoded.data == event.data
    assert decoded.extensions == extras
    assert decoded.model_dump(exclude=set(extras)) == event.model_dump()
    assert json.loads(encode_event(decoded)) == {**json.loads(encode_event(event)), **extras}


@settings(max_examples=30, deadline=None)
@given(st.lists(events(), max_size=8))
def test_batch_decode_matches_single_decode(batch: list[CloudEvent[Any]]) -> None:
    raws = [encode_event(e) for e in batch]
    assert decode_events(raws) == batch


@settings(max_examples=60, deadline=None)
@given(events())
def test_non_canonical_bytes_decode_to_the_same_event(event: CloudEvent[Any]) -> None:
    doc = json.loads(encode_event(event))

    # Pretty-printed, keys reversed, UTC written as +00:00, non-ASCII escaped: same event.
    def utc_as_offset(key: str, value: Any) -> Any:
        is_time = key == "time" or key.endswith("_at")
        return value[:-1] + "+00:00" if is_time and value.endswith("Z") else value

    reordered = {k: utc_as_offset(k, v) for k, v in reversed(list(doc.items()))}
    reordered["data"] = {k: utc_as_offset(k, v) for k, v in reversed(list(doc["data"].items()))}
    raw = json.dumps(reordered, indent=2, ensure_ascii=True).encode()
    assert raw != encode_event(event)
    decoded = decode_event(raw)
    assert decoded == event
    assert encode_event(decoded) == encode_event(event)


@settings(max_examples=150, deadline=None)
@given(events())
def test_binary_mode_round_trip_matches_structured(event: CloudEvent[Any]) -> None:
    value, headers = encode_record(event, "binary")
    assert content_mode(headers) == "binary"
    assert all(name == name.lower() for name, _ in headers)
    for _, raw in headers:
        raw.decode("utf-8")  # every header value is UTF-8 text
    decoded = decode_record(value, headers)
    assert type(decoded) is type(event)
    assert decoded == event
    assert encode_record(decoded, "binary") == (value, headers)
    assert decode_record(*encode_record(event, "structured")) == event


def test_state_record_times_are_rfc3339_to_the_millisecond_and_follow_the_clock() -> None:
    from datetime import datetime as _dt

    from coffeebuddy.infra.kafka.models._state import _iso_now as iso_now

    first = iso_now(1_700_000_000.1234)
    assert first == "2023-11-14T22:13:20.123+00:00"
    assert iso_now(1_700_000_000.1239) == first  # same millisecond
    assert iso_now(1_700_000_001.5) == "2023-11-14T22:13:21.500+00:00"
    assert _dt.fromisoformat(first).timestamp() == pytest.approx(1_700_000_000.123)


@pytest.mark.parametrize("status", list(ReminderStatus))
@settings(max_examples=10, deadline=None)
@given(data=scheduled_data())
def test_the_fast_state_codec_writes_what_the_schema_accepts_and_reads_it_back(
    status: ReminderStatus, data: ReminderScheduledData
) -> None:
    """encode_state / decode_state and the pydantic ReminderState are one format."""
    from coffeebuddy.infra.kafka.models import decode_state, encode_state

    run = status.is_run
    key = "run:run-1" if run else "run-1:runner"
    reminder = None
    if not run:
        reminder = (
            data.model_copy(update={"run_id": "run-1", "reminder_id": key})
            .model_dump_json(exclude_none=True)
            .encode()
        )
    claim = {"owner": "w-1", "epoch": 3, "claimed_at": 1.7e9, "deadline": 1.7e9 + 15}
    value = encode_state(
        state_key=key,
        status=status,
        run_id="run-1",
        keep_until=1.7e9 + 7200,
        now=1.7e9,
        source="/coffeebuddy/reminder-worker",
        writer="w-1",
        reminder=reminder,
        reminder_id=None if run else key,
        event_id="ev-1",
        origin_topic="coffeebuddy.reminder.events",
        origin_partition=2,
        origin_offset=41,
        reason="why",
        dlq_topic="coffeebuddy.reminder.events.dlq" if status == "dead_lettered" else None,
        dlq_offset=9 if status == "dead_lettered" else None,
        run_closed=True if run else None,
        run_cancelled=(status == "run_cancelled") if run else None,
        **(claim if status == "claimed" else {}),
    )
    event = decode_event(value)
    assert isinstance(event, ReminderState)
    assert event.data.status == status
    rec = decode_state(value)
    assert (rec.state_key, rec.status, rec.run_id, rec.writer) == (key, status, "run-1", "w-1")
    assert rec.origin_offset == event.data.origin_offset == 41
    assert rec.keep_until == event.data.keep_until.timestamp()
    if run:
        assert rec.run_closed
        assert rec.run_cancelled == (status == "run_cancelled")
