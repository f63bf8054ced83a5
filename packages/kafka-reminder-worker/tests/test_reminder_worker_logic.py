"""Unit tests of the worker's decisions with a fake sender, an in-memory changelog and a
controllable clock (no Kafka: the broker path is covered by the repo-root integration tests)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from coffeebuddy.infra.kafka.consumer import TopicPartition
from coffeebuddy.infra.kafka.models import (
    ReminderCancelled,
    ReminderCancelledData,
    ReminderState,
    RunCancelled,
    RunCancelledData,
    RunClosed,
    RunClosedData,
    decode_event,
    encode_event,
    encode_state,
    parse_dead_letter_headers,
)
from coffeebuddy.infra.kafka.reminder_worker import ReminderWorker, ReminderWorkerError, SendResult
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC

if TYPE_CHECKING:
    from conftest import Harness, Kit


async def test_record_completes_once_its_state_is_written_whatever_the_due_time(
    kit: type[Kit],
    h: Harness,
) -> None:
    h.changelog.hold = True
    ctx = await h.feed(kit.scheduled(due_in=7 * 86400))
    assert ctx.state == "pending"  # the state write is not acknowledged yet
    assert h.worker.health().unflushed == 1
    h.changelog.release_held()
    await asyncio.sleep(0)
    assert ctx.state == "done"  # a week before it is due
    assert h.changelog.statuses("rem-1") == ["scheduled"]


async def test_never_sends_before_due_and_sends_when_due(kit: type[Kit], h: Harness) -> None:
    await h.feed(kit.scheduled(due_in=60))
    h.clock.advance(59.9)
    await h.run()
    assert h.sender.sent == []
    h.clock.advance(0.1)
    await h.run()
    assert h.sender.sent == [("rem-1", kit.T0 + timedelta(seconds=60))]
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "sent"]
    assert h.sample("coffeebuddy_reminders_sent_total", kind="runner") == 1
    assert h.sample("coffeebuddy_reminder_delivery_lateness_seconds_count", kind="runner") == 1
    assert h.worker.pending_count == 0


async def test_every_record_written_validates_as_the_models_reminder_state(
    kit: type[Kit], h: Harness
) -> None:
    await h.feed(kit.scheduled(due_in=0))
    await h.feed(RunClosed.create(data=RunClosedData(run_id="run-9", closed_at=kit.T0)), kit.RUNS)
    await h.run()
    values = [v for _, v in h.changelog.parts[0] if v is not None]
    assert len(values) == 4
    for value in values:
        event = ReminderState.model_validate_json(value)
        assert event.subject == event.data.run_id
    claimed = ReminderState.model_validate_json(values[2]).data
    assert claimed.status == "claimed"
    assert claimed.owner == h.worker.worker_id
    assert claimed.epoch == 1
    assert claimed.reminder is not None
    assert claimed.reminder.reminder_id == "rem-1"
    assert claimed.deadline is not None
    assert claimed.claimed_at is not None
    assert (claimed.deadline - claimed.claimed_at).total_seconds() == 15.0  # 5 s start + 10 s


async def test_late_arrival_inside_grace_is_sent_past_expiry_dropped(kit: type[Kit]) -> None:
    h = await kit.Harness(late_grace=timedelta(minutes=5)).start()
    ok = await h.feed(kit.scheduled("ok", due_in=-120))
    late = await h.feed(kit.scheduled("late", due_in=-400))
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["ok"]
    assert ok.completed
    assert late.completed
    assert h.changelog.statuses("late") == ["dropped"]
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="expired") == 1


async def test_reminder_cancelled_after_and_before_schedule(kit: type[Kit], h: Harness) -> None:
    await h.feed(kit.scheduled("a", due_in=10))
    c1 = await h.feed(
        ReminderCancelled.create(data=ReminderCancelledData(run_id="run-1", reminder_id="a"))
    )
    c2 = await h.feed(
        ReminderCancelled.create(data=ReminderCancelledData(run_id="run-1", reminder_id="b"))
    )
    s2 = await h.feed(kit.scheduled("b", due_in=10))
    h.clock.advance(20)
    await h.run()
    assert h.sender.sent == []
    assert c1.completed
    assert c2.completed
    assert s2.completed
    assert h.changelog.statuses("a") == ["scheduled", "cancelled"]
    assert h.changelog.statuses("b") == ["cancelled"]


@pytest.mark.parametrize("run_first", [True, False])
async def test_run_cancelled_and_closed_in_either_order(kit: type[Kit], run_first: bool) -> None:
    h = await kit.Harness().start()
    runs = [
        RunCancelled.create(data=RunCancelledData(run_id="run-x")),
        RunClosed.create(data=RunClosedData(run_id="run-y", closed_at=kit.T0)),
    ]
    rems = [
        kit.scheduled("x-runner", run_id="run-x", kind="runner", due_in=5),
        kit.scheduled("x-last", run_id="run-x", kind="last_call", due_in=5),
        kit.scheduled("y-runner", run_id="run-y", kind="runner", due_in=5),
        kit.scheduled("y-last", run_id="run-y", kind="last_call", due_in=5),
    ]
    order = [*runs, *rems] if run_first else [*rems, *runs]
    for ev in order:
        ctx = await h.feed(ev, kit.RUNS if ev in runs else kit.EVENTS)
        assert ctx.completed
    h.clock.advance(10)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["y-runner"]
    assert h.worker.pending_count == 0


async def test_run_marker_from_another_workers_partition_reaches_the_owner(
    kit: type[Kit], h: Harness
) -> None:
    """Run events are consumed by whoever owns the run-events partition; the reminders' owner
    learns of the closure from the changelog tail."""
    await h.feed(kit.scheduled("last", kind="last_call", due_in=5))
    other = encode_state(
        state_key="run:run-1",
        status="run_closed",
        run_id="run-1",
        keep_until=kit.T0.timestamp() + 86400,
        now=kit.T0.timestamp(),
        source="/test",
        writer="another-worker",
    )
    h.changelog.inject(0, "run:run-1", other)
    h.clock.advance(10)
    await h.run()
    assert h.sender.sent == []
    assert h.changelog.statuses("last")[-1] == "dropped"


async def test_republished_event_and_settled_reminder_are_duplicates(
    kit: type[Kit], h: Harness
) -> None:
    ev = kit.scheduled(due_in=0)
    await h.feed(ev)
    dup = await h.feed(ev)
    assert dup.state == "completed-inline"
    await h.run()
    again = await h.feed(kit.scheduled(due_in=0))  # a new event for a settled reminder
    await h.run()
    assert again.state == "completed-inline"
    assert len(h.sender.sent) == 1
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="duplicate") == 2


async def test_reschedule_replaces_the_pending_reminder(kit: type[Kit], h: Harness) -> None:
    await h.feed(kit.scheduled(due_in=10, time=kit.T0))
    await h.feed(kit.scheduled(due_in=30, time=kit.T0 + timedelta(seconds=1)))
    older = await h.feed(kit.scheduled(due_in=5, time=kit.T0 - timedelta(seconds=1)))
    assert older.state == "completed-inline"
    h.clock.advance(15)
    await h.run()
    assert h.sender.sent == []
    h.clock.advance(15)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["rem-1"]


async def test_rate_limit_waits_for_that_recipient_only(kit: type[Kit], h: Harness) -> None:
    h.sender.script["slow"] = [SendResult.rate_limited(30.0)]
    await h.feed(kit.scheduled("slow", user="U1", due_in=0))
    await h.feed(kit.scheduled("fast", run_id="run-2", user="U2", due_in=0))
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["fast"]
    h.clock.advance(29)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["fast"]
    h.clock.advance(1.1)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["fast", "slow"]
    assert h.sender.find_calls == []  # a 429 posted nothing


async def test_transient_failures_back_off_until_expiry(kit: type[Kit]) -> None:
    h = await kit.Harness(late_grace=timedelta(seconds=10)).start()
    h.sender.script["rem-1"] = [SendResult.transient("internal_error")] * 100
    await h.feed(kit.scheduled(due_in=0))
    for _ in range(10):
        await h.run()
        h.clock.advance(2.5)
    await h.run()
    assert h.sender.sent == []
    assert h.changelog.statuses("rem-1")[-1] == "dropped"
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="expired") == 1


async def test_recipient_unreachable_drops_and_format_rejection_dead_letters(
    kit: type[Kit], h: Harness
) -> None:
    h.sender.script["gone"] = [SendResult.permanent("user_not_found")]
    h.sender.script["bad"] = [SendResult.permanent("invalid_blocks", dead_letter=True)]
    await h.feed(kit.scheduled("gone", due_in=0))
    await h.feed(kit.scheduled("bad", run_id="run-2", due_in=0))
    await h.run()
    assert h.changelog.statuses("gone")[-1] == "dropped"
    assert h.changelog.statuses("bad") == ["scheduled", "claimed", "dead_lettered"]
    [(topic, headers)] = h.producer.dead_letters
    assert topic == REMINDER_EVENTS_TOPIC.dead_letter_topic
    letter = parse_dead_letter_headers(list(headers.items()))
    assert "invalid_blocks" in letter.error_message
    assert letter.origin_offset == 1
    replay = await h.feed(kit.scheduled("bad", run_id="run-2", due_in=0))
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["bad"]  # the replay is fresh: sent at once
    assert replay.completed


async def test_configuration_error_keeps_backlog_and_resumes(kit: type[Kit], h: Harness) -> None:
    h.sender.script["rem-1"] = [SendResult.configuration("missing_scope: im:history")]
    h.sender.auth = SendResult.configuration("missing_scope: im:history")
    await h.feed(kit.scheduled(due_in=0))
    await h.run()
    assert not h.worker.ready
    assert "missing_scope: im:history" in h.worker.health().detail
    assert h.worker.pending_count == 1
    h.sender.auth = SendResult.sent()
    await wait_until(lambda: h.worker.ready, timeout=5, message="ready after the probe")
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["rem-1"]


async def test_ambiguous_send_is_checked_before_resending(kit: type[Kit], h: Harness) -> None:
    h.sender.script["rem-1"] = [SendResult.ambiguous("http_503")]
    h.sender.found["rem-1"] = SendResult.sent("D1", "1.2")
    await h.feed(kit.scheduled(due_in=0))
    await h.run()
    h.clock.advance(2)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert h.sender.sent == []  # found in the history: not posted again
    assert h.changelog.statuses("rem-1")[-1] == "sent"


async def test_new_owner_waits_out_the_old_claims_deadline_plus_skew_then_checks(
    kit: type[Kit],
) -> None:
    log = kit.MemoryChangelog()
    log.parts[0].append(("rem-1", kit.claim_record("old-owner", 3, kit.T0.timestamp())))
    h = await kit.Harness(log).start()
    state = h.worker.state.get(0)
    assert state is not None
    assert state.epoch == 4  # one more than any epoch in the partition
    await h.run()
    h.clock.advance(16.9)  # deadline 15 s + 2 s skew not reached
    await h.run()
    assert h.sender.find_calls == []
    assert h.sender.sent == []
    h.clock.advance(0.2)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert [r for r, _ in h.sender.sent] == ["rem-1"]


async def test_same_member_reassigned_treats_its_old_epoch_claim_as_foreign(
    kit: type[Kit], h: Harness
) -> None:
    """A revoke overran: the send of the old ownership may still land. Back in the same
    process the claim is from an older epoch: wait, then check history (nothing lost)."""
    h.sender.script["rem-1"] = [SendResult.ambiguous("timeout")]
    await h.feed(kit.scheduled(due_in=0))
    await h.run()
    await h.worker.on_revoke([TopicPartition(kit.EVENTS, 0)])
    assert h.worker.pending_count == 0
    await h.worker.on_assign([TopicPartition(kit.EVENTS, 0)])
    assert h.worker.pending_count == 1  # rebuilt from the changelog
    h.sender.found["rem-1"] = SendResult.sent("D1", "1.1")
    await h.run()
    assert h.sender.find_calls == []
    h.clock.advance(17.1)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert h.sender.sent == []


async def test_a_foreign_claim_read_back_before_ours_fences_the_post(
    kit: type[Kit], h: Harness
) -> None:
    """Two owners at once (a zombie): the claim that is first in the partition wins."""
    await h.feed(kit.scheduled(due_in=0))

    def zombie(partition: int, offset: int) -> None:
        h.changelog.inject(0, "rem-1", kit.claim_record("zombie", 1, h.clock().timestamp()))
        h.changelog.on_read_past = None

    h.changelog.on_read_past = zombie
    await h.run()
    assert h.sender.sent == []
    h.sender.found["rem-1"] = SendResult.sent("D1", "1.3")
    h.clock.advance(17.1)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert h.sender.sent == []


async def test_post_not_started_when_ownership_is_lost_before_it(
    kit: type[Kit], h: Harness
) -> None:
    await h.feed(kit.scheduled(due_in=0))

    def revoke(partition: int, offset: int) -> None:
        h.worker.state.close(0)

    h.changelog.on_read_past = revoke
    await h.run()
    assert h.sender.sent == []


async def test_long_uptime_redelivery_gives_no_second_dm_and_state_is_pruned_by_lifetime(
    kit: type[Kit],
    h: Harness,
) -> None:
    """Settled state lives for the reminder's own lifetime (expiry + grace + margin), decided
    by that time: 25 h of uptime does not forget a reminder that expires in 3 days."""
    ev = kit.scheduled(due_in=0, expires_in=3 * 86400)
    await h.feed(ev)
    await h.run()
    h.clock.advance(25 * 3600)
    await h.run()
    await h.feed(ev)
    await h.run()
    assert len(h.sender.sent) == 1
    h.clock.advance(3 * 86400)  # past expiry + 15 min grace... and + 1 h margin
    await h.run()
    assert h.changelog.statuses("rem-1")[-1] is None  # tombstoned: no redelivery can matter
    late = await h.feed(ev)
    await h.run()
    assert len(h.sender.sent) == 1
    assert late.completed  # expired now, not re-sent


async def test_capacity_pauses_intake_and_never_refuses_a_record(kit: type[Kit]) -> None:
    h = await kit.Harness(max_pending=3).start()
    for i in range(3):
        assert (await h.feed(kit.scheduled(f"far-{i}", run_id=f"r{i}", due_in=86400))).completed
    fourth = await h.feed(kit.scheduled("far-3", run_id="r3", due_in=86400))
    assert not fourth.completed  # waits (deferred) without holding the partition
    health = h.worker.health()
    assert health.at_capacity
    assert "max_pending=3" in health.detail
    assert h.sample("coffeebuddy_reminder_worker_at_capacity") == 1
    await h.feed(
        ReminderCancelled.create(data=ReminderCancelledData(run_id="r0", reminder_id="far-0"))
    )
    h.worker.intake.admit_now()  # what the supervised admission task does once room frees
    await asyncio.sleep(0)
    assert fourth.completed
    assert h.sample("coffeebuddy_reminder_worker_at_capacity") == 0
    assert h.worker.pending_count == 3


async def test_a_reminder_due_now_is_sent_at_once_behind_many_pending_on_its_key(
    kit: type[Kit],
    h: Harness,
) -> None:
    for i in range(2000):
        await h.feed(kit.scheduled(f"later-{i}", due_in=3600))
    await h.feed(kit.scheduled("now", due_in=0))
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["now"]


def test_decisions_are_pure_enums() -> None:
    from coffeebuddy.infra.kafka.reminder_worker._decisions import (
        ClaimCheck,
        FireStep,
        ScheduleStep,
        check_claim,
        decide_fire,
        decide_schedule,
        may_start_post,
    )
    from coffeebuddy.infra.kafka.reminder_worker._entry import Pending, RunMark

    e = Pending("r", "run", "last_call", 100.0, 200.0, 4000.0, b"{}", "ev", 1.0, 0)
    closed = RunMark(9e9)
    closed.closed = True
    kw: dict[str, Any] = {"kind": "last_call", "event_time": 2.0, "now": 50.0, "expires": 200.0}
    assert decide_schedule(settled=True, run=None, existing=None, event_id="x", **kw) is (
        ScheduleStep.DUPLICATE
    )
    assert decide_schedule(settled=False, run=closed, existing=None, event_id="x", **kw) is (
        ScheduleStep.RUN_CLOSED
    )
    assert decide_schedule(settled=False, run=None, existing=e, event_id="ev", **kw) is (
        ScheduleStep.DUPLICATE
    )
    e.in_flight = True
    assert decide_schedule(settled=False, run=None, existing=e, event_id="new", **kw) is (
        ScheduleStep.AFTER_ATTEMPT
    )
    e.in_flight = False
    assert check_claim(e, owner="me", epoch=2, now=0, skew=2) is ClaimCheck.NONE
    e.set_claim("me", 2, 100.0, 115.0)
    assert check_claim(e, owner="me", epoch=2, now=0, skew=2) is ClaimCheck.OURS
    assert check_claim(e, owner="me", epoch=3, now=116.9, skew=2) is ClaimCheck.FOREIGN_LIVE
    assert check_claim(e, owner="me", epoch=3, now=117.0, skew=2) is ClaimCheck.FOREIGN_EXPIRED
    fire = {"run": None, "now": 120.0, "recipient_wait_until": 0.0}
    assert decide_fire(e, claim=ClaimCheck.FOREIGN_LIVE, **fire) is FireStep.WAIT_FOREIGN_CLAIM
    assert decide_fire(e, claim=ClaimCheck.FOREIGN_EXPIRED, **fire) is FireStep.CHECK_HISTORY
    assert decide_fire(e, claim=ClaimCheck.NONE, **fire) is FireStep.CLAIM
    assert decide_fire(e, claim=ClaimCheck.NONE, **{**fire, "run": closed}) is (
        FireStep.DROP_BLOCKED
    )
    assert decide_fire(e, claim=ClaimCheck.NONE, **{**fire, "now": 201.0}) is FireStep.EXPIRE
    ok = {"owned": True, "epoch_now": 2, "claim_epoch": 2, "deadline": 115.0, "timeout": 10.0}
    assert may_start_post(now=105.0, **ok)
    assert not may_start_post(now=105.1, **ok)  # the post could outlive the deadline
    assert not may_start_post(now=100.0, **{**ok, "epoch_now": 3})
    assert not may_start_post(now=100.0, **{**ok, "owned": False})


def test_bad_settings_are_named(kit: type[Kit]) -> None:
    with pytest.raises(ValueError, match="reminder worker configuration") as info:
        kit.settings(max_pending=0, send_timeout=0, clock_skew=timedelta(seconds=-1))
    message = str(info.value)
    for name in ("MAX_PENDING", "SEND_TIMEOUT_S", "CLOCK_SKEW_S"):
        assert name in message


def test_without_settings_or_a_changelog_the_worker_names_what_is_missing(kit: type[Kit]) -> None:
    with pytest.raises(ReminderWorkerError, match=r"kafka \(KafkaSettings\) .*changelog"):
        ReminderWorker(kit.FakeSender(kit.Clock()), kit.FakeProducer())  # type: ignore[arg-type]


async def test_pending_entries_share_one_copy_of_a_long_event_source(
    kit: type[Kit], h: Harness
) -> None:
    # pydantic-core shares decoded strings of up to 64 characters only; past that, each decoded
    # event holds its own copy, and 100k pending reminders would hold 100k of them
    source = "https://coffeebuddy.example/slack/apps/A0123456789/installations/T024BE7LD"
    assert len(source) > 64
    for rid in ("rem-1", "rem-2"):
        scheduled = kit.scheduled(rid, run_id=f"run-{rid}", due_in=3600)
        event = decode_event(encode_event(scheduled.model_copy(update={"source": source})))
        await h.feed(event)
    first, second = h.entry("rem-1"), h.entry("rem-2")
    assert first.source == source
    assert first.source is second.source
