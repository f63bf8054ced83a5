"""`reminders` rules without a broker: folding the changelog by the worker's rule, filters,
the story's steps, what cancel says of each status, and the output formats.

Records are built with the models' `encode_state`, the codec the worker writes with.
"""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffeebuddy.infra.kafka.models import ReminderScheduledData, ReminderStatus, encode_state
from coffeebuddy.infra.kafka.provision.dlq._reader import StoredRecord
from coffeebuddy.infra.kafka.provision.reminders import (
    CancelReport,
    Listing,
    ReminderFilter,
    ReminderStory,
    partition_of,
)
from coffeebuddy.infra.kafka.provision.reminders._cancel import CancelTarget
from coffeebuddy.infra.kafka.provision.reminders._cli import parse_time
from coffeebuddy.infra.kafka.provision.reminders._render import (
    print_cancel,
    print_change,
    print_listing,
    print_story,
)
from coffeebuddy.infra.kafka.provision.reminders._story import Step
from coffeebuddy.infra.kafka.provision.reminders._view import (
    Change,
    ChangelogState,
    ReminderView,
    by_due,
    iso,
    parse_statuses,
    sort_by_due,
)

S = ReminderStatus
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
TOPIC = "test.changelog"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def payload(rid: str, run: str = "run-1", *, due: datetime = T0, user: str = "U1") -> bytes:
    return (
        ReminderScheduledData(
            run_id=run,
            reminder_id=rid,
            kind="runner",
            team_id="T1",
            channel_id="C1",
            recipient_user_id=user,
            due_at=due,
            expires_at=due + timedelta(minutes=10),
            place="Cafe",
        )
        .model_dump_json()
        .encode()
    )


def state(
    rid: str,
    status: S,
    run: str = "run-1",
    *,
    at: datetime = T0,
    with_payload: bool = True,
    due: datetime = T0,
    user: str = "U1",
    **fields: Any,
) -> bytes:
    return encode_state(
        state_key=rid,
        status=status,
        run_id=run,
        keep_until=(due + timedelta(hours=1)).timestamp(),
        now=at.timestamp(),
        source="/test",
        writer="worker-a",
        reminder=payload(rid, run, due=due, user=user) if with_payload else None,
        reminder_id=rid,
        **fields,
    )


class Log:
    """Stored records of one partition, offsets counted as a broker would."""

    def __init__(self, topic: str = TOPIC, partition: int = 0) -> None:
        self.topic = topic
        self.partition = partition
        self.records: list[StoredRecord] = []

    def add(self, key: str | bytes | None, value: bytes | None) -> StoredRecord:
        raw = key.encode() if isinstance(key, str) else key
        record = StoredRecord(self.topic, self.partition, len(self.records), 0, raw, value)
        self.records.append(record)
        return record


def fold(log: Log) -> ChangelogState:
    folded = ChangelogState(log.topic)
    folded.apply_all(log.records)
    return folded


CLAIM = {
    "owner": "worker-b",
    "epoch": 3,
    "claimed_at": T0.timestamp(),
    "deadline": T0.timestamp() + 15,
}


def test_a_final_state_is_not_undone_by_a_later_claim_or_schedule() -> None:
    log = Log()
    log.add("r1", state("r1", S.SCHEDULED))
    log.add("r1", state("r1", S.CLAIMED, **CLAIM))
    log.add("r1", state("r1", S.SENT, slack_channel="D1", slack_ts="1.5"))
    log.add("r1", state("r1", S.CLAIMED, **CLAIM))  # a zombie's late claim
    log.add("r1", state("r1", S.SCHEDULED))  # a redelivered schedule
    view = fold(log).reminders["r1"]
    assert view.status is S.SENT
    assert (view.partition, view.offset) == (0, 2)
    assert view.record.slack_ts == "1.5"


def test_dead_letter_is_undone_only_by_a_new_schedule() -> None:
    log = Log()
    log.add("r1", state("r1", S.DEAD_LETTERED, dlq_topic="x.dlq", dlq_partition=0, dlq_offset=4))
    log.add("r1", state("r1", S.CLAIMED, **CLAIM))
    assert fold(log).reminders["r1"].status is S.DEAD_LETTERED
    log.add("r1", state("r1", S.SCHEDULED))  # its replay
    assert fold(log).reminders["r1"].status is S.SCHEDULED


def test_a_final_rewritten_without_its_data_keeps_what_was_known() -> None:
    """The worker re-writes a final state after a stale claim with the id only."""
    log = Log()
    log.add("r1", state("r1", S.SCHEDULED, user="U7"))
    log.add("r1", state("r1", S.CANCELLED, with_payload=False, reason="stale claim"))
    view = fold(log).reminders["r1"]
    assert view.status is S.CANCELLED
    assert view.record.recipient == "U7"
    assert view.record.due == T0.timestamp()
    assert view.team_id == "T1"


