"""The scheduler: fires due reminders (one send slot each), re-queues retries, tombstones
settled state whose lifetime ended, and probes the sender while its configuration is broken."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

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
        batch = self._heap.pop_due(now, self._is_live, _BATCH)
        if batch:
            for entry in batch:
                await self._fire(entry)
            return 0.0
        head = self._heap.next_time(self._is_live)
        return None if head is None else max(0.0, head - now)

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
        now = self._now()
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
            task = asyncio.create_task(self._run_attempt(entry, step))
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
