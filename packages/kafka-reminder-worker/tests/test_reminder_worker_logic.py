"""Unit tests of the worker's decisions with a fake sender, an in-memory delivery log and a
controllable clock (pure logic: the Kafka path is covered by the repo-root integration tests)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.consumer import NonRetryableError, TopicPartition
from coffeebuddy.infra.kafka.metrics import ReminderMetrics
from coffeebuddy.infra.kafka.models import (
    ReminderCancelled,
    ReminderCancelledData,
    ReminderDeliveryData,
    ReminderScheduled,
    ReminderScheduledData,
    RunCancelled,
    RunCancelledData,
    RunClosed,
    RunClosedData,
)
from coffeebuddy.infra.kafka.reminder_worker import (
    ReminderWorker,
    SendOutcome,
    SendResult,
)
from coffeebuddy.infra.kafka.reminder_worker._delivery_log import DeliveryLog
from coffeebuddy.infra.kafka.testing import wait_until

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MemoryLog(DeliveryLog):
    """The real DeliveryLog state logic with writes applied in memory instead of Kafka."""

    def __init__(self, clock: Any) -> None:
        super().__init__(None, None, None, source="test", clock=clock, retention=3600.0)  # type: ignore[arg-type]
        self.written: list[ReminderDeliveryData] = []
        self.history: list[tuple[str, str]] = []  # (reminder_id, status or "tombstone")
        self.release_error: Exception | None = None
        self.on_release: Callable[[str], None] | None = None
        self._caught_up.set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def barrier(self, limit: float) -> bool:
        return True

    async def write_many(self, records: list[ReminderDeliveryData]) -> None:
        for data in records:
            self.written.append(data)
            self.history.append((data.reminder_id, str(data.status)))
            self._apply(data)

    def enqueue(self, data: ReminderDeliveryData) -> None:
        self.written.append(data)
        self.history.append((data.reminder_id, str(data.status)))
        self._apply(data)

    async def release(self, reminder_id: str) -> None:
        if self.on_release is not None:
            self.on_release(reminder_id)
        if self.release_error is not None:
            raise self.release_error
        self.history.append((reminder_id, "tombstone"))
        self._forget(reminder_id)

    def statuses(self, rid: str) -> list[str]:
        return [status for r, status in self.history if r == rid]


class Completion:
    def __init__(self) -> None:
        self.state = "pending"
        self.error: BaseException | None = None
        self.is_stale = False

    def done(self) -> None:
        assert self.state == "pending", "completed twice"
        self.state = "done"

    def fail(self, exc: BaseException) -> None:
        assert self.state == "pending", "completed twice"
        self.state = "failed"
        self.error = exc


class Context:
    def __init__(self, topic: str = "coffeebuddy.reminder.events", partition: int = 0) -> None:
        self.topic = topic
        self.partition = partition
        self.completion: Completion | None = None

    def defer(self) -> Completion:
        self.completion = Completion()
        return self.completion

    @property
    def state(self) -> str:
        return "completed-inline" if self.completion is None else self.completion.state


class FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, datetime]] = []
        self.script: dict[str, list[SendResult]] = {}
        self.found: dict[str, SendResult | None] = {}
        self.find_calls: list[str] = []
        self.auth = SendResult.sent()
        self.auth_calls = 0
        self.clock: Clock | None = None

    async def send(self, reminder: ReminderScheduledData, *, claim_time: datetime) -> SendResult:
        queue = self.script.get(reminder.reminder_id)
        if queue:
            return queue.pop(0)
        assert self.clock is not None
        self.sent.append((reminder.reminder_id, self.clock()))
        return SendResult.sent("D0001", "1700000000.000100")

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        self.find_calls.append(reminder.reminder_id)
        return self.found.get(reminder.reminder_id)

    async def check_auth(self) -> SendResult:
        self.auth_calls += 1
        return self.auth


class Harness:
    """Drives one worker deterministically: no scheduler task, explicit rounds."""

    def __init__(self, **kwargs: Any) -> None:
        self.clock = Clock()
        self.sender = FakeSender()
        self.sender.clock = self.clock
        self.registry = CollectorRegistry()
        self.metrics = ReminderMetrics(self.registry)
        self.worker = ReminderWorker(
            self.sender,
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            metrics=self.metrics,
            clock=self.clock,
            retry_initial=1.0,
            retry_max=8.0,
            auth_probe_initial=0.01,
            auth_probe_max=0.02,
            **kwargs,
        )
        self.log = MemoryLog(lambda: self.clock().timestamp())
        self.worker._log = self.log
        self.worker._started = True

    async def feed(self, event: Any, topic: str = "coffeebuddy.reminder.events") -> Context:
        ctx = Context(topic)
        await self.worker.process_event(event, ctx)  # type: ignore[arg-type]
        return ctx

    async def run(self) -> None:
        """Fire everything due now and wait for the attempts to settle."""
        for _ in range(10):
            delay = await self.worker._run_once()
            if self.worker._in_flight:
                await asyncio.gather(*list(self.worker._in_flight))
            if delay != 0.0:
                return

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def scheduled(
    rid: str = "rem-1",
    *,
    run_id: str = "run-1",
    kind: str = "runner",
    due_in: float = 60.0,
    expires_in: float | None = None,
    now: datetime = T0,
    user: str = "U100",
    time: datetime | None = None,
    event_id: str | None = None,
) -> ReminderScheduled:
    due = now + timedelta(seconds=due_in)
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run_id,
            reminder_id=rid,
            kind=kind,  # type: ignore[arg-type]
            team_id="T1",
            channel_id="C1",
            recipient_user_id=user,
            due_at=due,
            expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
            place="Cafe",
        ),
        id=event_id,
        time=time,
    )


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_never_sends_before_due_and_sends_when_due(h: Harness) -> None:
    ctx = await h.feed(scheduled(due_in=60))
    assert ctx.state == "pending"
    h.clock.advance(59.9)
    await h.run()
    assert h.sender.sent == []
    h.clock.advance(0.1)
    await h.run()
    assert h.sender.sent == [("rem-1", T0 + timedelta(seconds=60))]
    assert ctx.state == "done"
    assert h.log.statuses("rem-1") == ["claimed", "sent"]
    assert h.sample("coffeebuddy_reminders_sent_total", kind="runner") == 1
    assert h.sample("coffeebuddy_reminder_delivery_lateness_seconds_count", kind="runner") == 1
    assert h.worker.pending_count == 0


async def test_late_arrival_inside_grace_is_sent_at_once() -> None:
    h = Harness(late_grace=timedelta(minutes=5))
    ctx = await h.feed(scheduled(due_in=-120))
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["rem-1"]
    assert ctx.state == "done"


async def test_late_arrival_past_expiry_is_dropped_and_logged() -> None:
    h = Harness(late_grace=timedelta(minutes=5))
    ctx = await h.feed(scheduled(due_in=-400))
    ctx2 = await h.feed(scheduled("rem-2", due_in=-60, expires_in=-1))
    await h.run()
    assert h.sender.sent == []
    assert ctx.state == ctx2.state == "completed-inline"
    assert h.log.statuses("rem-1") == ["dropped"]
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="expired") == 2


async def test_reminder_cancelled_after_schedule(h: Harness) -> None:
    ctx = await h.feed(scheduled())
    await h.feed(
        ReminderCancelled.create(data=ReminderCancelledData(run_id="run-1", reminder_id="rem-1"))
    )
    assert ctx.state == "done"
    h.clock.advance(120)
    await h.run()
    assert h.sender.sent == []
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="cancelled") == 1


async def test_reminder_cancelled_before_schedule(h: Harness) -> None:
    cctx = await h.feed(
        ReminderCancelled.create(data=ReminderCancelledData(run_id="run-1", reminder_id="rem-1"))
    )
    assert cctx.state == "completed-inline"  # durable in the delivery log instead
    assert h.log.statuses("rem-1") == ["dropped"]
    ctx = await h.feed(scheduled())
    assert ctx.state == "completed-inline"
    h.clock.advance(120)
    await h.run()
    assert h.sender.sent == []


@pytest.mark.parametrize("run_first", [True, False])
async def test_run_cancelled_in_either_order_cancels_every_reminder(
    h: Harness, run_first: bool
) -> None:
    run_event = RunCancelled.create(data=RunCancelledData(run_id="run-1"))
    if run_first:
        rctx = await h.feed(run_event, topic="coffeebuddy.run.events")
    ctxs = [
        await h.feed(scheduled("a", kind="runner")),
        await h.feed(scheduled("b", kind="last_call")),
        await h.feed(scheduled("other", run_id="run-2")),
    ]
    if not run_first:
        rctx = await h.feed(run_event, topic="coffeebuddy.run.events")
        assert [c.state for c in ctxs[:2]] == ["done", "done"]
    h.clock.advance(120)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["other"]
    assert rctx.state == "pending"  # held while remembered: replayed after a restart
    assert (
        h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="run_cancelled") == 1
    )


@pytest.mark.parametrize("run_first", [True, False])
async def test_run_closed_cancels_last_calls_only(h: Harness, run_first: bool) -> None:
    run_event = RunClosed.create(data=RunClosedData(run_id="run-1", closed_at=T0))
    if run_first:
        await h.feed(run_event, topic="coffeebuddy.run.events")
    await h.feed(scheduled("runner", kind="runner"))
    await h.feed(scheduled("last", kind="last_call"))
    if not run_first:
        await h.feed(run_event, topic="coffeebuddy.run.events")
    h.clock.advance(120)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["runner"]
    assert (
        h.sample("coffeebuddy_reminders_dropped_total", kind="last_call", reason="run_closed") == 1
    )


async def test_run_memory_is_pruned_and_held_record_completes() -> None:
    h = Harness(run_memory=timedelta(minutes=10))
    rctx = await h.feed(
        RunCancelled.create(data=RunCancelledData(run_id="run-1")), topic="coffeebuddy.run.events"
    )
    h.clock.advance(600)
    await h.run()
    assert rctx.state == "done"
    await h.feed(scheduled(due_in=1, now=h.clock()))
    h.clock.advance(1)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["rem-1"]


async def test_republished_event_and_already_sent_reminder_are_duplicates(h: Harness) -> None:
    event = scheduled()
    first = await h.feed(event)
    again = await h.feed(event)
    assert again.state == "completed-inline"
    h.clock.advance(60)
    await h.run()
    assert first.state == "done"
    late = await h.feed(event)
    assert late.state == "completed-inline"
    h.clock.advance(60)
    await h.run()
    assert len(h.sender.sent) == 1
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="duplicate") == 2


async def test_reschedule_replaces_the_pending_reminder(h: Harness) -> None:
    first = await h.feed(scheduled(due_in=60, time=T0))
    second = await h.feed(scheduled(due_in=300, time=T0 + timedelta(seconds=1)))
    assert first.state == "done"
    stale = await h.feed(scheduled(due_in=10, time=T0 - timedelta(seconds=5)))
    assert stale.state == "completed-inline"
    h.clock.advance(120)
    await h.run()
    assert h.sender.sent == []
    h.clock.advance(180)
    await h.run()
    assert h.sender.sent == [("rem-1", T0 + timedelta(seconds=300))]
    assert second.state == "done"
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="superseded") == 2


async def test_rate_limit_waits_for_that_recipient_only(h: Harness) -> None:
    h.sender.script["a"] = [SendResult.rate_limited(30.0)]
    await h.feed(scheduled("a", user="U1", due_in=0))
    await h.feed(scheduled("b", user="U2", due_in=0))
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["b"]
    await h.feed(scheduled("c", user="U1", due_in=1, now=h.clock()))
    h.clock.advance(29)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["b"]  # U1 still waits, "c" too
    h.clock.advance(1)
    await h.run()
    assert sorted(r for r, _ in h.sender.sent) == ["a", "b", "c"]
    assert h.sender.find_calls == []  # a 429 posted nothing: no history check needed
    assert (
        h.sample("coffeebuddy_reminders_failed_total", kind="runner", error_class="rate_limited")
        == 1
    )


async def test_transient_failures_back_off_until_expiry() -> None:
    h = Harness()
    h.sender.script["rem-1"] = [SendResult.transient("internal_error")] * 20
    ctx = await h.feed(scheduled(due_in=0, expires_in=10))
    await h.run()
    times = []
    for _ in range(48):
        h.clock.advance(0.25)
        before = len(h.sender.script["rem-1"])
        await h.run()
        if len(h.sender.script["rem-1"]) < before:
            times.append((h.clock() - T0).total_seconds())
    assert h.sender.sent == []
    assert ctx.state == "done"
    assert h.log.statuses("rem-1")[-1] == "dropped"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == sorted(gaps), f"backoff must not shrink: {times}"
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="expired") == 1


async def test_recipient_permanent_error_drops(h: Harness) -> None:
    h.sender.script["rem-1"] = [SendResult.permanent("user_not_found")]
    ctx = await h.feed(scheduled(due_in=0))
    await h.run()
    assert ctx.state == "done"
    assert h.log.statuses("rem-1") == ["claimed", "dropped"]
    assert (
        h.sample(
            "coffeebuddy_reminders_dropped_total", kind="runner", reason="recipient_unreachable"
        )
        == 1
    )


async def test_format_rejection_fails_the_record_for_the_dead_letter_topic(h: Harness) -> None:
    h.sender.script["rem-1"] = [SendResult.permanent("invalid_blocks", dead_letter=True)]
    ctx = await h.feed(scheduled(due_in=0))
    await h.run()
    assert ctx.state == "failed"
    assert isinstance(ctx.completion and ctx.completion.error, NonRetryableError)
    assert "invalid_blocks" in str(ctx.completion and ctx.completion.error)
    assert "dropped" not in h.log.statuses("rem-1")


async def test_format_rejection_releases_the_claim_so_a_replay_sends_at_once() -> None:
    h = Harness(claim_lease=timedelta(seconds=60))
    h.sender.script["rem-1"] = [SendResult.permanent("invalid_blocks", dead_letter=True)]
    at_release: list[str] = []
    event = scheduled(due_in=0)
    ctx = await h.feed(event)
    h.log.on_release = lambda rid: at_release.append(ctx.state)
    await h.run()
    assert at_release == ["pending"]  # released before the record was failed
    assert ctx.state == "failed"
    assert h.log.statuses("rem-1") == ["claimed", "tombstone"]
    assert h.log.get("rem-1") is None
    # the dead letter is replayed (same event): no lease wait, no history check, sent once
    replay = await h.feed(event)
    await h.run()
    assert h.sender.sent == [("rem-1", T0)]
    assert h.sender.find_calls == []
    assert replay.state == "done"
    assert h.log.statuses("rem-1") == ["claimed", "tombstone", "claimed", "sent"]


async def test_recipient_unreachable_drops_without_a_tombstone(h: Harness) -> None:
    h.sender.script["rem-1"] = [SendResult.permanent("user_not_found")]
    await h.feed(scheduled(due_in=0))
    await h.run()
    assert "tombstone" not in h.log.statuses("rem-1")
    state = h.log.get("rem-1")
    assert state is not None
    assert state.status == "dropped"


async def test_failed_release_keeps_the_claim_and_the_lease_protects_the_replay() -> None:
    h = Harness(claim_lease=timedelta(seconds=60))
    h.sender.script["rem-1"] = [SendResult.permanent("invalid_blocks", dead_letter=True)]
    h.log.release_error = ConnectionError("broker gone")
    event = scheduled(due_in=0)
    ctx = await h.feed(event)
    await h.run()
    assert ctx.state == "failed"  # dead-lettered anyway
    state = h.log.get("rem-1")
    assert state is not None
    assert state.status == "claimed"
    # the replay finds a claim it cannot tell from another worker's: lease, then history check
    replay = await h.feed(event)
    await h.run()
    assert h.sender.sent == []
    h.clock.advance(60)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert [r for r, _ in h.sender.sent] == ["rem-1"]
    assert replay.state == "done"


def test_tombstone_releases_a_claim_but_never_hides_a_final_state() -> None:
    log = MemoryLog(lambda: T0.timestamp())
    for rid, status in (("a", "claimed"), ("b", "sent"), ("c", "dropped")):
        log._apply(
            ReminderDeliveryData(
                run_id="run-1",
                reminder_id=rid,
                status=status,  # type: ignore[arg-type]
                due_at=T0,
                recorded_at=T0,
                claimed_at=T0,
            )
        )
    for rid in ("a", "b", "c", "unknown"):
        log._forget(rid)
    assert log.get("a") is None
    assert [log.get(r).status for r in ("b", "c")] == ["sent", "dropped"]  # type: ignore[union-attr]


async def test_configuration_error_keeps_backlog_and_resumes_after_probe(h: Harness) -> None:
    h.sender.script["a"] = [SendResult.configuration("invalid_auth")]
    h.sender.auth = SendResult.configuration("invalid_auth")
    a = await h.feed(scheduled("a", due_in=0))
    await h.run()
    assert not h.worker.ready
    assert h.sample("coffeebuddy_slack_auth_ok") == 0
    assert h.sample("coffeebuddy_reminder_worker_ready") == 0
    b = await h.feed(scheduled("b", due_in=1))
    h.clock.advance(5)
    await h.run()
    assert h.sender.sent == []
    assert a.state == b.state == "pending"
    assert h.worker.pending_count == 2
    await wait_until(lambda: h.sender.auth_calls >= 2, timeout=5, message="auth probed twice")
    assert not h.worker.health().ready
    h.sender.auth = SendResult.sent()
    await wait_until(lambda: h.worker.health().ready, timeout=5, message="probe passed")
    await h.run()
    assert sorted(r for r, _ in h.sender.sent) == ["a", "b"]
    assert h.sender.find_calls == []  # a configuration error posted nothing
    assert a.state == b.state == "done"
    assert (
        h.sample("coffeebuddy_reminders_failed_total", kind="runner", error_class="configuration")
        == 1
    )


async def test_ambiguous_send_is_checked_before_resending(h: Harness) -> None:
    h.sender.script["a"] = [SendResult.ambiguous("timeout")]
    h.sender.script["b"] = [SendResult.ambiguous("timeout")]
    h.sender.found["a"] = SendResult.sent("D0001", "1700000000.000200")
    a = await h.feed(scheduled("a", due_in=0))
    b = await h.feed(scheduled("b", due_in=0))
    await h.run()
    h.clock.advance(10)
    await h.run()
    assert sorted(h.sender.find_calls) == ["a", "b"]
    assert [r for r, _ in h.sender.sent] == ["b"]  # a was already posted: not sent again
    assert a.state == b.state == "done"
    assert h.log.statuses("a")[-1] == "sent"


async def test_claimed_but_unconfirmed_in_log_is_checked(h: Harness) -> None:
    h.log._apply(
        ReminderDeliveryData(
            run_id="run-1",
            reminder_id="rem-1",
            status="claimed",
            due_at=T0,
            recorded_at=T0 - timedelta(minutes=5),
            claimed_at=T0 - timedelta(minutes=5),
        )
    )
    h.sender.found["rem-1"] = SendResult.sent("D0001", "1700000000.000300")
    ctx = await h.feed(scheduled(due_in=0))
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert h.sender.sent == []
    assert ctx.state == "done"


async def test_fresh_claim_of_another_worker_waits_for_its_lease() -> None:
    h = Harness(claim_lease=timedelta(seconds=30))
    h.log._apply(
        ReminderDeliveryData(
            run_id="run-1",
            reminder_id="rem-1",
            status="claimed",
            due_at=T0,
            recorded_at=T0,
            claimed_at=T0,
        )
    )
    ctx = await h.feed(scheduled(due_in=0))
    await h.run()
    assert h.sender.sent == []
    assert h.sender.find_calls == []
    h.log._apply(
        ReminderDeliveryData(
            run_id="run-1", reminder_id="rem-1", status="sent", due_at=T0, recorded_at=T0
        )
    )
    h.clock.advance(30)
    await h.run()
    assert h.sender.sent == []
    assert ctx.state == "done"


async def test_max_pending_refuses_more_with_a_retryable_error() -> None:
    from coffeebuddy.infra.kafka.consumer import RetryableError

    h = Harness(max_pending=2)
    await h.feed(scheduled("a"))
    await h.feed(scheduled("b"))
    with pytest.raises(RetryableError, match="max_pending=2"):
        await h.feed(scheduled("c"))


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"max_pending must be >= 1.*retry_initial"):
        ReminderWorker(
            FakeSender(),
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            max_pending=0,
            retry_initial=10,
            retry_max=1,
        )


def test_send_result_constructors() -> None:
    assert SendResult.sent("D1", "1.2").ok
    assert SendResult.rate_limited(3.0).retry_after == 3.0
    assert SendResult.permanent("invalid_blocks", dead_letter=True).dead_letter
    assert SendResult.configuration("invalid_auth").outcome is SendOutcome.CONFIGURATION


class GatedSender(FakeSender):
    """Holds every send until `gate` opens, so events can arrive mid-send."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.results: list[SendResult] = []

    async def send(self, reminder: ReminderScheduledData, *, claim_time: datetime) -> SendResult:
        await self.gate.wait()
        if self.results:
            return self.results.pop(0)
        return await super().send(reminder, claim_time=claim_time)


