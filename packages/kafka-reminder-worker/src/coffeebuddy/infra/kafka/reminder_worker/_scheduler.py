"""The scheduler: times pending reminders, prepares those about to fall due, hands due ones to
delivery (one send slot each), acts on each outcome, and has settled state pruned. Owns the
timer heaps and the per-recipient rate-limit waits.

Two stages: an entry leaves the main heap `prepare_ahead_s` before its time (the sender prepares
it: Slack opens the DM channel) and fires from the small "soon" heap `claim_ahead_s` before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.models import ReminderStatus
from coffeebuddy.infra.kafka.reminder_worker._decisions import FireStep, check_claim, decide_fire
from coffeebuddy.infra.kafka.reminder_worker._delivery import Outcome
from coffeebuddy.infra.kafka.reminder_worker._intake import complete_when_written
from coffeebuddy.infra.kafka.reminder_worker._timers import TimerHeap

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.reminder_worker._clock import Clock
    from coffeebuddy.infra.kafka.reminder_worker._delivery import Delivery
    from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
    from coffeebuddy.infra.kafka.reminder_worker._partition import PartitionState
    from coffeebuddy.infra.kafka.reminder_worker._probe import AuthProbe
    from coffeebuddy.infra.kafka.reminder_worker._settings import ReminderSettings
    from coffeebuddy.infra.kafka.reminder_worker._state import ReminderState
    from coffeebuddy.infra.kafka.reminder_worker._supervisor import Supervisor

__all__ = ["Scheduler"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")

_BATCH = 1000  # due reminders taken from a heap per round
_PREPARE_CONCURRENCY = 8  # preparations running at once; they take no send slot
_PREPARE_BACKLOG = 5000  # preparations waiting at most; past it the send does the work


class Scheduler:
    """Runs under the supervisor as "scheduler"; `run_once()` is one round (tests call it)."""

    def __init__(
        self,
        state: ReminderState,
        delivery: Delivery,
        probe: AuthProbe,
        settings: ReminderSettings,
        *,
        clock: Clock,
        supervisor: Supervisor,
    ) -> None:
        self._state = state
        self._delivery = delivery
        self._probe = probe
        self._settings = settings
        self._clock = clock
        self._supervisor = supervisor
        self.heap = TimerHeap()
        self.soon = TimerHeap()
        self._wake = asyncio.Event()
        self._sends = asyncio.Semaphore(settings.max_concurrent_sends)
        self._prepare_slots = asyncio.Semaphore(_PREPARE_CONCURRENCY)
        self.preparing: set[asyncio.Task[None]] = set()
        self.in_flight: set[asyncio.Task[None]] = set()
        self._recipient_wait: dict[str, float] = {}
        self._last_prune = 0.0

    def _live(self, entry: Pending) -> bool:
        return not entry.in_flight and self._state.owns(entry)

    def schedule(self, entry: Pending, at: float) -> None:
        """Fire `entry` at `at` (earlier pushes of it no longer count)."""
        head = self.heap.next_time(self._live)
        self.heap.push(entry, at)
        if head is None or at < head:
            self._wake.set()

    def add_partition(self, state: PartitionState) -> None:
        """Time every pending reminder of a freshly restored partition."""
        now = self._clock.now()
        for entry in state.pending.values():
            at = max(entry.next_at, entry.due, now) if entry.attempts else max(entry.due, now)
            self.heap.push(entry, at)
        self._wake.set()

    def forget_revoked(self) -> None:
        """Drop heap items of entries no longer owned (after a revoke)."""
        self.heap.compact(self._live)
        self.soon.compact(self._live)

    async def run(self) -> None:
        while True:
            delay = await self.run_once()
            self._supervisor.ok("scheduler")
            await self._sleep(delay)

    async def run_once(self) -> float | None:
        """One round; returns seconds to the next due time (None: nothing waiting)."""
        now = self._clock.now()
        if now - self._last_prune >= 1.0 or now < self._last_prune:
            self._last_prune = now
            self._prune(now)
        if not self._probe.ok:
            return 1.0
        lead = self._settings.claim_ahead_s
        prepare = self._delivery.prepares and self._settings.prepare_ahead_s > 0
        ahead = max(lead, self._settings.prepare_ahead_s if prepare else 0.0)
        moved = self.heap.pop_due(now + ahead, self._live, _BATCH)
        for entry in moved:
            self.soon.push(entry, entry.next_at)
            if prepare:
                self._start_prepare(entry)
        batch = self.soon.pop_due(now + lead, self._live, _BATCH)
        if batch:
            for entry in batch:
                await self._fire(entry)
            return 0.0
        if len(moved) == _BATCH:
            return 0.0
        soon = self.soon.next_time(self._live)
        later = self.heap.next_time(self._live)
        times = [t - d for t, d in ((soon, lead), (later, ahead)) if t is not None]
        return max(0.0, min(times) - now) if times else None

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        # at most 1 s: an injected clock may jump, and pruning runs about once a second
        timeout = 1.0 if seconds is None else min(max(seconds, 0.0), 1.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    def _prune(self, now: float) -> None:
        for user in [u for u, t in self._recipient_wait.items() if t <= now]:
            del self._recipient_wait[user]
        self._state.prune(now)

    async def _fire(self, entry: Pending) -> None:
        state = self._state.restored(entry.partition)
        if state is None or not self._state.owns(entry):
            return
        # decided as of the post's time: a reminder fires up to `claim_ahead_s` before it
        now = max(self._clock.now(), entry.next_at)
        run = state.runs.get(entry.run_id)
        wait = self._recipient_wait.get(entry.recipient, 0.0) if self._recipient_wait else 0.0
        skew = self._settings.clock_skew_s
        claim = check_claim(
            entry, owner=self._state.worker_id, epoch=state.epoch, now=now, skew=skew
        )
        step = decide_fire(entry, run=run, now=now, recipient_wait_until=wait, claim=claim)
        if step is FireStep.DROP_BLOCKED:
            self._drop(entry, (run.blocks(entry.kind) if run is not None else None) or "cancelled")
        elif step is FireStep.EXPIRE:
            log.info("reminder expired before it could be sent", extra=entry.log_extra())
            self._drop(entry, "expired")
        elif step is FireStep.WAIT_RECIPIENT:
            self.heap.push(entry, wait)
        elif step is FireStep.WAIT_FOREIGN_CLAIM:
            until = (entry.claim_deadline or now) + skew
            log.info(
                "reminder claimed by a previous owner; waiting out its deadline",
                extra=entry.log_extra(claim_owner=entry.claim_owner, wait_s=until - now),
            )
            self.heap.push(entry, until)
        else:
            entry.in_flight = True
            await self._sends.acquire()  # the claim is written only once a send slot is ours
            task = asyncio.create_task(self._attempt(entry, step, now))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def _attempt(self, entry: Pending, step: FireStep, at: float) -> None:
        try:
            outcome = await self._delivery.attempt(entry, step, at)
        except asyncio.CancelledError:
            entry.in_flight = False
            raise
        finally:
            self._sends.release()
        self._after(entry, outcome)

    def _after(self, entry: Pending, outcome: Outcome) -> None:
        """Re-time an unsettled reminder, or hand over to a newer schedule or a cancellation
        that arrived while the attempt ran (their records complete with what follows)."""
        entry.in_flight = False
        successor, entry.successor = entry.successor, None
        cancel, entry.cancel_after = entry.cancel_after, None
        if self._state.restored(entry.partition) is None:
            return  # revoked: the partition's next owner restores it (completions are stale)
        if outcome is Outcome.SETTLED or not self._state.owns(entry):
            if successor is not None:
                self._state.count_drop(successor[0].kind, "duplicate")
                successor[1].done()
            if cancel is not None:
                cancel.done()
            return
        if cancel is not None:
            self._drop(entry, "cancelled", cancel)
            if successor is not None:
                successor[1].done()
            return
        if successor is not None:
            new, completion = successor
            self._state.count_drop(entry.kind, "superseded")
            new.take_claim(entry)
            complete_when_written(self._state.schedule(new), completion)
            self.schedule(new, max(new.due, self._clock.now()))
            return
        if outcome is Outcome.CONFIGURATION:
            self._probe.failed(self._delivery.last_error)
        elif outcome is Outcome.RATE_LIMITED:
            until = max(entry.next_at, self._recipient_wait.get(entry.recipient, 0.0))
            self._recipient_wait[entry.recipient] = until
        self.schedule(entry, entry.next_at)

    def _drop(self, entry: Pending, reason: str, completion: Any = None) -> None:
        self._state.count_drop(entry.kind, reason)
        status = ReminderStatus.CANCELLED if reason == "cancelled" else ReminderStatus.DROPPED
        fut = self._state.settle(entry, status, reason=reason)
        if completion is not None:
            complete_when_written(fut, completion)

    def _start_prepare(self, entry: Pending) -> None:
        if len(self.preparing) >= _PREPARE_BACKLOG:
            return
        task = asyncio.create_task(self._prepare_one(entry))
        self.preparing.add(task)
        task.add_done_callback(self.preparing.discard)

    async def _prepare_one(self, entry: Pending) -> None:
        async with self._prepare_slots:
            if self._state.owns(entry):
                await self._delivery.prepare(entry)

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the drain budget
        """Cancel preparations; let attempts in flight finish within `timeout`, then cancel."""
        for task in set(self.preparing):
            task.cancel()
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=timeout)
        for task in set(self.in_flight):
            task.cancel()
