"""ReminderWorker: the harness handler; builds the pipeline once and runs its lifecycle.

    input record -> Intake -> ReminderState (changelog) -> Scheduler -> Delivery -> sender

Every background task runs under one Supervisor; readiness names what is down.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.consumer import Backoff
from coffeebuddy.infra.kafka.producer import resolve_tracer
from coffeebuddy.infra.kafka.reminder_worker._changelog import Changelog, KafkaChangelog
from coffeebuddy.infra.kafka.reminder_worker._clock import Clock
from coffeebuddy.infra.kafka.reminder_worker._dead_letter import DeadLetters
from coffeebuddy.infra.kafka.reminder_worker._delivery import Delivery
from coffeebuddy.infra.kafka.reminder_worker._errors import ReminderWorkerError
from coffeebuddy.infra.kafka.reminder_worker._history import History
from coffeebuddy.infra.kafka.reminder_worker._intake import Intake
from coffeebuddy.infra.kafka.reminder_worker._partition import PartitionState
from coffeebuddy.infra.kafka.reminder_worker._probe import AuthProbe
from coffeebuddy.infra.kafka.reminder_worker._scheduler import Scheduler
from coffeebuddy.infra.kafka.reminder_worker._settings import ReminderSettings
from coffeebuddy.infra.kafka.reminder_worker._state import ReminderState
from coffeebuddy.infra.kafka.reminder_worker._supervisor import Supervisor
from coffeebuddy.infra.kafka.reminder_worker._topics import WorkerTopics, check_copartitioned

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
    """Readiness of the worker and why not (sender, changelog, restore, tasks, capacity)."""

    ready: bool
    slack_auth_ok: bool
    delivery_log_caught_up: bool
    pending: int
    detail: str
    unflushed: int = 0
    at_capacity: bool = False
    unreadable: int = 0


class ReminderWorker:
    """Sends each scheduled reminder once, when due, unless cancelled or expired.

    Give `process_event`, `on_assign` and `on_revoke` to a `KafkaConsumerHarness` on the reminder
    and run topics. The `producer` writes changelog, history and dead letters; the changelog is
    built from `kafka` settings, or passed as `changelog` (tests).
    """

    def __init__(
        self,
        sender: ReminderSender,
        producer: KafkaEventProducer,
        settings: ReminderSettings | None = None,
        kafka: KafkaSettings | None = None,
        *,
        changelog: Changelog | None = None,
        topics: WorkerTopics | None = None,
        metrics: ReminderMetrics | None = None,
        kafka_metrics: KafkaMetrics | None = None,
        clock: Callable[[], datetime] | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self.settings = settings = settings or ReminderSettings.defaults()
        self.topics = topics = topics or WorkerTopics()
        if kafka is None and changelog is None:
            raise ReminderWorkerError(
                "ReminderWorker needs kafka (KafkaSettings) to read and write its changelog, "
                "or a Changelog as changelog= (tests)"
            )
        self.worker_id = settings.worker_id or f"reminder-worker-{uuid.uuid4().hex[:12]}"
        self._kafka = kafka
        self._metrics = metrics
        self._clock = clock_ = Clock(clock)
        self.supervisor = Supervisor()
        self.changelog = changelog or KafkaChangelog(kafka, topics.changelog, producer)  # type: ignore[arg-type]
        self.history = History(producer, topics.history) if settings.history else None
        self.state = ReminderState(
            self.changelog,
            settings,
            now=clock_.now,
            worker_id=self.worker_id,
            events_topic=topics.reminders.name,
            history=self.history,
            metrics=metrics,
        )
        tracer = resolve_tracer(
            settings.tracing, tracer_provider, "coffeebuddy.infra.kafka.reminder_worker"
        )
        delivery_tracer = None
        if tracer is not None:  # the optional [otel] extra: imported only when tracing is on
            from coffeebuddy.infra.kafka.reminder_worker._tracing import DeliveryTracer

            delivery_tracer = DeliveryTracer(tracer, type(sender).__name__)
        backoff = Backoff(settings.auth_probe_initial_s, settings.auth_probe_max_s)
        self.probe = AuthProbe(sender, backoff, self.supervisor)
        dead_letters = DeadLetters(
            producer, topics.reminders, group=topics.group, kafka_metrics=kafka_metrics
        )
        delivery = Delivery(
            sender,
            self.state,
            self.changelog,
            settings,
            clock=clock_,
            dead_letters=dead_letters,
            metrics=metrics,
            tracer=delivery_tracer,
        )
        self.scheduler = Scheduler(
            self.state, delivery, self.probe, settings, clock=clock_, supervisor=self.supervisor
        )
        self.intake = Intake(
            self.state,
            self.scheduler,
            settings,
            restored=self._restored,
            clock=clock_,
            metrics=metrics,
            tracing=tracer is not None,
        )
        self._restores: dict[int, asyncio.Task[PartitionState | None]] = {}
        self._started = False
        if metrics is not None:  # read at scrape time: intake changes it per record
            metrics.reminders_pending.set_function(self.state.pending_count)

    async def start(self) -> None:
        """Check co-partitioning, start the changelog, the scheduler and the credentials check
        (partitions are restored on assign)."""
        if self._started:
            return
        if self._kafka is not None:
            await check_copartitioned(self._kafka, self.topics)
        await self.changelog.start(self._on_record, self.supervisor)
        if self.history is not None:
            self.history.start(self.supervisor)
        self.probe.start()
        self.supervisor.start("scheduler", self.scheduler.run)
        self.supervisor.start("intake-admission", self.intake.admit)
        self._started = True

    async def stop(self) -> None:
        """Stop the scheduler, let sends in flight finish (bounded), flush the changelog."""
        self._started = False
        for task in self._restores.values():
            task.cancel()
        self._restores.clear()
        await self.scheduler.stop(timeout=10.0)
        if self.history is not None:
            await self.history.flush(timeout=2.0)
        await self.changelog.stop()
        await self.supervisor.stop()
        for p in list(self.state.partitions):
            self.state.close(p)

    async def __aenter__(self) -> ReminderWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ready(self) -> bool:
        return self.health().ready

    def health(self) -> WorkerHealth:
        restoring = sorted(p for p, s in self.state.partitions.items() if not s.restored)
        problems: list[str] = []
        if not self._started:
            problems.append("not started")
        if not self.probe.ok:
            problems.append(f"sender: {self.probe.error}; backlog kept, probing")
        error = self.changelog.error
        if error is not None:
            problems.append(f"{error} (records wait, nothing dropped)")
        if restoring:
            problems.append(f"restoring changelog partitions {restoring}")
        problems.extend(self.supervisor.problems)
        unflushed = self.changelog.unflushed
        if self._metrics is not None:
            self._metrics.state_unflushed.set(unflushed)
        notes = []
        if self.intake.at_capacity:
            notes.append(
                f"at max_pending={self.settings.max_pending}: {self.intake.waiting} far-future "
                "schedules wait, nothing dropped"
            )
        if unflushed:
            notes.append(f"{unflushed} state changes not yet acknowledged")
        if self.state.unreadable:
            notes.append(f"{self.state.unreadable} unreadable changelog records skipped")
        return WorkerHealth(
            ready=not problems,
            slack_auth_ok=self.probe.ok,
            delivery_log_caught_up=not restoring and error is None,
            pending=self.state.pending_count(),
            detail="; ".join(problems + notes) or "ok",
            unflushed=unflushed,
            at_capacity=self.intake.at_capacity,
            unreadable=self.state.unreadable,
        )

    @property
    def pending_count(self) -> int:
        return self.state.pending_count()

    @property
    def max_pending(self) -> int:
        return self.settings.max_pending

    async def process_event(self, event: Event, context: RecordContext) -> None:
        """Harness handler: write the state change, complete the record once it is acked."""
        await self.intake.handle(event, context)

    async def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Harness callback: restore the changelog partitions of the assigned reminder
        partitions (read to their end offsets) before their records are processed."""
        numbers = {tp[1] for tp in partitions if tp[0] == self.topics.reminders.name}
        stale = {p for p in numbers if p in self.state.partitions}
        if stale:
            # our on_revoke never ran (it overran and was cancelled): a new ownership epoch
            # starts from the changelog, not from what this process still holds in memory
            log.warning(
                "partitions %s re-assigned without a completed revoke: restoring again",
                sorted(stale),
                extra={"partitions": sorted(stale), "worker_id": self.worker_id},
            )
            await self.on_revoke([(self.topics.reminders.name, p) for p in stale])  # type: ignore[misc]
        if numbers and self._started:
            await asyncio.gather(*(self._restored(p) for p in numbers))

    async def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """Harness callback: drop the timers of revoked partitions (the changelog keeps them)."""
        numbers = {tp[1] for tp in partitions if tp[0] == self.topics.reminders.name}
        if not numbers:
            return
        for p in numbers:
            task = self._restores.pop(p, None)
            if task is not None:
                task.cancel()
            self.state.close(p)
        self.changelog.release(numbers)
        self.state.compact()
        self.scheduler.forget_revoked()
        self.intake.revoked(numbers)
        log.info("partitions revoked: timers dropped", extra={"partitions": sorted(numbers)})

    async def _restored(self, partition: int) -> PartitionState | None:
        """The partition's state once restored (restoring it first when needed)."""
        state = self.state.restored(partition)
        if state is not None:
            return state
        task = self._restores.get(partition)
        if task is None or task.done():
            task = self._restores[partition] = asyncio.create_task(self._restore(partition))
        return await asyncio.shield(task)  # a revoke cancels it: the record stays incomplete

    async def _restore(self, partition: int) -> PartitionState | None:
        state = await self.state.restore(partition)
        if state is not None:
            self.scheduler.add_partition(state)
        return state

    def _on_record(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None, restoring: bool
    ) -> None:
        """Changelog records read back go to the state; an entry another writer created or
        changed is timed by the scheduler."""
        entry = self.state.on_record(partition, offset, key, value, restoring)
        if entry is not None and not restoring and not entry.in_flight:
            self.scheduler.schedule(entry, max(entry.due, self._clock.now()))
