"""The worker's state on a real broker: the changelog is self-contained under the broker's own
compaction, and co-partitioned topics of different sizes are refused before anything runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import (
    ReminderScheduledData,
    ReminderStatus,
    encode_state,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.reminder_worker import (
    CopartitioningError,
    KafkaChangelog,
    ReminderSettings,
    ReminderWorker,
    WorkerTopics,
)
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._state import ReminderState
from coffeebuddy.infra.kafka.reminder_worker._supervisor import Supervisor
from coffeebuddy.infra.kafka.testing import (
    BrokerHandle,
    TopicFactory,
    require_capability,
    wait_until,
)
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
    TopicConfig,
)

S = ReminderStatus
NOW = 1_900_000_000.0
WAIT = 60.0
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "86400000",  # tombstones stay: they are state too
}


async def test_co_partitioned_topics_of_different_sizes_refuse_to_start(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    """Issue 21.7: as Kafka Streams does, the worker does not start when the reminder events,
    run events and changelog topics differ in partition count, and says which has how many."""
    topics = WorkerTopics(
        reminders=unique_topic(2, event_types=REMINDER_EVENTS_TOPIC.event_types),
        runs=unique_topic(2, event_types=RUN_EVENTS_TOPIC.event_types),
        changelog=unique_topic(3, base=REMINDER_STATE_CHANGELOG_TOPIC, dead_letter=False),
    )
    async with KafkaEventProducer(kafka_settings) as producer:
        worker = ReminderWorker(
            object(),  # type: ignore[arg-type]
            producer,
            ReminderSettings(history=False),
            kafka_settings,
            topics=topics,
        )
        with pytest.raises(CopartitioningError) as info:
            await worker.start()
        await worker.stop()
    message = str(info.value)
    assert f"{topics.reminders.name} has 2" in message
    assert f"{topics.runs.name} has 2" in message
    assert f"{topics.changelog.name} has 3" in message
    assert not worker.ready


def _entry(rid: str, run_id: str, *, due: float = NOW + 3600, event_time: float = NOW) -> Pending:
    data = ReminderScheduledData(
        run_id=run_id,
        reminder_id=rid,
        kind="last_call" if rid.endswith("lc") else "runner",
        team_id="T1",
        channel_id="C1",
        recipient_user_id="U1",
        due_at=datetime.fromtimestamp(due, UTC),
        place="Cafe",
    )
    entry = Pending(
        rid,
        run_id,
        str(data.kind),
        due,
        due + 900,
        due + 900 + 3600,
        data.model_dump_json(exclude_none=True).encode(),
        f"ev-{rid}-{event_time}",
        event_time,
        0,
    )
    entry.origin_offset = 1
    return entry


@asynccontextmanager
async def _owner(
    settings: KafkaSettings, topic: TopicConfig, producer: KafkaEventProducer, name: str
) -> AsyncIterator[ReminderState]:
    """A ReminderState owning partition 0 of `topic`, restored and tailing it."""
    changelog = KafkaChangelog(settings, topic, producer)
    state = ReminderState(
        changelog,
        ReminderSettings(history=False),
        now=lambda: NOW,
        worker_id=name,
        events_topic="coffeebuddy.reminder.events",
    )
    supervisor = Supervisor()
    await changelog.start(state.on_record, supervisor)
    try:
        assert await state.restore(0) is not None
        yield state
    finally:
        await changelog.stop()
        await supervisor.stop()


def _snapshot(state: ReminderState) -> dict[str, Any]:
    part = state.partitions[0]
    return {
        "pending": {
            rid: (
                e.due,
                e.payload,
                e.event_id,
                e.claim_owner,
                e.claim_epoch,
                e.claimed_at,
                e.claim_deadline,
            )
            for rid, e in part.pending.items()
        },
        "finals": dict(part.finals),
        "dead": dict(part.dead),
        "runs": {r: (m.closed, m.cancelled, m.keep_until) for r, m in part.runs.items()},
    }


async def _records(settings: KafkaSettings, topic: str) -> list[tuple[str, bytes | None]]:
    kwargs = settings.consumer_kwargs(None)
    kwargs.pop("group_id", None)
    consumer = AIOKafkaConsumer(**{**kwargs, "auto_offset_reset": "earliest"})
    await consumer.start()
    out: list[tuple[str, bytes | None]] = []
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            for recs in (await consumer.getmany(tp, timeout_ms=200)).values():
                out.extend((r.key.decode(), r.value) for r in recs)
    finally:
        await consumer.stop()
    return out


def _foreign(key: str, status: ReminderStatus, entry: Pending | None, **fields: Any) -> bytes:
    return encode_state(
        state_key=key,
        status=status,
        run_id=entry.run_id if entry is not None else fields.pop("run_id"),
        keep_until=NOW + 7200,
        now=NOW,
        source="/test",
        writer="a-zombie",
        reminder=entry.payload if entry is not None else None,
        reminder_id=entry.reminder_id if entry is not None else None,
        **fields,
    )


async def test_restoring_a_compacted_changelog_equals_restoring_its_whole_history(
    kafka_broker: BrokerHandle, kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    """Issue 21.3: every record is its key's full snapshot, so what the broker's log cleaner
    leaves (the last record per key) restores exactly what the whole history restored; for
    every kind of record, including a run cancelled then closed, a zombie's late claim after a
    cancellation and a narrower run mark from a writer that knew less."""
    require_capability(kafka_broker, "log_compaction")
    base = REMINDER_STATE_CHANGELOG_TOPIC.model_copy(update={"configs": COMPACTED})
    topic = unique_topic(1, base=base, dead_letter=False)
    async with KafkaEventProducer(kafka_settings) as producer:
        async with _owner(kafka_settings, topic, producer, "writer") as w:
            sent, cancelled, claimed = _entry("sent", "r1"), _entry("cancelled", "r1"), None
            for e in (sent, cancelled):
                w.schedule(e)
            w.claim(sent, 1, NOW)
            w.settle(sent, S.SENT, channel="D1", ts="1.000001")
            w.settle(cancelled, S.CANCELLED, reason="cancelled", cause="ev-cancel")
            w.cancel_unseen(0, "unseen", "r2", NOW + 7200, "ev-cancel-2")
            claimed = _entry("claimed", "r2")
            w.schedule(claimed)
            w.claim(claimed, 1, NOW)
            dropped = _entry("dropped", "r3")
            w.schedule(dropped)
            w.settle(dropped, S.DROPPED, reason="expired")
            dead = _entry("dead", "r3")
            w.schedule(dead)
            w.claim(dead, 1, NOW)
            w.dead_letter(dead, "invalid_blocks", "coffeebuddy.reminder.events.dlq", 1, 7)
            w.schedule(_entry("replaced", "r4", event_time=NOW))
            w.schedule(_entry("replaced", "r4", due=NOW + 7200, event_time=NOW + 60))
            pruned = _entry("pruned", "r4")
            pruned.keep_until = NOW - 1  # its lifetime is over: tombstoned by the prune
            w.schedule(pruned)
            w.settle(pruned, S.SENT)
            assert w.prune(NOW) == 1
            w.mark_run(0, "r5", cancelled=True, keep_until=NOW + 86400, cause="ev-run-c")
            w.mark_run(0, "r5", cancelled=False, keep_until=NOW + 86400, cause="ev-run-x")
            w.mark_run(0, "r6", cancelled=False, keep_until=NOW + 86400, cause="ev-run-y")
            # a zombie's late claim of the cancelled reminder, and a writer that knew only of
            # r5's close: the owner writes the full state again, so compaction keeps that
            for key, value in (
                (
                    "cancelled",
                    _foreign(
                        "cancelled",
                        S.CLAIMED,
                        cancelled,
                        owner="z",
                        epoch=9,
                        claimed_at=NOW,
                        deadline=NOW + 15,
                    ),
                ),
                (
                    "run:r5",
                    _foreign(
                        "run:r5",
                        S.RUN_CLOSED,
                        None,
                        run_id="r5",
                        run_closed=True,
                        run_cancelled=False,
                    ),
                ),
            ):
                await producer.send_raw(topic, value, key=key.encode(), partition=0)

            async def repaired() -> bool:
                last = dict(await _records(kafka_settings, topic.name))
                cancel_again = last["cancelled"] and b'"status":"cancelled"' in last["cancelled"]
                r5 = last["run:r5"] and json.loads(last["run:r5"])["data"]["run_cancelled"]
                return bool(cancel_again and r5)

            await wait_until(repaired, timeout=WAIT, message="the owner wrote the full state again")
            written = _snapshot(w)
        async with _owner(kafka_settings, topic, producer, "full") as full:
            whole = _snapshot(full)
        assert whole == written
        before = len(await _records(kafka_settings, topic.name))

        async def compacted() -> bool:
            # a tombstone on a filler key rolls the segment (segment.ms=100): the cleaner may
            # then compact every record written above
            await producer.send_raw(topic, None, key=b"filler", partition=0)
            records = [k for k, _ in await _records(kafka_settings, topic.name) if k != "filler"]
            return len(records) == len(set(records))

        await wait_until(compacted, timeout=WAIT, message="the log cleaner compacted the topic")
        after = [k for k, _ in await _records(kafka_settings, topic.name) if k != "filler"]
        assert len(after) < before
        async with _owner(kafka_settings, topic, producer, "compacted") as restored:
            assert _snapshot(restored) == whole
    part = whole
    assert set(part["pending"]) == {"claimed", "replaced"}
    assert part["pending"]["claimed"][3:5] == ("writer", 1)
    assert part["pending"]["replaced"][0] == NOW + 7200
    assert {k: v[1] for k, v in part["finals"].items()} == {
        "sent": S.SENT,
        "cancelled": S.CANCELLED,
        "unseen": S.CANCELLED,
        "dropped": S.DROPPED,
    }
    assert set(part["dead"]) == {"dead"}
    assert part["runs"]["r5"][:2] == (True, True)
    assert part["runs"]["r6"][:2] == (True, False)
    assert "pruned" not in part["finals"]
