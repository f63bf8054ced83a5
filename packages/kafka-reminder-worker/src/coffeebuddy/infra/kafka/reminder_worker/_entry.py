"""In-memory schedule entries: one compact `Pending` per unsettled reminder, run marks."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

__all__ = ["LAST_CALL", "Pending", "RunMark"]

LAST_CALL = "last_call"


def _compact_id(event_id: str) -> int | str:
    """A canonical UUID string as its int (44 bytes instead of 85); anything else as is."""
    if len(event_id) == 36:
        try:
            value = uuid.UUID(event_id)
        except ValueError:
            return event_id
        if str(value) == event_id:
            return value.int
    return event_id


class Pending:
    """One reminder waiting in the worker, restored from or written to the changelog.

    Kept small (<= 1 KB at 100k pending, heap and dict slots included): the reminder data stays
    JSON bytes (`payload`) until it fires. `claim_*`: its latest claim in the changelog."""

    __slots__ = (
        "attempts",
        "cancel_after",
        "claim_deadline",
        "claim_epoch",
        "claim_owner",
        "claimed_at",
        "due",
        "event_key",
        "event_time",
        "expires",
        "heap_seq",
        "in_flight",
        "keep_until",
        "kind",
        "needs_check",
        "next_at",
        "origin_offset",
        "partition",
        "payload",
        "prepared",
        "reminder_id",
        "run_id",
        "source",
        "state_offset",
        "successor",
        "traceparent",
    )

    def __init__(
        self,
        reminder_id: str,
        run_id: str,
        kind: str,
        due: float,
        expires: float,
        keep_until: float,
        payload: bytes,
        event_id: str,
        event_time: float,
        partition: int,
    ) -> None:
        self.reminder_id = reminder_id
        self.run_id = run_id
        self.kind = sys.intern(kind)  # one shared string per kind (there are two)
        self.due = due
        self.expires = expires
        self.keep_until = keep_until
        self.payload = payload
        self.event_key = _compact_id(event_id)
        self.event_time = event_time
        self.partition = partition
        self.source = ""  # the scheduling event's CloudEvents source (interned)
        self.attempts = 0
        self.next_at = due
        self.heap_seq = -1
        self.claim_owner: str | None = None
        self.claim_epoch: int | None = None
        self.claimed_at: float | None = None
        self.claim_deadline: float | None = None
        self.needs_check = False
        self.prepared = False  # the sender prepared it ahead (Slack: its DM channel is open)
        self.in_flight = False
        self.cancel_after: Any = None
        self.successor: tuple[Pending, Any] | None = None
        self.traceparent: bytes | None = None  # the scheduling record's, when tracing is on
        self.origin_offset = -1  # of the scheduling record in the input partition
        self.state_offset = -1  # of the changelog record it was restored from

    def set_claim(
        self, owner: str | None, epoch: int | None, claimed_at: float | None, deadline: float | None
    ) -> None:
        self.claim_owner = owner
        self.claim_epoch = epoch
        self.claimed_at = claimed_at
        self.claim_deadline = deadline

    def take_claim(self, other: Pending) -> None:
        """Carry over `other`'s claim, if any: a post of it may have happened."""
        if other.claimed_at is not None:
            self.set_claim(
                other.claim_owner, other.claim_epoch, other.claimed_at, other.claim_deadline
            )
            self.needs_check = other.needs_check

    def log_extra(self, **more: Any) -> dict[str, Any]:
        """The reminder's ids for a log line's `extra`, plus `more`."""
        return {
            "run_id": self.run_id,
            "reminder_id": self.reminder_id,
            "event_id": self.event_id,
            "partition": self.partition,
            **more,
        }

    @property
    def recipient(self) -> str:
        """The DM's recipient (rate limits are per recipient), read from the payload when a rate
        limit asks: a copy kept per entry would cost ~70 bytes of each pending reminder."""
        try:
            value = json.loads(self.payload).get("recipient_user_id")
        except (ValueError, AttributeError):  # a bad payload fails, counted, when it fires
            return ""
        return value if isinstance(value, str) else ""

    @property
    def event_id(self) -> str:
        """The schedule event's CloudEvents id (kept as a 128-bit int when it is a UUID)."""
        key = self.event_key
        return key if isinstance(key, str) else str(uuid.UUID(int=key))

    def __repr__(self) -> str:
        return (
            f"Pending(reminder_id={self.reminder_id!r}, run_id={self.run_id!r}, "
            f"partition={self.partition}, due={self.due})"
        )


class RunMark:
    """A closed and / or cancelled run, remembered until `keep_until` (event time + memory)."""

    __slots__ = ("cancelled", "closed", "keep_until")

    def __init__(self, keep_until: float, closed: bool = False, cancelled: bool = False) -> None:
        self.closed = closed
        self.cancelled = cancelled
        self.keep_until = keep_until

    def blocks(self, kind: str) -> str | None:
        """The drop reason for a reminder of `kind` of this run, or None."""
        if self.cancelled:
            return "run_cancelled"
        if self.closed and kind == LAST_CALL:
            return "run_closed"
        return None

    def merge(self, closed: bool, cancelled: bool, keep_until: float) -> None:
        """What the run's marks say together (a mark never forgets: closed and cancelled)."""
        self.closed = self.closed or closed
        self.cancelled = self.cancelled or cancelled
        self.keep_until = max(self.keep_until, keep_until)
