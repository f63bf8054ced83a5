"""What happens to events that arrive while a post is in flight (cancellation, a newer schedule,
a run event, a revoke) once the attempt ends, and the configuration probe."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.models import RunCancelled, RunCancelledData
from coffeebuddy.infra.kafka.reminder_worker import SendResult
from coffeebuddy.infra.kafka.testing import wait_until

if TYPE_CHECKING:
    from conftest import Context, Harness, Kit


def _sent(h: Harness) -> list[str]:
    return [rid for rid, _ in h.sender.sent]


async def _in_flight(kit: type[Kit], h: Harness, result: SendResult | None = None) -> None:
    """rem-1 due now, its post started and held."""
    if result is not None:
        h.sender.script["rem-1"] = [result]
    h.sender.gate = asyncio.Event()
    await h.feed(kit.scheduled(due_in=0))
    await h.fire()
    assert h.sender.entered == ["rem-1"]


async def _end_attempt(h: Harness) -> None:
    assert h.sender.gate is not None
    h.sender.gate.set()
    await h.settle()
    await asyncio.sleep(0)  # acknowledged writes complete their records


async def test_a_cancellation_during_a_successful_post_completes_and_the_post_stands(
    kit: type[Kit], h: Harness
) -> None:
    await _in_flight(kit, h)
    cancel = await h.feed(kit.cancelled())
    assert cancel.state == "pending"  # decided when the attempt ends
    await _end_attempt(h)
    assert cancel.state == "done"
    assert _sent(h) == ["rem-1"]
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "sent"]


@pytest.mark.parametrize("with_newer_schedule", [False, True])
async def test_a_cancellation_during_a_failed_post_drops_the_reminder(
    kit: type[Kit], h: Harness, with_newer_schedule: bool
) -> None:
    await _in_flight(kit, h, SendResult.rate_limited(5.0))
    cancel = await h.feed(kit.cancelled())
    if with_newer_schedule:
        newer = await h.feed(kit.scheduled(due_in=60, time=kit.T0 + timedelta(seconds=1)))
    await _end_attempt(h)
    assert cancel.state == "done"
    if with_newer_schedule:  # the newer schedule of a cancelled reminder completes too
        assert newer.state == "done"
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "cancelled"]
    h.clock.advance(120)
    await h.run()
    assert h.sender.sent == []
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="cancelled") == 1


async def test_a_newer_schedule_during_a_successful_post_is_a_duplicate(
    kit: type[Kit], h: Harness
) -> None:
    await _in_flight(kit, h)
    newer = await h.feed(kit.scheduled(due_in=60, time=kit.T0 + timedelta(seconds=1)))
    assert newer.state == "pending"
    await _end_attempt(h)
    assert newer.state == "done"
    h.clock.advance(120)
    await h.run()
    assert _sent(h) == ["rem-1"]
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="duplicate") == 1


async def test_a_newer_schedule_during_an_ambiguous_post_keeps_the_claim_and_checks_history(
    kit: type[Kit], h: Harness
) -> None:
    """The old post may have landed: the replacement inherits the claim, so it looks in the
    DM history before posting at its own due time."""
    await _in_flight(kit, h, SendResult.ambiguous("timeout"))
    first = await h.feed(kit.scheduled(due_in=30, time=kit.T0 + timedelta(seconds=1)))
    second = await h.feed(kit.scheduled(due_in=60, time=kit.T0 + timedelta(seconds=2)))
    assert first.state == "done"  # replaced by the second before the attempt ended
    await _end_attempt(h)
    assert second.state == "done"
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "claimed"]
    h.clock.advance(59)
    await h.run()
    assert h.sender.find_calls == []
    h.clock.advance(1)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert _sent(h) == ["rem-1"]
    assert h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="superseded") == 2


async def test_a_run_cancelled_during_a_failed_post_drops_it_at_the_next_fire(
    kit: type[Kit], h: Harness
) -> None:
    await _in_flight(kit, h, SendResult.rate_limited(5.0))
    run = await h.feed(RunCancelled.create(data=RunCancelledData(run_id="run-1")), kit.RUNS)
    assert run.completed
    await _end_attempt(h)
    h.clock.advance(5)
    await h.run()
    assert h.sender.sent == []
    assert h.changelog.statuses("rem-1")[-1] == "dropped"
    assert (
        h.sample("coffeebuddy_reminders_dropped_total", kind="runner", reason="run_cancelled") == 1
    )


async def test_a_revoke_during_a_failed_post_leaves_the_reminder_to_the_next_owner(
    kit: type[Kit], h: Harness
) -> None:
    await _in_flight(kit, h, SendResult.transient("internal_error"))
    await h.worker.on_revoke([kit.TopicPartition(kit.EVENTS, 0)])
    await _end_attempt(h)
    assert h.worker.pending_count == 0
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed"]  # for the next owner
    await h.worker.on_assign([kit.TopicPartition(kit.EVENTS, 0)])
    h.sender.gate = None
    h.clock.advance(16.9)  # our claim of the old epoch is foreign now: its deadline + skew
    await h.run()
    assert h.sender.find_calls == []
    h.clock.advance(0.2)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert _sent(h) == ["rem-1"]


async def test_the_probe_survives_errors_and_names_the_latest_configuration_problem(
    kit: type[Kit], h: Harness
) -> None:
    h.sender.script["rem-1"] = [SendResult.configuration("token_revoked")]
    h.sender.auth = RuntimeError("auth.test unreachable")
    await h.feed(kit.scheduled(due_in=0))
    await h.run()
    assert not h.worker.ready
    await wait_until(lambda: h.sender.auth_calls >= 2, timeout=5, message="probing")
    assert "token_revoked" in h.worker.health().detail  # an error of the probe is not the cause
    h.sender.auth = SendResult.configuration("missing_scope: chat:write")
    await wait_until(
        lambda: "missing_scope: chat:write" in h.worker.health().detail,
        timeout=5,
        message="the probe's own finding reported",
    )
    assert h.worker.pending_count == 1
    await h.run()
    assert h.sender.sent == []  # nothing is tried while the configuration is broken
    h.sender.auth = SendResult.sent()
    await wait_until(lambda: h.worker.ready, timeout=5, message="ready again")
    assert h.worker.health().slack_auth_ok  # the service's gauge reads this
    await h.run()
    assert _sent(h) == ["rem-1"]


async def test_a_record_whose_state_write_is_given_up_is_never_completed(
    kit: type[Kit], h: Harness
) -> None:
    h.changelog.hold = True
    ctx: Context = await h.feed(kit.scheduled(due_in=60))
    for fut in h.changelog.held:  # a stopping changelog cancels what it could not write
        fut.cancel()
    await asyncio.sleep(0)
    assert ctx.state == "pending"  # not committed: redelivered after a restart


async def test_a_rejected_post_is_dead_lettered_even_if_the_partition_was_revoked_meanwhile(
    kit: type[Kit], h: Harness
) -> None:
    """Nothing was posted and the input record was committed long ago: the dead letter is the
    reminder's only copy, so it is written whoever owns the partition now."""
    await _in_flight(kit, h, SendResult.permanent("invalid_blocks", dead_letter=True))
    await h.worker.on_revoke([kit.TopicPartition(kit.EVENTS, 0)])
    await _end_attempt(h)
    assert len(h.producer.dead_letters) == 1
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "dead_lettered"]


async def test_a_revoke_during_the_restore_leaves_the_partition_unowned_and_the_record_open(
    kit: type[Kit], h: Harness
) -> None:
    h.changelog.restore_gate = asyncio.Event()
    waiting = asyncio.create_task(h.feed(kit.scheduled("r", due_in=0), partition=2))
    await wait_until(lambda: 2 in h.worker.state.partitions, timeout=5, message="restoring")
    await h.worker.on_revoke([kit.TopicPartition(kit.EVENTS, 2)])
    h.changelog.restore_gate.set()
    [outcome] = await asyncio.gather(waiting, return_exceptions=True)
    # the handler ends with the cancelled restore's CancelledError: the record is not completed
    assert isinstance(outcome, asyncio.CancelledError)
    assert h.worker.state.get(2) is None
    assert h.changelog.statuses("r", partition=2) == []
    await h.run()
    assert h.sender.entered == []
