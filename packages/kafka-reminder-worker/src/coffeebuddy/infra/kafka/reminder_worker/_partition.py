"""PartitionState: what the worker holds of one owned partition (ReminderState writes it)."""

from __future__ import annotations

from typing import Any, NamedTuple

from coffeebuddy.infra.kafka.models import RUN_KEY_PREFIX, ReminderStatus, StateRecord
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending, RunMark

__all__ = ["DeadLetter", "PartitionState"]


class DeadLetter(NamedTuple):
    """A reminder parked on the dead-letter topic: its whole record, to write it again. Held,
    like a pending entry, until its lifetime ends (rare: what Slack refused outright)."""

    keep_until: float
    reminder: bytes | None
    reason: str | None
    dlq_topic: str | None
    dlq_partition: int | None
    dlq_offset: int | None

    @classmethod
    def of(cls, rec: StateRecord) -> DeadLetter:
        return cls(
            rec.keep_until,
            rec.reminder,
            rec.reason,
            rec.dlq_topic,
            rec.dlq_partition,
            rec.dlq_offset,
        )

    def fields(self) -> dict[str, Any]:
        """The record's fields besides its key, status, run and lifetime."""
        fields = self._asdict()
        del fields["keep_until"]
        return fields


class PartitionState:
    """Pending reminders, settled ids (until their lifetime ends), dead letters, run marks, and
    this owner's epoch (one more than any recorded in the partition)."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.pending: dict[str, Pending] = {}
        self.finals: dict[str, tuple[float, ReminderStatus]] = {}  # -> (keep_until, status)
        self.dead: dict[str, DeadLetter] = {}
        self.runs: dict[str, RunMark] = {}
        self.max_epoch = 0
        self.epoch = 0
        self.restored = False
        self.stale: dict[str, str] = {}
        """Keys (-> run id) whose last record says less than their state: re-written after
        restore (a stale claim after a final state, a narrower run mark)."""

    def status(self, rid: str) -> ReminderStatus | None:
        final = self.finals.get(rid)
        if final is not None:
            return final[1]
        if rid in self.dead:
            return ReminderStatus.DEAD_LETTERED
        entry = self.pending.get(rid)
        if entry is None:
            return None
        return ReminderStatus.CLAIMED if entry.claimed_at is not None else ReminderStatus.SCHEDULED

    def settled(self, rid: str) -> bool:
        return rid in self.finals

    def settle(self, rid: str, keep_until: float, status: ReminderStatus) -> bool:
        """Hold `rid`'s final state; True when a pending reminder left."""
        left = self.pending.pop(rid, None) is not None
        self.dead.pop(rid, None)
        self.finals[rid] = (keep_until, status)
        return left

    def mark(self, run_id: str, closed: bool, cancelled: bool, keep_until: float) -> RunMark:
        """The run's mark, merged with what this record says."""
        mark = self.runs.get(run_id)
        if mark is None:
            mark = self.runs[run_id] = RunMark(keep_until)
        mark.merge(closed, cancelled, keep_until)
        return mark

    def forget(self, key: str) -> bool:
        """Drop everything of `key` (a tombstone); True when a pending reminder left."""
        if key.startswith(RUN_KEY_PREFIX):
            self.runs.pop(key[len(RUN_KEY_PREFIX) :], None)
            return False
        self.finals.pop(key, None)
        self.dead.pop(key, None)
        return self.pending.pop(key, None) is not None

    def expired(self, key: str, keep_until: float) -> bool:
        """`key`'s state is still the one that was to be kept until `keep_until`."""
        if key.startswith(RUN_KEY_PREFIX):
            mark = self.runs.get(key[len(RUN_KEY_PREFIX) :])
            return mark is not None and mark.keep_until == keep_until
        final = self.finals.get(key)
        if final is not None:
            return final[0] == keep_until
        dead = self.dead.get(key)
        return dead is not None and dead.keep_until == keep_until
