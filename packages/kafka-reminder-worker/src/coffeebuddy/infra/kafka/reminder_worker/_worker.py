"""ReminderWorker: the harness handler. Turns input events into changelog state (completing each
record once its state is acknowledged), restores owned partitions, and runs the scheduler.

About 400 lines for one reason: the public class's constructor (every tunable, validated and
documented) and its lifecycle (start, assign, revoke, stop, health); the parts are mixins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.models import (
    ReminderCancelled,
    ReminderScheduled,
    RunCancelled,
    RunClosed,
)
from coffeebuddy.infra.kafka.producer import resolve_tracer
from coffeebuddy.infra.kafka.reminder_worker._changelog import Changelog, KafkaChangelog
from coffeebuddy.infra.kafka.reminder_worker._core import Clock, WorkerConfig
from coffeebuddy.infra.kafka.reminder_worker._dead_letter import publish_dead_letter
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._intake import IntakeMixin
from coffeebuddy.infra.kafka.reminder_worker._legacy import LegacyState, load_legacy
from coffeebuddy.infra.kafka.reminder_worker._records import decode_state
from coffeebuddy.infra.kafka.reminder_worker._settings import validate_settings
from coffeebuddy.infra.kafka.reminder_worker._store import RUN_STATUSES, PartitionState
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_WORKER_GROUP,
    TopicConfig,
)

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.consumer import RecordContext, TopicPartition
    from coffeebuddy.infra.kafka.metrics import KafkaMetrics, ReminderMetrics
    from coffeebuddy.infra.kafka.models import Event
    from coffeebuddy.infra.kafka.producer import KafkaEventProducer
    from coffeebuddy.infra.kafka.reminder_worker._sender import ReminderSender

__all__ = ["ReminderWorker", "WorkerHealth"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """Readiness of the worker and why not (Slack configuration, changelog, restore, capacity)."""

    ready: bool
    slack_auth_ok: bool
    delivery_log_caught_up: bool
    pending: int
    detail: str
    unflushed: int = 0
    at_capacity: bool = False


class ReminderWorker(IntakeMixin):
    """Sends each scheduled reminder once, when due, unless cancelled or expired.

    Give `process_event` to a `KafkaConsumerHarness` subscribed to the reminder and run topics,
    with `on_assign` / `on_revoke`. State lives in the changelog topic (co-partitioned with the
    reminder events); every record completes as soon as its state change is acknowledged.
    A sender that is also a `PreparingSender` is asked to prepare each reminder `prepare_ahead`
    before it falls due (Slack: open the DM channel), off the on-time path; 0 turns that off.
    Each due reminder writes its claim `claim_ahead` before its time and posts at its time.
    """

    def __init__(
        self,
        sender: ReminderSender,
        producer: KafkaEventProducer,
        settings: KafkaSettings | None = None,
        *,
        events_topic: TopicConfig | None = None,
        changelog_topic: TopicConfig | None = None,
        changelog: Changelog | None = None,
        legacy_deliveries_topic: TopicConfig | None = None,
        legacy_claim_lease: timedelta = timedelta(seconds=30),
        legacy_window: timedelta = timedelta(days=10),
        metrics: ReminderMetrics | None = None,
        kafka_metrics: KafkaMetrics | None = None,
        group: str = REMINDER_WORKER_GROUP.name,
        clock: Clock | None = None,
        late_grace: timedelta = timedelta(minutes=15),
        state_margin: timedelta = timedelta(hours=1),
        max_pending: int = 100_000,
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
        auth_probe_initial: float = 5.0,
        auth_probe_max: float = 300.0,
        run_memory: timedelta = timedelta(hours=24),
        send_timeout: float = 10.0,
        claim_start_window: float = 5.0,
        clock_skew: timedelta = timedelta(seconds=2),
        max_concurrent_sends: int = 256,
        prepare_ahead: timedelta = timedelta(seconds=30),
        claim_ahead: timedelta = timedelta(milliseconds=250),
        worker_id: str | None = None,
        source: str = "/coffeebuddy/reminder-worker",
        tracing: bool | None = None,
        tracer_provider: Any = None,
    ) -> None:
        config = WorkerConfig(
            late_grace=late_grace.total_seconds(),
            state_margin=state_margin.total_seconds(),
            run_memory=run_memory.total_seconds(),
            retry_initial=retry_initial,
            retry_max=retry_max,
            probe_initial=auth_probe_initial,
            probe_max=auth_probe_max,
            send_timeout=send_timeout,
            claim_start_window=claim_start_window,
            clock_skew=clock_skew.total_seconds(),
            max_pending=max_pending,
            max_concurrent_sends=max_concurrent_sends,
            prepare_ahead=prepare_ahead.total_seconds(),
            claim_ahead=claim_ahead.total_seconds(),
        )
        validate_settings(config)
        self._events_topic = events_topic or REMINDER_EVENTS_TOPIC
        self._changelog_topic = changelog_topic or REMINDER_STATE_CHANGELOG_TOPIC
        if settings is None and (changelog is None or legacy_deliveries_topic is not None):
            raise ValueError(
                "ReminderWorker: settings (KafkaSettings) are needed to read the "
                + ("legacy delivery log" if changelog is not None else "changelog topic")
                + "; pass settings, or a Changelog as changelog= (tests)"
            )
        if changelog is None:
            assert settings is not None
            changelog = KafkaChangelog(settings, self._changelog_topic, producer)
        super().__init__(
            sender,
            changelog,
            config,
            clock=clock,
            metrics=metrics,
            worker_id=worker_id or f"reminder-worker-{uuid.uuid4().hex[:12]}",
            source=source,
        )
        # tracing on: sends get CLIENT spans linked to the scheduling record's traceparent
        tracer = resolve_tracer(tracing, tracer_provider, "coffeebuddy.infra.kafka.reminder_worker")
        self._tracing = tracer is not None
        if tracer is not None:
            from coffeebuddy.infra.kafka.reminder_worker._tracing import TracedSender

            self._sender = TracedSender(self._sender, tracer, self._pending_entry)
        self._producer = producer
        self._own_marker = f'"coffeebuddywriter":"{self.worker_id}"'.encode()
        self._kafka_metrics = kafka_metrics
        self._group = group
        self._scheduler: asyncio.Task[None] | None = None
        self._capacity = asyncio.Event()
        self._at_capacity = False
        self._restores: dict[int, asyncio.Task[None]] = {}
        self._settings = settings
        self._legacy_topic = legacy_deliveries_topic
        self._legacy_lease = legacy_claim_lease.total_seconds()
        self._legacy_window = legacy_window.total_seconds()
        self._legacy: dict[str, LegacyState] = {}
        self._bind_ready_metrics()

    def _pending_entry(self, reminder_id: str) -> Pending | None:
        """The pending entry of `reminder_id` in any owned partition (the tracing sender's link)."""
        for state in self._store.partitions.values():
            entry = state.pending.get(reminder_id)
            if entry is not None:
                return entry
        return None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the changelog reader / writer and the scheduler (partitions come on assign)."""
        if self._started:
            return
        if self._legacy_topic is not None:
            assert self._settings is not None  # checked in __init__
            self._legacy = await load_legacy(
                self._settings, self._legacy_topic, since=self._now() - self._legacy_window
            )
        await self._changelog.start(self._on_record)
        self._started = True
        self._scheduler = asyncio.create_task(self._run_scheduler(), name="reminder-scheduler")

    async def stop(self) -> None:
        """Stop the scheduler, let running sends finish (bounded), flush the changelog."""
        self._started = False
        for task in (self._scheduler, self._prober, *self._restores.values(), *self._preparing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._scheduler = self._prober = None
        self._restores.clear()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=10.0)
        for task in set(self._in_flight):
            task.cancel()
        await self._changelog.stop()
        for p in list(self._store.partitions):
            self._store.close(p)
        self._pending_changed()

    async def __aenter__(self) -> ReminderWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ status

    @property
    def ready(self) -> bool:
        return (
            self._started
            and self._auth_ok
            and self._changelog.error is None
            and all(s.restored for s in self._store.partitions.values())
        )

    def health(self) -> WorkerHealth:
        restoring = sorted(p for p, s in self._store.partitions.items() if not s.restored)
        problems: list[str] = []
        if not self._started:
            problems.append("not started")
        if not self._auth_ok:
            problems.append(
                f"sender configuration error: {self._auth_error}; backlog kept, probing"
            )
        error = self._changelog.error
        if error is not None:
            problems.append(f"{error} (records wait, nothing dropped)")
        if restoring:
            problems.append(f"restoring changelog partitions {restoring}")
        pending = self._store.pending_count()
        unflushed = self._changelog.unflushed
        if self._metrics is not None:
            self._metrics.state_unflushed.set(unflushed)
        notes = []
        if self._at_capacity:
            notes.append(f"at max_pending={self._cfg.max_pending}: intake paused, nothing dropped")
        if unflushed:
            notes.append(f"{unflushed} state changes not yet acknowledged")
        detail = "; ".join(problems + notes) or "ok"
        return WorkerHealth(
            ready=self.ready,
            slack_auth_ok=self._auth_ok,
            delivery_log_caught_up=not restoring and error is None,
            pending=pending,
            detail=detail,
            unflushed=unflushed,
            at_capacity=self._at_capacity,
        )

    @property
    def pending_count(self) -> int:
        return self._store.pending_count()

    @property
    def max_pending(self) -> int:
        return self._cfg.max_pending

    @property
    def changelog(self) -> Changelog:
        return self._changelog

    # ------------------------------------------------------------------ harness callbacks

    async def process_event(self, event: Event, context: RecordContext) -> None:
        """Harness handler: write the state change, complete the record once it is acked."""
        partition = context.partition
        if isinstance(event, RunCancelled | RunClosed):
            self._on_run(event, context, partition)
            return
        if not isinstance(event, ReminderScheduled | ReminderCancelled):
            return  # not ours: the record completes
        state = await self._restored(partition)
        if isinstance(event, ReminderScheduled):
            await self._on_scheduled(event, context, state)
        else:
            self._on_cancelled(event, context, state)

    async def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Harness callback: restore the changelog partitions of the assigned reminder
        partitions (read to their end offsets) before their records are processed."""
        numbers = {tp[1] for tp in partitions if tp[0] == self._events_topic.name}
        stale = {p for p in numbers if p in self._store.partitions}
        if stale:
            # our on_revoke never ran (it overran and was cancelled): a new ownership epoch
            # starts from the changelog, not from what this process still holds in memory
            log.warning(
                "partitions %s re-assigned without a completed revoke: restoring again",
                sorted(stale),
                extra={"partitions": sorted(stale), "worker_id": self.worker_id},
            )
            await self.on_revoke([(self._events_topic.name, p) for p in stale])  # type: ignore[misc]
        if numbers and self._started:
            await asyncio.gather(*(self._restored(p) for p in numbers))

    async def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """Harness callback: drop the timers of revoked partitions (the changelog keeps them)."""
        numbers = {tp[1] for tp in partitions if tp[0] == self._events_topic.name}
        if not numbers:
            return
        for p in numbers:
            task = self._restores.pop(p, None)
            if task is not None:
                task.cancel()
            self._store.close(p)
        self._changelog.release(numbers)
        self._store.compact()
        self._heap.compact(self._is_live)
        self._soon.compact(self._is_live)
        self._pending_changed()
        self._capacity.set()
        log.info("partitions revoked: timers dropped", extra={"partitions": sorted(numbers)})

    # ------------------------------------------------------------------ restore

    async def _restored(self, partition: int) -> PartitionState:
        state = self._store.get(partition)
        if state is not None and state.restored:
            return state
        task = self._restores.get(partition)
        if task is None or task.done():
            task = self._restores[partition] = asyncio.create_task(self._restore(partition))
        await asyncio.shield(task)
        state = self._store.get(partition)
        assert state is not None
        return state

    async def _restore(self, partition: int) -> None:
        started = time.perf_counter()
        state = self._store.open(partition)
        await self._changelog.restore({partition})
        if self._store.get(partition) is not state:
            return
        state.epoch = state.max_epoch + 1
        state.restored = True
        now = self._now()
        for entry in state.pending.values():
            self._heap.push(
                entry, max(entry.next_at, entry.due, now) if entry.attempts else max(entry.due, now)
            )
        self._wake.set()
        self._pending_changed()
        log.info(
            "changelog partition %d restored: %d pending, %d settled, epoch %d (%.2f s)",
            partition,
            len(state.pending),
            len(state.finals) + len(state.runs),
            state.epoch,
            time.perf_counter() - started,
            extra={"partition": partition, "worker_id": self.worker_id},
        )

    def _on_record(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None, restoring: bool
    ) -> None:
        state = self._store.get(partition)
        if state is None or key is None:
            return
        if value is None:
            self._store.forget(state, key.decode(errors="replace"))
            return
        if not restoring and self._own_marker in value:
            return  # our own write (applied when it was made): skip without decoding
        try:
            rec = decode_state(value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning(
                "undecodable changelog record skipped",
                extra={"partition": partition, "offset": offset, "error_class": type(exc).__name__},
            )
            return
        if not restoring and rec.writer == self.worker_id:
            return  # our own write, applied when it was made
        entry = self._store.apply(state, rec)
        if restoring or not state.restored:
            return
        if rec.status in RUN_STATUSES:
            mark = state.runs.get(rec.run_id)
            if mark is not None:
                self._drop_run_victims(state, rec.run_id, mark.blocks)
        elif entry is not None and not entry.in_flight:
            self._schedule(entry, max(entry.due, self._now()))
        self._pending_changed()

    async def _publish_dead_letter(self, entry: Pending, error: str) -> None:
        await publish_dead_letter(self._producer, self._events_topic, entry, error)
        if self._kafka_metrics is not None:  # dead letters count the same as the harness's
            self._kafka_metrics.dead_lettered.labels(
                self._events_topic.name, self._group, "non_retryable"
            ).inc()
