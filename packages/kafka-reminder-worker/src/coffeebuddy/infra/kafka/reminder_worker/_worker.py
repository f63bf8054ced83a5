"""ReminderWorker: timer heap + deferred completion + delivery log (claim / check / sent)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from coffeebuddy.infra.kafka.consumer import NonRetryableError, RetryableError
from coffeebuddy.infra.kafka.models import (
    TRACEPARENT_HEADER,
    ReminderCancelled,
    ReminderDeliveryData,
    ReminderScheduled,
    ReminderScheduledData,
    RunCancelled,
    RunClosed,
)
from coffeebuddy.infra.kafka.producer import resolve_tracer
from coffeebuddy.infra.kafka.reminder_worker._delivery_log import (
    CLAIMED,
    DROPPED,
    SENT,
    DeliveryLog,
)
from coffeebuddy.infra.kafka.reminder_worker._sender import (
    ReminderSender,
    SendOutcome,
    SendResult,
)
from coffeebuddy.infra.kafka.reminder_worker._timers import (
    CancellationMemory,
    Pending,
    TimerHeap,
    backoff_delay,
)
from coffeebuddy.infra.kafka.topics import REMINDER_DELIVERIES_TOPIC

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.consumer import RecordContext, TopicPartition
    from coffeebuddy.infra.kafka.metrics import ReminderMetrics
    from coffeebuddy.infra.kafka.models import Event
    from coffeebuddy.infra.kafka.producer import KafkaEventProducer
    from coffeebuddy.infra.kafka.topics import TopicConfig

__all__ = ["ReminderWorker", "WorkerHealth"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")

Clock = Callable[[], datetime]

_BATCH = 1000
"""Due reminders taken from the heap per scheduler round (one log barrier per round)."""

_RELEASE_TIMEOUT = 10.0
"""Seconds a claim release (tombstone write) may take before the record is given up anyway."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """Readiness of the worker: false while Slack credentials are broken or the log is not read."""

    ready: bool
    slack_auth_ok: bool
    delivery_log_caught_up: bool
    pending: int
    detail: str


class ReminderWorker:
    """Sends each scheduled reminder once, when due, unless cancelled or expired.

    Give `process_event` to a `KafkaConsumerHarness` subscribed to the reminder and run topics
    with `on_assign` / `on_revoke` and `max_incomplete_total=worker.max_pending`.
    """

    def __init__(
        self,
        sender: ReminderSender,
        producer: KafkaEventProducer,
        settings: KafkaSettings,
        *,
        deliveries_topic: TopicConfig | None = None,
        metrics: ReminderMetrics | None = None,
        clock: Clock | None = None,
        late_grace: timedelta = timedelta(minutes=15),
        max_pending: int = 100_000,
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
        auth_probe_initial: float = 5.0,
        auth_probe_max: float = 300.0,
        run_memory: timedelta = timedelta(hours=24),
        claim_lease: timedelta = timedelta(seconds=30),
        log_catchup_timeout: float = 30.0,
        max_concurrent_sends: int = 32,
        worker_id: str | None = None,
        source: str = "/coffeebuddy/reminder-worker",
        tracing: bool | None = None,
        tracer_provider: Any = None,
    ) -> None:
        problems = []
        if max_pending < 1:
            problems.append(f"max_pending must be >= 1 (got {max_pending})")
        if late_grace < timedelta(0):
            problems.append(f"late_grace must not be negative (got {late_grace})")
        if run_memory <= timedelta(0):
            problems.append(f"run_memory must be positive (got {run_memory})")
        if not 0 < retry_initial <= retry_max:
            problems.append(
                f"retry_initial ({retry_initial}) must be > 0 and <= retry_max ({retry_max})"
            )
        if not 0 < auth_probe_initial <= auth_probe_max:
            problems.append(
                f"auth_probe_initial ({auth_probe_initial}) must be > 0 and <= "
                f"auth_probe_max ({auth_probe_max})"
            )
        if max_concurrent_sends < 1:
            problems.append(f"max_concurrent_sends must be >= 1 (got {max_concurrent_sends})")
        if problems:
            raise ValueError("ReminderWorker: " + "; ".join(problems))
        self._sender = sender
        # tracing on: sends get CLIENT spans linked to the scheduling record's traceparent
        self._tracer = resolve_tracer(
            tracing, tracer_provider, "coffeebuddy.infra.kafka.reminder_worker"
        )
        if self._tracer is not None:
            from coffeebuddy.infra.kafka.reminder_worker._tracing import TracedSender

            self._sender = TracedSender(sender, self._tracer, self._pending_entry)
        self._producer = producer
        self._metrics = metrics
        self._clock: Clock = clock or _utc_now
        self._late_grace = late_grace.total_seconds()
        self._max_pending = max_pending
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._probe_initial = auth_probe_initial
        self._probe_max = auth_probe_max
        self._claim_lease = claim_lease.total_seconds()
        self._catchup_timeout = log_catchup_timeout
        self.worker_id = worker_id or f"reminder-worker-{uuid.uuid4().hex[:12]}"
        self._source = source
        self._log = DeliveryLog(
            settings,
            deliveries_topic or REMINDER_DELIVERIES_TOPIC,
            producer,
            source=source,
            clock=self._now,
            retention=max(run_memory.total_seconds(), late_grace.total_seconds()),
        )
        self._pending: dict[str, Pending] = {}
        self._heap = TimerHeap()
        self._memory = CancellationMemory(run_memory.total_seconds())
        self._recipient_wait: dict[str, float] = {}
        self._last_prune = 0.0
        self._tps: dict[tuple[str, int], Any] = {}
        self._revoked: set[Any] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._sends = asyncio.Semaphore(max_concurrent_sends)
        self._fire_lock = asyncio.Lock()
        self._scheduler: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._auth_ok = True
        self._auth_error: str | None = None
        self._started = False
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Read the delivery log to its end, then tail it; start the scheduler task."""
        if self._started:
            return
        await self._log.start()
        if not await self._log.wait_caught_up(self._catchup_timeout):
            await self._log.stop()
            raise TimeoutError(f"delivery log not read to its end within {self._catchup_timeout} s")
        self._started = True
        self._scheduler = asyncio.create_task(self._run_scheduler(), name="reminder-scheduler")
        self._set_ready_metric()

    async def stop(self) -> None:
        """Stop the scheduler and the log reader; pending records stay incomplete (redelivered)."""
        self._started = False
        for task in (self._scheduler, self._prober):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._scheduler = self._prober = None
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=10.0)
        for task in set(self._in_flight):
            task.cancel()
        await self._log.stop()
        self._pending.clear()
        self._heap = TimerHeap()
        self._set_ready_metric()
        self._set_pending_metric()

    async def __aenter__(self) -> ReminderWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ status

    @property
    def ready(self) -> bool:
        return self._started and self._auth_ok and self._log.caught_up

    def health(self) -> WorkerHealth:
        if not self._started:
            detail = "not started"
        elif not self._auth_ok:
            detail = f"sender configuration error: {self._auth_error}; backlog kept, probing"
        elif not self._log.caught_up:
            detail = "delivery log not read to its end yet"
        else:
            detail = "ok"
        return WorkerHealth(
            ready=self.ready,
            slack_auth_ok=self._auth_ok,
            delivery_log_caught_up=self._log.caught_up,
            pending=len(self._pending),
            detail=detail,
        )

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def max_pending(self) -> int:
        return self._max_pending

    def _now(self) -> float:
        return self._clock().timestamp()

    # ------------------------------------------------------------------ harness callbacks

    async def process_event(self, event: Event, context: RecordContext) -> None:
        """Harness handler: schedule / cancel / remember; returns quickly (defers the record)."""
        if isinstance(event, ReminderScheduled):
            await self._on_scheduled(event, context)
        elif isinstance(event, ReminderCancelled):
            await self._on_reminder_cancelled(event, context)
        elif isinstance(event, RunCancelled):
            self._on_run_cancelled(event, context)
        elif isinstance(event, RunClosed):
            self._on_run_closed(event, context)
        # any other event type on these topics is not ours: the record completes

    async def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Harness callback: make sure the delivery log is caught up before records arrive."""
        for tp in partitions:
            self._revoked.discard(self._tp(tp[0], tp[1]))
        if self._started:
            await self._log.barrier(self._catchup_timeout)

    async def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """Harness callback: forget pending reminders of revoked partitions (the next owner gets
        them again) after letting their in-flight sends finish, so their records are logged."""
        revoked = {self._tp(tp[0], tp[1]) for tp in partitions}
        self._revoked |= revoked
        # let the running scheduler round finish launching (bounded: sends re-check ownership)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10.0), self._fire_lock:
                pass
        busy = [t for t in self._in_flight if not t.done()]
        if busy:
            await asyncio.wait(busy, timeout=10.0)
        for rid in [r for r, p in self._pending.items() if p.tp in revoked]:
            del self._pending[rid]
        self._heap.compact(self._is_live)
        self._memory.drop_held(lambda c: not getattr(c, "is_stale", False))
        self._set_pending_metric()

    def _tp(self, topic: str, partition: int) -> Any:
        key = (topic, partition)
        tp = self._tps.get(key)
        if tp is None:
            tp = self._tps[key] = key
        return tp

    # ------------------------------------------------------------------ event handling

    async def _ensure_log(self) -> None:
        if not self._log.caught_up and not await self._log.wait_caught_up(self._catchup_timeout):
            raise RetryableError(
                f"delivery log not read to its end within {self._catchup_timeout} s; retrying"
            )

    async def _on_scheduled(self, event: ReminderScheduled, context: RecordContext) -> None:
        await self._ensure_log()
        data = event.data
        rid = data.reminder_id
        kind = str(data.kind)
        now = self._now()
        due = data.due_at.timestamp()
        expires = (
            data.expires_at.timestamp() if data.expires_at is not None else due + self._late_grace
        )
        extra = {"run_id": data.run_id, "reminder_id": rid, "event_id": event.id}
        reason = self._memory.blocked(rid, data.run_id, kind)
        if reason is not None:
            self._drop_new(data, kind, reason, extra, write=True)
            return
        state = self._log.get(rid)
        if state is not None and state.status in (SENT, DROPPED):
            self._count_drop(kind, "duplicate")
            log.info("reminder already %s, record completed", state.status, extra=extra)
            return
        existing = self._pending.get(rid)
        if existing is not None and (
            existing.event_id == event.id or event.time.timestamp() < existing.event_time
        ):
            reason = "duplicate" if existing.event_id == event.id else "superseded"
            self._count_drop(kind, reason)
            log.info("reminder event %s; pending one kept", reason, extra=extra)
            return
        if now >= expires:
            self._drop_new(data, kind, "expired", extra, write=True)
            return
        if existing is None and len(self._pending) >= self._max_pending:
            raise RetryableError(
                f"{len(self._pending)} reminders pending (max_pending={self._max_pending})"
            )
        entry = Pending(
            rid,
            data.run_id,
            kind,
            data.recipient_user_id,
            due,
            expires,
            data.model_dump_json().encode(),
            event.id,
            event.time.timestamp(),
            context.defer(),
            self._tp(context.topic, context.partition),
        )
        if self._tracer is not None:
            entry.traceparent = next(
                (bytes(v) for n, v in context.headers if n == TRACEPARENT_HEADER and v), None
            )
        if existing is not None:
            if existing.in_flight:
                # decided after the running attempt: sent -> this one is a duplicate
                old = existing.successor
                existing.successor = entry
                if old is not None:
                    self._finish(old, "superseded")
                return
            self._finish(existing, "superseded", pending_removed=False)
        self._pending[rid] = entry
        head = self._heap_head()
        self._heap.push(entry, max(due, now))
        if self._metrics is not None:
            self._metrics.reminders_scheduled.labels(kind).inc()
        self._set_pending_metric()
        log.info("reminder scheduled", extra={**extra, "due_at": data.due_at.isoformat()})
        if entry.next_at < head:  # a new earliest reminder: the scheduler sleeps too long
            self._wake.set()

    def _pending_entry(self, reminder_id: str) -> Pending | None:
        return self._pending.get(reminder_id)

    def _heap_head(self) -> float:
        head = self._heap.next_time(self._is_live)
        return float("inf") if head is None else head

    async def _on_reminder_cancelled(
        self, event: ReminderCancelled, context: RecordContext
    ) -> None:
        await self._ensure_log()
        rid = event.data.reminder_id
        now = self._now()
        self._memory.reminder_cancelled(rid, now)
        extra = {"run_id": event.data.run_id, "reminder_id": rid, "event_id": event.id}
        entry = self._pending.get(rid)
        state = self._log.get(rid)
        if entry is not None and not entry.in_flight:
            self._finish(entry, "cancelled")
            await self._durable_drop(entry.reminder_id, entry.run_id, "cancelled", entry.due)
        elif state is None or state.status not in (SENT, DROPPED):
            # durable cancellation: a later (re)delivery of the schedule finds it in the log
            await self._durable_drop(rid, event.data.run_id, "cancelled", now)
        log.info("reminder cancelled", extra=extra)

    def _on_run_cancelled(self, event: RunCancelled, context: RecordContext) -> None:
        run_id = event.data.run_id
        self._memory.run_cancelled(run_id, self._now(), context.defer())
        self._cancel_run(run_id, "run_cancelled", only_kind=None, event_id=event.id)

    def _on_run_closed(self, event: RunClosed, context: RecordContext) -> None:
        run_id = event.data.run_id
        self._memory.run_closed(run_id, self._now(), context.defer())
        self._cancel_run(run_id, "run_closed", only_kind="last_call", event_id=event.id)

    def _cancel_run(
        self, run_id: str, reason: str, *, only_kind: str | None, event_id: str
    ) -> None:
        victims = [
            p
            for p in self._pending.values()
            if p.run_id == run_id and not p.in_flight and (only_kind is None or p.kind == only_kind)
        ]
        for entry in victims:
            self._finish(entry, reason)
            self._write_drop(entry.reminder_id, entry.run_id, reason, entry.due)
        log.info(
            "run %s: %d pending reminders dropped",
            reason,
            len(victims),
            extra={"run_id": run_id, "event_id": event_id},
        )

    # ------------------------------------------------------------------ settling

    def _is_live(self, entry: Pending) -> bool:
        return self._pending.get(entry.reminder_id) is entry and not entry.in_flight

    def _count_drop(self, kind: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.dropped(kind, reason)

    def _finish(
        self,
        entry: Pending,
        reason: str | None,
        *,
        pending_removed: bool = True,
        error: BaseException | None = None,
    ) -> None:
        """Settle one pending reminder: complete (or fail) its record, count why."""
        if pending_removed and self._pending.get(entry.reminder_id) is entry:
            del self._pending[entry.reminder_id]
        if reason is not None:
            self._count_drop(entry.kind, reason)
        completion = entry.completion
        entry.completion = None
        if completion is not None and not completion.is_stale:
            if error is not None:
                completion.fail(error)
            else:
                completion.done()
        self._set_pending_metric()

    def _drop_new(
        self,
        data: ReminderScheduledData,
        kind: str,
        reason: str,
        extra: dict[str, str],
        *,
        write: bool,
    ) -> None:
        self._count_drop(kind, reason)
        log.info("reminder dropped: %s", reason, extra=extra)
        if write:
            self._write_drop(data.reminder_id, data.run_id, reason, data.due_at.timestamp())

    def _record(
        self,
        reminder_id: str,
        run_id: str,
        status: str,
        due: float,
        *,
        reason: str | None = None,
        claimed_at: float | None = None,
        channel: str | None = None,
        ts: str | None = None,
    ) -> ReminderDeliveryData:
        fields: dict[str, Any] = {
            "reminder_id": reminder_id,
            "run_id": run_id,
            "status": status,
            "reason": reason,
            "due_at": _dt(due),
            "recorded_at": _dt(self._now()),
            "claimed_at": _dt(claimed_at) if claimed_at is not None else None,
        }
        try:
            return ReminderDeliveryData(**fields, slack_channel=channel, slack_ts=ts)
        except ValidationError:  # a sender's odd channel/ts must not lose the record
            return ReminderDeliveryData(**fields)

    async def _durable_drop(self, reminder_id: str, run_id: str, reason: str, due: float) -> None:
        """Write a drop before the record completes (a cancellation must survive restarts)."""
        try:
            await self._log.write(self._record(reminder_id, run_id, DROPPED, due, reason=reason))
        except Exception as exc:
            raise RetryableError(
                f"could not record the cancellation of reminder {reminder_id} in the delivery "
                f"log ({type(exc).__name__}); retrying"
            ) from exc

    def _write_drop(self, reminder_id: str, run_id: str, reason: str, due: float) -> None:
        """Note a drop in the delivery log (background, batched with other notes)."""
        self._log.enqueue(self._record(reminder_id, run_id, DROPPED, due, reason=reason))

    def _set_pending_metric(self) -> None:
        if self._metrics is not None:
            self._metrics.reminders_pending.set(len(self._pending))

    def _set_ready_metric(self) -> None:
        if self._metrics is not None:
            self._metrics.worker_ready.set(1 if self.ready else 0)
            self._metrics.slack_auth_ok.set(1 if self._auth_ok else 0)

    # ------------------------------------------------------------------ scheduler

    async def _run_scheduler(self) -> None:
        while True:
            await self._sleep(await self._run_once())

    async def _run_once(self) -> float | None:
        """One scheduler round: prune memory, fire what is due. Returns seconds to the next
        due time (0 to go again at once, None when nothing is waiting)."""
        now = self._now()
        if now - self._last_prune >= 1.0 or now < self._last_prune:
            self._last_prune = now
            for completion in self._memory.prune(now):
                if not completion.is_stale:
                    completion.done()
            for user in [u for u, t in self._recipient_wait.items() if t <= now]:
                del self._recipient_wait[user]
        if not self._auth_ok:
            return None
        batch = self._heap.pop_due(now, self._is_live, _BATCH)
        if batch:
            await self._fire(batch)
            return 0.0
        head = self._heap.next_time(self._is_live)
        return None if head is None else max(0.0, head - now)

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        timeout = 60.0 if seconds is None else min(max(seconds, 0.0), 60.0)
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
        # arrives together with the wake-up, and stop() would then wait forever
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _fire(self, batch: list[Pending]) -> None:
        """Fire due reminders: one log barrier and one round of claims for the whole batch,
        then the sends run concurrently (bounded by max_concurrent_sends)."""
        async with self._fire_lock:
            now = self._now()
            ready: list[Pending] = []
            for entry in batch:
                reason = self._memory.blocked(entry.reminder_id, entry.run_id, entry.kind)
                if reason is not None:
                    self._finish(entry, reason)
                    self._write_drop(entry.reminder_id, entry.run_id, reason, entry.due)
                elif now > entry.expires:
                    self._expire(entry)
                elif self._recipient_wait.get(entry.recipient, 0.0) > now:
                    self._heap.push(entry, self._recipient_wait[entry.recipient])
                else:
                    entry.in_flight = True
                    ready.append(entry)
            if not ready:
                return
            if not await self._log.barrier(5.0):
                log.warning(
                    "delivery log barrier timed out; %d due reminders re-queued", len(ready)
                )
                for entry in ready:
                    entry.next_at = self._now() + 1.0
                    self._after_attempt(entry, "retry")
                return
            fresh: list[Pending] = []
            for entry in ready:
                step = self._precheck(entry, self._now())
                if step == "claim":
                    fresh.append(entry)
                elif step == "check":
                    await self._launch(entry, self._check_then_send(entry))
                else:
                    self._after_attempt(entry, step)
            if not fresh:
                return
            claim_time = _dt(self._now()).timestamp()  # exactly what the log record carries
            claims = [
                self._record(e.reminder_id, e.run_id, CLAIMED, e.due, claimed_at=claim_time)
                for e in fresh
            ]
            error: BaseException | None = None
            try:
                await self._log.write_many(claims)
            except Exception as exc:
                error = exc
            results = [error] * len(fresh)
            for entry, res in zip(fresh, results, strict=True):
                if res is not None:
                    log.warning(
                        "claim not written (%s); will retry",
                        type(res).__name__,
                        extra=self._extra(entry),
                    )
                    entry.next_at = self._now() + backoff_delay(
                        entry.attempts + 1, self._retry_initial, self._retry_max, self._rng.random
                    )
                    self._after_attempt(entry, "retry")
                    continue
                entry.claimed_at = claim_time
                await self._launch(entry, self._send_claimed(entry))

    async def _launch(self, entry: Pending, attempt: Coroutine[Any, Any, str]) -> None:
        await self._sends.acquire()
        task = asyncio.create_task(self._run_attempt(entry, attempt))
        task.add_done_callback(lambda _t: self._sends.release())
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _run_attempt(self, entry: Pending, attempt: Coroutine[Any, Any, str]) -> None:
        if not self._owned(entry):
            attempt.close()
            entry.in_flight = False
            return
        try:
            outcome = await attempt
        except Exception:
            log.exception("reminder attempt failed unexpectedly", extra=self._extra(entry))
            entry.next_at = self._now() + self._retry_initial
            outcome = "retry"
        self._after_attempt(entry, outcome)

    def _owned(self, entry: Pending) -> bool:
        return entry.tp not in self._revoked and self._pending.get(entry.reminder_id) is entry

    def _extra(self, entry: Pending) -> dict[str, str]:
        return {
            "run_id": entry.run_id,
            "reminder_id": entry.reminder_id,
            "event_id": entry.event_id,
            "worker_id": self.worker_id,
        }

    def _expire(self, entry: Pending) -> None:
        log.info("reminder expired before it could be sent", extra=self._extra(entry))
        self._finish(entry, "expired")
        self._write_drop(entry.reminder_id, entry.run_id, "expired", entry.due)

    def _after_attempt(self, entry: Pending, outcome: str) -> None:
        """Re-queue an unsettled reminder (or its successor, if it was re-scheduled meanwhile)."""
        entry.in_flight = False
        successor = entry.successor
        entry.successor = None
        if entry.tp in self._revoked:
            return  # the partition's next owner gets both records again
        if outcome == "settled":
            if successor is not None:
                self._finish(successor, "duplicate", pending_removed=False)
            return
        if successor is not None:
            self._finish(entry, "superseded")
            self._pending[successor.reminder_id] = successor
            self._heap.push(successor, max(successor.due, self._now()))
            self._set_pending_metric()
        else:
            self._heap.push(entry, entry.next_at)
        self._wake.set()

    def _precheck(self, entry: Pending, now: float) -> str:
        """What the delivery log says to do: "settled", "retry" (lease), "check" or "claim"."""
        state = self._log.get(entry.reminder_id)
        if state is not None and state.status in (SENT, DROPPED):
            self._finish(entry, "duplicate")
            return "settled"
        if state is not None and state.status == CLAIMED and state.claimed_at is not None:
            if entry.claimed_at is not None and entry.claimed_at == state.claimed_at:
                # our own claim: we know whether the last attempt may have posted
                return "check" if entry.needs_check else "claim"
            if now < state.claimed_at + self._claim_lease:
                entry.next_at = state.claimed_at + self._claim_lease
                log.info(
                    "reminder claimed by another worker; waiting for its lease",
                    extra=self._extra(entry),
                )
                return "retry"
            entry.needs_check = True
            entry.claimed_at = state.claimed_at
        return "check" if entry.needs_check and entry.claimed_at is not None else "claim"

    async def _check_then_send(self, entry: Pending) -> str:
        """Claimed before but not confirmed: look for the earlier post before sending again."""
        extra = self._extra(entry)
        assert entry.claimed_at is not None
        reminder = ReminderScheduledData.model_validate_json(entry.payload)
        found = await self._call_find_sent(reminder, entry.claimed_at, extra)
        if found is not None and found.outcome is SendOutcome.SENT:
            self._note_sent(entry, found)
            self._finish(entry, "duplicate")
            log.info("earlier post found; not sent again", extra=extra)
            return "settled"
        if found is not None:
            return self._handle_failure(entry, found, extra)
        entry.needs_check = False
        claim_time = _dt(self._now()).timestamp()
        try:
            await self._log.write(
                self._record(
                    entry.reminder_id, entry.run_id, CLAIMED, entry.due, claimed_at=claim_time
                )
            )
        except Exception as exc:
            log.warning("claim not written (%s); will retry", type(exc).__name__, extra=extra)
            entry.next_at = self._now() + backoff_delay(
                entry.attempts + 1, self._retry_initial, self._retry_max, self._rng.random
            )
            return "retry"
        entry.claimed_at = claim_time
        return await self._send_claimed(entry, reminder)

    async def _send_claimed(
        self, entry: Pending, reminder: ReminderScheduledData | None = None
    ) -> str:
        """Send a reminder this worker has just claimed; settle or set up the retry."""
        extra = self._extra(entry)
        if not self._owned(entry):  # revoked while waiting for a send slot: not ours to send
            return "retry"
        if reminder is None:
            reminder = ReminderScheduledData.model_validate_json(entry.payload)
        assert entry.claimed_at is not None
        try:
            result = await self._sender.send(reminder, claim_time=_dt(entry.claimed_at))
        except Exception as exc:
            log.warning("sender raised %s; treated as ambiguous", type(exc).__name__, extra=extra)
            result = SendResult.ambiguous(type(exc).__name__)
        if result.outcome is not SendOutcome.SENT:
            if result.outcome is SendOutcome.PERMANENT and result.dead_letter:
                # a definite rejection posted nothing: release the claim before the record goes
                # to the dead-letter topic, so a replay is sent at once instead of after the lease
                await self._release_claim(entry, extra)
            return self._handle_failure(entry, result, extra)
        sent_at = self._now()
        self._note_sent(entry, result)
        if self._metrics is not None:
            self._metrics.reminders_sent.labels(entry.kind).inc()
            self._metrics.reminder_lateness.labels(entry.kind).observe(
                max(0.0, sent_at - entry.due)
            )
        self._finish(entry, None)
        log.info("reminder sent", extra={**extra, "lateness_s": round(sent_at - entry.due, 3)})
        return "settled"

    async def _release_claim(self, entry: Pending, extra: dict[str, str]) -> None:
        """Tombstone this worker's claim (nothing was posted). On failure the claim stays: a
        later attempt waits for its lease and checks for a post first, as after a crash."""
        try:
            async with asyncio.timeout(_RELEASE_TIMEOUT):
                await self._log.release(entry.reminder_id)
        except Exception as exc:
            log.warning(
                "claim not released (%s); a replay waits for the claim lease",
                type(exc).__name__,
                extra=extra,
            )
            return
        entry.claimed_at = None

    def _note_sent(self, entry: Pending, result: SendResult) -> None:
        """Mark sent locally at once, write the sent record in the background (the claim
        already protects against a re-send if that write is lost)."""
        data = self._record(
            entry.reminder_id,
            entry.run_id,
            SENT,
            entry.due,
            claimed_at=entry.claimed_at,
            channel=result.channel,
            ts=result.ts,
        )
        self._log.enqueue(data)

    async def _call_find_sent(
        self, reminder: ReminderScheduledData, since: float, extra: dict[str, str]
    ) -> SendResult | None:
        try:
            return await self._sender.find_sent(reminder, since=_dt(since))
        except Exception as exc:
            log.warning("find_sent raised %s", type(exc).__name__, extra=extra)
            return SendResult.transient(type(exc).__name__)

    def _handle_failure(self, entry: Pending, result: SendResult, extra: dict[str, str]) -> str:
        now = self._now()
        outcome = result.outcome
        if self._metrics is not None:
            self._metrics.failed(entry.kind, outcome.value)
        fields = {**extra, "outcome": outcome.value, "error": result.error or ""}
        if outcome is SendOutcome.PERMANENT:
            if result.dead_letter:
                log.error("reminder rejected by the sender; dead-lettered", extra=fields)
                self._finish(
                    entry,
                    None,
                    error=NonRetryableError(
                        f"reminder {entry.reminder_id} (run {entry.run_id}) rejected by the "
                        f"sender: {result.error or 'permanent error'}"
                    ),
                )
            else:
                log.warning("recipient unreachable; reminder dropped", extra=fields)
                self._finish(entry, "recipient_unreachable")
                self._write_drop(
                    entry.reminder_id, entry.run_id, "recipient_unreachable", entry.due
                )
            return "settled"
        if outcome is SendOutcome.CONFIGURATION:
            log.error("sender configuration error; backlog kept, probing", extra=fields)
            entry.next_at = now
            self._configuration_failed(result.error)
            return "retry"
        entry.attempts += 1
        if outcome is SendOutcome.RATE_LIMITED:
            delay = result.retry_after if result.retry_after is not None else 1.0
            until = now + max(0.0, delay)
            self._recipient_wait[entry.recipient] = max(
                until, self._recipient_wait.get(entry.recipient, 0.0)
            )
            entry.next_at = until
            log.info("rate limited; retry after %.1f s", delay, extra=fields)
        else:
            if outcome is SendOutcome.AMBIGUOUS or outcome is SendOutcome.SENT:
                entry.needs_check = True
            delay = backoff_delay(
                entry.attempts, self._retry_initial, self._retry_max, self._rng.random
            )
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            entry.next_at = now + delay
            log.info("%s failure; retry in %.2f s", outcome.value, delay, extra=fields)
        # no retry after the expiry: wake just past it so the reminder is dropped as expired then
        entry.next_at = min(entry.next_at, entry.expires + 0.001)
        return "retry"

    # ------------------------------------------------------------------ configuration probe

    def _configuration_failed(self, error: str | None) -> None:
        self._auth_error = error or "configuration error"
        if self._auth_ok:
            self._auth_ok = False
            self._set_ready_metric()
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe(), name="reminder-auth-probe")

    async def _probe(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            delay = backoff_delay(attempt, self._probe_initial, self._probe_max, self._rng.random)
            await asyncio.sleep(delay)
            try:
                result = await self._sender.check_auth()
            except Exception as exc:
                result = SendResult.transient(type(exc).__name__)
            if result.outcome is SendOutcome.SENT:
                log.info("sender configuration fixed; delivery resumes")
                self._auth_ok = True
                self._auth_error = None
                self._set_ready_metric()
                self._wake.set()
                return
            if result.outcome is SendOutcome.CONFIGURATION:
                self._auth_error = result.error or self._auth_error
            log.warning(
                "sender still not usable (%s: %s)", result.outcome.value, result.error or ""
            )
