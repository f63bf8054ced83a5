"""Paths the scenario tests do not take, each a promise a user relies on: a revoke during a
restore, back-pressure past `max_waiting`, a restore that rewrites what a later record narrowed,
history writes that fail, a stop with attempts in flight, the GC setting, odd event ids."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from coffeebuddy.infra.kafka.config import SettingsError
from coffeebuddy.infra.kafka.models import (
    ReminderScheduledData,
    ReminderStatus,
    decode_state,
    encode_state,
    run_key,
)
from coffeebuddy.infra.kafka.reminder_worker import (
    Fence,
    ReminderSettings,
    ReminderWorker,
    SendResult,
    WorkerTopics,
)
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._history import History
from coffeebuddy.infra.kafka.reminder_worker._state import ReminderState
from coffeebuddy.infra.kafka.reminder_worker._supervisor import Supervisor
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC, REMINDER_HISTORY_TOPIC

if TYPE_CHECKING:
    from datetime import datetime

    from conftest import Kit

S = ReminderStatus


def _record(key: str, status: ReminderStatus, **fields: Any) -> bytes:
    return encode_state(
        state_key=key,
        status=status,
        run_id="run-1",
        keep_until=10**10,
        now=1.0,
        source="/test",
        writer=fields.pop("writer", "other-worker"),
        **fields,
    )


def _last(log: Any, key: str, partition: int = 0) -> Any:
    value = [v for k, v in log.parts[partition] if k == key][-1]
    return decode_state(value)


def _state(kit: type[Kit]) -> tuple[ReminderState, Any]:
    """A state on a memory changelog, as worker "me" (no worker around it)."""
    log = kit.MemoryChangelog()
    settings = ReminderSettings.defaults()
    return ReminderState(log, settings, now=lambda: 0.0, worker_id="me", events_topic="ev"), log


async def _yield(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------- restore


async def test_a_restore_writes_again_a_run_mark_that_a_later_record_narrowed(
    kit: type[Kit],
) -> None:
    # a writer that knew less of the run (closed, not cancelled) wrote last: compaction would
    # keep its record and forget the cancellation, so the restore writes the full mark again
    log = kit.MemoryChangelog()
    key = run_key("run-1")
    log.parts[0].append((key, _record(key, S.RUN_CANCELLED, run_closed=True, run_cancelled=True)))
    log.parts[0].append((key, _record(key, S.RUN_CLOSED, run_closed=True, run_cancelled=False)))
    await kit.Harness(log).start()
    last = _last(log, key)
    assert (last.run_closed, last.run_cancelled) == (True, True)
    assert len(log.parts[0]) == 3


async def test_a_restore_writes_again_a_final_state_a_stale_claim_followed(
    kit: type[Kit],
) -> None:
    log = kit.MemoryChangelog()
    log.parts[0].append(("rem-1", _record("rem-1", S.SENT, reminder_id="rem-1")))
    log.parts[0].append(("rem-1", kit.claim_record("zombie", 1, kit.T0.timestamp())))
    h = await kit.Harness(log).start()
    assert log.statuses("rem-1") == ["sent", "claimed", "sent"]
    assert h.worker.pending_count == 0
    h.clock.advance(3600)
    await h.run()
    assert h.sender.sent == []


async def test_a_revoke_during_a_restore_leaves_the_record_to_the_next_owner(
    kit: type[Kit],
) -> None:
    log = kit.MemoryChangelog()
    log.restore_gate = asyncio.Event()
    h = kit.Harness(log)
    await log.start(h.worker._on_record)
    h.worker._started = True
    assign = asyncio.create_task(h.worker.on_assign([kit.TopicPartition(kit.EVENTS, 0)]))
    ctx = kit.Context(kit.EVENTS, 0, 0)
    handled = asyncio.create_task(h.worker.process_event(kit.scheduled("rem-1"), ctx))  # type: ignore[arg-type]
    await _yield()
    await h.worker.on_revoke([kit.TopicPartition(kit.EVENTS, 0)])
    log.restore_gate.set()
    for task in (handled, assign):  # the handler ends as the revoked partition's tasks do
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    assert ctx.completion is None  # never deferred nor completed: the next owner gets it
    assert log.parts[0] == []
    assert h.worker.state.partitions == {}


async def test_an_older_schedule_from_another_writer_does_not_replace_a_newer_one(
    kit: type[Kit],
) -> None:
    h = await kit.Harness().start()
    await h.feed(kit.scheduled("rem-1", due_in=60, time=kit.T0))
    older = kit.scheduled("rem-1", due_in=5, time=kit.T0.replace(hour=8)).data
    h.changelog.inject(
        0,
        "rem-1",
        _record(
            "rem-1",
            S.SCHEDULED,
            reminder_id="rem-1",
            reminder=older.model_dump_json().encode(),
            event_time=kit.T0.timestamp() - 3600,
        ),
    )
    assert h.entry("rem-1").due == kit.T0.timestamp() + 60
    h.clock.advance(10)
    await h.run()
    assert h.sender.sent == []


async def test_this_workers_own_record_read_back_is_not_applied_even_if_reserialized(
    kit: type[Kit],
) -> None:
    state, _ = _state(kit)
    state.open(0).restored = True
    data = kit.scheduled("rem-1").data.model_dump_json().encode()
    doc = json.loads(_record("rem-1", S.SCHEDULED, writer="me", reminder=data, reminder_id="rem-1"))
    spaced = json.dumps(doc, indent=1).encode()  # another encoder: the fast marker check misses
    assert state.on_record(0, 0, b"rem-1", spaced, False) is None
    assert state.pending_count() == 0
    assert state.on_record(0, 0, b"rem-1", spaced, True) is not None  # a restore applies it


async def test_an_unreadable_record_read_twice_is_counted_twice_and_logged_once(
    kit: type[Kit], caplog: pytest.LogCaptureFixture
) -> None:
    state, _ = _state(kit)
    state.open(0)
    with caplog.at_level(logging.ERROR, "coffeebuddy.infra.kafka.reminder_worker.state"):
        for _ in range(2):  # a restarted reader reads the partition again
            state.on_record(0, 7, b"rem-1", b"{not json", True)
    assert state.unreadable == 2
    assert [r.getMessage()[:60] for r in caplog.records] == [
        "unreadable changelog record at partition 0 offset 7 skipped:"
    ]


async def test_a_dead_lettered_reminder_is_pruned_when_its_lifetime_ends_and_a_replay_revives_it(
    kit: type[Kit],
) -> None:
    state, log = _state(kit)
    part = state.open(0)
    part.restored = True
    data = kit.scheduled("rem-1").data.model_dump_json().encode()
    dead = _record("rem-1", S.DEAD_LETTERED, reminder_id="rem-1", reminder=data)
    state.on_record(0, 0, b"rem-1", dead, False)
    assert part.status("rem-1") is S.DEAD_LETTERED
    assert state.on_record(0, 1, b"rem-1", kit.claim_record("zombie", 1, 5.0), False) is None
    assert part.status("rem-1") is S.DEAD_LETTERED  # a late claim does not revive it
    replay = _record("rem-1", S.SCHEDULED, reminder_id="rem-1", reminder=data, event_time=9.0)
    assert state.on_record(0, 2, b"rem-1", replay, False) is not None
    assert part.status("rem-1") is S.SCHEDULED
    state.on_record(0, 3, b"rem-1", dead, False)
    assert state.prune(10.0**10) == 1
    assert log.parts[0][-1] == ("rem-1", None)
    assert part.status("rem-1") is None


# ---------------------------------------------------------------------- intake at capacity


async def test_past_max_waiting_intake_waits_until_one_is_admitted(kit: type[Kit]) -> None:
    h = await kit.Harness(max_pending=1, max_waiting=1).start()
    first = await h.feed(kit.scheduled("soon", due_in=30))
    waiting = await h.feed(kit.scheduled("far-1", due_in=7 * 86400))
    assert not waiting.completed
    ctx = kit.Context(kit.EVENTS, 0, 99)
    blocked = asyncio.create_task(
        h.worker.process_event(kit.scheduled("far-2", due_in=8 * 86400), ctx)  # type: ignore[arg-type]
    )
    await _yield()
    assert not blocked.done()  # back-pressure: the partition waits, nothing is dropped
    h.clock.advance(30)
    await h.run()  # "soon" is sent: room for one
    await asyncio.wait_for(blocked, 5)
    assert first.completed
    assert waiting.completed
    assert ctx.completed
    assert [rid for rid, _ in h.sender.sent] == ["soon"]
    assert {"far-1", "far-2"} <= set(h.worker.state.partitions[0].pending)


async def test_at_max_pending_waiting_schedules_are_admitted_in_arrival_order(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(max_pending=1).start()
    await h.feed(kit.scheduled("soon", due_in=30))
    first = await h.feed(kit.scheduled("far-1", due_in=7 * 86400))
    second = await h.feed(kit.scheduled("far-2", due_in=6 * 86400))
    assert h.worker.intake.waiting == 2
    h.clock.advance(30)
    await h.run()
    h.worker.intake.admit_now()
    await _yield()  # the admitted one's state write is acknowledged
    assert first.completed
    assert not second.completed  # room for one: the one that came first
    assert h.worker.intake.waiting == 1
    assert h.worker.intake.at_capacity


async def test_at_max_pending_a_new_schedule_of_a_pending_reminder_or_one_due_soon_does_not_wait(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(max_pending=1, prepare_ahead=10.0).start()
    await h.feed(kit.scheduled("rem-1", due_in=3600))
    moved = await h.feed(kit.scheduled("rem-1", due_in=7200, time=kit.T0.replace(minute=1)))
    soon = await h.feed(kit.scheduled("soon", due_in=5))
    assert moved.completed
    assert soon.completed
    assert h.worker.intake.waiting == 0
    assert h.entry("rem-1").due == kit.T0.timestamp() + 7200


async def test_a_scheduled_reminder_is_logged_at_debug_with_its_due_time(
    kit: type[Kit], caplog: pytest.LogCaptureFixture
) -> None:
    h = await kit.Harness().start()
    with caplog.at_level(logging.DEBUG, "coffeebuddy.infra.kafka.reminder_worker"):
        await h.feed(kit.scheduled("rem-1", due_in=60))
    [record] = [r for r in caplog.records if r.getMessage() == "reminder scheduled"]
    assert record.due_at == "2026-01-05T09:01:00+00:00"  # type: ignore[attr-defined]
    assert record.reminder_id == "rem-1"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- delivery and stop


async def test_stop_lets_an_attempt_finish_within_its_budget_and_cancels_one_past_it(
    kit: type[Kit],
) -> None:
    h = await kit.Harness().start()
    h.sender.gate = asyncio.Event()
    await h.feed(kit.scheduled("rem-1", due_in=0))
    await h.fire()
    asyncio.get_running_loop().call_soon(h.sender.gate.set)
    await h.scheduler.stop(timeout=5.0)
    assert [rid for rid, _ in h.sender.sent] == ["rem-1"]
    assert h.changelog.statuses("rem-1")[-1] == "sent"

    h2 = await kit.Harness().start()
    h2.sender.gate = asyncio.Event()  # never set: the post hangs
    await h2.feed(kit.scheduled("rem-2", due_in=0))
    await h2.fire()
    await h2.scheduler.stop(timeout=0.01)
    await _yield()
    assert h2.scheduler.in_flight == set()
    assert h2.sender.sent == []
    assert h2.changelog.statuses("rem-2")[-1] == "claimed"  # the next owner checks, then sends


def _hanging_sender(kit: type[Kit], hang: asyncio.Event) -> type[Any]:
    class Hanging(kit.PreparingSender):  # type: ignore[name-defined,misc]
        """conversations.open does not answer until `hang` is set."""

        async def prepare(self, reminder: ReminderScheduledData) -> None:
            self.prepared.append((reminder.reminder_id, self.clock()))
            await hang.wait()

    return Hanging


async def test_stop_cancels_preparations_that_have_not_finished(kit: type[Kit]) -> None:
    hang = asyncio.Event()
    h = await kit.Harness(sender=_hanging_sender(kit, hang), prepare_ahead=60.0).start()
    await h.feed(kit.scheduled("rem-1", due_in=30))
    await h.scheduler.run_once()
    assert len(h.scheduler.preparing) == 1
    task = next(iter(h.scheduler.preparing))
    await h.scheduler.stop(timeout=1.0)
    await _yield()
    assert task.cancelled()
    assert not h.entry("rem-1").prepared


async def test_a_preparation_that_hangs_is_given_up_after_the_send_timeout(kit: type[Kit]) -> None:
    # eight preparations run at once: one that never ends must not hold its slot for good
    hang = asyncio.Event()
    h = await kit.Harness(
        sender=_hanging_sender(kit, hang), prepare_ahead=60.0, send_timeout=0.05
    ).start()
    await h.feed(kit.scheduled("rem-1", due_in=30))
    await h.scheduler.run_once()
    await asyncio.wait_for(h.settle(), 5)  # ended by the timeout, not by `hang`
    assert not hang.is_set()
    assert [rid for rid, _ in h.sender.prepared] == ["rem-1"]
    assert not h.entry("rem-1").prepared  # the send does the work then
    h.clock.advance(30)
    hang.set()
    await h.run()
    assert [rid for rid, _ in h.sender.sent] == ["rem-1"]


async def test_a_sender_that_posts_without_asking_the_fence_is_named_in_a_warning(
    kit: type[Kit], caplog: pytest.LogCaptureFixture
) -> None:
    class Careless(kit.FakeSender):  # type: ignore[name-defined,misc]
        async def send(
            self, reminder: ReminderScheduledData, *, claim_time: datetime, fence: Fence
        ) -> SendResult:
            self.sent.append((reminder.reminder_id, self.clock()))
            return SendResult.sent("D1", "1.0")

    h = await kit.Harness(sender=Careless).start()
    await h.feed(kit.scheduled("rem-1", due_in=0))
    with caplog.at_level(logging.WARNING, "coffeebuddy.infra.kafka.reminder_worker"):
        await h.run()
    assert h.changelog.statuses("rem-1")[-1] == "sent"
    assert any("without checking the fence" in r.getMessage() for r in caplog.records)


async def test_a_rejected_reminder_without_a_dead_letter_topic_is_released_not_retried(
    kit: type[Kit],
) -> None:
    clock = kit.Clock()
    sender = kit.FakeSender(clock)
    sender.script["bad"] = [SendResult.permanent("invalid_blocks", dead_letter=True)]
    log = kit.MemoryChangelog()
    worker = ReminderWorker(
        sender,
        kit.FakeProducer(),  # type: ignore[arg-type]
        kit.settings(claim_ahead=0.0, history=False),
        changelog=log,
        topics=WorkerTopics(
            reminders=REMINDER_EVENTS_TOPIC.model_copy(update={"dead_letter_topic": None})
        ),
        clock=clock,
    )
    await log.start(worker._on_record)
    worker._started = True
    await worker.on_assign([kit.TopicPartition(kit.EVENTS, 0)])
    ctx = kit.Context(kit.EVENTS, 0, 0)
    await worker.process_event(kit.scheduled("bad", due_in=0), ctx)  # type: ignore[arg-type]
    await worker.scheduler.run_once()
    await asyncio.gather(*worker.scheduler.in_flight)
    assert log.statuses("bad")[-1] is None  # tombstoned: nothing of it is retried
    assert worker.pending_count == 0
    assert sender.sent == []


# ---------------------------------------------------------------------- history writer


class _FlakyProducer:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list[Any]] = []

    async def send_raw_many(self, topic: Any, records: list[Any]) -> list[Any]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.batches.append(records)
        return []


async def test_history_retries_a_failed_batch_then_drops_it_without_stopping(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = _FlakyProducer(failures=2)
    history = History(producer, REMINDER_HISTORY_TOPIC)  # type: ignore[arg-type]
    supervisor = Supervisor()
    history.start(supervisor)
    history.append("rem-1", b"a")
    await history.flush(timeout=10)
    assert [[k for k, _, _ in b] for b in producer.batches] == [[b"rem-1"]]
    assert history.dropped == 0

    producer.failures = 5  # every attempt fails: counted, dropped, the writer goes on
    with caplog.at_level(logging.WARNING, "coffeebuddy.infra.kafka.reminder_worker.history"):
        history.append("rem-2", b"b")
        await wait_until(lambda: history.dropped == 1, timeout=15, message="batch dropped")
    assert "history write of 1 records failed 5 times" in caplog.text
    history.append("rem-3", b"c")
    await history.flush(timeout=10)
    assert [[k for k, _, _ in b] for b in producer.batches][-1] == [b"rem-3"]
    assert supervisor.problems == []
    await supervisor.stop()


async def test_history_past_its_limit_drops_the_oldest_records() -> None:
    producer = _FlakyProducer(failures=0)
    history = History(producer, REMINDER_HISTORY_TOPIC, limit=2)  # type: ignore[arg-type]
    for key in ("a", "b", "c"):
        history.append(key, b"v")
    assert history.dropped == 1
    supervisor = Supervisor()
    history.start(supervisor)
    await history.flush(timeout=10)
    assert [k for k, _, _ in producer.batches[0]] == [b"b", b"c"]
    await supervisor.stop()


# ---------------------------------------------------------------------- settings and entries


def test_gc_thresholds_read_from_the_environment() -> None:
    assert ReminderSettings.from_env({"REMINDER_GC_THRESHOLDS": " Python "}).gc_thresholds is None
    parsed = ReminderSettings.from_env({"REMINDER_GC_THRESHOLDS": "1000, 10,10"})
    assert parsed.gc_thresholds == (1000, 10, 10)
    with pytest.raises(SettingsError) as info:
        ReminderSettings.from_env({"REMINDER_GC_THRESHOLDS": "1000,0"})
    assert "REMINDER_GC_THRESHOLDS" in str(info.value)
    assert "three positive integers like 50000,20,100 or 'python', got '1000,0'" in str(info.value)


@pytest.mark.parametrize(
    ("event_id", "as_int"),
    [
        ("0F5E3C9A-6B1D-4C2E-9A7F-1234567890AB", False),  # a UUID, not in canonical form
        ("not-a-uuid-but-thirty-six-chars-long", False),
        ("9b2f6c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b", True),
        ("00000000-0000-4000-8000-000000000001", True),  # leading zeros
        ("+b2f6c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b", False),  # int() would take the sign
        ("9_2f6c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b", False),  # and the underscore
        (" b2f6c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b", False),  # and the space
        ("9b2f6c1e3a4d-4e5f-8a9b-0c1d2e3f4a5b-", False),  # dashes elsewhere
    ],
)
def test_an_event_id_is_kept_exactly_as_it_came(event_id: str, as_int: bool) -> None:
    assert len(event_id) == 36
    entry = Pending("r", "run", "runner", 1.0, 2.0, 3.0, b"{}", event_id, 0.0, 0)
    assert entry.event_id == event_id
    assert isinstance(entry.event_key, int) is as_int  # the compact form only for a canonical one
    assert "reminder_id='r'" in repr(entry)


def test_the_recipient_of_an_unreadable_payload_is_empty_not_an_error() -> None:
    for payload in (b"{broken", b"[]", b'{"recipient_user_id": 7}'):
        entry = Pending("r", "run", "runner", 1.0, 2.0, 3.0, payload, "e", 0.0, 0)
        assert entry.recipient == ""
