"""Delivery: one attempt at a due reminder (history check, claim, fence, the sender's post); its
outcome goes back to the scheduler.

The fence (argued in the package README), asked by the sender right before chat.postMessage: the
claim was read back, this owner owns the partition in the claim's epoch, the reminder is neither
cancelled nor replaced, and the post ends (client timeout) before the claim's deadline."""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from coffeebuddy.infra.kafka.consumer import Backoff
from coffeebuddy.infra.kafka.models import ReminderScheduledData, ReminderStatus
from coffeebuddy.infra.kafka.reminder_worker._decisions import FireStep, is_blocked
from coffeebuddy.infra.kafka.reminder_worker._sender import (
    PreparingSender,
    ReminderSender,
    SendOutcome,
    SendResult,
)

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.metrics import ReminderMetrics
    from coffeebuddy.infra.kafka.reminder_worker._changelog import Changelog
    from coffeebuddy.infra.kafka.reminder_worker._clock import Clock
    from coffeebuddy.infra.kafka.reminder_worker._dead_letter import DeadLetters
    from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
    from coffeebuddy.infra.kafka.reminder_worker._settings import ReminderSettings
    from coffeebuddy.infra.kafka.reminder_worker._state import ReminderState
    from coffeebuddy.infra.kafka.reminder_worker._tracing import DeliveryTracer