def test_tombstones_prune_and_run_marks_stay_apart() -> None:
    log = Log()
    log.add("r1", state("r1", S.SENT, slack_channel="D1", slack_ts="1.5"))
    log.add("run:run-1", encode_state(
        state_key="run:run-1", status=S.RUN_CLOSED, run_id="run-1", keep_until=T0.timestamp(),
        now=T0.timestamp(), source="/test", writer="w", cause_event_id="ev-close",
    ))  # fmt: skip
    log.add("r1", None)
    folded = fold(log)
    assert "r1" not in folded.reminders
    assert folded.pruned == {"r1": (0, 2)}
    assert folded.runs["run-1"].record.run_closed
    assert list(folded.reminders) == []


def test_unreadable_records_are_set_aside_with_their_position_and_change_nothing() -> None:
    log = Log()
    log.add("r1", state("r1", S.SCHEDULED))
    log.add("r1", b"{not json")
    log.add("r1", json.dumps({"type": "coffeebuddy.reminder.state.v1", "data": {}}).encode())
    log.add("r2", state("r1", S.SENT))  # the key says r2, the record r1
    log.add(None, state("r3", S.SCHEDULED))
    log.add(b"\xff\xfe", state("r4", S.SCHEDULED))
    folded = fold(log)
    assert folded.reminders["r1"].status is S.SCHEDULED
    assert set(folded.reminders) == {"r1"}
    bad = {u.offset: u for u in folded.unreadable}
    assert sorted(bad) == [1, 2, 3, 4, 5]
    assert bad[1].error == "not JSON (JSONDecodeError)"
    assert bad[1].where == f"{TOPIC}[0]@1"
    assert "data.status" in bad[2].error
    assert "differs from the record key" in bad[3].error
    assert bad[4].key is None
    assert "no UTF-8 key" in bad[5].error


def test_filters_and_due_order() -> None:
    log = Log()
    log.add("late", state("late", S.SCHEDULED, due=T0 + timedelta(hours=2), user="U2"))
    log.add("early", state("early", S.CLAIMED, due=T0 - timedelta(hours=1), **CLAIM))
    log.add("other", state("other", S.SENT, "run-2", due=T0))
    log.add("nodue", state("nodue", S.CANCELLED, with_payload=False))
    listing = Listing([], [], fold(log))
    everything = sorted(listing.state.reminders.values(), key=lambda v: v.reminder_id)

    def ids(where: ReminderFilter) -> list[str]:
        return [v.reminder_id for v in sorted(filter(where.matches, everything), key=by_due)]

    assert ids(ReminderFilter()) == ["early", "other", "late", "nodue"]
    assert ids(ReminderFilter(run_id="run-2")) == ["other"]
    assert ids(ReminderFilter(user="U2")) == ["late"]
    assert ids(ReminderFilter(team="T1")) == ["early", "other", "late"]
    assert ids(ReminderFilter(team="T9")) == []
    assert ids(ReminderFilter(statuses=parse_statuses(["pending"]))) == ["early", "late"]
    assert ids(ReminderFilter(statuses=parse_statuses(["sent,cancelled"]))) == ["other", "nodue"]
    assert ids(ReminderFilter(due_after=T0)) == ["other", "late"]
    assert ids(ReminderFilter(due_before=T0)) == ["early", "other"]
    with pytest.raises(ValueError, match=r"unknown status 'lost': use one of pending, scheduled"):
        parse_statuses(["sent,lost"])


