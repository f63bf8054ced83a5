"""The deployable worker: harness + producer + ReminderWorker + SlackDMSender + HTTP probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from prometheus_client import REGISTRY, CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaConnectionError, KafkaSettings, check_connection
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness
from coffeebuddy.infra.kafka.metrics import KafkaMetrics, ReminderMetrics
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.reminder_worker import ReminderWorker
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_DLQ_TOPIC,
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_WORKER_GROUP,
    RUN_EVENTS_DLQ_TOPIC,
    RUN_EVENTS_TOPIC,
    TopicConfig,
)
from coffeebuddy.services.reminder_worker._http import Probe, ProbeServer
from coffeebuddy.services.reminder_worker._kafka_probe import KafkaProbe
from coffeebuddy.services.reminder_worker._sender import SlackDMSender
from coffeebuddy.services.reminder_worker._settings import ServiceSettings

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FORCED",
    "EXIT_KAFKA",
    "EXIT_OK",
    "EXIT_TOPICS",
    "REQUIRED_TOPICS",
    "ReminderWorkerService",
]

log = logging.getLogger("coffeebuddy.reminder_worker.service")

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_KAFKA = 3
EXIT_TOPICS = 4
EXIT_FORCED = 130

REQUIRED_TOPICS: tuple[TopicConfig, ...] = (
    REMINDER_EVENTS_TOPIC,
    RUN_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_EVENTS_DLQ_TOPIC,
    RUN_EVENTS_DLQ_TOPIC,
)


async def missing_topics(settings: KafkaSettings, topics: Sequence[TopicConfig]) -> list[str]:
    """Names of `topics` the cluster does not have (metadata request through the admin client)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**settings.admin_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [t.name for t in topics if t.name not in existing]


class _Stopped(Exception):  # noqa: N818 - a signal inside this module, not an error
    """A stop signal came during a start-up step."""


