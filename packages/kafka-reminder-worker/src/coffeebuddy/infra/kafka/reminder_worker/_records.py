"""The mapping between a pending entry and its state record: the fields ReminderState encodes,
and the entry a decoded record holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.models import ReminderStatus
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.models import StateRecord

__all__ = ["entry_fields", "entry_of"]


def entry_fields(entry: Pending, status: ReminderStatus, events_topic: str) -> dict[str, Any]:
    """`entry`'s full snapshot: its data, scheduling event and origin, and its claim when the
    record says `claimed`."""
    fields: dict[str, Any] = {
        "reminder": entry.payload,
        "reminder_id": entry.reminder_id,
        "event_id": entry.event_id or None,
        "event_time": entry.event_time or None,
        "event_source": entry.source or None,
    }
    if entry.origin_offset >= 0:
        fields.update(
            origin_topic=events_topic,
            origin_partition=entry.partition,
            origin_offset=entry.origin_offset,
        )
    if entry.claimed_at is not None and status is ReminderStatus.CLAIMED:
        fields.update(
            owner=entry.claim_owner,
            epoch=entry.claim_epoch,
            claimed_at=entry.claimed_at,
            deadline=entry.claim_deadline,
        )
    return fields


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
        rec.recipient or "",
    )
    entry.state_offset = offset
    entry.origin_offset = rec.origin_offset if rec.origin_offset is not None else -1
    if rec.event_source:
        entry.source = rec.event_source
    if rec.status is ReminderStatus.CLAIMED:
        entry.set_claim(rec.owner, rec.epoch, rec.claimed_at, rec.deadline)
    return entry