__all__ = ["Delivery", "Outcome"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")

S = ReminderStatus
R = TypeVar("R", bound=SendResult | None)


class Outcome(enum.StrEnum):
    """How an attempt ended; for RETRY and RATE_LIMITED `entry.next_at` says when to retry."""

    SETTLED = "settled"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    """Not settled; the recipient's other reminders wait until `entry.next_at` too."""
    CONFIGURATION = "configuration"
    """The sender's setup is broken: stop sending, keep the backlog, probe until it works."""
    ABANDONED = "abandoned"
    """No longer ours (revoked, or settled by another writer): nothing posted by this attempt."""


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class Delivery:
    """Runs attempts; holds no state of its own besides its collaborators."""

    def __init__(
        self,
        sender: ReminderSender,
        state: ReminderState,
        changelog: Changelog,
        settings: ReminderSettings,
        *,
        clock: Clock,
        dead_letters: DeadLetters,
        metrics: ReminderMetrics | None = None,
        tracer: DeliveryTracer | None = None,
    ) -> None:
        self._sender = sender
        self._prepare = sender.prepare if isinstance(sender, PreparingSender) else None
        self.prepares = self._prepare is not None
        """The sender prepares ahead of the due time (a `PreparingSender`)."""
        self._state = state
        self._changelog = changelog
        self._settings = settings
        self._now = clock.now
        self._wait_until = clock.wait_until
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._tracer = tracer
        self._retry = Backoff(settings.retry_initial_s, settings.retry_max_s)
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self.last_error: str | None = None
        """The configuration error of the last CONFIGURATION outcome."""

    async def attempt(self, entry: Pending, step: FireStep, at: float) -> Outcome:
        """History check (at `at`), claim (up to `claim_ahead_s` before `at`), post at `at` or
        later through the fence; never raises (an unexpected error is a retry)."""
        try:
            return await self._attempt(entry, step, at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception(
                "reminder attempt failed unexpectedly",
                extra=self._extra(entry, error_class=type(exc).__name__),
            )
            entry.next_at = self._now() + self._settings.retry_initial_s
            return Outcome.RETRY

    async def _attempt(self, entry: Pending, step: FireStep, at: float) -> Outcome:
        state = self._state.restored(entry.partition)
        if state is None or not self._state.owns(entry):
            return Outcome.ABANDONED
        epoch = state.epoch
        try:
            reminder = ReminderScheduledData.model_validate_json(entry.payload)
        except ValidationError as exc:
            self._state.skip_invalid(entry, exc)
            return Outcome.SETTLED
        skew = self._settings.clock_skew_s
        if step is FireStep.CHECK_HISTORY:
            await self._wait_until(at)  # not before the old claim's deadline plus the skew
            if not self._state.owns(entry, epoch):
                return Outcome.ABANDONED
            assert entry.claimed_at is not None
            found = await self._find_sent(entry, reminder, entry.claimed_at - skew)
            if found is not None and found.outcome is SendOutcome.SENT:
                log.info("earlier post found; not sent again", extra=self._extra(entry))
                self._state.count_drop(entry.kind, "duplicate")
                self._state.settle(entry, S.SENT, channel=found.channel, ts=found.ts)
                return Outcome.SETTLED
            if found is not None:
                return self._failure(entry, found)
            entry.needs_check = False
        if self._settings.prepare_ahead_s:
            await self.prepare(entry, reminder)  # slow calls before the claim, not after it
        if not self._state.owns(entry, epoch):
            return Outcome.ABANDONED
        offset = await self._state.claim(entry, epoch, self._now())
        # read the partition back past our claim: a claim another owner wrote before ours is
        # then applied to the entry (the first claim in the log wins; the later one backs off)
        read = await self._changelog.read_past(
            entry.partition, offset, self._settings.claim_start_window_s
        )
        if entry.claim_owner != self._state.worker_id or entry.claim_epoch != epoch:
            log.warning(
                "another owner claimed this reminder; waiting out its deadline, then checking",
                extra=self._extra(entry, outcome="fenced", claim_owner=entry.claim_owner),
            )
            entry.needs_check = True
            entry.next_at = (entry.claim_deadline or self._now()) + skew
            return Outcome.RETRY
        deadline = entry.claim_deadline
        assert deadline is not None
        await self._wait_until(at)
        timeout = self._settings.send_timeout_s
        consulted = False

        def fence() -> bool:
            nonlocal consulted
            consulted = True
            return (
                read
                and self._state.owns(entry, epoch)
                and not is_blocked(entry, state.runs.get(entry.run_id))
                and self._now() + timeout <= deadline
            )

        if not fence():
            if not self._state.owns(entry, epoch):
                return Outcome.ABANDONED
            if not is_blocked(entry, state.runs.get(entry.run_id)):
                log.info(
                    "claim too late to start the post before its deadline; claiming again",
                    extra=self._extra(entry, outcome="claim_expired"),
                )
            entry.next_at = self._now()
            return Outcome.RETRY  # cancelled or closed meanwhile: the scheduler drops it
        consulted = False
        result = await self._send(entry, reminder, fence)
        if result.outcome is SendOutcome.SENT:
            if not consulted:
                log.warning(
                    "the sender posted without checking the fence (ReminderSender.send must "
                    "call fence() right before posting)",
                    extra=self._extra(entry),
                )
            self._sent(entry, result)
            return Outcome.SETTLED
        if result.outcome is SendOutcome.FENCED:
            entry.attempts += 1
            delay = 0.0 if entry.attempts == 1 else self._retry.delay(entry.attempts - 1)
            log.info(
                "the fence refused the post (slow calls before it); claiming again in %.2f s",
                delay,
                extra=self._extra(entry, outcome="fenced"),
            )
            entry.next_at = min(self._now() + delay, entry.expires + 0.001)
            return Outcome.RETRY
        if result.outcome is SendOutcome.PERMANENT and result.dead_letter:
            await self._dead_letter(entry, reminder, result)
            return Outcome.SETTLED
        return self._failure(entry, result)

    async def prepare(self, entry: Pending, reminder: ReminderScheduledData | None = None) -> None:
        """The sender's preparation (Slack opens the DM channel), once per entry; best effort,
        bounded by the send timeout: a failure is logged at DEBUG, the send does the work."""
        if self._prepare is None or entry.prepared:
            return
        try:
            if reminder is None:
                reminder = ReminderScheduledData.model_validate_json(entry.payload)
            async with asyncio.timeout(self._settings.send_timeout_s):
                await self._prepare(reminder)
            entry.prepared = True
        except Exception as exc:
            log.debug(
                "preparing a reminder failed (%s); its send will do the work",
                type(exc).__name__,
                extra=self._extra(entry, error_class=type(exc).__name__),
            )

    async def _traced(
        self,
        name: str,
        entry: Pending,
        reminder: ReminderScheduledData,
        call: Callable[[], Awaitable[R]],
    ) -> R:
        """The sender's `call`, in a `name` span when tracing is on."""
        if self._tracer is None:
            return await call()
        with self._tracer.span(name, entry, reminder) as span:
            result = await call()
            self._tracer.record(span, result)
            return result

    async def _send(
        self, entry: Pending, reminder: ReminderScheduledData, fence: Callable[[], bool]
    ) -> SendResult:
        claim_time = _dt(entry.claimed_at or self._now())
        try:
            return await self._traced(
                "reminder.send",
                entry,
                reminder,
                lambda: self._sender.send(reminder, claim_time=claim_time, fence=fence),
            )
        except Exception as exc:
            log.warning(
                "sender raised %s; treated as ambiguous",
                type(exc).__name__,
                extra=self._extra(entry, error_class=type(exc).__name__),
            )
            return SendResult.ambiguous(type(exc).__name__)

    async def _find_sent(
        self, entry: Pending, reminder: ReminderScheduledData, since: float
    ) -> SendResult | None:
        try:
            return await self._traced(
                "reminder.find_sent",
                entry,
                reminder,
                lambda: self._sender.find_sent(reminder, since=_dt(since)),
            )
        except Exception as exc:
            log.warning(
                "find_sent raised %s",
                type(exc).__name__,
                extra=self._extra(entry, error_class=type(exc).__name__),
            )
            return SendResult.transient(type(exc).__name__)

    def _sent(self, entry: Pending, result: SendResult) -> None:
        lateness = self._now() - entry.due
        self._state.settle(entry, S.SENT, channel=result.channel, ts=result.ts)
        if self._metrics is not None:
            self._metrics.reminders_sent.labels(entry.kind).inc()
            self._metrics.reminder_lateness.labels(entry.kind).observe(max(0.0, lateness))
        log.info(
            "reminder sent", extra=self._extra(entry, outcome="sent", lateness_s=round(lateness, 3))
        )

    async def _dead_letter(
        self, entry: Pending, reminder: ReminderScheduledData, result: SendResult
    ) -> None:
        """A definite rejection of the message itself: nothing was posted. Park the reminder on
        the dead-letter topic, then record where (a replay is a fresh schedule)."""
        error = result.error or "permanent error"
        if self._metrics is not None:
            self._metrics.failed(entry.kind, result.outcome.value)
        log.error(
            "reminder rejected by the sender; dead-lettered",
            extra=self._extra(entry, outcome="dead_letter", error=error),
        )
        where = await self._dead_letters.publish(entry, reminder, error)
        if where is None:
            self._state.forget_claim(entry)
            return
        topic, partition, offset = where
        self._state.dead_letter(entry, error, topic, partition, offset)

    def _failure(self, entry: Pending, result: SendResult) -> Outcome:
        now = self._now()
        outcome = result.outcome
        if self._metrics is not None:
            self._metrics.failed(entry.kind, outcome.value)
        fields = self._extra(
            entry, outcome=outcome.value, error=result.error or "", error_class=outcome.value
        )
        if outcome is SendOutcome.PERMANENT:
            log.warning("recipient unreachable; reminder dropped", extra=fields)
            self._state.count_drop(entry.kind, "recipient_unreachable")
            self._state.settle(entry, S.DROPPED, reason="recipient_unreachable")
            return Outcome.SETTLED
        if outcome is SendOutcome.CONFIGURATION:
            log.error("sender configuration error; backlog kept, probing", extra=fields)
            entry.next_at = now
            self.last_error = result.error or "configuration error"
            return Outcome.CONFIGURATION
        entry.attempts += 1
        if outcome is SendOutcome.RATE_LIMITED:
            delay = result.retry_after if result.retry_after is not None else 1.0
            log.info("rate limited; retry after %.1f s", delay, extra=fields)
            delay = max(0.0, delay)
        else:
            if outcome in (SendOutcome.AMBIGUOUS, SendOutcome.SENT):
                entry.needs_check = True
            delay = self._retry.delay(entry.attempts, self._rng.random)
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            log.info("%s failure; retry in %.2f s", outcome.value, delay, extra=fields)
        # no retry after the expiry: wake just past it so the reminder is dropped as expired then
        entry.next_at = min(now + delay, entry.expires + 0.001)
        return Outcome.RATE_LIMITED if outcome is SendOutcome.RATE_LIMITED else Outcome.RETRY

    def _extra(self, entry: Pending, **more: Any) -> dict[str, Any]:
        return entry.log_extra(worker_id=self._state.worker_id, **more)