class ReminderWorkerService:
    """Runs the reminder worker until a signal (or `request_stop()`), then drains within budget."""

    def __init__(
        self,
        settings: ServiceSettings,
        kafka: KafkaSettings,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.registry = REGISTRY if registry is None else registry
        self.reminder_metrics = ReminderMetrics(self.registry)
        self.kafka_metrics = KafkaMetrics(self.registry)
        self._stop = asyncio.Event()
        self._signals = 0
        self._started = False
        self._harness: KafkaConsumerHarness | None = None
        self._worker: ReminderWorker | None = None
        self._http: ProbeServer | None = None
        self._kafka_probe = KafkaProbe(kafka)
        self._bind_ready_metrics()

    def _bind_ready_metrics(self) -> None:
        """The scraped readiness gauges say what /readyz says, computed at scrape time: the
        service owns them (and /readyz); the worker only reports its state."""
        self.reminder_metrics.worker_ready.set_function(lambda: 1 if self.ready().ok else 0)
        self.reminder_metrics.slack_auth_ok.set_function(
            lambda: 1 if self.ready().checks["slack_auth"] else 0
        )

    def live(self) -> Probe:
        harness = self._harness
        if harness is None or not self._started:
            return Probe(True, "starting", {"poll_loop": True})
        status = harness.health()
        return Probe(bool(status.live), str(status.detail), {"poll_loop": bool(status.live)})

    def ready(self) -> Probe:
        harness, worker, started = self._harness, self._worker, self._started
        checks = {
            "kafka": self._kafka_probe.ok,
            "consumer_assigned": False,
            "delivery_log_loaded": False,
            "slack_auth": False,
        }
        details = [] if self._kafka_probe.ok else [f"kafka: {self._kafka_probe.problem}"]
        if harness is not None and started:
            status = harness.health()
            checks["consumer_assigned"] = bool(status.ready)
            if not status.ready:
                details.append(f"consumer: {status.detail}")
        else:
            details.append("consumer: not started")
        if worker is not None and started:
            health = worker.health()
            checks["delivery_log_loaded"] = bool(health.delivery_log_caught_up)
            checks["slack_auth"] = bool(health.slack_auth_ok)
            if not health.ready:
                details.append(f"worker: {health.detail}")
        else:
            details.append("worker: not started")
        if not checks["slack_auth"]:
            details.append("slack: auth.test not passing (check SLACK_BOT_TOKEN and its scopes)")
        if self._stop.is_set():
            details.append("draining")
        ok = all(checks.values()) and not self._stop.is_set()
        return Probe(ok, "; ".join(details) or "ready", checks)

    @property
    def http_port(self) -> int | None:
        return self._http.bound_port if self._http else None

    def request_stop(self) -> None:
        """First call: drain. Second call (second signal): exit at once.

        The service's one signal handler, not the harness's `install_signal_handlers`: signals
        must work during start-up, before the harness exists, and the drain covers the worker
        and the producer too.
        """
        self._signals += 1
        if self._signals == 1:
            log.info("stop requested: draining (budget %.0f s)", self.settings.pod.drain_timeout_s)
            self._stop.set()
        else:
            log.error("second stop signal: exiting now without draining")
            logging.shutdown()
            os._exit(EXIT_FORCED)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def _unless_stopped(self, work: Awaitable[T]) -> T:
        """Run a start-up step; cancel it and raise `_Stopped` when a stop signal comes first."""
        task = asyncio.ensure_future(work)
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stop.cancel()
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise _Stopped

    async def run(self) -> int:
        """Start everything, serve until stopped, drain; returns the process exit code."""
        log.info("connecting to Kafka at %s", ", ".join(self.kafka.bootstrap_servers))
        try:
            try:
                await self._unless_stopped(check_connection(self.kafka, timeout=15.0))
            except KafkaConnectionError as exc:
                log.error("cannot reach Kafka: %s", exc)
                return EXIT_KAFKA
            missing = await self._unless_stopped(missing_topics(self.kafka, REQUIRED_TOPICS))
        except _Stopped:
            log.info("stopped during start-up; nothing to drain")
            return EXIT_OK
        if missing:
            log.error(
                "missing Kafka topics: %s. Provision them from the catalog with "
                "`coffeebuddy-kafka apply --env <dev|staging|prod>` (same KAFKA_* settings), "
                "then start the worker again.",
                ", ".join(missing),
            )
            return EXIT_TOPICS
        self._http = ProbeServer(
            live=self.live,
            ready=self.ready,
            registry=self.registry,
            host=self.settings.pod.http_host,
            port=self.settings.pod.http_port,
        )
        await self._http.start()
        log.info("http probes and metrics on port %s", self._http.bound_port)
        assert self.settings.slack_bot_token is not None  # the settings require it
        sender = SlackDMSender.create(
            self.settings.slack_bot_token,
            base_url=self.settings.slack_api_base_url,
            timeout=self.settings.slack.timeout_s,
            metrics=self.reminder_metrics,
            # a connection per send slot, plus the worker's few DM-channel preparations
            max_connections=self.settings.reminder.max_concurrent_sends + 8,
        )
        kafka_task = asyncio.create_task(self._kafka_probe.run(self._stop), name="kafka-probe")
        code = EXIT_OK
        try:
            code = await self._run_kafka(sender)
        finally:
            kafka_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await kafka_task
            await sender.close()
            await self._http.stop()
        log.info("reminder worker stopped (exit code %d)", code)
        return code

    async def _run_kafka(self, sender: SlackDMSender) -> int:
        producer = KafkaEventProducer(self.kafka, metrics=self.kafka_metrics)
        await producer.start()
        worker = self._worker = ReminderWorker(
            sender,
            producer,
            self.settings.reminder,
            self.kafka,
            metrics=self.reminder_metrics,
            kafka_metrics=self.kafka_metrics,
        )
        harness: KafkaConsumerHarness | None = None
        run_task: asyncio.Task[None] | None = None

        async def drain() -> None:
            """Stop consuming (commit what completed), stop the worker, flush the producer."""
            if harness is not None:
                await harness.stop()
            if run_task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await run_task
            await worker.stop()
            report = await producer.close()
            if getattr(report, "undelivered", 0):
                log.error("producer closed with %d undelivered records", report.undelivered)

        code = EXIT_OK
        try:
            await worker.start()
            harness = self._harness = KafkaConsumerHarness(
                self.kafka,
                [REMINDER_EVENTS_TOPIC, RUN_EVENTS_TOPIC],
                REMINDER_WORKER_GROUP,
                worker.process_event,
                producer=producer,
                metrics=self.kafka_metrics,
                max_incomplete_total=worker.max_pending,
                on_assign=worker.on_assign,
                on_revoke=worker.on_revoke,
                stop_timeout=max(1.0, self.settings.pod.drain_timeout_s - 3.0),
            )
            run_task = asyncio.create_task(harness.run(), name="consumer-harness")
            self._started = True
            stop_task = asyncio.create_task(self._stop.wait(), name="stop-signal")
            done, _ = await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            if run_task in done and not self._stop.is_set():
                exc = run_task.exception()
                log.error("consumer harness ended unexpectedly: %r", exc)
                code = EXIT_FAILED
            self._stop.set()
        finally:
            budget = self.settings.pod.drain_timeout_s
            try:
                await asyncio.wait_for(drain(), budget)
            except TimeoutError:
                log.error(
                    "drain did not finish within WORKER_DRAIN_TIMEOUT_S=%.0f s; "
                    "unfinished reminders are redelivered to the next owner",
                    budget,
                )
                code = code or EXIT_FAILED
        return code
