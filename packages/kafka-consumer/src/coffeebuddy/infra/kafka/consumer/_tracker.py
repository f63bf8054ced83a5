"""Per-partition offset tracking: commit the highest contiguous completed offset (+1)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class OffsetTracker:
    """Tracks delivered and completed offsets of one partition.

    Records complete in any order (deferred completion, retries); Kafka can only commit a
    single position per partition, so the committable position is the lowest delivered offset
    that is not complete yet, or one past the last delivered offset when all are complete.
    Offsets need not be consecutive (compaction, transaction markers leave gaps).
    """

    __slots__ = ("_committed", "_done", "_last", "_pending")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # delivered, head is never complete
        self._done: set[int] = set()  # completed but behind an incomplete head
        self._last: int | None = None  # highest delivered offset
        self._committed: int | None = None  # last position handed to a commit

    def add(self, offset: int) -> None:
        """Register a delivered record; offsets must increase."""
        if self._last is not None and offset <= self._last:
            raise ValueError(f"offset {offset} delivered after {self._last}: offsets must increase")
        self._pending.append(offset)
        self._last = offset

    def add_many(self, offsets: Iterable[int]) -> None:
        """Register a fetched batch (increasing offsets) in one call."""
        before = len(self._pending)
        self._pending.extend(offsets)
        if len(self._pending) == before:
            return
        first = self._pending[before]
        if self._last is not None and first <= self._last:
            for _ in range(len(self._pending) - before):
                self._pending.pop()
            raise ValueError(f"offset {first} delivered after {self._last}: offsets must increase")
        self._last = self._pending[-1]

    def complete(self, offset: int) -> None:
        """Mark a delivered record complete (idempotent)."""
        pending = self._pending
        if pending and pending[0] == offset:
            pending.popleft()
            if self._done:
                done = self._done
                while pending and pending[0] in done:
                    done.discard(pending.popleft())
        elif pending and offset > pending[0] and (self._last is not None and offset <= self._last):
            self._done.add(offset)

    @property
    def incomplete(self) -> int:
        """Delivered records not complete yet."""
        return len(self._pending) - len(self._done)

    def committable(self) -> int | None:
        """The offset to commit (next record to read after a restart), None if nothing delivered."""
        if self._pending:
            return self._pending[0]
        return None if self._last is None else self._last + 1

    def to_commit(self) -> int | None:
        """The committable offset if it moved since the last `mark_committed`, else None."""
        pos = self.committable()
        if pos is None or pos == self._committed:
            return None
        return pos

    def mark_committed(self, offset: int) -> None:
        self._committed = offset

    @property
    def committed(self) -> int | None:
        return self._committed
