"""One delivery attempt's risky branches (claim, fence, read-back, history check, sender errors):
each test asserts what was posted, what the changelog holds and what comes next."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.reminder_worker import SendResult

if TYPE_CHECKING:
    from conftest import Harness, Kit


def _sent(h: Harness) -> list[str]:
    return [rid for rid, _ in h.sender.sent]


async def test_a_sender_that_raises_counts_as_ambiguous_history_is_checked_before_resending(
    kit: type[Kit], h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.sender.script["rem-1"] = [RuntimeError("connection reset mid-request")]
    await h.feed(kit.scheduled(due_in=0))
    with caplog.at_level(logging.WARNING, "coffeebuddy.infra.kafka.reminder_worker"):
        await h.run()
    assert _sent(h) == []
    assert any(
        r.getMessage() == "sender raised RuntimeError; treated as ambiguous" for r in caplog.records
    )
    assert (
        h.sample("coffeebuddy_reminders_failed_total", kind="runner", error_class="ambiguous") == 1
    )
    assert h.entry("rem-1").needs_check
    h.clock.advance(1.0)  # first backoff: at most retry_initial
    await h.run()
    assert h.sender.find_calls == ["rem-1"]  # not found in the history: only then re-sent
    assert _sent(h) == ["rem-1"]
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "claimed", "sent"]


@pytest.mark.parametrize(
    "failure", [RuntimeError("history API down"), SendResult.transient("internal_error")]
)
async def test_a_failing_history_check_is_retried_and_never_followed_by_a_blind_post(
    kit: type[Kit], failure: Exception | SendResult
) -> None:
    log = kit.MemoryChangelog()
    log.parts[0].append(("rem-1", kit.claim_record("old-owner", 1, kit.T0.timestamp())))
    h = await kit.Harness(log).start()
    h.sender.found["rem-1"] = failure
    h.clock.advance(17.1)  # past the old claim's deadline + skew
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert _sent(h) == []
    assert h.changelog.statuses("rem-1") == ["claimed"]  # nothing claimed by us yet
    h.sender.found["rem-1"] = None
    h.clock.advance(1.0)
    await h.run()
    assert h.sender.find_calls == ["rem-1", "rem-1"]
    assert _sent(h) == ["rem-1"]
    assert h.changelog.statuses("rem-1")[-1] == "sent"


async def test_history_checked_but_partition_lost_meanwhile_nothing_is_claimed_or_posted(
    kit: type[Kit],
) -> None:
    log = kit.MemoryChangelog()
    log.parts[0].append(("rem-1", kit.claim_record("old-owner", 1, kit.T0.timestamp())))
    h = await kit.Harness(log).start()
    entry = h.entry("rem-1")
    h.sender.before_find = lambda _rid: h.worker.state.close(0)  # revoked during the check
    h.clock.advance(17.1)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert _sent(h) == []
    assert h.changelog.statuses("rem-1") == ["claimed"]  # the next owner decides
    assert not entry.in_flight


async def test_an_attempt_whose_partition_is_revoked_before_it_starts_writes_nothing(
    kit: type[Kit], h: Harness
) -> None:
    await h.feed(kit.scheduled(due_in=0))
    await h.worker.scheduler._fire(h.entry("rem-1"))  # the attempt task is created, not yet run
    await h.worker.on_revoke([kit.TopicPartition(kit.EVENTS, 0)])
    await h.settle()
    assert h.sender.entered == []
    assert h.changelog.statuses("rem-1") == ["scheduled"]


@pytest.mark.parametrize("why", ["read_back_timed_out", "read_back_too_slow"])
async def test_a_claim_that_cannot_start_its_post_in_time_is_claimed_again(
    kit: type[Kit], h: Harness, why: str
) -> None:
    await h.feed(kit.scheduled(due_in=0))
    if why == "read_back_timed_out":
        h.changelog.read_past_results = [False]
    else:  # the read-back took longer than the start window: a post now could outlive it

        def slow(_p: int, _o: int) -> None:
            h.changelog.on_read_past = None
            h.clock.advance(5.1)

        h.changelog.on_read_past = slow
    await h.run()
    assert _sent(h) == ["rem-1"]
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "claimed", "sent"]
    assert h.sender.find_calls == []  # no post was started: nothing to look for


async def test_an_unexpected_error_in_an_attempt_is_logged_and_retried_after_retry_initial(
    kit: type[Kit], h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await h.feed(kit.scheduled(due_in=0))

    def broken(_p: int, _o: int) -> None:
        h.changelog.on_read_past = None
        raise RuntimeError("reader crashed")

    h.changelog.on_read_past = broken
    with caplog.at_level(logging.ERROR, "coffeebuddy.infra.kafka.reminder_worker"):
        await h.run()
    [record] = [
        r for r in caplog.records if r.getMessage() == "reminder attempt failed unexpectedly"
    ]
    assert record.error_class == "RuntimeError"  # type: ignore[attr-defined]
    assert record.reminder_id == "rem-1"  # type: ignore[attr-defined]
    assert _sent(h) == []
    h.clock.advance(0.9)
    await h.run()
    assert _sent(h) == []
    h.clock.advance(0.1)
    await h.run()
    assert _sent(h) == ["rem-1"]  # our own claim of this epoch: no history check needed


async def test_a_cancelled_attempt_leaves_the_reminder_pending_and_not_in_flight(
    kit: type[Kit], h: Harness
) -> None:
    h.sender.gate = asyncio.Event()
    await h.feed(kit.scheduled(due_in=0))
    await h.fire()
    [task] = h.worker.scheduler.in_flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    entry = h.entry("rem-1")
    assert not entry.in_flight
    assert h.sender.sent == []
    assert h.worker.pending_count == 1


async def test_a_transient_retry_after_is_honoured_over_a_shorter_backoff(
    kit: type[Kit], h: Harness
) -> None:
    h.sender.script["rem-1"] = [SendResult.transient("service_unavailable", retry_after=30.0)]
    await h.feed(kit.scheduled(due_in=0, expires_in=3600))
    await h.run()
    h.clock.advance(29.9)
    await h.run()
    assert _sent(h) == []
    h.clock.advance(0.1)
    await h.run()
    assert h.sender.find_calls == []  # a transient error posted nothing
    assert _sent(h) == ["rem-1"]


async def test_a_rate_limit_holds_every_reminder_of_that_recipient(
    kit: type[Kit], h: Harness
) -> None:
    h.sender.script["first"] = [SendResult.rate_limited(30.0)]
    await h.feed(kit.scheduled("first", user="U1", due_in=0))
    await h.run()
    await h.feed(kit.scheduled("second", run_id="run-2", user="U1", due_in=10))
    h.clock.advance(10)
    await h.run()
    assert _sent(h) == []  # due, but its recipient is rate limited for 20 s more
    h.clock.advance(20)
    await h.run()
    assert sorted(_sent(h)) == ["first", "second"]


async def test_without_metrics_sending_dropping_and_dead_lettering_still_work(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(metrics=None).start()
    h.sender.script["bad"] = [SendResult.permanent("invalid_blocks", dead_letter=True)]
    h.sender.script["gone"] = [SendResult.permanent("user_not_found")]
    for rid in ("ok", "bad", "gone"):
        await h.feed(kit.scheduled(rid, run_id=f"run-{rid}", due_in=0))
        await h.run()
    await h.feed(kit.scheduled("late", run_id="run-late", due_in=-3600))
    assert _sent(h) == ["ok"]
    assert h.changelog.statuses("ok")[-1] == "sent"
    assert h.changelog.statuses("bad")[-1] == "dead_lettered"  # with where it was parked
    assert len(h.producer.dead_letters) == 1
    assert h.changelog.statuses("gone")[-1] == "dropped"
    assert h.changelog.statuses("late") == ["dropped"]
    assert h.worker.health().ready
