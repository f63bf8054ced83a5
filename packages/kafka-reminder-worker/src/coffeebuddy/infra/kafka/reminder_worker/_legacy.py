"""Upgrade from the delivery-log format: read the old `coffeebuddy.reminder.deliveries` topic
once at start so reminders it already settled or claimed are neither lost nor sent twice."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from coffeebuddy.infra.kafka.config import topic_partitions
from coffeebuddy.infra.kafka.models import EventDecodeError, ReminderDelivery, decode_event

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.topics import TopicConfig

__all__ = ["LEGACY_OWNER", "LegacyState", "load_legacy"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker.legacy")

LEGACY_OWNER = "legacy-delivery-log"
"""Owner of a claim taken over from the old delivery log (never this worker: it is foreign)."""


@dataclass(frozen=True, slots=True)
class LegacyState:
    status: str
    claimed_at: float | None


async def load_legacy(
    settings: KafkaSettings, topic: TopicConfig, *, since: float
) -> dict[str, LegacyState]:
    """The latest delivery-log record per reminder whose due time is after `since` (older ones
    are expired anyway). An absent topic means a fresh install: nothing to upgrade."""
    started = time.perf_counter()
    kwargs: dict[str, Any] = settings.consumer_kwargs(None)
    kwargs.update(enable_auto_commit=False, auto_offset_reset="earliest")
    kwargs.pop("group_id", None)
    kwargs.pop("group_instance_id", None)
    consumer = AIOKafkaConsumer(**kwargs)
    await consumer.start()
    states: dict[str, LegacyState] = {}
    try:
        parts = await topic_partitions(consumer, topic.name)
        if not parts:
            log.info("no legacy delivery log %s: nothing to upgrade", topic.name)
            return states
        tps = [TopicPartition(topic.name, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=200, max_records=5000)
            for records in batches.values():
                for rec in records:
                    _apply(states, rec, since)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    log.info(
        "legacy delivery log %s read: %d reminders remembered (%.2f s)",
        topic.name,
        len(states),
        time.perf_counter() - started,
    )
    return states


def _apply(states: dict[str, LegacyState], rec: Any, since: float) -> None:
    if rec.value is None:
        if rec.key is not None:
            rid = rec.key.decode(errors="replace")
            prev = states.get(rid)
            if prev is not None and prev.status == "claimed":
                del states[rid]  # a released claim
        return
    try:
        event = decode_event(rec.value)
    except EventDecodeError:
        return
    if not isinstance(event, ReminderDelivery):
        return
    data = event.data
    if data.due_at.timestamp() < since:
        states.pop(data.reminder_id, None)
        return
    prev = states.get(data.reminder_id)
    status = str(data.status)
    if prev is not None and prev.status in ("sent", "dropped") and status != "sent":
        return  # a late claim never hides a final state
    claimed = data.claimed_at.timestamp() if data.claimed_at is not None else None
    states[data.reminder_id] = LegacyState(status, claimed)
