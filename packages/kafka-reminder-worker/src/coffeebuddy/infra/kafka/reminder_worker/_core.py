"""Shared state of the worker's parts: configuration, store, changelog writes, metrics, logs."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._records import encode_state, run_key
from coffeebuddy.infra.kafka.reminder_worker._sender import PreparingSender
from coffeebuddy.infra.kafka.reminder_worker._store import PartitionState, ScheduleStore
from coffeebuddy.infra.kafka.reminder_worker._timers import TimerHeap

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.metrics import ReminderMetrics
    from coffeebuddy.infra.kafka.models import ReminderScheduledData
    from coffeebuddy.infra.kafka.reminder_worker._changelog import Changelog
    from coffeebuddy.infra.kafka.reminder_worker._sender import ReminderSender

__all__ = ["Clock", "WorkerConfig", "WorkerCore"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")

Clock = Callable[[], datetime]

_PREPARE_CONCURRENCY = 8
"""Preparations (`PreparingSender.prepare`) running at once; they do not take send slots."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Every tunable of the worker, in seconds (validated by ReminderWorker)."""

    late_grace: float
    state_margin: float
    run_memory: float
    retry_initial: float
    retry_max: float
    probe_initial: float
    probe_max: float
    send_timeout: float
    claim_start_window: float
    clock_skew: float
    max_pending: int
    max_concurrent_sends: int
    prepare_ahead: float = 0.0
    claim_ahead: float = 0.0
    """A due reminder takes its send slot and writes its claim this long before its time, so
    the claim's round trip is done when the post starts (never before the time)."""

    @property
    def claim_ttl(self) -> float:
        """claimed_at -> deadline: the post must start within the start window and the client
        gives up after `send_timeout`, so nothing of this owner's post is in flight after it."""
        return self.claim_start_window + self.send_timeout


