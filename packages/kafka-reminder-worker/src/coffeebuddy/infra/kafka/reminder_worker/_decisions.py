"""Pure decisions of the worker (no I/O, no clock): what to do with an event, a due reminder,
a claim found in the changelog. Each returns an enum; the worker carries it out."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from coffeebuddy.infra.kafka.reminder_worker._entry import Pending, RunMark

__all__ = [
    "ClaimCheck",
    "FireStep",
    "Lifetime",
    "ScheduleStep",
    "check_claim",
    "decide_fire",
    "decide_schedule",
    "is_blocked",
    "may_start_post",
]


class ScheduleStep(enum.StrEnum):
    """What a `reminder.scheduled` event does to the state."""

    DUPLICATE = "duplicate"
    """Already settled (sent / dropped / cancelled) or the same event again: nothing to write."""
    SUPERSEDED = "superseded"
    """An older event than the pending one: nothing to write."""
    CANCELLED = "cancelled"
    RUN_CANCELLED = "run_cancelled"
    RUN_CLOSED = "run_closed"
    EXPIRED = "expired"
    """Dropped: write the final state, then complete."""
    AFTER_ATTEMPT = "after_attempt"
    """A newer event while a send of the reminder is in flight: decided when the attempt ends."""
    SCHEDULE = "schedule"
    """New or replacing a pending one (a kept claim moves to the new one): write, complete."""


class FireStep(enum.StrEnum):
    """What a due reminder does next."""

    DROP_BLOCKED = "drop_blocked"
    EXPIRE = "expire"
    WAIT_RECIPIENT = "wait_recipient"
    WAIT_FOREIGN_CLAIM = "wait_foreign_claim"
    CHECK_HISTORY = "check_history"
    CLAIM = "claim"


class ClaimCheck(enum.StrEnum):
    """A claim of the reminder seen in the changelog, judged by the current owner."""

    NONE = "none"
    OURS = "ours"
    """Our own claim in this ownership epoch: we know whether a post may have started."""
    FOREIGN_LIVE = "foreign_live"
    """Another owner (or our own earlier epoch) may still start or finish a post: wait."""
    FOREIGN_EXPIRED = "foreign_expired"
    """Its deadline plus the skew margin has passed: check the history before sending."""


@dataclass(frozen=True, slots=True)
class Lifetime:
    """The reminder's own lifetime: `expires` ends sending, `keep_until` ends its state."""

    expires: float
    keep_until: float

    @classmethod
    def of(cls, due: float, expires_at: float | None, late_grace: float, margin: float) -> Lifetime:
        expires = expires_at if expires_at is not None else due + late_grace
        return cls(expires, max(expires, due + late_grace) + margin)


def decide_schedule(
    *,
    settled: bool,
    run: RunMark | None,
    kind: str,
    existing: Pending | None,
    event_id: str,
    event_time: float,
    now: float,
    expires: float,
) -> ScheduleStep:
    """Order matters: a final state beats everything, then cancellations, then expiry."""
    if settled or (existing is not None and existing.event_id == event_id):
        return ScheduleStep.DUPLICATE
    if existing is not None and event_time < existing.event_time:
        return ScheduleStep.SUPERSEDED
    reason = run.blocks(kind) if run is not None else None
    if reason is not None:
        return ScheduleStep(reason)
    if now >= expires:
        return ScheduleStep.EXPIRED
    if existing is not None and existing.in_flight:
        return ScheduleStep.AFTER_ATTEMPT
    return ScheduleStep.SCHEDULE


def check_claim(entry: Pending, *, owner: str, epoch: int, now: float, skew: float) -> ClaimCheck:
    """Judge the latest claim recorded for `entry` (see docs: the fence)."""
    if entry.claimed_at is None:
        return ClaimCheck.NONE
    if entry.claim_owner == owner and entry.claim_epoch == epoch:
        return ClaimCheck.OURS
    deadline = entry.claim_deadline if entry.claim_deadline is not None else entry.claimed_at
    if now < deadline + skew:
        return ClaimCheck.FOREIGN_LIVE
    return ClaimCheck.FOREIGN_EXPIRED


def is_blocked(entry: Pending, run: RunMark | None) -> bool:
    """Cancelled or superseded while pending or in flight, or ruled out by its run's mark."""
    if entry.cancel_after is not None or entry.successor is not None:
        return True
    return run is not None and run.blocks(entry.kind) is not None


def decide_fire(
    entry: Pending,
    *,
    run: RunMark | None,
    now: float,
    recipient_wait_until: float,
    claim: ClaimCheck,
) -> FireStep:
    """A due reminder: drop, wait, check the history or claim and send."""
    if is_blocked(entry, run):
        return FireStep.DROP_BLOCKED
    if now > entry.expires:
        return FireStep.EXPIRE
    if recipient_wait_until > now:
        return FireStep.WAIT_RECIPIENT
    if claim is ClaimCheck.FOREIGN_LIVE:
        return FireStep.WAIT_FOREIGN_CLAIM
    if claim is ClaimCheck.FOREIGN_EXPIRED or (claim is ClaimCheck.OURS and entry.needs_check):
        return FireStep.CHECK_HISTORY
    return FireStep.CLAIM


def may_start_post(
    *, owned: bool, epoch_now: int, claim_epoch: int, now: float, deadline: float, timeout: float
) -> bool:
    """The last check before chat.postMessage: still the owner in the claim's epoch, and a post
    started now ends (client timeout) before the claim's deadline."""
    return owned and epoch_now == claim_epoch and now + timeout <= deadline
