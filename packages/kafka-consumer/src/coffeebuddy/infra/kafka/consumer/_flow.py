"""Flow control: the in-flight bound of the poll loop and which partitions are paused why."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer._partition import Partition
    from coffeebuddy.infra.kafka.consumer._seam import ConsumerLike

#: How long the poll loop waits for free in-flight slots before it pauses every partition.
CAPACITY_WAIT = 0.2


class FlowControl:
    """Counts records fetched and not yet handled, and decides the paused partitions.

    A partition is paused while it backs off (retry, failing dead-letter write), while its
    incomplete records reach `max_incomplete`, or with every other one while the total of
    incomplete records reaches `max_incomplete_total` or in-flight records stay at the bound.
    """

    __slots__ = (
        "_capacity",
        "_global_pause",
        "_max_incomplete",
        "_max_incomplete_total",
        "inflight",
        "max_in_flight",
        "paused",
    )

    def __init__(
        self, max_in_flight: int, max_incomplete: int, max_incomplete_total: int | None
    ) -> None:
        self.max_in_flight = max_in_flight
        self._max_incomplete = max_incomplete
        self._max_incomplete_total = max_incomplete_total
        self.inflight = 0
        self.paused: set[Any] = set()
        self._capacity: asyncio.Event | None = None
        self._global_pause = False

    def release(self, n: int) -> None:
        """`n` fetched records were handled or dropped."""
        self.inflight -= n
        ev = self._capacity
        if ev is not None and not ev.is_set() and self.inflight <= self.max_in_flight // 2:
            ev.set()

    async def wait_capacity(self) -> int:
        """Wait briefly for handlers to free in-flight slots; on a longer stall pause everything
        (getmany keeps being called, so the member stays in the group)."""
        low = max(1, self.max_in_flight // 2)
        if self._capacity is None:
            self._capacity = asyncio.Event()
        self._capacity.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._capacity.wait(), timeout=CAPACITY_WAIT)
        capacity = self.max_in_flight - self.inflight
        self._global_pause = capacity <= 0 or (self._global_pause and capacity < low)
        return max(1, capacity)

    def update_pauses(self, consumer: ConsumerLike, partitions: Mapping[Any, Partition]) -> bool:
        """Pause and resume partitions of `consumer` as needed; True if the paused set changed."""
        cap = self._max_incomplete
        total_cap = self._max_incomplete_total
        pause_all = self._global_pause and self.inflight >= self.max_in_flight
        if not pause_all:
            self._global_pause = False
        if total_cap is not None and not pause_all:
            total = sum(p.tracker.incomplete for p in partitions.values())
            pause_all = total >= total_cap
        desired = {
            ktp
            for ktp, p in partitions.items()
            if pause_all or p.backoff or p.tracker.incomplete >= cap
        }
        paused = self.paused
        if desired == paused:
            return False
        to_pause = desired - paused
        to_resume = paused - desired
        assigned = consumer.assignment()
        if to_pause:
            consumer.pause(*[tp for tp in to_pause if tp in assigned])
        if to_resume:
            consumer.resume(*[tp for tp in to_resume if tp in assigned])
        self.paused = desired
        return True
