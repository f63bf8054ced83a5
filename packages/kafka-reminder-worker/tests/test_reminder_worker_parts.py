"""The worker's parts without a worker: the state store and its pruning, settings validation, the
delivery-log upgrade reader's record rules, dead-letter publishing, the changelog's status."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import (
    ReminderDelivery,
    ReminderDeliveryData,
    encode_event,
    parse_dead_letter_headers,
)
from coffeebuddy.infra.kafka.reminder_worker import KafkaChangelog
from coffeebuddy.infra.kafka.reminder_worker._core import WorkerConfig
from coffeebuddy.infra.kafka.reminder_worker._dead_letter import publish_dead_letter
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._legacy import LegacyState, _apply
from coffeebuddy.infra.kafka.reminder_worker._records import StateRecord
from coffeebuddy.infra.kafka.reminder_worker._settings import validate_settings
from coffeebuddy.infra.kafka.reminder_worker._store import ScheduleStore
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC, REMINDER_STATE_CHANGELOG_TOPIC

if TYPE_CHECKING:
    from conftest import Kit

# ---------------------------------------------------------------------- store and pruning


def _entry(rid: str, partition: int = 0) -> Pending:
    return Pending(rid, "run-1", "runner", 100.0, 200.0, 300.0, b"{}", "ev", 1.0, partition)


def test_pruning_tombstones_only_state_whose_lifetime_ended_and_that_did_not_change() -> None:
    store = ScheduleStore()
    p0 = store.open(0)
    p1 = store.open(1)
    store.settle(p0, "done-early", 100.0)
    store.settle(p0, "extended", 100.0)
    store.settle(p0, "extended", 500.0)  # settled again with a longer lifetime
    store.settle(p1, "revoked", 100.0)
    store.mark_run(p0, "run-a", "run_closed", 100.0)
    store.mark_run(p0, "run-b", "run_closed", 100.0)
    mark = store.mark_run(p0, "run-b", "run_cancelled", 400.0)  # a later event extends it
    assert mark.closed
    assert mark.cancelled
    assert mark.keep_until == 400.0
    store.close(1)
    assert store.due_for_pruning(99.9) == []
    assert sorted(store.due_for_pruning(100.0)) == [(0, "done-early"), (0, "run:run-a")]
    assert p0.settled("extended")
    assert "run-b" in p0.runs
    assert store.settled_count() == 2
    assert store.due_for_pruning(500.0) == [(0, "run:run-b"), (0, "extended")]
    assert store.settled_count() == 0


def test_pruning_stops_at_its_limit_and_continues_next_round() -> None:
    store = ScheduleStore()
    state = store.open(0)
    for i in range(5):
        store.settle(state, f"r{i}", 10.0 + i)
    assert len(store.due_for_pruning(100.0, limit=3)) == 3
    assert [k for _, k in store.due_for_pruning(100.0)] == ["r3", "r4"]


def test_tombstones_forget_reminders_and_run_marks() -> None:
    store = ScheduleStore()
    state = store.open(0)
    state.pending["p"] = _entry("p")
    store.settle(state, "s", 50.0)
    store.mark_run(state, "run-1", "run_cancelled", 50.0)
    for key in ("p", "s", "run:run-1"):
        store.forget(state, key)
    assert state.pending == {}
    assert state.finals == {}
    assert state.runs == {}
    assert list(store.all_pending()) == []


def _rec(status: str, **kw: Any) -> StateRecord:
    base: dict[str, Any] = {
        "state_key": "rem-1",
        "status": status,
        "run_id": "run-1",
        "keep_until": 300.0,
        "writer": "w",
    }
    return StateRecord(**{**base, **kw})


def test_applying_records_tracks_the_highest_epoch_and_skips_records_without_reminder_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = ScheduleStore()
    state = store.open(0)
    with caplog.at_level(logging.WARNING, "coffeebuddy.infra.kafka.reminder_worker.store"):
        assert store.apply(state, _rec("scheduled", epoch=7)) is None
    assert state.max_epoch == 7
    assert state.pending == {}
    assert [r.getMessage() for r in caplog.records] == [
        "changelog record without reminder data skipped"
    ]


def test_a_claim_applied_to_an_entry_in_flight_updates_its_claim_and_keeps_the_entry() -> None:
    store = ScheduleStore()
    state = store.open(0)
    entry = state.pending["rem-1"] = _entry("rem-1")
    entry.in_flight = True
    entry.set_claim("me", 2, 150.0, 165.0)
    applied = store.apply(
        state,
        _rec(
            "claimed",
            reminder=b"{}",
            due=100.0,
            kind="runner",
            owner="zombie",
            epoch=1,
            claimed_at=149.0,
            deadline=164.0,
        ),
    )
    assert applied is entry
    assert (entry.claim_owner, entry.claim_epoch, entry.claim_deadline) == ("zombie", 1, 164.0)
    assert state.pending["rem-1"] is entry


def test_compact_drops_prune_items_of_partitions_no_longer_owned() -> None:
    store = ScheduleStore()
    store.settle(store.open(0), "a", 10.0)
    store.settle(store.open(1), "b", 10.0)
    store.close(1)
    store.compact()
    assert store.due_for_pruning(10.0) == [(0, "a")]


# ---------------------------------------------------------------------- settings

GOOD = WorkerConfig(
    late_grace=900.0,
    state_margin=3600.0,
    run_memory=86400.0,
    retry_initial=1.0,
    retry_max=300.0,
    probe_initial=5.0,
    probe_max=300.0,
    send_timeout=10.0,
    claim_start_window=5.0,
    clock_skew=2.0,
    max_pending=100_000,
    max_concurrent_sends=64,
)


def test_good_settings_pass() -> None:
    validate_settings(GOOD)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"max_pending": 0}, "max_pending must be >= 1 (got 0)"),
        ({"late_grace": -1.0}, "late_grace must not be negative (got -1.0 s)"),
        ({"state_margin": -1.0}, "state_margin must not be negative"),
        ({"run_memory": 0.0}, "run_memory must be positive (got 0.0 s)"),
        ({"retry_initial": 0.0}, "retry_initial (0.0) must be > 0 and <= retry_max (300.0)"),
        ({"retry_initial": 400.0}, "retry_initial (400.0) must be > 0 and <= retry_max"),
        ({"probe_initial": 0.0}, "auth_probe_initial (0.0) must be > 0"),
        ({"probe_max": 1.0}, "<= auth_probe_max (1.0)"),
        ({"max_concurrent_sends": 0}, "max_concurrent_sends must be >= 1 (got 0)"),
        ({"send_timeout": 0.0}, "send_timeout must be positive"),
        ({"claim_start_window": -1.0}, "claim_start_window must be positive (got -1.0 s)"),
        ({"clock_skew": -0.5}, "clock_skew must not be negative (got -0.5 s)"),
        (
            {"claim_ahead": 5.0},
            "claim_ahead must be >= 0 and below claim_start_window (5.0 s) (got 5.0 s)",
        ),
    ],
)
def test_each_bad_setting_is_named_with_its_value(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=r"^ReminderWorker: ") as info:
        validate_settings(replace(GOOD, **change))
    assert named in str(info.value)
    assert ";" not in str(info.value)  # only the bad one is reported


# ---------------------------------------------------------------------- legacy delivery log

SINCE = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None


def _delivery(rid: str, status: str, *, due_in_h: float = 1.0, claimed: bool = False) -> Rec:
    due = datetime(2026, 1, 5, 8, 0, tzinfo=UTC) + timedelta(hours=due_in_h)
    event = ReminderDelivery.create(
        data=ReminderDeliveryData(
            run_id="run-1",
            reminder_id=rid,
            status=status,  # type: ignore[arg-type]
            due_at=due,
            recorded_at=due,
            claimed_at=due if claimed else None,
        )
    )
    return Rec(rid.encode(), encode_event(event))


def _read(*records: Rec) -> dict[str, LegacyState]:
    states: dict[str, LegacyState] = {}
    for rec in records:
        _apply(states, rec, SINCE)
    return states


def test_legacy_log_keeps_the_latest_state_per_reminder() -> None:
    states = _read(_delivery("a", "claimed", claimed=True), _delivery("b", "dropped"))
    assert states["a"].status == "claimed"
    assert states["a"].claimed_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp()
    assert states["b"] == LegacyState("dropped", None)
    assert _read(_delivery("a", "claimed", claimed=True), _delivery("a", "sent"))["a"].status == (
        "sent"
    )


def test_a_late_claim_never_hides_a_final_state_but_sent_replaces_dropped() -> None:
    assert _read(_delivery("a", "sent"), _delivery("a", "claimed", claimed=True))["a"].status == (
        "sent"
    )
    assert _read(_delivery("a", "dropped"), _delivery("a", "sent"))["a"].status == "sent"


def test_a_tombstone_releases_a_claim_only() -> None:
    assert _read(_delivery("a", "claimed", claimed=True), Rec(b"a", None)) == {}
    assert _read(_delivery("a", "sent"), Rec(b"a", None))["a"].status == "sent"
    assert _read(Rec(None, None)) == {}


def test_reminders_due_before_the_window_are_forgotten() -> None:
    assert _read(_delivery("a", "claimed", claimed=True), _delivery("a", "sent", due_in_h=-2)) == {}


def test_records_that_are_not_deliveries_are_ignored(kit: type[Kit]) -> None:
    assert _read(Rec(b"x", b"{not json"), Rec(b"x", encode_event(kit.scheduled()))) == {}


# ---------------------------------------------------------------------- dead letters


def _pending(kit: type[Kit]) -> Pending:
    data = kit.scheduled("bad", run_id="run-7").data
    entry = Pending(
        "bad", "run-7", "runner", 1.0, 2.0, 3.0, data.model_dump_json().encode(), "", 0.0, 4
    )
    entry.origin_offset = 42
    return entry


async def test_a_dead_letter_is_retried_until_the_broker_takes_it(
    kit: type[Kit], caplog: pytest.LogCaptureFixture
) -> None:
    producer = kit.FakeProducer()
    producer.failures = 1
    with caplog.at_level(logging.WARNING, "coffeebuddy.infra.kafka.reminder_worker"):
        await asyncio.wait_for(
            publish_dead_letter(producer, REMINDER_EVENTS_TOPIC, _pending(kit), "invalid_blocks"),  # type: ignore[arg-type]
            5,
        )
    assert [r.getMessage() for r in caplog.records] == [
        "dead-letter write failed (ConnectionError); retrying"
    ]
    [(topic, headers)] = producer.dead_letters
    assert topic == REMINDER_EVENTS_TOPIC.dead_letter_topic
    letter = parse_dead_letter_headers(list(headers.items()))  # the replay tool's reading
    assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == (
        REMINDER_EVENTS_TOPIC.name,
        4,
        42,
    )
    assert letter.origin_key == b"run-7"
    assert (letter.error_type, letter.reason, letter.attempts) == (
        "NonRetryableError",
        "non_retryable",
        1,
    )
    assert "reminder bad (run run-7) rejected by the sender: invalid_blocks" in (
        letter.error_message
    )
    assert letter.first_seen is not None
    [value] = producer.values
    assert value is not None
    assert b'"reminder_id":"bad"' in value


async def test_without_a_dead_letter_topic_the_rejection_is_logged_only(
    kit: type[Kit], caplog: pytest.LogCaptureFixture
) -> None:
    producer = kit.FakeProducer()
    topic = REMINDER_EVENTS_TOPIC.model_copy(update={"dead_letter_topic": None})
    with caplog.at_level(logging.ERROR, "coffeebuddy.infra.kafka.reminder_worker"):
        await publish_dead_letter(producer, topic, _pending(kit), "invalid_blocks")  # type: ignore[arg-type]
    assert producer.dead_letters == []
    assert [r.getMessage() for r in caplog.records] == [
        "no dead-letter topic for bad; rejected reminder only logged"
    ]


# ---------------------------------------------------------------------- changelog status


async def test_the_kafka_changelog_reports_writer_before_reader_errors_and_counts_unflushed() -> (
    None
):
    log = KafkaChangelog(
        KafkaSettings(bootstrap_servers="localhost:9092"),
        REMINDER_STATE_CHANGELOG_TOPIC,
        object(),  # type: ignore[arg-type]
    )
    assert log.error is None
    fut = log.write(0, "rem-1", b"{}")
    assert log.unflushed == 1
    log.read_error = "KafkaConnectionError: gone"
    assert log.error == "changelog reader: KafkaConnectionError: gone"
    log.write_error = "KafkaTimeoutError: no ack"
    assert log.error == "changelog writer: KafkaTimeoutError: no ack"
    await log.stop()  # never started: what is queued is given up, never reported written
    assert fut.cancelled()
    assert log.unflushed == 0


# ---------------------------------------------------------------------- process settings


def test_tune_gc_sets_the_thresholds_returns_the_old_ones_and_rejects_nonsense() -> None:
    import gc

    from coffeebuddy.infra.kafka.reminder_worker import DEFAULT_GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        assert tune_gc() == before
        assert gc.get_threshold() == DEFAULT_GC_THRESHOLDS
        assert tune_gc(None) == DEFAULT_GC_THRESHOLDS
        assert gc.get_threshold() == DEFAULT_GC_THRESHOLDS  # None leaves them
        with pytest.raises(ValueError, match=r"three positive integers, got \(0, 10, 10\)"):
            tune_gc((0, 10, 10))
        assert gc.get_threshold() == DEFAULT_GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)


def test_record_times_are_rfc3339_to_the_millisecond_and_follow_the_clock() -> None:
    from coffeebuddy.infra.kafka.reminder_worker._records import iso_now

    first = iso_now(1_700_000_000.1234)
    assert first == "2023-11-14T22:13:20.123+00:00"
    assert iso_now(1_700_000_000.1239) == first  # same millisecond
    assert iso_now(1_700_000_001.5) == "2023-11-14T22:13:21.500+00:00"
    assert datetime.fromisoformat(first).timestamp() == pytest.approx(1_700_000_000.123)
