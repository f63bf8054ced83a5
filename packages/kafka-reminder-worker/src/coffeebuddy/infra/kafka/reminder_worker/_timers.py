"""A lazy-deletion timer heap of pending entries."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from coffeebuddy.infra.kafka.reminder_worker._entry import Pending

__all__ = ["TimerHeap"]


_SEQ = itertools.count()
"""Push numbers shared by every heap: an entry's latest push, in either heap, is its live item."""


class TimerHeap:
    """Min-heap of (time, seq, entry) with lazy deletion: an item is live only while it is the
    entry's latest push (`entry.heap_seq == seq`) and `is_live(entry)` (still registered)."""

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Pending]] = []

    def push(self, entry: Pending, at: float) -> None:
        seq = next(_SEQ)
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