def test_parse_time() -> None:
    assert parse_time("2026-12-07T10:00:00Z") == T0
    assert parse_time("2026-12-07T10:00:00") == T0  # no offset: UTC
    assert parse_time("+2h", now=T0) == T0 + timedelta(hours=2)
    assert parse_time("-30m", now=T0) == T0 - timedelta(minutes=30)
    assert parse_time("now", now=T0) == T0
    for bad in ("tomorrow", "+2 hours"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            parse_time(bad)


def test_partition_of_is_the_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    everything = list(range(12))
    for key in ("run-1", "r-42", "run:run-7", "ü"):
        assert partition_of(key, 12) == DefaultPartitioner()(key.encode(), everything, everything)


def _story_log() -> Log:
    log = Log("test.history", 5)
    sched = state("r1", S.SCHEDULED, event_id="ev-1", event_source="/coffeebuddy/slack-app",
                  event_time=T0.timestamp() - 60, origin_topic="events", origin_partition=2,
                  origin_offset=17, traceparent=TRACEPARENT)  # fmt: skip
    log.add("r1", sched)
    log.add("r1", state("r1", S.CLAIMED, at=T0 + timedelta(seconds=0.2), **CLAIM))
    log.add("r1", b"garbage")
    # Slack's ts is 0.4 s after due; the worker recorded the send a moment later
    sent_ts = f"{T0.timestamp() + 0.4:.6f}"
    log.add("r1", state("r1", S.SENT, at=T0 + timedelta(seconds=0.5), slack_channel="D1",
                        slack_ts=sent_ts))  # fmt: skip
    return log


def test_story_steps_say_who_when_and_how_late() -> None:
    log = _story_log()
    steps = [Step.of("history", r) for r in log.records]
    assert [s.status for s in steps] == ["scheduled", "claimed", "unreadable", "sent"]
    scheduled, claimed, bad, sent = steps
    assert "by event ev-1 from /coffeebuddy/slack-app" in scheduled.detail()
    assert "record events[2]@17" in scheduled.detail()
    assert "trace 0af7651916cd43dd8448eb211c80319c" in scheduled.detail()
    assert "by worker-b, epoch 3" in claimed.detail()
    assert bad.where == "test.history[5]@2"
    assert bad.detail() == "unreadable record: not JSON (JSONDecodeError)"
    assert sent.lateness == pytest.approx(0.4, abs=1e-3)
    assert "Slack channel D1" in sent.detail()
    assert "0.400 s after due" in sent.detail()
    assert sent.to_json()["lateness_s"] == pytest.approx(0.4, abs=1e-3)
    assert scheduled.to_json()["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_story_text_and_json() -> None:
    log = _story_log()
    story = ReminderStory(
        "r1", "run-1", "test.history", 5, 12, [Step.of("history", r) for r in log.records]
    )
    story.changelog_topic, story.changelog_partition = TOPIC, 2
    story.pruned = (2, 9)
    text = io.StringIO()
    print_story(story, text, as_json=False)
    out = text.getvalue()
    assert out.startswith("reminder r1 of run run-1: runner for U1 (team T1, channel C1)")
    assert "now       pruned: tombstoned after its lifetime ended (test.changelog[2]@9)" in out
    assert "read      test.history[5], test.changelog[2]" in out
    assert "unreadable  -" in out
    assert "[test.history[5]@2]" in out
    body = io.StringIO()
    print_story(story, body, as_json=True)
    doc = json.loads(body.getvalue())
    assert doc["now"] == "pruned"
    assert [s["status"] for s in doc["steps"]] == ["scheduled", "claimed", "unreadable", "sent"]
    assert doc["steps"][2]["offset"] == 2
    assert doc["changelog"]["pruned_at"] == {"partition": 2, "offset": 9}


@pytest.mark.parametrize(
    ("status", "fields", "cancellable", "says"),
    [
        (S.SCHEDULED, {}, True, "scheduled, due 2026-12-07T10:00:00.000+00:00: cancellation"),
        (S.CLAIMED, CLAIM, True, "a post may be under way"),
        (S.SENT, {"slack_channel": "D1", "slack_ts": "1795000000.1"}, False, "already sent"),
        (S.DROPPED, {"reason": "expired"}, False, "already dropped (expired)"),
        (S.CANCELLED, {"cause_event_id": "ev-9"}, False, "already cancelled (event ev-9)"),
        (S.DEAD_LETTERED, {"dlq_topic": "e.dlq", "dlq_partition": 1, "dlq_offset": 2,
                           "reason": "invalid_blocks"}, False, "dead-lettered to e.dlq[1]@2"),
    ],
)  # fmt: skip
def test_cancel_reports_every_status_as_it_is(
    status: S, fields: dict[str, Any], cancellable: bool, says: str
) -> None:
    log = Log()
    log.add("r1", state("r1", status, **fields))
    target = CancelTarget("r1", "run-1", fold(log).reminders["r1"])
    assert target.cancellable is cancellable
    assert says in target.note()
    if not cancellable:
        assert "nothing to cancel" in target.note()
    report = CancelReport(False, [target])
    out = io.StringIO()
    print_cancel(report, out, as_json=True)
    doc = json.loads(out.getvalue())
    assert doc["reminders"][0]["action"] == ("cancelled" if cancellable else "skipped")


def test_a_pruned_reminder_is_not_cancelled() -> None:
    log = Log()
    log.add("r1", state("r1", S.SENT, slack_channel="D1", slack_ts="1.0"))
    last = fold(log).reminders["r1"].record
    target = CancelTarget("r1", "run-1", None, last)
    assert not target.cancellable
    assert target.status == "sent (pruned)"
    assert "not in the changelog (last history record: sent" in target.note()


def test_listing_table_and_json_lines() -> None:
    log = Log()
    log.add("r2", state("r2", S.SENT, due=T0 + timedelta(minutes=1), slack_channel="D1",
                        slack_ts=f"{T0.timestamp() + 61.5:.6f}"))  # fmt: skip
    log.add("r1", state("r1", S.CLAIMED, **CLAIM))
    log.add("r1", b"[]")
    folded = fold(log)
    listing = Listing(sorted(folded.reminders.values(), key=by_due), folded.unreadable, folded)
    out, err = io.StringIO(), io.StringIO()
    columns = print_listing(listing, out, err, as_json=False)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "REMINDER",
        "RUN",
        "KIND",
        "USER",
        "DUE",
        "(UTC)",
        "DUE",
        "STATUS",
        "DETAIL",
    ]
    assert lines[1].startswith("r1 ")
    assert "claimed" in lines[1]
    assert "by worker-b epoch 3" in lines[1]
    assert lines[2].startswith("r2 ")
    assert "1.50 s late" in lines[2]
    assert lines[3] == f"unreadable {TOPIC}[0]@2 (key r1): must be a JSON object, got list"
    assert err.getvalue() == f"2 reminders in {TOPIC}, 1 unreadable records skipped\n"
    out = io.StringIO()
    print_listing(listing, out, io.StringIO(), as_json=True)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["status"] for r in rows] == ["claimed", "sent", "unreadable"]
    assert set(rows[0]) == set(rows[1])
    assert rows[0]["owner"] == "worker-b"
    assert rows[0]["due_at"] == "2026-12-07T10:00:00.000+00:00"
    assert rows[2] == {"status": "unreadable", "key": "r1", "topic": TOPIC, "partition": 0,
                       "offset": 2, "error": "must be a JSON object, got list"}  # fmt: skip
    # a watch line keeps the table's columns; a pruned one says what it was
    line = io.StringIO()
    print_change(Change("pruned", listing.reminders[1], 0, 9), line, columns, as_json=False)
    assert "pruned" in line.getvalue()
    assert "was sent" in line.getvalue()
    line = io.StringIO()
    print_change(Change("pruned", listing.reminders[1], 0, 9), line, columns, as_json=True)
    doc = json.loads(line.getvalue())
    assert (doc["change"], doc["status"], doc["offset"]) == ("pruned", "pruned", 9)


