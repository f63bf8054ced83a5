"""The sender contract: how the worker hands a reminder to a DM channel (Slack lives elsewhere)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from coffeebuddy.infra.kafka.models import ReminderScheduledData

__all__ = ["Fence", "PreparingSender", "ReminderSender", "SendOutcome", "SendResult"]

Fence = Callable[[], bool]
"""Called by the sender immediately before each chat.postMessage: False means do not post."""


class SendOutcome(enum.StrEnum):
    """What happened to one send attempt; the worker decides retry / drop / dead-letter from it."""

    SENT = "sent"
    """Delivered; `channel` and `ts` identify the message."""
    RATE_LIMITED = "rate_limited"
    """Nothing was posted; try again after `retry_after` seconds (other reminders go on)."""
    TRANSIENT = "transient"
    """Nothing was posted (5xx before processing, connection refused): retry with backoff."""
    PERMANENT = "permanent"
    """Never deliverable: dropped; with `dead_letter=True` (the message itself was rejected:
    invalid_blocks, msg_too_long, no_text) the record goes to the dead-letter topic."""
    CONFIGURATION = "configuration"
    """Our setup is broken (invalid token, missing scope): stop sending, keep the backlog, probe."""
    AMBIGUOUS = "ambiguous"
    """The message may or may not have been posted (timeout, reset, fatal_error): check first."""
    FENCED = "fenced"
    """Nothing was posted: the fence said no (claim too old, partition moved, reminder cancelled
    or replaced); the worker claims again."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """Outcome of `ReminderSender.send` / `find_sent` / `check_auth`. Never carries secrets."""

    outcome: SendOutcome
    retry_after: float | None = None
    error: str | None = None
    channel: str | None = None
    ts: str | None = None
    dead_letter: bool = False

    @classmethod
    def sent(cls, channel: str | None = None, ts: str | None = None) -> SendResult:
        return cls(SendOutcome.SENT, channel=channel, ts=ts)

    @classmethod
    def rate_limited(cls, retry_after: float | None, error: str = "ratelimited") -> SendResult:
        return cls(SendOutcome.RATE_LIMITED, retry_after=retry_after, error=error)

    @classmethod
    def transient(cls, error: str, retry_after: float | None = None) -> SendResult:
        return cls(SendOutcome.TRANSIENT, retry_after=retry_after, error=error)

    @classmethod
    def permanent(cls, error: str, *, dead_letter: bool = False) -> SendResult:
        return cls(SendOutcome.PERMANENT, error=error, dead_letter=dead_letter)

    @classmethod
    def configuration(cls, error: str) -> SendResult:
        return cls(SendOutcome.CONFIGURATION, error=error)

    @classmethod
    def ambiguous(cls, error: str) -> SendResult:
        return cls(SendOutcome.AMBIGUOUS, error=error)

    @classmethod
    def fenced(cls) -> SendResult:
        return cls(SendOutcome.FENCED, error="fenced")

    @property
    def ok(self) -> bool:
        return self.outcome is SendOutcome.SENT


@runtime_checkable
class ReminderSender(Protocol):
    """Delivers reminders as DMs. Implementations classify every failure into a `SendResult`
    instead of raising (an exception escaping is treated as AMBIGUOUS)."""

    async def send(
        self, reminder: ReminderScheduledData, *, claim_time: datetime, fence: Fence
    ) -> SendResult:
        """Post the reminder once; `claim_time`: when the worker claimed it in its changelog.
        Call `fence()` immediately before every chat.postMessage (after any other call, such as
        conversations.open or a token lookup) and return `SendResult.fenced()` without posting
        when it says False: a post may only start while the claim is fresh."""

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        """Look for an earlier post of this reminder (e.g. conversations.history of the DM channel
        since `since`, matching block_id == reminder_id). Found -> SENT result with channel/ts;
        surely not there -> None; the check itself failed -> a non-SENT result (worker retries)."""

    async def check_auth(self) -> SendResult:
        """Probe credentials and scopes (auth.test): SENT healthy, CONFIGURATION still broken."""


@runtime_checkable
class PreparingSender(Protocol):
    """A sender that can get ready for a reminder before it falls due (Slack: open and cache the
    DM channel), so that only the post itself is left on the on-time path. Optional: the worker
    calls it when the sender has it, best effort (a failure only leaves the work to `send`)."""

    async def prepare(self, reminder: ReminderScheduledData) -> None: ...
