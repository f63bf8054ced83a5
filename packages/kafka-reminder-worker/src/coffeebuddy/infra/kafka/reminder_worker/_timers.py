"""Pure scheduling state: compact pending entries, a lazy-deletion timer heap, cancel memory."""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "CancellationMemory",
    "Pending",
    "TimerHeap",
    "backoff_delay",
]

LAST_CALL = "last_call"


class Pending:
    """One reminder waiting in the worker. Kept small: at 100k pending the target is <= 1 KB each.

    `payload` is the reminder data as JSON bytes (far smaller than a pydantic model), decoded
    again only when the reminder fires.
    """

    __slots__ = (
        "attempts",
        "claimed_at",
        "completion",
        "due",
        "event_id",
        "event_time",
        "expires",
        "heap_seq",
        "in_flight",
        "kind",
        "needs_check",
        "next_at",
        "payload",
        "recipient",
        "reminder_id",
        "run_id",
        "successor",
        "tp",
        "traceparent",
    )

    def __init__(
        self,
        reminder_id: str,
        run_id: str,
        kind: str,
        recipient: str,
        due: float,
        expires: float,
        payload: bytes,
        event_id: str,
        event_time: float,
        completion: Any,
        tp: Any,
    ) -> None:
        self.reminder_id = reminder_id
        self.run_id = run_id
        self.kind = kind
        self.recipient = recipient
        self.due = due
        self.expires = expires
        self.payload = payload
        self.event_id = event_id
        self.event_time = event_time
        self.completion = completion
        self.tp = tp
        self.attempts = 0
        self.next_at = due
        self.heap_seq = -1
        self.claimed_at: float | None = None
        self.needs_check = False
        self.in_flight = False
        self.successor: Pending | None = None
        self.traceparent: bytes | None = None  # the scheduling record's, kept when tracing is on

    def __repr__(self) -> str:
        return f"Pending(reminder_id={self.reminder_id!r}, run_id={self.run_id!r}, due={self.due})"


class TimerHeap:
    """Min-heap of (time, seq, entry) with lazy deletion: an item is live only while it is the
    entry's latest push (`entry.heap_seq == seq`) and `is_live(entry)` (still registered)."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Pending]] = []
        self._seq = itertools.count()

    def push(self, entry: Pending, at: float) -> None:
        seq = next(self._seq)
        entry.next_at = at
        entry.heap_seq = seq
        heapq.heappush(self._heap, (at, seq, entry))

    def pop_due(self, now: float, is_live: Callable[[Pending], bool], limit: int) -> list[Pending]:
        """Pop up to `limit` live entries whose time has come (earliest first)."""
        out: list[Pending] = []
        heap = self._heap
        while heap and len(out) < limit:
            at, seq, entry = heap[0]
            if entry.heap_seq != seq or not is_live(entry):
                heapq.heappop(heap)
                continue
            if at > now:
                break
            heapq.heappop(heap)
            entry.heap_seq = -1
            out.append(entry)
        return out

    def next_time(self, is_live: Callable[[Pending], bool]) -> float | None:
        """Earliest live time, dropping dead heads on the way."""
        heap = self._heap
        while heap:
            at, seq, entry = heap[0]
            if entry.heap_seq == seq and is_live(entry):
                return at
            heapq.heappop(heap)
        return None

    def compact(self, is_live: Callable[[Pending], bool]) -> None:
        """Rebuild without dead items (after a revoke or mass cancellation)."""
        self._heap = [it for it in self._heap if it[2].heap_seq == it[1] and is_live(it[2])]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)


class _RunMark:
    __slots__ = ("cancelled", "closed", "forget_at")

    def __init__(self, forget_at: float) -> None:
        self.closed = False
        self.cancelled = False
        self.forget_at = forget_at


class CancellationMemory:
    """Closed / cancelled runs and cancelled reminder ids, remembered for `ttl` seconds.

    Holds the completions of the records that taught it (run events) so they finish only when
    the memory is forgotten: after a restart the harness redelivers them and the memory returns.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._runs: dict[str, _RunMark] = {}
        self._reminders: dict[str, float] = {}
        self._held: deque[tuple[float, Any]] = deque()

    def _mark(self, run_id: str, now: float) -> _RunMark:
        mark = self._runs.get(run_id)
        if mark is None:
            mark = self._runs[run_id] = _RunMark(now + self.ttl)
        else:
            mark.forget_at = max(mark.forget_at, now + self.ttl)
        return mark

    def run_closed(self, run_id: str, now: float, completion: Any = None) -> None:
        self._mark(run_id, now).closed = True
        self._hold(now, completion)

    def run_cancelled(self, run_id: str, now: float, completion: Any = None) -> None:
        self._mark(run_id, now).cancelled = True
        self._hold(now, completion)

    def reminder_cancelled(self, reminder_id: str, now: float, completion: Any = None) -> None:
        self._reminders[reminder_id] = now + self.ttl
        self._hold(now, completion)

    def _hold(self, now: float, completion: Any) -> None:
        if completion is not None:
            self._held.append((now + self.ttl, completion))

    def blocked(self, reminder_id: str, run_id: str, kind: str) -> str | None:
        """The drop reason if this reminder must not be sent, else None."""
        if reminder_id in self._reminders:
            return "cancelled"
        mark = self._runs.get(run_id)
        if mark is not None:
            if mark.cancelled:
                return "run_cancelled"
            if mark.closed and kind == LAST_CALL:
                return "run_closed"
        return None

    def prune(self, now: float) -> list[Any]:
        """Forget what is older than the ttl; return the held completions now due to finish."""
        for run_id in [r for r, m in self._runs.items() if m.forget_at <= now]:
            del self._runs[run_id]
        for rid in [r for r, t in self._reminders.items() if t <= now]:
            del self._reminders[rid]
        done: list[Any] = []
        while self._held and self._held[0][0] <= now:
            done.append(self._held.popleft()[1])
        return done

    def drop_held(self, keep: Callable[[Any], bool]) -> None:
        """Forget held completions that no longer matter (revoked partitions)."""
        self._held = deque(item for item in self._held if keep(item[1]))

    def held_count(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)


def backoff_delay(
    attempt: int,
    initial: float,
    maximum: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at `maximum`."""
    base = min(maximum, initial * 2.0 ** max(0, attempt - 1))
    return base / 2 + base / 2 * rng()
