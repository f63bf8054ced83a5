"""ReminderState: the schedule state of the owned partitions, kept equal to the changelog.

It decodes and applies records read back (restore, other writers' records) by the same rules as
its local changes, which its `StateWriter` encodes and writes.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.models import (
    RUN_KEY_PREFIX,
    ReminderStatus,
    StateRecord,
    decode_state,
    run_key,
    state_replaces,
)
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending, RunMark
from coffeebuddy.infra.kafka.reminder_worker._partition import DeadLetter, PartitionState
from coffeebuddy.infra.kafka.reminder_worker._records import StateWriter, entry_of

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.metrics import ReminderMetrics
    from coffeebuddy.infra.kafka.reminder_worker._changelog import Changelog
    from coffeebuddy.infra.kafka.reminder_worker._history import History
    from coffeebuddy.infra.kafka.reminder_worker._settings import ReminderSettings

__all__ = ["ReminderState"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker.state")

S = ReminderStatus
_LOGGED_LIMIT = 10_000


class ReminderState:
    """Partitions, the prune heap of settled keys, and the records that keep both in Kafka."""

    def __init__(
        self,
        changelog: Changelog,
        settings: ReminderSettings,
        *,
        now: Callable[[], float],
        worker_id: str,
        events_topic: str,
        history: History | None = None,
        metrics: ReminderMetrics | None = None,
    ) -> None:
        self._changelog = changelog
        self._settings = settings
        self.worker_id = worker_id
        self._metrics = metrics
        self._write = StateWriter(changelog, settings.source, worker_id, events_topic, now, history)
        self._own_marker = f'"coffeebuddywriter":"{worker_id}"'.encode()
        self.partitions: dict[int, PartitionState] = {}
        self._prune: list[tuple[float, int, str]] = []
        self.unreadable = 0
        self._logged: set[tuple[int, int]] = set()
        self.room = asyncio.Event()
        """Set whenever a pending reminder settled or left (intake may admit a waiting one)."""

    def open(self, partition: int) -> PartitionState:
        return self.partitions.setdefault(partition, PartitionState(partition))

    def close(self, partition: int) -> PartitionState | None:
        self.room.set()
        return self.partitions.pop(partition, None)

    def get(self, partition: int) -> PartitionState | None:
        return self.partitions.get(partition)

    def restored(self, partition: int) -> PartitionState | None:
        state = self.partitions.get(partition)
        return state if state is not None and state.restored else None

    def owns(self, entry: Pending, epoch: int | None = None) -> bool:
        """`entry` is the live pending entry of an owned, restored partition (in `epoch`)."""
        state = self.partitions.get(entry.partition)
        if state is None or not state.restored or state.pending.get(entry.reminder_id) is not entry:
            return False
        return epoch is None or state.epoch == epoch

    def pending_count(self) -> int:
        return sum(len(s.pending) for s in self.partitions.values())

    def count_drop(self, kind: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.dropped(kind, reason)

    async def restore(self, partition: int) -> PartitionState | None:
        """Read the partition's changelog to its end into a fresh state and start a new epoch;
        None when the partition was revoked meanwhile."""
        started = time.perf_counter()
        state = self.open(partition)
        await self._changelog.restore({partition})
        if self.partitions.get(partition) is not state:
            return None
        state.epoch = state.max_epoch + 1
        state.restored = True
        for key, run_id in state.stale.items():
            self._rewrite(state, key, run_id)
        state.stale.clear()
        log.info(
            "changelog partition %d restored: %d pending, %d settled, epoch %d (%.2f s)",
            partition,
            len(state.pending),
            len(state.finals) + len(state.runs),
            state.epoch,
            time.perf_counter() - started,
            extra={"partition": partition, "worker_id": self.worker_id},
        )
        return state

    def on_record(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None, restoring: bool
    ) -> Pending | None:
        """Apply one changelog record read back; returns a pending entry another writer created
        or changed (the scheduler times it). Never raises: an unreadable record is skipped."""
        state = self.partitions.get(partition)
        if state is None or key is None:
            return None
        if not restoring and value is not None and self._own_marker in value:
            return None  # our own write, applied when it was made: skipped unread
        try:
            if value is None:
                self._forget(state, key.decode())
                return None
            rec = decode_state(value)
            if not restoring and rec.writer == self.worker_id:
                return None
            return self._apply(state, rec, offset, restoring)
        except Exception as exc:
            self._unreadable(partition, offset, exc)
            return None

    def _unreadable(self, partition: int, offset: int, exc: Exception) -> None:
        self.unreadable += 1
        if (partition, offset) in self._logged:
            return
        if len(self._logged) < _LOGGED_LIMIT:
            self._logged.add((partition, offset))
        log.error(
            "unreadable changelog record at partition %d offset %d skipped: %s",
            partition,
            offset,
            str(exc)[:300],
            extra={"partition": partition, "offset": offset, "error_class": type(exc).__name__},
        )

    def skip_invalid(self, entry: Pending, error: Exception) -> None:
        """A pending reminder whose data fails the models' rules when due: logged with where it
        came from, counted, and settled as dropped (it can never be sent)."""
        self._unreadable(entry.partition, entry.state_offset, error)
        self.settle(entry, S.DROPPED, reason="invalid")

    def _apply(
        self, state: PartitionState, rec: StateRecord, offset: int, restoring: bool
    ) -> Pending | None:
        if rec.epoch is not None and rec.epoch > state.max_epoch:
            state.max_epoch = rec.epoch
        status = rec.status
        replaying = restoring or not state.restored  # a stale key is re-written after restore
        if status.is_run:
            mark = self._mark(state, rec.run_id, rec.run_closed, rec.run_cancelled, rec.keep_until)
            narrower = (mark.closed, mark.cancelled) != (rec.run_closed, rec.run_cancelled)
            if not replaying:
                self.drop_blocked(state, rec.run_id, mark)
                if narrower:  # another writer knew less of the run: the full mark again
                    self._write.mark(state.number, rec.run_id, mark)
            elif narrower:
                state.stale[rec.state_key] = rec.run_id
            else:
                state.stale.pop(rec.state_key, None)
            return None
        rid = rec.reminder_id or rec.state_key
        if not state_replaces(state.status(rid), status):
            # a final state or a dead letter stands: a zombie owner's late claim (or schedule)
            # changes nothing, and it is written again so that compaction keeps it, not the claim
            if replaying:
                state.stale[rid] = rec.run_id
            else:
                self._rewrite(state, rid, rec.run_id)
            return None
        state.stale.pop(rid, None)
        if status.is_final:
            self._settle(state, rid, rec.keep_until, status)
            return None
        if status is S.DEAD_LETTERED:
            state.pending.pop(rid, None)
            state.dead[rid] = DeadLetter.of(rec)
            self._keep(state, rid, rec.keep_until)
            return None
        entry = state.pending.get(rid)
        if entry is not None and entry.in_flight:
            # another writer's claim while our attempt runs: the fence re-checks it
            entry.set_claim(rec.owner, rec.epoch, rec.claimed_at, rec.deadline)
            return entry
        if entry is not None and status is S.SCHEDULED and (rec.event_time or 0) < entry.event_time:
            return None  # an older schedule than the one we hold
        state.dead.pop(rid, None)
        state.pending[rid] = entry = entry_of(rec, state.number, offset)
        return entry

    def schedule(self, entry: Pending, *, traceparent: str | None = None) -> asyncio.Future[int]:
        """Hold `entry` as its reminder's pending state and write its snapshot (`scheduled`, or
        `claimed` when it carries a claim)."""
        state = self.partitions[entry.partition]
        state.pending[entry.reminder_id] = entry
        state.dead.pop(entry.reminder_id, None)
        return self._write.entry(entry, traceparent=traceparent)

    def claim(self, entry: Pending, epoch: int, now: float) -> asyncio.Future[int]:
        """Write this owner's claim of `entry` (deadline: now + the claim's time to live)."""
        entry.set_claim(self.worker_id, epoch, now, now + self._settings.claim_ttl)
        return self._write.entry(entry)

    def settle(
        self,
        entry: Pending,
        status: ReminderStatus,
        *,
        reason: str | None = None,
        cause: str | None = None,
        channel: str | None = None,
        ts: str | None = None,
        first: bool = False,
    ) -> asyncio.Future[int]:
        """A final state (sent / dropped / cancelled) for `entry`'s reminder, applied at once
        (`first`: the reminder's first record, it was dropped on arrival)."""
        state = self.partitions.get(entry.partition)
        if state is not None:
            self._settle(state, entry.reminder_id, entry.keep_until, status)
        return self._write.entry(
            entry,
            status,
            first=first,
            reason=reason,
            cause_event_id=cause,
            slack_channel=channel,
            slack_ts=ts,
        )

    def cancel_unseen(
        self, partition: int, reminder_id: str, run_id: str, keep_until: float, cause: str
    ) -> asyncio.Future[int]:
        """A cancellation of a reminder not seen yet: remembered, so its schedule is dropped."""
        state = self.partitions.get(partition)
        if state is not None:
            self._settle(state, reminder_id, keep_until, S.CANCELLED)
        fields = {"reason": "cancelled", "cause_event_id": cause}
        return self._write.record(partition, reminder_id, S.CANCELLED, run_id, keep_until, fields)

    def dead_letter(
        self, entry: Pending, error: str, topic: str, partition: int, offset: int
    ) -> asyncio.Future[int]:
        """Parked on the dead-letter topic at `partition`/`offset`: no longer pending, and a
        replay of the reminder is a fresh schedule."""
        state = self.partitions.get(entry.partition)
        dead = DeadLetter(entry.keep_until, entry.payload, error[:500], topic, partition, offset)
        if state is not None and state.pending.pop(entry.reminder_id, None) is not None:
            state.dead[entry.reminder_id] = dead
            self._keep(state, entry.reminder_id, entry.keep_until)
            self.room.set()
        # the same fields as a rewrite after a stale claim writes: one source for both
        return self._write.entry(entry, S.DEAD_LETTERED, **dead.fields())

    def mark_run(
        self, partition: int, run_id: str, *, cancelled: bool, keep_until: float, cause: str
    ) -> asyncio.Future[int]:
        """A run closed or cancelled: its mark (everything known of the run, one snapshot) is
        written, and the pending reminders it rules out are dropped."""
        state = self.partitions.get(partition)
        if state is None:
            mark = RunMark(keep_until, not cancelled, cancelled)
        else:
            mark = self._mark(state, run_id, not cancelled, cancelled, keep_until)
            if state.restored:
                self.drop_blocked(state, run_id, mark)
        return self._write.mark(partition, run_id, mark, cause)

    def drop_blocked(self, state: PartitionState, run_id: str, mark: RunMark) -> None:
        """Drop the run's pending reminders (not in flight) that `mark` rules out."""
        victims = [
            (entry, reason)
            for entry in state.pending.values()
            if entry.run_id == run_id
            and not entry.in_flight
            and (reason := mark.blocks(entry.kind))
        ]
        for entry, reason in victims:
            self.settle(entry, S.DROPPED, reason=reason)
            self.count_drop(entry.kind, reason)
        if victims:
            log.info(
                "run %s: %d pending reminders dropped",
                run_id,
                len(victims),
                extra={"run_id": run_id, "worker_id": self.worker_id},
            )

    def forget_claim(self, entry: Pending) -> asyncio.Future[int]:
        """Release `entry` entirely (tombstone): nothing of it was posted."""
        state = self.partitions.get(entry.partition)
        if state is not None:
            self._forget(state, entry.reminder_id)
        return self._write.tombstone(entry.partition, entry.reminder_id)

    def prune(self, now: float, limit: int = 1000) -> int:
        """Tombstone settled keys whose own lifetime ended (still owned and unchanged)."""
        count = 0
        heap = self._prune
        while heap and heap[0][0] <= now and count < limit:
            keep_until, number, key = heapq.heappop(heap)
            state = self.partitions.get(number)
            if state is None or not state.expired(key, keep_until):
                continue
            self._forget(state, key)
            self._write.tombstone(number, key)
            count += 1
        return count

    def compact(self) -> None:
        """Drop prune-heap items of partitions no longer owned."""
        self._prune = [it for it in self._prune if it[1] in self.partitions]
        heapq.heapify(self._prune)

    def _rewrite(self, state: PartitionState, key: str, run_id: str) -> None:
        """Write `key`'s full state again (its last record said less: a stale claim after a
        final state or a dead letter, a run mark from a writer that knew less)."""
        if key.startswith(RUN_KEY_PREFIX):
            mark = state.runs.get(key[len(RUN_KEY_PREFIX) :])
            if mark is not None:
                self._write.mark(state.number, key[len(RUN_KEY_PREFIX) :], mark)
            return
        final, dead = state.finals.get(key), state.dead.get(key)
        if final is not None:
            (keep_until, status), fields = final, {"reason": "stale claim"}
        elif dead is not None:  # whole: `reminders list` shows where to replay it from
            keep_until, status, fields = dead.keep_until, S.DEAD_LETTERED, dead.fields()
        else:
            return
        self._write.record(state.number, key, status, run_id, keep_until, fields)

    def _keep(self, state: PartitionState, key: str, keep_until: float) -> None:
        heapq.heappush(self._prune, (keep_until, state.number, key))

    def _settle(
        self, state: PartitionState, rid: str, keep_until: float, status: ReminderStatus
    ) -> None:
        if state.settle(rid, keep_until, status):
            self.room.set()
        self._keep(state, rid, keep_until)

    def _mark(
        self, state: PartitionState, run_id: str, closed: bool, cancelled: bool, keep_until: float
    ) -> RunMark:
        mark = state.mark(run_id, closed, cancelled, keep_until)
        self._keep(state, run_key(run_id), mark.keep_until)
        return mark

    def _forget(self, state: PartitionState, key: str) -> None:
        if state.forget(key):
            self.room.set()