class WorkerCore:
    """State and helpers every part of the worker uses (the parts are mixins on top)."""

    def __init__(
        self,
        sender: ReminderSender,
        changelog: Changelog,
        config: WorkerConfig,
        *,
        clock: Clock | None,
        metrics: ReminderMetrics | None,
        worker_id: str,
        source: str,
    ) -> None:
        self._sender = sender
        self._tracing = False  # ReminderWorker wraps the sender in spans when tracing is on
        self._changelog = changelog
        self._cfg = config
        # the wall clock as epoch seconds; an injected clock (tests) is read through datetime
        self._time: Callable[[], float] = (
            time.time if clock is None else (lambda: clock().timestamp())
        )
        self._wall_clock = clock is None
        self._metrics = metrics
        self.worker_id = worker_id
        self._source = source
        self._store = ScheduleStore()
        self._heap = TimerHeap()
        self._soon = TimerHeap()
        """Entries within `prepare_ahead` of their time, moved out of `_heap` and prepared."""
        self._prepare: Callable[[ReminderScheduledData], Awaitable[None]] | None = (
            sender.prepare if isinstance(sender, PreparingSender) else None
        )
        self._recipient_wait: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._sends = asyncio.Semaphore(config.max_concurrent_sends)
        self._prepare_slots = asyncio.Semaphore(_PREPARE_CONCURRENCY)
        self._preparing: set[asyncio.Task[None]] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._auth_ok = True
        self._auth_error: str | None = None
        self._started = False
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    def _now(self) -> float:
        return self._time()

    async def _wait_until(self, at: float) -> None:
        """Until the worker's clock reads `at` (an injected clock is read again every 50 ms)."""
        while (left := at - self._now()) > 0:  # noqa: ASYNC110 - a clock reading, no event
            await asyncio.sleep(left if self._wall_clock else min(left, 0.05))

    # ------------------------------------------------------------------ ownership

    def _state(self, partition: int) -> PartitionState | None:
        state = self._store.get(partition)
        return state if state is not None and state.restored else None

    def _owns(self, entry: Pending, epoch: int | None = None) -> bool:
        state = self._store.get(entry.partition)
        if state is None or not state.restored or state.pending.get(entry.reminder_id) is not entry:
            return False
        return epoch is None or state.epoch == epoch

    def _is_live(self, entry: Pending) -> bool:
        return not entry.in_flight and self._owns(entry)

    def _schedule(self, entry: Pending, at: float) -> None:
        head = self._heap.next_time(self._is_live)
        self._heap.push(entry, at)
        if head is None or at < head:
            self._wake.set()

    # ------------------------------------------------------------------ changelog writes

    def _write(
        self, partition: int, key: str, status: str, run_id: str, keep_until: float, **fields: Any
    ) -> asyncio.Future[int]:
        value = encode_state(
            state_key=key,
            status=status,
            run_id=run_id,
            keep_until=keep_until,
            now=self._now(),
            source=self._source,
            writer=self.worker_id,
            **fields,
        )
        return self._changelog.write(partition, key, value)

    def _write_entry(
        self, entry: Pending, *, claimed: bool = False, event_id: str | None = None
    ) -> asyncio.Future[int]:
        """The entry's full snapshot (`scheduled`, or `claimed` with its claim)."""
        fields: dict[str, Any] = {}
        if claimed:
            fields = {
                "owner": entry.claim_owner,
                "epoch": entry.claim_epoch,
                "claimed_at": entry.claimed_at,
                "deadline": entry.claim_deadline,
            }
        return self._write(
            entry.partition,
            entry.reminder_id,
            "claimed" if claimed else "scheduled",
            entry.run_id,
            entry.keep_until,
            reminder_id=entry.reminder_id,
            reminder=entry.payload,
            event_id=event_id or entry.event_id or None,
            event_time=entry.event_time or None,
            **fields,
        )

    def _write_final(
        self,
        partition: int,
        reminder_id: str,
        run_id: str,
        status: str,
        keep_until: float,
        *,
        reason: str | None = None,
        channel: str | None = None,
        ts: str | None = None,
    ) -> asyncio.Future[int]:
        """A final state (sent / dropped / cancelled), applied locally at once."""
        state = self._store.get(partition)
        if state is not None:
            self._store.settle(state, reminder_id, keep_until)
            self._pending_changed()
        return self._write(
            partition,
            reminder_id,
            status,
            run_id,
            keep_until,
            reminder_id=reminder_id,
            reason=reason,
            slack_channel=channel,
            slack_ts=ts,
        )

    def _write_run(
        self, partition: int, run_id: str, status: str, keep_until: float
    ) -> asyncio.Future[int]:
        return self._write(partition, run_key(run_id), status, run_id, keep_until)

    def _tombstone(self, partition: int, key: str) -> asyncio.Future[int]:
        return self._changelog.write(partition, key, None)

    # ------------------------------------------------------------------ metrics and logs

    def _extra(self, entry: Pending, **more: Any) -> dict[str, Any]:
        return {
            "run_id": entry.run_id,
            "reminder_id": entry.reminder_id,
            "event_id": entry.event_id,
            "worker_id": self.worker_id,
            "partition": entry.partition,
            **more,
        }

    def _count_drop(self, kind: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.dropped(kind, reason)

    def _pending_changed(self) -> None:
        """Hook for the parts that react to the pending count (intake capacity)."""

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    def _bind_ready_metrics(self) -> None:
        """The readiness and pending gauges read the worker at scrape time (nobody pushes them).
        A service that composes a wider readiness (harness, Kafka probe) rebinds those two."""
        if self._metrics is not None:
            self._metrics.worker_ready.set_function(lambda: 1 if self.ready else 0)
            self._metrics.slack_auth_ok.set_function(lambda: 1 if self._auth_ok else 0)
            # read at scrape time too: intake changes it per record, a push would cost per record
            self._metrics.reminders_pending.set_function(self._store.pending_count)
