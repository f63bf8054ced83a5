"""The reminder state record: the hand-built codec (`encode_state` / `decode_state`) and the
pydantic model (`ReminderState`) read each other's records the same way, the status enum and
the replace rule."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coffeebuddy.infra.kafka.models import (
    REMINDER_STATE,
    REMINDER_WORKER_SOURCE,
    ModelError,
    ReminderScheduledData,
    ReminderState,
    ReminderStateData,
    ReminderStatus,
    StateRecordError,
    decode_event,
    decode_state,
    encode_event,
    encode_state,
    run_key,
    state_replaces,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

# Epoch seconds to the microsecond (what an RFC 3339 time on the wire can hold).
epochs = st.integers(
    min_value=int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1e6),
    max_value=int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1e6),
).map(lambda us: us / 1e6)
run_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
reminder_ids = st.from_regex(r"\A[!-~]{1,120}\Z")
topic_names = st.from_regex(r"\A[A-Za-z0-9._-]{1,60}\Z")
counts = st.integers(min_value=0, max_value=2**62)
free_text = st.text(max_size=60)  # quotes, backslashes, control and non-ASCII characters

TEXT_FIELDS = (
    "reminder_id",
    "event_id",
    "event_source",
    "origin_topic",
    "traceparent",
    "reason",
    "cause_event_id",
    "owner",
    "slack_channel",
    "slack_ts",
    "dlq_topic",
)
INT_FIELDS = ("epoch", "origin_partition", "origin_offset", "dlq_partition", "dlq_offset")
TIME_FIELDS = ("event_time", "claimed_at", "deadline")


def reminder_json(reminder_id: str, run_id: str, due: float) -> bytes:
    data = ReminderScheduledData(
        reminder_id=reminder_id,
        kind="runner",
        run_id=run_id,
        team_id="T1",
        channel_id="C1",
        recipient_user_id="U1",
        due_at=datetime.fromtimestamp(due, UTC),
        place='Café "Blue" \\ ☕',
    )
    return data.model_dump_json(exclude_none=True).encode()


@st.composite
def state_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of one valid `encode_state` call, every optional field maybe set."""
    status = draw(st.sampled_from(list(ReminderStatus)))
    run_id = draw(run_ids)
    reminder_id = draw(reminder_ids)
    kwargs: dict[str, Any] = {
        "state_key": run_key(run_id) if status.is_run else reminder_id,
        "status": status,
        "run_id": run_id,
        "keep_until": draw(epochs),
        "now": draw(epochs),
        "source": REMINDER_WORKER_SOURCE,
        "writer": draw(st.text(min_size=1, max_size=40)),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "reminder_id": st.just(reminder_id),
        "event_id": free_text,
        "event_time": epochs,
        "event_source": free_text,
        "origin_topic": topic_names,
        "origin_partition": counts,
        "origin_offset": counts,
        "traceparent": free_text,
        "reason": free_text,
        "cause_event_id": free_text,
        "owner": free_text,
        "epoch": counts,
        "claimed_at": epochs,
        "deadline": epochs,
        "slack_channel": st.from_regex(r"\A[CGD][A-Z0-9]{1,12}\Z"),
        "slack_ts": st.from_regex(r"\A[0-9]{10}\.[0-9]{6}\Z"),
        "dlq_topic": topic_names,
        "dlq_partition": counts,
        "dlq_offset": counts,
        "run_closed": st.booleans(),
        "run_cancelled": st.booleans(),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            kwargs[name] = draw(strategy)
    if status is ReminderStatus.CLAIMED:  # a claim always carries its time and epoch
        kwargs.setdefault("claimed_at", draw(epochs))
        kwargs.setdefault("epoch", draw(counts))
    if status.is_pending or (not status.is_run and draw(st.booleans())):
        kwargs["reminder"] = reminder_json(reminder_id, run_id, draw(epochs))
    return kwargs


def _ms(now: float) -> float:
    return int(now * 1000) / 1000


@settings(max_examples=300, deadline=None)
@given(state_kwargs())
def test_codec_records_read_the_same_through_the_model_and_back(kwargs: dict[str, Any]) -> None:
    raw = encode_state(**kwargs)
    status: ReminderStatus = kwargs["status"]

    # The pydantic model reads the codec's bytes: same values, the writer as an extension.
    event = decode_event(raw)
    assert isinstance(event, ReminderState)
    assert (event.type, event.source, event.subject) == (
        REMINDER_STATE,
        REMINDER_WORKER_SOURCE,
        kwargs["run_id"],
    )
    assert event.extensions == {"coffeebuddywriter": kwargs["writer"]}
    data = event.data
    assert (data.state_key, data.status, data.run_id) == (
        kwargs["state_key"],
        status,
        kwargs["run_id"],
    )
    for name in (*TEXT_FIELDS, *INT_FIELDS, "run_closed", "run_cancelled"):
        want = kwargs.get(name)
        if name == "reminder_id" and not status.is_run:
            want = want or kwargs["state_key"]  # left out when it equals the key; read back
        assert getattr(data, name) == want, name
    for name in (*TIME_FIELDS, "keep_until"):
        got = getattr(data, name)
        want = kwargs.get(name)
        assert (got is None) == (want is None), name
        if got is not None:
            assert got.timestamp() == pytest.approx(want, abs=1e-6), name
    assert data.recorded_at.timestamp() == pytest.approx(_ms(kwargs["now"]), abs=1e-6)
    if "reminder" in kwargs:
        assert data.reminder == ReminderScheduledData.model_validate_json(kwargs["reminder"])
    else:
        assert data.reminder is None

    # The codec reads its own bytes ...
    record = decode_state(raw)
    assert (record.state_key, record.status, record.run_id, record.writer) == (
        kwargs["state_key"],
        status,
        kwargs["run_id"],
        kwargs["writer"],
    )
    for name in (*TEXT_FIELDS, *INT_FIELDS):
        want = kwargs.get(name)
        if name == "reminder_id" and not status.is_run:
            want = want or kwargs["state_key"]  # a reminder's id defaults to its key
        assert getattr(record, name) == want, name
    for name in (*TIME_FIELDS, "keep_until"):
        want = kwargs.get(name)
        assert getattr(record, name) == pytest.approx(want, abs=1e-6), name
    assert record.run_closed is kwargs.get("run_closed", status is ReminderStatus.RUN_CLOSED)
    assert record.run_cancelled is kwargs.get(
        "run_cancelled", status is ReminderStatus.RUN_CANCELLED
    )

    # ... and the model's re-encoding of them to the same record.
    again = decode_state(encode_event(event))
    assert dataclasses.replace(again, reminder=None) == dataclasses.replace(record, reminder=None)
    # The reminder's JSON may differ in form (field order, `Z`), never in value.
    if record.reminder is None:
        assert again.reminder is None
    else:
        assert again.reminder is not None
        assert ReminderScheduledData.model_validate_json(
            again.reminder
        ) == ReminderScheduledData.model_validate_json(record.reminder)


def test_a_model_written_record_decodes_with_the_codec() -> None:
    data = ReminderStateData(
        state_key="run-7:runner",
        run_id="run-7",
        status=ReminderStatus.DEAD_LETTERED,
        dlq_topic="coffeebuddy.reminder.events.dlq",
        dlq_partition=2,
        dlq_offset=17,
        reason='slack: "msg_too_long"',
        keep_until=T0 + timedelta(days=1),
        recorded_at=T0,
    )
    record = decode_state(encode_event(ReminderState.create(data=data, time=T0)))
    assert record.status is ReminderStatus.DEAD_LETTERED
    assert (record.dlq_topic, record.dlq_partition, record.dlq_offset) == (
        "coffeebuddy.reminder.events.dlq",
        2,
        17,
    )
    assert record.reason == 'slack: "msg_too_long"'
    assert record.reminder_id == "run-7:runner"
    assert record.keep_until == (T0 + timedelta(days=1)).timestamp()
    assert record.writer == ""  # a record without the worker's writer attribute


def test_status_is_a_str_enum_shared_with_the_schema() -> None:
    assert [s.value for s in ReminderStatus] == [
        "scheduled",
        "claimed",
        "sent",
        "dropped",
        "cancelled",
        "dead_lettered",
        "run_closed",
        "run_cancelled",
    ]
    assert ReminderStatus.SENT == "sent"
    assert f"{ReminderStatus.DEAD_LETTERED}" == "dead_lettered"
    assert ReminderStatus("run_closed") is ReminderStatus.RUN_CLOSED
    assert {s for s in ReminderStatus if s.is_pending} == {"scheduled", "claimed"}
    assert {s for s in ReminderStatus if s.is_final} == {"sent", "dropped", "cancelled"}
    assert {s for s in ReminderStatus if s.is_run} == {"run_closed", "run_cancelled"}
    schema = ReminderStateData.model_json_schema()
    assert schema["$defs"]["ReminderStatus"]["enum"] == [s.value for s in ReminderStatus]


def test_a_final_status_is_not_undone_and_a_dead_letter_only_by_a_new_schedule() -> None:
    pending = (ReminderStatus.SCHEDULED, ReminderStatus.CLAIMED)
    for new in ReminderStatus:
        assert state_replaces(None, new)
        for current in pending:
            assert state_replaces(current, new), (current, new)
    for current in (ReminderStatus.SENT, ReminderStatus.DROPPED, ReminderStatus.CANCELLED):
        for new in pending:
            assert not state_replaces(current, new), (current, new)  # a zombie, a redelivery
    assert state_replaces(ReminderStatus.DEAD_LETTERED, ReminderStatus.SCHEDULED)  # its replay
    assert not state_replaces(ReminderStatus.DEAD_LETTERED, ReminderStatus.CLAIMED)


def test_a_reminder_id_equal_to_its_key_is_left_out_and_read_back() -> None:
    def record(state_key: str, reminder_id: str) -> bytes:
        return encode_state(
            state_key=state_key,
            status=ReminderStatus.CANCELLED,
            run_id="run-1",
            keep_until=T0.timestamp(),
            now=T0.timestamp(),
            source=REMINDER_WORKER_SOURCE,
            writer="w1",
            reminder_id=reminder_id,
        )

    same = record("run-1:runner", "run-1:runner")
    assert b"reminder_id" not in same  # ~40 bytes less on every reminder record
    assert decode_state(same).reminder_id == "run-1:runner"
    event = decode_event(same)
    assert isinstance(event, ReminderState)
    assert event.data.reminder_id == "run-1:runner"
    other = record("key-1", "reminder-1")
    assert json.loads(other)["data"]["reminder_id"] == "reminder-1"
    assert decode_state(other).reminder_id == "reminder-1"


def _valid() -> dict[str, Any]:
    raw = encode_state(
        state_key="r1",
        status=ReminderStatus.CLAIMED,
        run_id="run-1",
        keep_until=T0.timestamp(),
        now=T0.timestamp(),
        source=REMINDER_WORKER_SOURCE,
        writer="w1",
        reminder=reminder_json("r1", "run-1", T0.timestamp()),
        epoch=3,
        claimed_at=T0.timestamp(),
    )
    doc: dict[str, Any] = json.loads(raw)
    decode_state(raw)  # the base record is valid; each case below breaks one thing
    return doc


def _data(**changes: Any) -> dict[str, Any]:
    doc = _valid()
    for name, value in changes.items():
        if value is None:
            del doc["data"][name]
        else:
            doc["data"][name] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**_valid(), "type": "coffeebuddy.reminder.delivery.v1"}, "type: must be 'coffeebuddy"),
        (_data(status="bogus"), "data.status: unknown status 'bogus'"),
        (_data(status="run_closed"), "data.state_key: 'r1' does not fit status 'run_closed'"),
        (_data(state_key=""), "data.state_key: must be a non-empty string"),
        (_data(epoch=None), "data.claimed_at: a claim needs claimed_at and epoch"),
        (_data(reminder=None), "data.reminder: is required for status 'claimed'"),
        (_data(keep_until="2026-11-27T09:00:00"), "data.keep_until: must carry a UTC offset"),
        (_data(keep_until=None), "data.keep_until: is required"),
        (_data(dlq_offset=-1), "data.dlq_offset: must be a whole number >= 0, got -1"),
        (_data(epoch=2**70), "data.epoch: must be a whole number >= 0, got 1.1805916207174113e+21"),
        (_data(run_closed="yes"), "data.run_closed: must be true or false"),
        (
            _data(reminder={"kind": "lunch", "due_at": "2026-11-27T09:00:00Z"}),
            "data.reminder.kind: must be runner or last_call, got 'lunch'",
        ),
    ],
)
def test_bad_records_are_refused_naming_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(StateRecordError) as info:
        decode_state(json.dumps(doc).encode())
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ModelError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"a": NaN}', "not JSON"),
        (b'{"data": "\xff"}', "not JSON"),
    ],
)
def test_records_that_are_not_objects_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(StateRecordError, match=message):
        decode_state(raw)