def test_view_json_has_every_key() -> None:
    log = Log()
    log.add("r1", state("r1", S.SCHEDULED))
    body = fold(log).reminders["r1"].to_json()
    assert body["team_id"] == "T1"
    assert body["recipient_user_id"] == "U1"
    assert body["writer"] == "worker-a"
    assert None in body.values()  # unknown fields are null, never missing
    assert isinstance(fold(log).reminders["r1"], ReminderView)


def test_steps_of_a_tombstone_are_unreadable() -> None:
    step = Step.of("changelog", StoredRecord(TOPIC, 0, 3, 0, b"r1", None))
    assert isinstance(step, Step)
    assert step.status == "unreadable"
    assert step.error == "tombstone"


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False))
def test_iso_writes_what_datetime_writes(ts: float) -> None:
    assert iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def test_only_cancel_can_write() -> None:
    """No module of the group but `_cancel` reaches a producer (list, show and watch only read,
    through the group-less reader, and commit nothing)."""
    import ast
    from pathlib import Path

    import coffeebuddy.infra.kafka.provision.reminders as package

    writers = {"KafkaEventProducer", "AIOKafkaProducer", "KafkaPublisher", "Publisher"}
    found = {}
    for path in Path(package.__file__).parent.glob("*.py"):
        names = {
            alias.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        if names & writers:
            found[path.name] = sorted(names & writers)
    assert found == {"_cancel.py": ["KafkaEventProducer"]}


def test_sort_by_due_orders_as_by_due() -> None:
    log = Log()
    for i, minutes in enumerate([5, None, -3, 5, 0, None, 12, -3]):
        rid = f"r{(i * 7) % 10}"
        if minutes is None:
            log.add(rid, state(rid, S.CANCELLED, with_payload=False))
        else:
            log.add(rid, state(rid, S.SCHEDULED, due=T0 + timedelta(minutes=minutes)))
    views = list(fold(log).reminders.values())
    fast = list(views)
    sort_by_due(fast)
    assert [v.reminder_id for v in fast] == [v.reminder_id for v in sorted(views, key=by_due)]
    assert fast[-1].record.due is None
