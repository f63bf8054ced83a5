"""State records: the `StateWriter` that encodes and writes ReminderState's changes, the fields
of a pending entry's record, and the entry a decoded record holds."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.models import ReminderStatus, encode_state, run_key
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending, RunMark

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.models import StateRecord
    from coffeebuddy.infra.kafka.reminder_worker._changelog import Changelog
    from coffeebuddy.infra.kafka.reminder_worker._history import History

__all__ = ["StateWriter", "add_entry_fields", "entry_of"]

S = ReminderStatus


@dataclass(frozen=True, slots=True)
class StateWriter:
    """Writes state records to the changelog, and a copy of each reminder record to the history."""

    changelog: Changelog
    source: str
    worker_id: str
    events_topic: str
    now: Callable[[], float]
    history: History | None = None

    def entry(
        self,
        entry: Pending,
        status: ReminderStatus | None = None,
        *,
        first: bool = False,
        **fields: Any,
    ) -> asyncio.Future[int]:
        """A record of `entry`'s reminder (see `add_entry_fields`) plus `fields`; without a
        `status`, `claimed` when it carries a claim, else `scheduled`."""
        if status is None:
            status = S.CLAIMED if entry.claimed_at is not None else S.SCHEDULED
        add_entry_fields(fields, entry, status, self.events_topic, first=first)
        return self.record(
            entry.partition, entry.reminder_id, status, entry.run_id, entry.keep_until, fields
        )

    def mark(
        self, partition: int, run_id: str, mark: RunMark, cause: str | None = None
    ) -> asyncio.Future[int]:
        """A run's mark: everything known of the run, one snapshot."""
        status = S.RUN_CANCELLED if mark.cancelled else S.RUN_CLOSED
        fields = {
            "cause_event_id": cause,
            "run_closed": mark.closed,
            "run_cancelled": mark.cancelled,
        }
        return self.record(partition, run_key(run_id), status, run_id, mark.keep_until, fields)

    def record(
        self,
        partition: int,
        key: str,
        status: ReminderStatus,
        run_id: str,
        keep_until: float,
        fields: dict[str, Any],
    ) -> asyncio.Future[int]:
        """Encode and write one record. `fields` (`encode_state`'s optional fields) is one dict,
        unpacked once, into the encoder: a post writes two records."""
        value = encode_state(
            state_key=key,
            status=status,
            run_id=run_id,
            keep_until=keep_until,
            now=self.now(),
            source=self.source,
            writer=self.worker_id,
            **fields,
        )
        if self.history is not None and not status.is_run:
            self.history.append(key, value)
        return self.changelog.write(partition, key, value)

    def tombstone(self, partition: int, key: str) -> asyncio.Future[int]:
        return self.changelog.write(partition, key, None)


def add_entry_fields(
    fields: dict[str, Any],
    entry: Pending,
    status: ReminderStatus,
    events_topic: str,
    *,
    first: bool = False,
) -> None:
    """Add the reminder's data to `fields`; a pending record (scheduled, claimed) also carries
    what a restore needs: the scheduling event, where it came from, and the claim. A settled one
    needs only its data (the history keeps the rest), unless it is the reminder's `first` record
    (dropped on arrival)."""
    fields["reminder"] = entry.payload  # keyed by the reminder id: no reminder_id field
    if not (status.is_pending or first):
        return
    fields["event_id"] = entry.event_id or None
    fields["event_time"] = entry.event_time or None
    fields["event_source"] = entry.source or None
    if entry.origin_offset >= 0:
        fields["origin_topic"] = events_topic
        fields["origin_partition"] = entry.partition
        fields["origin_offset"] = entry.origin_offset
    if entry.claimed_at is not None and status is S.CLAIMED:
        fields["owner"] = entry.claim_owner
        fields["epoch"] = entry.claim_epoch
        fields["claimed_at"] = entry.claimed_at
        fields["deadline"] = entry.claim_deadline


def entry_of(rec: StateRecord, partition: int, offset: int) -> Pending:
    """The pending entry of a `scheduled` or `claimed` record read at `offset`."""
    assert rec.reminder is not None
    assert rec.kind is not None
    assert rec.due is not None
    entry = Pending(
        rec.reminder_id or rec.state_key,
        rec.run_id,
        rec.kind,
        rec.due,
        rec.expires_at if rec.expires_at is not None else rec.keep_until,
        rec.keep_until,
        rec.reminder,
        rec.event_id or "",
        rec.event_time or 0.0,
        partition,
    )
    entry.state_offset = offset
    entry.origin_offset = rec.origin_offset if rec.origin_offset is not None else -1
    if rec.event_source:
        entry.source = sys.intern(rec.event_source)
    if rec.status is S.CLAIMED:
        entry.set_claim(rec.owner, rec.epoch, rec.claimed_at, rec.deadline)
    return entry
