"""ReminderWorker: timer heap + deferred completion + delivery log (claim / check / sent)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.reminder_worker._sender import ReminderSender

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.consumer import RecordContext, TopicPartition
    from coffeebuddy.infra.kafka.metrics import ReminderMetrics
    from coffeebuddy.infra.kafka.models import Event
    from coffeebuddy.infra.kafka.producer import KafkaEventProducer
    from coffeebuddy.infra.kafka.topics import TopicConfig

__all__ = ["ReminderWorker", "WorkerHealth"]

Clock = Callable[[], datetime]


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
    ) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Read the delivery log to its end, then tail it; start the scheduler task."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop the scheduler and the log reader; pending records stay incomplete (redelivered)."""
        raise NotImplementedError

    async def __aenter__(self) -> ReminderWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def process_event(self, event: Event, context: RecordContext) -> None:
        """Harness handler: schedule / cancel / remember; returns quickly (defers the record)."""
        raise NotImplementedError

    async def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Harness callback: make sure the delivery log is caught up before records arrive."""
        raise NotImplementedError

    async def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """Harness callback: forget pending reminders of revoked partitions after in-flight sends."""
        raise NotImplementedError

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    def health(self) -> WorkerHealth:
        raise NotImplementedError

    @property
    def pending_count(self) -> int:
        raise NotImplementedError

    @property
    def max_pending(self) -> int:
        raise NotImplementedError
