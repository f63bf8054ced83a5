"""In-memory schedule entries: one compact `Pending` per unsettled reminder, run marks."""

from __future__ import annotations

import json
import sys
from typing import Any, overload

__all__ = ["LAST_CALL", "Pending", "RunMark"]

LAST_CALL = "last_call"


class _Flag:
    """A bool attribute kept as one bit of the entry's `_flags` (three flags, one slot)."""

    def __init__(self, bit: int, doc: str) -> None:
        self._bit = bit
        self.__doc__ = doc

    @overload
    def __get__(self, entry: None, owner: type[Pending]) -> _Flag: ...
    @overload
    def __get__(self, entry: Pending, owner: type[Pending]) -> bool: ...
    def __get__(self, entry: Pending | None, owner: type[Pending]) -> bool | _Flag:
        return self if entry is None else bool(entry._flags & self._bit)

    def __set__(self, entry: Pending, value: bool) -> None:
        entry._flags = entry._flags | self._bit if value else entry._flags & ~self._bit


def _compact_id(event_id: str) -> int | str:
    """A canonical UUID string as its int (44 bytes instead of 85); anything else as is."""
    if len(event_id) == 36 and event_id[8] == event_id[13] == event_id[18] == event_id[23] == "-":
        digits = event_id.replace("-", "")
        try:
            value = int(digits, 16)
        except ValueError:
            return event_id
        if f"{value:032x}" == digits:  # canonical: lower-case hex, no sign or underscore
            return value
    return event_id


class Pending:
    """One reminder waiting in the worker, restored from or written to the changelog.

    Kept small (<= 1 KB at 100k pending, heap and dict slots included): the reminder data stays
    JSON bytes (`payload`) until it fires; the claim (`claim_*`: its latest in the changelog) is
    one slot, empty for most, and the three flags share one."""

    __slots__ = (
        "_claim",
        "_flags",
        "attempts",
        "cancel_after",
        "due",
        "event_key",
        "event_time",
        "expires",
        "heap_seq",
        "keep_until",
        "kind",
        "next_at",
        "origin_offset",
        "partition",
        "payload",
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
        self._claim: tuple[str | None, int | None, float | None, float | None] | None = None
        self._flags = 0
        self.cancel_after: Any = None
        self.successor: tuple[Pending, Any] | None = None
        self.traceparent: bytes | None = None  # the scheduling record's, when tracing is on
        self.origin_offset = -1  # of the scheduling record in the input partition
        self.state_offset = -1  # of the changelog record it was restored from

    needs_check = _Flag(1, "A post of it may have happened: ask the sender before posting again.")
    prepared = _Flag(2, "The sender prepared it ahead (Slack: its DM channel is open).")
    in_flight = _Flag(4, "An attempt of it is running.")

    def set_claim(
        self, owner: str | None, epoch: int | None, claimed_at: float | None, deadline: float | None
    ) -> None:
        claim = (owner, epoch, claimed_at, deadline)
        self._claim = None if claim == (None, None, None, None) else claim

    @property
    def claim_owner(self) -> str | None:
        return None if self._claim is None else self._claim[0]

    @property
    def claim_epoch(self) -> int | None:
        return None if self._claim is None else self._claim[1]

    @property
    def claimed_at(self) -> float | None:
        return None if self._claim is None else self._claim[2]

    @property
    def claim_deadline(self) -> float | None:
        return None if self._claim is None else self._claim[3]

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
        if isinstance(key, str):
            return key
        h = f"{key:032x}"  # as str(uuid.UUID(int=key)), at a third of its cost
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

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
