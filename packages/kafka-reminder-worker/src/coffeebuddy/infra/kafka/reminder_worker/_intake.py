"""Intake: each input event becomes a changelog state change; its record completes when the
change is acknowledged (never held until the reminder is due)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.models import TRACEPARENT_HEADER
from coffeebuddy.infra.kafka.reminder_worker._decisions import (
    Lifetime,
    ScheduleStep,
    decide_schedule,
)
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._legacy import LEGACY_OWNER, LegacyState
from coffeebuddy.infra.kafka.reminder_worker._scheduler import SchedulerMixin
from coffeebuddy.infra.kafka.reminder_worker._store import PartitionState

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer import RecordContext
    from coffeebuddy.infra.kafka.models import (
        ReminderCancelled,
        ReminderScheduled,
        RunCancelled,
        RunClosed,
    )

__all__ = ["IntakeMixin"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")


class IntakeMixin(SchedulerMixin):
    _capacity: asyncio.Event
    _at_capacity: bool
    _legacy: dict[str, LegacyState]
    _legacy_lease: float

    def _complete_on(self, fut: asyncio.Future[int], completion: Any) -> None:
        def done(f: asyncio.Future[int]) -> None:
            if not f.cancelled() and f.exception() is None:
                completion.done()

        fut.add_done_callback(done)

    async def _wait_capacity(self) -> None:
        while self._store.pending_count() >= self._cfg.max_pending:
            if not self._at_capacity:
                self._at_capacity = True
                if self._metrics is not None:
                    self._metrics.at_capacity.set(1)
                log.warning(
                    "at max_pending=%d: intake paused until reminders settle (nothing dropped)",
                    self._cfg.max_pending,
                    extra={"worker_id": self.worker_id, "pending": self._store.pending_count()},
                )
            self._capacity.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._capacity.wait()
        if self._at_capacity:
            self._at_capacity = False
            if self._metrics is not None:
                self._metrics.at_capacity.set(0)
            log.info("below max_pending again: intake resumed", extra={"worker_id": self.worker_id})

    def _pending_changed(self) -> None:
        super()._pending_changed()
        if self._at_capacity and self._store.pending_count() < self._cfg.max_pending:
            self._capacity.set()

    async def _on_scheduled(
        self, event: ReminderScheduled, context: RecordContext, state: PartitionState
    ) -> None:
        data = event.data
        rid = data.reminder_id
        kind = str(data.kind)
        due = data.due_at.timestamp()
        life = Lifetime.of(
            due,
            data.expires_at.timestamp() if data.expires_at is not None else None,
            self._cfg.late_grace,
            self._cfg.state_margin,
        )
        event_time = event.time.timestamp()
        extra = {"run_id": data.run_id, "reminder_id": rid, "event_id": event.id}
        extra["worker_id"] = self.worker_id
        existing = state.pending.get(rid)
        step = decide_schedule(
            settled=state.settled(rid),
            run=state.runs.get(data.run_id),
            kind=kind,
            existing=existing,
            event_id=event.id,
            event_time=event_time,
            now=self._now(),
            expires=life.expires,
        )
        if step in (ScheduleStep.DUPLICATE, ScheduleStep.SUPERSEDED):
            self._count_drop(kind, step.value)
            log.info("reminder event %s; nothing to change", step.value, extra=extra)
            return
        if step in (
            ScheduleStep.CANCELLED,
            ScheduleStep.RUN_CANCELLED,
            ScheduleStep.RUN_CLOSED,
            ScheduleStep.EXPIRED,
        ):
            self._count_drop(kind, step.value)
            log.info("reminder dropped: %s", step.value, extra={**extra, "outcome": step.value})
            fut = self._write_final(
                state.number, rid, data.run_id, "dropped", life.keep_until, reason=step.value
            )
            self._complete_on(fut, context.defer())
            return
        legacy = self._legacy.pop(rid, None) if self._legacy and existing is None else None
        if legacy is not None and legacy.status in ("sent", "dropped"):
            # settled by the old delivery-log worker: record it in the new format, send nothing
            self._count_drop(kind, "duplicate")
            log.info("reminder already %s (legacy delivery log)", legacy.status, extra=extra)
            fut = self._write_final(
                state.number, rid, data.run_id, legacy.status, life.keep_until, reason="upgrade"
            )
            self._complete_on(fut, context.defer())
            return
        if existing is None:
            await self._wait_capacity()
            if self._store.get(state.number) is not state:
                return  # revoked while waiting: the record is redelivered to the next owner
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
        entry.origin_offset = context.offset
        if self._tracing:
            entry.traceparent = next(
                (bytes(v) for n, v in context.headers if n == TRACEPARENT_HEADER and v), None
            )
        if legacy is not None and legacy.claimed_at is not None:
            # claimed by the old worker, never confirmed: wait out its lease, check the history
            entry.set_claim(
                LEGACY_OWNER, None, legacy.claimed_at, legacy.claimed_at + self._legacy_lease
            )
        if step is ScheduleStep.AFTER_ATTEMPT and existing is not None:
            old = existing.successor
            existing.successor = (entry, context.defer())
            if old is not None:
                self._count_drop(kind, "superseded")
                old[1].done()
            return
        if existing is not None:
            self._count_drop(kind, "superseded")
        state.pending[rid] = entry
        # a legacy claim is written as `claimed`: the record is committed once this is acked,
        # so after a restart or handover only the changelog still knows a post may have happened
        fut = self._write_entry(entry, claimed=entry.claimed_at is not None, event_id=event.id)
        self._complete_on(fut, context.defer())
        self._schedule(entry, max(due, self._now()))
        if self._metrics is not None:
            self._metrics.reminders_scheduled.labels(kind).inc()
        self._pending_changed()
        if log.isEnabledFor(logging.DEBUG):  # one line per reminder: DEBUG, and only if wanted
            log.debug("reminder scheduled", extra={**extra, "due_at": data.due_at.isoformat()})

    def _on_cancelled(
        self, event: ReminderCancelled, context: RecordContext, state: PartitionState
    ) -> None:
        rid = event.data.reminder_id
        extra = {"run_id": event.data.run_id, "reminder_id": rid, "event_id": event.id}
        if state.settled(rid):
            return
        entry = state.pending.get(rid)
        if entry is not None and entry.in_flight:
            entry.cancel_after = context.defer()  # decided when the running attempt ends
            return
        keep_until = (
            entry.keep_until
            if entry is not None
            else event.time.timestamp() + self._cfg.run_memory + self._cfg.state_margin
        )
        if entry is not None:
            self._count_drop(entry.kind, "cancelled")
        fut = self._write_final(
            state.number, rid, event.data.run_id, "cancelled", keep_until, reason="cancelled"
        )
        self._complete_on(fut, context.defer())
        log.info("reminder cancelled", extra=extra)

    def _on_run(
        self, event: RunCancelled | RunClosed, context: RecordContext, partition: int
    ) -> None:
        run_id = event.data.run_id
        status = "run_cancelled" if event.type.endswith(".cancelled.v1") else "run_closed"
        keep_until = event.time.timestamp() + self._cfg.run_memory
        fut = self._write_run(partition, run_id, status, keep_until)
        self._complete_on(fut, context.defer())
        state = self._store.get(partition)
        if state is None:
            return  # the reminders' owner applies it from the changelog
        mark = self._store.mark_run(state, run_id, status, keep_until)
        if state.restored:
            self._drop_run_victims(state, run_id, mark.blocks)

    def _drop_run_victims(self, state: PartitionState, run_id: str, blocks: Any) -> None:
        victims = [
            e
            for e in state.pending.values()
            if e.run_id == run_id and not e.in_flight and blocks(e.kind) is not None
        ]
        for entry in victims:
            self._drop(entry, blocks(entry.kind))
        if victims:
            log.info(
                "run %s: %d pending reminders dropped",
                run_id,
                len(victims),
                extra={"run_id": run_id, "worker_id": self.worker_id},
            )
