"""The schedule state of the owned partitions, rebuilt from and kept equal to the changelog."""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator

from coffeebuddy.infra.kafka.reminder_worker._entry import Pending, RunMark
from coffeebuddy.infra.kafka.reminder_worker._records import RUN_KEY_PREFIX, StateRecord

__all__ = ["FINAL_STATUSES", "PartitionState", "ScheduleStore"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker.store")

FINAL_STATUSES = frozenset({"sent", "dropped", "cancelled"})
RUN_STATUSES = frozenset({"run_closed", "run_cancelled"})


class PartitionState:
    """One owned partition: pending reminders, settled ids (until their lifetime ends), run
    marks, and this owner's epoch (one more than any epoch recorded in the partition)."""

    __slots__ = ("epoch", "finals", "max_epoch", "number", "pending", "restored", "runs")

    def __init__(self, number: int) -> None:
        self.number = number
        self.pending: dict[str, Pending] = {}
        self.finals: dict[str, float] = {}
        self.runs: dict[str, RunMark] = {}
        self.max_epoch = 0
        self.epoch = 0
        self.restored = False

    def settled(self, reminder_id: str) -> bool:
        return reminder_id in self.finals


class ScheduleStore:
    """Partition states plus the prune heap ((keep_until, partition, key) of settled state)."""

    def __init__(self) -> None:
        self.partitions: dict[int, PartitionState] = {}
        self._prune: list[tuple[float, int, str]] = []

    def open(self, partition: int) -> PartitionState:
        state = self.partitions.get(partition)
        if state is None:
            state = self.partitions[partition] = PartitionState(partition)
        return state

    def close(self, partition: int) -> PartitionState | None:
        return self.partitions.pop(partition, None)

    def get(self, partition: int) -> PartitionState | None:
        return self.partitions.get(partition)

    def pending_count(self) -> int:
        return sum(len(s.pending) for s in self.partitions.values())

    def settled_count(self) -> int:
        return sum(len(s.finals) + len(s.runs) for s in self.partitions.values())

    def all_pending(self) -> Iterator[Pending]:
        for state in self.partitions.values():
            yield from state.pending.values()

    # ------------------------------------------------------------------ changes

    def settle(self, state: PartitionState, reminder_id: str, keep_until: float) -> None:
        """A final state for `reminder_id` (whichever entry object holds it now)."""
        state.pending.pop(reminder_id, None)
        state.finals[reminder_id] = keep_until
        heapq.heappush(self._prune, (keep_until, state.number, reminder_id))

    def mark_run(
        self, state: PartitionState, run_id: str, status: str, keep_until: float
    ) -> RunMark:
        mark = state.runs.get(run_id)
        if mark is None:
            mark = state.runs[run_id] = RunMark(keep_until)
        else:
            mark.keep_until = max(mark.keep_until, keep_until)
        if status == "run_closed":
            mark.closed = True
        else:
            mark.cancelled = True
        heapq.heappush(self._prune, (mark.keep_until, state.number, RUN_KEY_PREFIX + run_id))
        return mark

    def forget(self, state: PartitionState, key: str) -> None:
        """A tombstone: the key has no state any more."""
        if key.startswith(RUN_KEY_PREFIX):
            state.runs.pop(key[len(RUN_KEY_PREFIX) :], None)
        else:
            state.finals.pop(key, None)
            state.pending.pop(key, None)

    def apply(self, state: PartitionState, rec: StateRecord) -> Pending | None:
        """Apply a record read from the changelog; returns the entry it created or updated."""
        if rec.epoch is not None and rec.epoch > state.max_epoch:
            state.max_epoch = rec.epoch
        status = rec.status
        if status in RUN_STATUSES:
            self.mark_run(state, rec.run_id, status, rec.keep_until)
            return None
        rid = rec.reminder_id or rec.state_key
        if status in FINAL_STATUSES:
            self.settle(state, rid, rec.keep_until)
            return None
        if rec.reminder is None or rec.due is None or rec.kind is None:
            log.warning(
                "changelog record without reminder data skipped", extra={"reminder_id": rid}
            )
            return None
        entry = state.pending.get(rid)
        if entry is not None and entry.in_flight:
            # another writer's claim while our attempt runs: the fence re-checks it
            entry.set_claim(rec.owner, rec.epoch, rec.claimed_at, rec.deadline)
            return entry
        state.finals.pop(rid, None)
        expires = rec.expires_at if rec.expires_at is not None else rec.keep_until
        entry = Pending(
            rid,
            rec.run_id,
            rec.kind,
            rec.due,
            expires,
            rec.keep_until,
            rec.reminder,
            rec.event_id or "",
            rec.event_time or 0.0,
            state.number,
        )
        if status == "claimed":
            entry.set_claim(rec.owner, rec.epoch, rec.claimed_at, rec.deadline)
        state.pending[rid] = entry
        return entry

    def due_for_pruning(self, now: float, limit: int = 1000) -> list[tuple[int, str]]:
        """Settled keys whose lifetime ended (still owned and unchanged): tombstone them."""
        out: list[tuple[int, str]] = []
        heap = self._prune
        while heap and heap[0][0] <= now and len(out) < limit:
            keep_until, number, key = heapq.heappop(heap)
            state = self.partitions.get(number)
            if state is None:
                continue
            if key.startswith(RUN_KEY_PREFIX):
                mark = state.runs.get(key[len(RUN_KEY_PREFIX) :])
                if mark is None or mark.keep_until != keep_until:
                    continue
            elif state.finals.get(key) != keep_until:
                continue
            self.forget(state, key)
            out.append((number, key))
        return out

    def compact(self) -> None:
        """Drop prune-heap items of partitions no longer owned."""
        self._prune = [it for it in self._prune if it[1] in self.partitions]
        heapq.heapify(self._prune)
