"""The scheduler: prepares reminders about to fall due, fires due ones (one send slot each),
re-queues retries, tombstones settled state whose lifetime ended, and probes the sender while
its configuration is broken."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from coffeebuddy.infra.kafka.models import ReminderScheduledData
from coffeebuddy.infra.kafka.reminder_worker._attempt import AttemptOutcome, AttemptsMixin
from coffeebuddy.infra.kafka.reminder_worker._decisions import (
    FireStep,
    check_claim,
    decide_fire,
)
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._sender import SendOutcome, SendResult
from coffeebuddy.infra.kafka.reminder_worker._timers import backoff_delay

__all__ = ["SchedulerMixin"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")

_BATCH = 1000
"""Due reminders taken from the heap per scheduler round."""

_PREPARE_BACKLOG = 5000
"""Preparations waiting at most; past that a reminder is not prepared (its send does the work)."""


class SchedulerMixin(AttemptsMixin):
    _prober: asyncio.Task[None] | None = None
    _last_prune = 0.0

    async def _run_scheduler(self) -> None:
        while True:
            await self._sleep(await self._run_once())

    async def _run_once(self) -> float | None:
        """One round; returns seconds to the next due time (None: nothing waiting)."""
        now = self._now()
        if now - self._last_prune >= 1.0 or now < self._last_prune:
            self._last_prune = now
            self._prune(now)
        if not self._auth_ok:
            return 1.0
        # two stages: an entry leaves the heap `ahead` s before its time (prepared meanwhile)
        # and fires from the small `soon` heap `lead` s before its time (claim, then post at its
        # time); ahead and lead 0 are the plain schedule
        lead = self._cfg.claim_ahead
        prepare = self._prepare is not None and self._cfg.prepare_ahead > 0
        ahead = max(lead, self._cfg.prepare_ahead if prepare else 0.0)
        moved = self._heap.pop_due(now + ahead, self._is_live, _BATCH)
        for entry in moved:
            self._soon.push(entry, entry.next_at)
            if prepare:
                self._start_prepare(entry)
        batch = self._soon.pop_due(now + lead, self._is_live, _BATCH)
        if batch:
            for entry in batch:
                await self._fire(entry)
            return 0.0
        if len(moved) == _BATCH:
            return 0.0
        soon = self._soon.next_time(self._is_live)
        later = self._heap.next_time(self._is_live)
        times = [t - d for t, d in ((soon, lead), (later, ahead)) if t is not None]
        return max(0.0, min(times) - now) if times else None

    def _start_prepare(self, entry: Pending) -> None:
        if len(self._preparing) >= _PREPARE_BACKLOG:
            return
        task = asyncio.create_task(self._prepare_one(entry))
        self._preparing.add(task)
        task.add_done_callback(self._preparing.discard)

    async def _prepare_one(self, entry: Pending) -> None:
        """Best effort: a failure is logged at DEBUG and leaves the work to the send."""
        assert self._prepare is not None
        async with self._prepare_slots:
            if not self._owns(entry):
                return
            try:
                await self._prepare(ReminderScheduledData.model_validate_json(entry.payload))
            except Exception as exc:
                log.debug(
                    "preparing a reminder failed (%s); its send will do the work",
                    type(exc).__name__,
                    extra=self._extra(entry, error_class=type(exc).__name__),
                )

    def _prune(self, now: float) -> None:
        for user in [u for u, t in self._recipient_wait.items() if t <= now]:
            del self._recipient_wait[user]
        # settled state whose own lifetime ended: no redelivery can still need it
        for partition, key in self._store.due_for_pruning(now):
            self._tombstone(partition, key)

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        # at most 1 s: an injected clock may jump, and pruning runs about once a second
        timeout = 1.0 if seconds is None else min(max(seconds, 0.0), 1.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _fire(self, entry: Pending) -> None:
        state = self._store.get(entry.partition)
        if state is None or not self._owns(entry):
            return
        # decided as of the post's time: a reminder fires up to `claim_ahead` before it
        now = max(self._now(), entry.next_at)
        run = state.runs.get(entry.run_id)
        wait = 0.0
        if self._recipient_wait:
            wait = self._recipient_wait.get(self._recipient_of(entry), 0.0)
        claim = check_claim(
            entry, owner=self.worker_id, epoch=state.epoch, now=now, skew=self._cfg.clock_skew
        )
        step = decide_fire(entry, run=run, now=now, recipient_wait_until=wait, claim=claim)
        if step is FireStep.DROP_BLOCKED:
            reason = (run.blocks(entry.kind) if run is not None else None) or "cancelled"
            self._drop(entry, reason)
        elif step is FireStep.EXPIRE:
            log.info("reminder expired before it could be sent", extra=self._extra(entry))
            self._drop(entry, "expired")
        elif step is FireStep.WAIT_RECIPIENT:
            self._heap.push(entry, wait)
        elif step is FireStep.WAIT_FOREIGN_CLAIM:
            until = (entry.claim_deadline or now) + self._cfg.clock_skew
            log.info(
                "reminder claimed by a previous owner; waiting out its deadline",
                extra=self._extra(entry, claim_owner=entry.claim_owner, wait_s=until - now),
            )
            self._heap.push(entry, until)
        else:
            entry.in_flight = True
            await self._sends.acquire()  # the claim is written only once a send slot is ours
            task = asyncio.create_task(self._run_attempt(entry, step, now))
            task.add_done_callback(lambda _t: self._sends.release())
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _drop(self, entry: Pending, reason: str) -> None:
        self._count_drop(entry.kind, reason)
        status = "cancelled" if reason == "cancelled" else "dropped"
        fut = self._write_final(
            entry.partition,
            entry.reminder_id,
            entry.run_id,
            status,
            entry.keep_until,
            reason=reason,
        )
        completion = entry.cancel_after
        entry.cancel_after = None
        if completion is not None:
            self._complete_on(fut, completion)

    def _complete_on(self, fut: asyncio.Future[int], completion: Any) -> None:
        raise NotImplementedError

    def _after_attempt(self, entry: Pending, outcome: AttemptOutcome) -> None:
        """Re-queue an unsettled reminder, or hand over to a newer schedule / cancellation that
        arrived while the attempt ran."""
        entry.in_flight = False
        successor = entry.successor
        entry.successor = None
        state = self._store.get(entry.partition)
        owned = state is not None and self._owns(entry)
        if outcome is AttemptOutcome.SETTLED:
            if successor is not None:
                self._count_drop(successor[0].kind, "duplicate")
                successor[1].done()
            completion = entry.cancel_after
            entry.cancel_after = None
            if completion is not None:
                completion.done()
            return
        if not owned or state is None:
            return  # the partition's next owner restores it from the changelog
        if entry.cancel_after is not None:
            self._drop(entry, "cancelled")
            if successor is not None:
                successor[1].done()
            return
        if successor is not None:
            new, completion = successor
            self._count_drop(entry.kind, "superseded")
            state.pending[new.reminder_id] = new
            if entry.claimed_at is not None:
                # keep the old claim on the new entry: a post may have happened
                new.set_claim(
                    entry.claim_owner, entry.claim_epoch, entry.claimed_at, entry.claim_deadline
                )
                new.needs_check = entry.needs_check
            self._complete_on(
                self._write_entry(new, claimed=new.claimed_at is not None), completion
            )
            self._schedule(new, max(new.due, self._now()))
            return
        self._schedule(entry, entry.next_at)

    # ------------------------------------------------------------------ configuration probe

    def _configuration_failed(self, error: str | None) -> None:
        self._auth_error = error or "configuration error"
        if self._auth_ok:
            self._auth_ok = False
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe(), name="reminder-auth-probe")

    async def _probe(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            delay = backoff_delay(
                attempt, self._cfg.probe_initial, self._cfg.probe_max, self._rng.random
            )
            await asyncio.sleep(delay)
            try:
                result = await self._sender.check_auth()
            except Exception as exc:
                result = SendResult.transient(type(exc).__name__)
            if result.outcome is SendOutcome.SENT:
                log.info("sender configuration fixed; delivery resumes")
                self._auth_ok = True
                self._auth_error = None
                self._wake.set()
                return
            if result.outcome is SendOutcome.CONFIGURATION:
                self._auth_error = result.error or self._auth_error
            log.warning(
                "sender still not usable (%s: %s)",
                result.outcome.value,
                result.error or "",
                extra={"outcome": result.outcome.value, "error": result.error or ""},
            )
