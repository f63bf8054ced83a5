"""The worker's lifecycle and readiness (start / stop, assign / revoke, restore, health), the
changelog tail, the upgrade from the delivery log and capacity when revoked."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import ReminderState, RunClosed, RunClosedData, encode_state
from coffeebuddy.infra.kafka.reminder_worker import KafkaChangelog, ReminderWorker, SendResult
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC

if TYPE_CHECKING:
    from conftest import Harness, Kit

LOGGER = "coffeebuddy.infra.kafka.reminder_worker"


def _sent(h: Harness) -> list[str]:
    return [rid for rid, _ in h.sender.sent]


async def test_a_started_worker_sends_due_reminders_by_itself_and_stops_cleanly(
    kit: type[Kit],
) -> None:
    clock = kit.Clock()
    sender = kit.FakeSender(clock)
    log = kit.MemoryChangelog()
    worker = ReminderWorker(sender, kit.FakeProducer(), changelog=log, clock=clock)  # type: ignore[arg-type]
    assert worker.health().detail == "not started"
    async with worker:
        await worker.start()  # a second start is a no-op
        await worker.on_assign([kit.TopicPartition(kit.EVENTS, 0)])
        assert worker.ready
        ctx = kit.Context(kit.EVENTS, 0, 0)
        await worker.process_event(kit.scheduled(due_in=0), ctx)  # type: ignore[arg-type]
        await wait_until(lambda: sender.sent != [], timeout=5, message="sent by the scheduler")
        assert worker.health().detail == "ok"
    assert [r for r, _ in sender.sent] == ["rem-1"]
    assert log.statuses("rem-1") == ["scheduled", "claimed", "sent"]
    assert not worker.ready
    assert worker.health().detail == "not started"
    assert worker.pending_count == 0
    assert worker.max_pending == 100_000
    assert worker.changelog is log


async def test_events_of_other_types_complete_untouched(kit: type[Kit], h: Harness) -> None:
    record = encode_state(
        state_key="x", status="sent", run_id="run-1", keep_until=0, now=0, source="/t", writer="w"
    )
    ctx = await h.feed(ReminderState.model_validate_json(record))
    assert ctx.state == "completed-inline"
    assert h.changelog.parts[0] == []


async def test_a_reassignment_without_a_completed_revoke_restores_in_a_new_epoch(
    kit: type[Kit], h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.sender.script["rem-1"] = [SendResult.transient("internal_error")]
    await h.feed(kit.scheduled(due_in=0))
    await h.run()
    state = h.worker.state.get(0)
    assert state is not None
    assert state.epoch == 1
    with caplog.at_level(logging.WARNING, LOGGER):
        await h.worker.on_assign([kit.TopicPartition(kit.EVENTS, 0)])
    assert any("re-assigned without a completed revoke" in r.getMessage() for r in caplog.records)
    fresh = h.worker.state.get(0)
    assert fresh is not None
    assert fresh is not state
    assert fresh.epoch == 2  # our own claim of epoch 1 is foreign now
    assert h.worker.pending_count == 1
    h.clock.advance(17.1)
    await h.run()
    assert h.sender.find_calls == ["rem-1"]
    assert _sent(h) == ["rem-1"]


async def test_revoking_partitions_of_other_topics_changes_nothing(
    kit: type[Kit], h: Harness
) -> None:
    await h.feed(kit.scheduled(due_in=60))
    await h.worker.on_revoke([kit.TopicPartition(kit.RUNS, 0)])
    assert h.worker.pending_count == 1
    assert h.changelog.owned == {0}


async def test_health_names_restoring_partitions_changelog_errors_and_unflushed_writes(
    kit: type[Kit], h: Harness
) -> None:
    gate = h.changelog.restore_gate = asyncio.Event()
    assign = asyncio.create_task(h.worker.on_assign([kit.TopicPartition(kit.EVENTS, 1)]))
    await wait_until(lambda: 1 in h.worker.state.partitions, timeout=5, message="restoring")
    health = h.worker.health()
    assert not health.ready
    assert not health.delivery_log_caught_up
    assert "restoring changelog partitions [1]" in health.detail
    gate.set()
    await asyncio.wait_for(assign, 5)
    assert h.worker.ready
    h.changelog.error = "changelog writer: KafkaConnectionError: broker down"
    h.changelog.hold = True
    await h.feed(kit.scheduled(due_in=60))
    health = h.worker.health()
    assert not health.ready
    assert "changelog writer: KafkaConnectionError" in health.detail
    assert "records wait, nothing dropped" in health.detail
    assert "1 state changes not yet acknowledged" in health.detail
    assert health.unflushed == 1
    assert h.sample("coffeebuddy_reminder_state_unflushed") == 1


async def test_the_changelog_tail_applies_other_writers_and_skips_what_it_cannot_use(
    kit: type[Kit], h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    sink = h.changelog.sink
    assert sink is not None
    foreign = encode_state(
        state_key="theirs",
        status="scheduled",
        run_id="run-1",
        keep_until=kit.T0.timestamp() + 7200,
        now=kit.T0.timestamp(),
        source="/test",
        writer="another-worker",
        reminder_id="theirs",
        reminder=kit.scheduled("theirs", due_in=30).data.model_dump_json().encode(),
        event_id="ev-9",
        event_time=kit.T0.timestamp(),
    )
    with caplog.at_level(logging.WARNING, "coffeebuddy.infra.kafka.reminder_worker"):
        sink(0, 10, b"junk", b"{not json", False)
        sink(0, 11, None, foreign, False)  # no key: not a state record
        sink(7, 12, b"theirs", foreign, False)  # a partition we do not own
        sink(0, 13, b"theirs", foreign, False)
    assert [r.getMessage() for r in caplog.records] == [
        "unreadable changelog record at partition 0 offset 10 skipped: not JSON (JSONDecodeError)"
    ]
    assert h.worker.pending_count == 1
    h.clock.advance(30)
    await h.run()
    assert _sent(h) == ["theirs"]  # scheduled by the tail, sent by the owner
    await h.feed(kit.scheduled("mine", due_in=60))
    [mine] = [v for k, v in h.changelog.parts[0] if k == "mine"]
    sink(0, 14, b"mine", mine, False)  # our own write coming back: already applied
    assert h.worker.pending_count == 1
    sink(0, 15, b"mine", None, False)  # a tombstone from the tail forgets the key
    assert h.worker.pending_count == 0


async def test_a_claim_by_another_writer_during_our_attempt_fences_our_post(
    kit: type[Kit], h: Harness
) -> None:
    await h.feed(kit.scheduled(due_in=0))
    h.sender.gate = asyncio.Event()
    sink = h.changelog.sink
    assert sink is not None

    def zombie(_p: int, _o: int) -> None:  # arrives through the tail before our read-back ends
        sink(0, 99, b"rem-1", kit.claim_record("zombie", 1, h.clock().timestamp()), False)

    h.changelog.on_read_past = zombie
    h.sender.gate.set()
    await h.run()
    assert h.sender.entered == []
    assert h.entry("rem-1").claim_owner == "zombie"


async def test_a_record_waiting_for_capacity_when_its_partition_is_revoked_writes_nothing(
    kit: type[Kit],
) -> None:
    h = await kit.Harness(max_pending=1).start()
    await h.feed(kit.scheduled("first", due_in=3600))
    ctx = await h.feed(kit.scheduled("second", run_id="run-2", due_in=3600))
    assert h.worker.health().at_capacity
    await h.worker.on_revoke([kit.TopicPartition(kit.EVENTS, 0)])
    h.worker.intake.admit_now()
    assert not ctx.completed  # never completed: the partition's next owner gets the record
    assert h.changelog.statuses("second") == []
    assert h.worker.pending_count == 0
    assert not h.worker.health().at_capacity


async def test_a_cancellation_of_a_settled_reminder_completes_at_once(
    kit: type[Kit], h: Harness
) -> None:
    await h.feed(kit.scheduled(due_in=0))
    await h.run()
    ctx = await h.feed(kit.cancelled())
    assert ctx.state == "completed-inline"
    assert h.changelog.statuses("rem-1") == ["scheduled", "claimed", "sent"]


async def test_a_run_event_of_a_partition_owned_elsewhere_is_written_for_its_owner(
    kit: type[Kit], h: Harness
) -> None:
    ctx = await h.feed(
        RunClosed.create(data=RunClosedData(run_id="run-5", closed_at=kit.T0)), kit.RUNS, 3
    )
    assert ctx.state == "done"
    assert h.changelog.statuses("run:run-5", partition=3) == ["run_closed"]
    assert h.worker.state.get(3) is None


def test_with_settings_and_no_changelog_the_worker_reads_kafka() -> None:
    worker = ReminderWorker(
        object(),  # type: ignore[arg-type]
        object(),  # type: ignore[arg-type]
        kafka=KafkaSettings(bootstrap_servers="localhost:9092"),
    )
    assert isinstance(worker.changelog, KafkaChangelog)
    assert worker.worker_id.startswith("reminder-worker-")


async def test_dead_letters_are_counted_like_the_harness_counts_them(kit: type[Kit]) -> None:
    registry = CollectorRegistry()
    h = await kit.Harness(kafka_metrics=KafkaMetrics(registry)).start()
    h.sender.script["rem-1"] = [SendResult.permanent("invalid_blocks", dead_letter=True)]
    await h.feed(kit.scheduled(due_in=0))
    await h.run()
    assert len(h.producer.dead_letters) == 1
    labels = {
        "topic": REMINDER_EVENTS_TOPIC.name,
        "group": "coffeebuddy.reminder-worker",
        "reason": "non_retryable",
    }
    assert registry.get_sample_value("coffeebuddy_kafka_dead_lettered_total", labels) == 1


async def test_capacity_pauses_and_resumes_without_metrics_too(kit: type[Kit]) -> None:
    h = await kit.Harness(metrics=None, max_pending=1).start()
    await h.feed(kit.scheduled("first", due_in=3600))
    ctx = await h.feed(kit.scheduled("second", run_id="run-2", due_in=3600))
    assert h.worker.health().at_capacity
    assert ctx.state == "pending"  # waits, deferred, without holding the partition
    await h.feed(kit.cancelled("first"))
    h.worker.intake.admit_now()  # what the supervised admission task does once room frees
    await asyncio.sleep(0)
    assert ctx.state == "done"
    assert not h.worker.health().at_capacity
    assert h.changelog.statuses("second") == ["scheduled"]


async def test_a_run_closed_while_its_partition_restores_drops_its_last_calls_when_due(
    kit: type[Kit], h: Harness
) -> None:
    pending = kit.scheduled("last", kind="last_call", due_in=30)
    await h.feed(pending, partition=1)  # partition 1 restores on first use
    await h.worker.on_revoke([kit.TopicPartition(kit.EVENTS, 1)])
    gate = h.changelog.restore_gate = asyncio.Event()
    assign = asyncio.create_task(h.worker.on_assign([kit.TopicPartition(kit.EVENTS, 1)]))
    await wait_until(lambda: 1 in h.worker.state.partitions, timeout=5, message="restoring")
    closed = RunClosed.create(data=RunClosedData(run_id="run-1", closed_at=kit.T0))
    feeding = asyncio.create_task(h.feed(closed, kit.RUNS, 1))  # waits for the restore
    gate.set()
    await asyncio.wait_for(assign, 5)
    ctx = await asyncio.wait_for(feeding, 5)
    assert ctx.state == "done"
    h.clock.advance(30)
    await h.run()
    assert h.sender.sent == []
    assert h.changelog.statuses("last", partition=1)[-1] == "dropped"
    assert (
        h.sample("coffeebuddy_reminders_dropped_total", kind="last_call", reason="run_closed") == 1
    )
