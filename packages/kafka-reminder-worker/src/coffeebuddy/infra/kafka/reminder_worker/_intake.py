"""Intake: each input event becomes a decision, a state change, and the completion the harness
waits for (the record completes when its state change is acknowledged, never held until due).

At `max_pending` a schedule due later than `prepare_ahead_s` waits (deferred, in arrival order)
without holding its partition; waiting ones are admitted as room frees or as they come close to
their due time. Past `max_waiting` waiting, intake waits too (back-pressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.models import (
    TRACEPARENT_HEADER,
    ReminderCancelled,
    ReminderScheduled,
    ReminderStatus,
    RunCancelled,
    RunClosed,
)
from coffeebuddy.infra.kafka.reminder_worker._decisions import (
    Lifetime,
    ScheduleStep,
    decide_schedule,
)
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer import RecordContext
    from coffeebuddy.infra.kafka.metrics import ReminderMetrics
    from coffeebuddy.infra.kafka.models import Event
    from coffeebuddy.infra.kafka.reminder_worker._clock import Clock
    from coffeebuddy.infra.kafka.reminder_worker._partition import PartitionState
    from coffeebuddy.infra.kafka.reminder_worker._scheduler import Scheduler
    from coffeebuddy.infra.kafka.reminder_worker._settings import ReminderSettings
    from coffeebuddy.infra.kafka.reminder_worker._state import ReminderState

__all__ = ["Intake", "complete_when_written"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")

S = ReminderStatus


@dataclass(slots=True)
class _Waiting:
    event: ReminderScheduled
    partition: int
    offset: int
    traceparent: bytes | None
    completion: Any

    def take(self) -> Any:  # the record's completion, deferred when it started to wait
        return self.completion


class Intake:
    """The harness handler's work; `restored(partition)` waits for a partition's restore."""

    def __init__(
        self,
        state: ReminderState,
        scheduler: Scheduler,
        settings: ReminderSettings,
        *,
        restored: Callable[[int], Awaitable[PartitionState | None]],
        clock: Clock,
        metrics: ReminderMetrics | None = None,
        tracing: bool = False,
    ) -> None:
        self._state = state
        self._scheduler = scheduler
        self._settings = settings
        self._restored = restored
        self._clock = clock
        self._metrics = metrics
        self._tracing = tracing
        self._waiting: deque[_Waiting] = deque()
        self.at_capacity = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def handle(self, event: Event, context: RecordContext) -> None:
        """Write the state change; the record completes once it is acknowledged."""
        partition = context.partition
        if isinstance(event, RunCancelled | RunClosed):
            if partition in self._state.partitions:  # ours: its mark merges with what is known
                await self._restored(partition)
            fut = self._state.mark_run(
                partition,
                event.data.run_id,
                cancelled=isinstance(event, RunCancelled),
                keep_until=event.time.timestamp() + self._settings.run_memory_s,
                cause=event.id,
            )
            complete_when_written(fut, context.defer())
            return
        if not isinstance(event, ReminderScheduled | ReminderCancelled):
            return  # not ours: the record completes
        state = await self._restored(partition)
        if state is None:
            context.defer()  # revoked meanwhile: never completed, redelivered to the next owner
            return
        if isinstance(event, ReminderCancelled):
            self._cancel(event, context, state)
            return
        traceparent = None
        if self._tracing:
            traceparent = next(
                (bytes(v) for n, v in context.headers if n == TRACEPARENT_HEADER and v), None
            )
        if self._must_wait(event, state):
            if len(self._waiting) >= self._settings.max_waiting:
                await self._room_for_one()
            else:
                item = _Waiting(event, partition, context.offset, traceparent, context.defer())
                self._waiting.append(item)
                return
        self._schedule(event, state, context.offset, traceparent, context.defer)

    def _must_wait(self, event: ReminderScheduled, state: PartitionState) -> bool:
        if self._state.pending_count() < self._settings.max_pending:
            return False
        if event.data.reminder_id in state.pending:
            return False  # replaces a pending one: no more room needed
        soon = self._clock.now() + self._settings.prepare_ahead_s
        if event.data.due_at.timestamp() <= soon:
            return False  # due soon: sent on time whatever the count
        self._capacity(True)
        return True

    def _schedule(
        self,
        event: ReminderScheduled,
        state: PartitionState,
        offset: int,
        traceparent: bytes | None,
        defer: Callable[[], Any],
    ) -> bool:
        """Decide and apply a schedule; `defer()` gives the record's completion. False when
        nothing changes (`defer` is not called: a live record then completes inline)."""
        data, settings = event.data, self._settings
        rid, kind, due = data.reminder_id, str(data.kind), data.due_at.timestamp()
        expires_at = data.expires_at.timestamp() if data.expires_at is not None else None
        life = Lifetime.of(due, expires_at, settings.late_grace_s, settings.state_margin_s)
        event_time = event.time.timestamp()
        existing = state.pending.get(rid)
        step = decide_schedule(
            settled=state.settled(rid),
            run=state.runs.get(data.run_id),
            kind=kind,
            existing=existing,
            event_id=event.id,
            event_time=event_time,
            now=self._clock.now(),
            expires=life.expires,
        )
        extra = {"run_id": data.run_id, "reminder_id": rid, "event_id": event.id}
        if step in (ScheduleStep.DUPLICATE, ScheduleStep.SUPERSEDED):
            self._state.count_drop(kind, step.value)
            log.info("reminder event %s; nothing to change", step.value, extra=extra)
            return False
        entry = Pending(
            rid,
            data.run_id,
            kind,
            due,
            life.expires,
            life.keep_until,
            data.model_dump_json(exclude_none=True).encode(),
            event.id,
            event_time,
            state.number,
        )
        entry.origin_offset = offset
        entry.source = sys.intern(event.source)  # the parser shares only short strings
        entry.traceparent = traceparent
        if step is ScheduleStep.AFTER_ATTEMPT and existing is not None:
            old = existing.successor
            existing.successor = (entry, defer())
            if old is not None:
                self._state.count_drop(kind, "superseded")
                old[1].done()
            return True
        if step is not ScheduleStep.SCHEDULE:  # cancelled, run cancelled / closed, expired
            self._state.count_drop(kind, step.value)
            log.info("reminder dropped: %s", step.value, extra={**extra, "outcome": step.value})
            complete_when_written(
                self._state.settle(entry, S.DROPPED, reason=step.value, first=True), defer()
            )
            return True
        if existing is not None:
            self._state.count_drop(kind, "superseded")
            entry.take_claim(existing)
        tp = traceparent.decode(errors="replace") if traceparent else None
        complete_when_written(self._state.schedule(entry, traceparent=tp), defer())
        self._scheduler.schedule(entry, max(due, self._clock.now()))
        if self._metrics is not None:
            self._metrics.reminders_scheduled.labels(kind).inc()
        if log.isEnabledFor(logging.DEBUG):  # one line per reminder: DEBUG, and only if wanted
            log.debug("reminder scheduled", extra={**extra, "due_at": data.due_at.isoformat()})
        return True

    def _cancel(
        self, event: ReminderCancelled, context: RecordContext, state: PartitionState
    ) -> None:
        rid = event.data.reminder_id
        if state.settled(rid):
            return
        entry = state.pending.get(rid)
        if entry is not None and entry.in_flight:
            entry.cancel_after = context.defer()  # decided when the running attempt ends
            return
        if entry is None:
            memory = self._settings.run_memory_s + self._settings.state_margin_s
            keep_until = event.time.timestamp() + memory
            fut = self._state.cancel_unseen(
                state.number, rid, event.data.run_id, keep_until, event.id
            )
        else:
            self._state.count_drop(entry.kind, "cancelled")
            fut = self._state.settle(entry, S.CANCELLED, reason="cancelled", cause=event.id)
        complete_when_written(fut, context.defer())
        log.info("reminder cancelled", extra={"reminder_id": rid, "event_id": event.id})

    async def admit(self) -> None:
        """Admit waiting schedules as room frees or as they come close to due (supervised)."""
        while True:
            await self._room()
            self._state.room.clear()
            self.admit_now()

    def admit_now(self) -> None:
        if not self._waiting:
            self._capacity(False)
            return
        soon = self._clock.now() + self._settings.prepare_ahead_s
        keep: deque[_Waiting] = deque()
        for item in self._waiting:
            room = self._state.pending_count() < self._settings.max_pending
            if room or item.event.data.due_at.timestamp() <= soon:
                state = self._state.restored(item.partition)  # None: revoked, redelivered
                if state is not None and not self._schedule(
                    item.event, state, item.offset, item.traceparent, item.take
                ):
                    item.completion.done()
            else:
                keep.append(item)
        self._waiting = keep
        self._capacity(bool(keep))

    async def _room_for_one(self) -> None:
        """More waiting than allowed: this partition waits until one is admitted."""
        while len(self._waiting) >= self._settings.max_waiting:
            self._state.room.clear()
            await self._room()
            self.admit_now()

    async def _room(self) -> None:
        """Until room frees, for a second at most."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._state.room.wait()

    def revoked(self, partitions: set[int]) -> None:
        """Forget waiting schedules of revoked partitions (their records are redelivered)."""
        self._waiting = deque(w for w in self._waiting if w.partition not in partitions)

    def _capacity(self, full: bool) -> None:
        if full == self.at_capacity:
            return
        self.at_capacity = full
        if self._metrics is not None:
            self._metrics.at_capacity.set(1 if full else 0)
        if full:
            log.warning(
                "at max_pending=%d: far-future schedules wait (deferred, nothing dropped); "
                "cancellations and reminders due soon go on",
                self._settings.max_pending,
            )
        else:
            log.info("below max_pending again: no schedule waits")


def complete_when_written(fut: asyncio.Future[int], completion: Any) -> None:
    """Complete a harness record (`completion.done()`) once its state write is acknowledged."""

    def done(f: asyncio.Future[int]) -> None:
        if not f.cancelled() and f.exception() is None:
            completion.done()

    fut.add_done_callback(done)