@pytest.mark.parametrize("first_send_ok", [True, False], ids=["sent", "failed"])
async def test_reschedule_during_a_send(first_send_ok: bool) -> None:
    h = Harness()
    gated = GatedSender()
    gated.clock = h.clock
    if not first_send_ok:
        gated.results = [SendResult.transient("internal_error")]
    h.worker._sender = gated
    first = await h.feed(scheduled(due_in=0, time=T0))
    await h.worker._run_once()  # the send starts and waits at the gate
    second = await h.feed(scheduled(due_in=30, time=T0 + timedelta(seconds=1)))
    assert first.state == second.state == "pending"
    gated.gate.set()
    await asyncio.gather(*list(h.worker._in_flight))
    if first_send_ok:
        assert [r for r, _ in gated.sent] == ["rem-1"]
        assert first.state == "done"
        assert second.state == "done"  # the reminder id was delivered: a duplicate now
    else:
        assert first.state == "done"  # superseded by the re-schedule
        assert second.state == "pending"
        h.clock.advance(30)
        await h.run()
        assert gated.sent == [("rem-1", T0 + timedelta(seconds=30))]
        assert second.state == "done"
    assert h.worker.pending_count == 0


async def test_revoked_partition_reminders_are_left_to_the_next_owner(h: Harness) -> None:
    ctx0 = Context(partition=0)
    ctx1 = Context(partition=1)
    await h.worker.process_event(scheduled("on-p0", run_id="run-0"), ctx0)  # type: ignore[arg-type]
    await h.worker.process_event(scheduled("on-p1", run_id="run-1"), ctx1)  # type: ignore[arg-type]
    await h.worker.on_revoke([TopicPartition("coffeebuddy.reminder.events", 0)])
    assert h.worker.pending_count == 1
    h.clock.advance(60)
    await h.run()
    assert [r for r, _ in h.sender.sent] == ["on-p1"]
    assert ctx0.state == "pending"  # never completed here: redelivered to the next owner
    await h.worker.on_assign([TopicPartition("coffeebuddy.reminder.events", 0)])
    again = Context(partition=0)
    await h.worker.process_event(scheduled("on-p0", run_id="run-0", now=h.clock()), again)  # type: ignore[arg-type]
    h.clock.advance(60)
    await h.run()
    assert sorted(r for r, _ in h.sender.sent) == ["on-p0", "on-p1"]
