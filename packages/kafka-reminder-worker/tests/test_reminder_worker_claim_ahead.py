"""Claiming ahead (`claim_ahead`): the claim's round trip happens before the due time, the post
never starts before it, and whatever lands in between (a cancellation, a closed run, an old
owner's live claim) still decides."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.models import RunClosed, RunClosedData
from coffeebuddy.infra.kafka.testing import wait_until

if TYPE_CHECKING:
    from conftest import Harness, Kit

AHEAD = timedelta(milliseconds=250)


async def _claimed_ahead(h: Harness, rid: str = "rem-1") -> None:
    """One scheduler round 0.2 s before the due time: the attempt claims and then waits."""
    await h.worker.scheduler.run_once()
    await wait_until(
        lambda: h.changelog.statuses(rid)[-1:] == ["claimed"],
        timeout=5,
        message="the claim written ahead of the due time",
    )
    for _ in range(5):  # the attempt task gets its turns: it must still be waiting
        await asyncio.sleep(0)
    assert h.worker.scheduler.in_flight
    assert h.sender.entered == []


async def test_the_claim_is_written_ahead_and_the_post_starts_at_the_due_time(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(claim_ahead=AHEAD).start()
    await h.feed(kit.scheduled(due_in=10))
    h.clock.advance(9.7)
    assert await h.worker.scheduler.run_once() == pytest.approx(0.05)  # wakes at due - claim_ahead
    assert h.changelog.statuses("rem-1") == ["scheduled"]
    h.clock.advance(0.1)
    await _claimed_ahead(h)
    h.clock.advance(0.2)
    await h.settle()
    assert h.sender.sent == [("rem-1", kit.T0 + timedelta(seconds=10))]
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "sent"]


async def test_a_cancellation_while_claimed_ahead_posts_nothing_and_cancels(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(claim_ahead=AHEAD).start()
    await h.feed(kit.scheduled(due_in=10))
    h.clock.advance(9.8)
    await _claimed_ahead(h)
    ctx = await h.feed(kit.cancelled())
    assert ctx.state == "pending"  # deferred: decided when the attempt ends
    h.clock.advance(0.2)
    await h.settle()
    await wait_until(lambda: ctx.state == "done", timeout=5, message="the cancel completed")
    assert h.sender.entered == []
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "cancelled"]


async def test_a_run_closed_while_claimed_ahead_drops_its_last_call_unposted(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(claim_ahead=AHEAD).start()
    await h.feed(kit.scheduled("last", kind="last_call", due_in=10))
    h.clock.advance(9.8)
    await _claimed_ahead(h, "last")
    await h.feed(RunClosed.create(data=RunClosedData(run_id="run-1", closed_at=kit.T0)), kit.RUNS)
    h.clock.advance(0.2)
    await h.settle()
    await h.run()
    assert h.sender.entered == []
    assert h.changelog.statuses("last")[-1] == "dropped"
    assert (
        h.sample("coffeebuddy_reminders_dropped_total", kind="last_call", reason="run_closed") == 1
    )


async def test_an_old_owners_claim_is_checked_against_history_only_after_its_deadline(
    kit: type[Kit],
) -> None:
    log = kit.MemoryChangelog()
    log.parts[0].append(("rem-1", kit.claim_record("old-owner", 1, kit.T0.timestamp())))
    h = await kit.Harness(log, claim_ahead=AHEAD).start()
    # deadline T0 + 15, skew 2: the history may be read from T0 + 17 on, not 0.25 s before
    h.clock.advance(16.8)
    await h.worker.scheduler.run_once()  # judged live: back to the heap until T0 + 17
    await h.worker.scheduler.run_once()  # fires ahead of T0 + 17; the attempt waits for it
    for _ in range(5):
        await asyncio.sleep(0)
    assert h.worker.scheduler.in_flight
    assert h.sender.find_calls == []
    h.clock.advance(0.2)
    await h.settle()
    assert h.sender.find_calls == ["rem-1"]
    assert [rid for rid, _ in h.sender.sent] == ["rem-1"]
    assert h.sender.sent[0][1] >= kit.T0 + timedelta(seconds=17)


@pytest.mark.parametrize("ahead", [timedelta(seconds=-1), timedelta(seconds=5)])
def test_claim_ahead_outside_zero_to_the_start_window_is_refused(
    kit: type[Kit], ahead: timedelta
) -> None:
    with pytest.raises(
        ValueError,
        match=r"REMINDER_CLAIM_AHEAD_S: must be "
        r"(at least 0 \(got -1.0\)|below REMINDER_CLAIM_START_WINDOW_S \(5.0 s\))",
    ):
        kit.Harness(claim_ahead=ahead)
