"""Preparing reminders ahead of their due time (`PreparingSender`): the scheduler's two stages."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.reminder_worker import PreparingSender

if TYPE_CHECKING:
    from conftest import Kit


async def test_prepared_once_inside_the_window_then_sent_at_its_time_not_before(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(sender=kit.PreparingSender, prepare_ahead=timedelta(seconds=30)).start()
    sender = h.sender
    assert isinstance(sender, PreparingSender)
    await h.feed(kit.scheduled("soon", due_in=60))
    await h.feed(kit.scheduled("later", due_in=3600))
    h.clock.advance(29)
    await h.run()
    await h.settle()
    assert sender.prepared == []  # 31 s before due: outside the window
    h.clock.advance(1)
    await h.run()
    await h.settle()
    assert sender.prepared == [("soon", kit.T0 + timedelta(seconds=30))]
    assert sender.sent == []
    h.clock.advance(29.9)
    await h.run()
    assert sender.sent == []  # prepared, but not due yet
    h.clock.advance(0.1)
    await h.run()
    assert sender.sent == [("soon", kit.T0 + timedelta(seconds=60))]
    assert [rid for rid, _ in sender.prepared] == ["soon"]  # never prepared twice
    assert h.changelog.statuses("soon") == ["scheduled", "claimed", "sent"]
    assert h.worker.pending_count == 1  # "later" waits in the far heap


async def test_a_failing_prepare_leaves_the_work_to_the_send(kit: type[Kit]) -> None:
    h = await kit.Harness(sender=kit.PreparingSender, prepare_ahead=timedelta(seconds=30)).start()
    h.sender.prepare_error = ConnectionError("slack unreachable")  # type: ignore[attr-defined]
    await h.feed(kit.scheduled(due_in=10))
    await h.run()
    await h.settle()
    assert [rid for rid, _ in h.sender.prepared] == ["rem-1"]  # type: ignore[attr-defined]
    h.clock.advance(10)
    await h.run()
    assert [rid for rid, _ in h.sender.sent] == ["rem-1"]


async def test_a_reminder_rescheduled_later_inside_the_window_fires_at_its_new_time(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(sender=kit.PreparingSender, prepare_ahead=timedelta(seconds=30)).start()
    await h.feed(kit.scheduled(due_in=20, event_id="ev-a"))
    await h.run()  # moved to the soon stage and prepared
    await h.feed(kit.scheduled(due_in=50, event_id="ev-b", time=kit.T0 + timedelta(seconds=1)))
    h.clock.advance(20)
    await h.run()
    assert h.sender.sent == []  # the stale soon item of the old due time is dead
    h.clock.advance(30)
    await h.run()
    assert h.sender.sent == [("rem-1", kit.T0 + timedelta(seconds=50))]


async def test_no_preparation_without_a_preparing_sender_or_with_a_zero_window(
    kit: type[Kit],
) -> None:
    plain = await kit.Harness(prepare_ahead=timedelta(seconds=30)).start()
    assert not isinstance(plain.sender, PreparingSender)
    await plain.feed(kit.scheduled(due_in=5))
    plain.clock.advance(5)
    await plain.run()
    assert [rid for rid, _ in plain.sender.sent] == ["rem-1"]
    off = await kit.Harness(sender=kit.PreparingSender, prepare_ahead=timedelta(0)).start()
    await off.feed(kit.scheduled(due_in=5))
    off.clock.advance(5)
    await off.run()
    await off.settle()
    assert off.sender.prepared == []  # type: ignore[attr-defined]
    assert [rid for rid, _ in off.sender.sent] == ["rem-1"]


async def test_revoke_drops_prepared_entries_of_the_partition(kit: type[Kit]) -> None:
    h = await kit.Harness(sender=kit.PreparingSender, prepare_ahead=timedelta(seconds=30)).start()
    await h.feed(kit.scheduled(due_in=10))
    await h.run()
    await h.worker.on_revoke([kit.TopicPartition(kit.EVENTS, 0)])
    h.clock.advance(10)
    await h.run()
    assert h.sender.sent == []
    assert len(h.worker.scheduler.soon) == 0


def test_a_negative_window_is_refused_by_name(kit: type[Kit]) -> None:
    with pytest.raises(
        ValueError, match=r"REMINDER_PREPARE_AHEAD_S: must be at least 0 \(got -1.0\)"
    ):
        kit.Harness(prepare_ahead=timedelta(seconds=-1))
