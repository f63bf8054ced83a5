"""One delivery attempt: history check, claim, fence, chat.postMessage, outcome."""

from __future__ import annotations

import asyncio
import enum
import logging
from datetime import UTC, datetime
from typing import Any

from coffeebuddy.infra.kafka.models import ReminderScheduledData
from coffeebuddy.infra.kafka.reminder_worker._core import WorkerCore
from coffeebuddy.infra.kafka.reminder_worker._decisions import FireStep, is_blocked, may_start_post
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._sender import SendOutcome, SendResult
from coffeebuddy.infra.kafka.reminder_worker._timers import backoff_delay

__all__ = ["AttemptOutcome", "AttemptsMixin"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")


class AttemptOutcome(enum.StrEnum):
    SETTLED = "settled"
    RETRY = "retry"
    """Not settled; `entry.next_at` says when to try again."""
    ABANDONED = "abandoned"
    """No longer ours (revoked, or settled by another writer): nothing posted by this attempt."""


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class AttemptsMixin(WorkerCore):
    """Delivery attempts; the scheduler starts one per due reminder after taking a send slot."""

    async def _run_attempt(self, entry: Pending, step: FireStep, at: float = 0.0) -> None:
        try:
            outcome = await self._deliver(entry, step, at)
        except asyncio.CancelledError:
            entry.in_flight = False
            raise
        except Exception as exc:
            log.exception(
                "reminder attempt failed unexpectedly",
                extra=self._extra(entry, error_class=type(exc).__name__),
            )
            entry.next_at = self._now() + self._cfg.retry_initial
            outcome = AttemptOutcome.RETRY
        self._after_attempt(entry, outcome)

    async def _deliver(self, entry: Pending, step: FireStep, at: float = 0.0) -> AttemptOutcome:
        """History check (at `at`), claim (up to `claim_ahead` before `at`), fence, post at `at`
        or later, outcome."""
        state = self._store.get(entry.partition)
        if state is None or not self._owns(entry):
            return AttemptOutcome.ABANDONED
        epoch = state.epoch
        reminder = ReminderScheduledData.model_validate_json(entry.payload)
        if step is FireStep.CHECK_HISTORY:
            await self._wait_until(at)  # not before the old claim's deadline plus the skew
            if not self._owns(entry, epoch):
                return AttemptOutcome.ABANDONED
            assert entry.claimed_at is not None
            found = await self._find_sent(entry, reminder, entry.claimed_at - self._cfg.clock_skew)
            if found is not None and found.outcome is SendOutcome.SENT:
                log.info("earlier post found; not sent again", extra=self._extra(entry))
                self._count_drop(entry.kind, "duplicate")
                await self._settle_sent(entry, found, count=False)
                return AttemptOutcome.SETTLED
            if found is not None:
                return self._handle_failure(entry, found)
            entry.needs_check = False
            if not self._owns(entry, epoch):
                return AttemptOutcome.ABANDONED
        # claim right before the post, for this owner and epoch, with a deadline
        now = self._now()
        entry.set_claim(self.worker_id, epoch, now, now + self._cfg.claim_ttl)
        offset = await self._write_entry(entry, claimed=True)
        # read the partition back past our claim: a claim another owner wrote before ours is
        # then applied to the entry (the first claim in the log wins; the later one backs off)
        read = await self._changelog.read_past(
            entry.partition, offset, self._cfg.claim_start_window
        )
        if entry.claim_owner != self.worker_id or entry.claim_epoch != epoch:
            log.warning(
                "another owner claimed this reminder; waiting out its deadline, then checking",
                extra=self._extra(entry, outcome="fenced", claim_owner=entry.claim_owner),
            )
            entry.needs_check = True
            deadline = entry.claim_deadline or self._now()
            entry.next_at = deadline + self._cfg.clock_skew
            return AttemptOutcome.RETRY
        assert entry.claim_deadline is not None
        await self._wait_until(at)
        if is_blocked(entry, state.runs.get(entry.run_id)):
            return AttemptOutcome.RETRY  # cancelled while claimed ahead: nothing posted
        if not may_start_post(
            owned=read and self._owns(entry, epoch),
            epoch_now=state.epoch,
            claim_epoch=epoch,
            now=self._now(),
            deadline=entry.claim_deadline,
            timeout=self._cfg.send_timeout,
        ):
            if not self._owns(entry, epoch):
                return AttemptOutcome.ABANDONED
            log.info(
                "claim too late to start the post before its deadline; claiming again",
                extra=self._extra(entry, outcome="claim_expired"),
            )
            entry.next_at = self._now()
            return AttemptOutcome.RETRY
        try:
            result = await self._sender.send(reminder, claim_time=_dt(entry.claimed_at or now))
        except Exception as exc:
            log.warning(
                "sender raised %s; treated as ambiguous",
                type(exc).__name__,
                extra=self._extra(entry, error_class=type(exc).__name__),
            )
            result = SendResult.ambiguous(type(exc).__name__)
        if result.outcome is SendOutcome.SENT:
            await self._settle_sent(entry, result)
            return AttemptOutcome.SETTLED
        if result.outcome is SendOutcome.PERMANENT and result.dead_letter:
            await self._dead_letter(entry, result)
            return AttemptOutcome.SETTLED
        return self._handle_failure(entry, result)

    async def _find_sent(
        self, entry: Pending, reminder: ReminderScheduledData, since: float
    ) -> SendResult | None:
        try:
            return await self._sender.find_sent(reminder, since=_dt(since))
        except Exception as exc:
            log.warning(
                "find_sent raised %s",
                type(exc).__name__,
                extra=self._extra(entry, error_class=type(exc).__name__),
            )
            return SendResult.transient(type(exc).__name__)

    async def _settle_sent(self, entry: Pending, result: SendResult, *, count: bool = True) -> None:
        sent_at = self._now()
        fut = self._write_final(
            entry.partition,
            entry.reminder_id,
            entry.run_id,
            "sent",
            entry.keep_until,
            channel=result.channel,
            ts=result.ts,
        )
        if count:
            lateness = sent_at - entry.due
            if self._metrics is not None:
                self._metrics.reminders_sent.labels(entry.kind).inc()
                self._metrics.reminder_lateness.labels(entry.kind).observe(max(0.0, lateness))
            log.info(
                "reminder sent",
                extra=self._extra(entry, outcome="sent", lateness_s=round(lateness, 3)),
            )
        del fut  # acknowledged in the background; the claim covers a crash before it lands

    async def _dead_letter(self, entry: Pending, result: SendResult) -> None:
        """A definite rejection of the message itself: nothing was posted. Release the claim
        (tombstone: a replay is fresh) and park the reminder on the dead-letter topic."""
        if self._metrics is not None:
            self._metrics.failed(entry.kind, result.outcome.value)
        log.error(
            "reminder rejected by the sender; dead-lettered",
            extra=self._extra(entry, outcome="dead_letter", error=result.error or ""),
        )
        state = self._store.get(entry.partition)
        if state is not None:
            self._store.forget(state, entry.reminder_id)
            self._pending_changed()
        await self._tombstone(entry.partition, entry.reminder_id)
        await self._publish_dead_letter(entry, result.error or "permanent error")

    async def _publish_dead_letter(self, entry: Pending, error: str) -> None:
        raise NotImplementedError

    def _handle_failure(self, entry: Pending, result: SendResult) -> AttemptOutcome:
        now = self._now()
        outcome = result.outcome
        if self._metrics is not None:
            self._metrics.failed(entry.kind, outcome.value)
        fields: dict[str, Any] = self._extra(
            entry, outcome=outcome.value, error=result.error or "", error_class=outcome.value
        )
        if outcome is SendOutcome.PERMANENT:
            log.warning("recipient unreachable; reminder dropped", extra=fields)
            self._count_drop(entry.kind, "recipient_unreachable")
            self._write_final(
                entry.partition,
                entry.reminder_id,
                entry.run_id,
                "dropped",
                entry.keep_until,
                reason="recipient_unreachable",
            )
            return AttemptOutcome.SETTLED
        if outcome is SendOutcome.CONFIGURATION:
            log.error("sender configuration error; backlog kept, probing", extra=fields)
            entry.next_at = now
            self._configuration_failed(result.error)
            return AttemptOutcome.RETRY
        entry.attempts += 1
        if outcome is SendOutcome.RATE_LIMITED:
            delay = result.retry_after if result.retry_after is not None else 1.0
            until = now + max(0.0, delay)
            recipient = self._recipient_of(entry)
            self._recipient_wait[recipient] = max(until, self._recipient_wait.get(recipient, 0.0))
            entry.next_at = until
            log.info("rate limited; retry after %.1f s", delay, extra=fields)
        else:
            if outcome is SendOutcome.AMBIGUOUS or outcome is SendOutcome.SENT:
                entry.needs_check = True
            delay = backoff_delay(
                entry.attempts, self._cfg.retry_initial, self._cfg.retry_max, self._rng.random
            )
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            entry.next_at = now + delay
            log.info("%s failure; retry in %.2f s", outcome.value, delay, extra=fields)
        # no retry after the expiry: wake just past it so the reminder is dropped as expired then
        entry.next_at = min(entry.next_at, entry.expires + 0.001)
        return AttemptOutcome.RETRY

    def _recipient_of(self, entry: Pending) -> str:
        return ReminderScheduledData.model_validate_json(entry.payload).recipient_user_id

    def _configuration_failed(self, error: str | None) -> None:
        raise NotImplementedError

    def _after_attempt(self, entry: Pending, outcome: AttemptOutcome) -> None:
        raise NotImplementedError
