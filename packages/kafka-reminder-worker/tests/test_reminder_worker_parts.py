"""The worker's parts without a worker: the state and its pruning, settings validation,
dead-letter publishing, the changelog's status, the supervisor, the history writer."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings, SettingsError
from coffeebuddy.infra.kafka.models import (
    ReminderStatus,
    StateRecord,
    decode_state,
    encode_state,
    parse_dead_letter_headers,
)
from coffeebuddy.infra.kafka.reminder_worker import KafkaChangelog, ReminderSettings
from coffeebuddy.infra.kafka.reminder_worker._dead_letter import DeadLetters
from coffeebuddy.infra.kafka.reminder_worker._entry import Pending
from coffeebuddy.infra.kafka.reminder_worker._records import entry_of
from coffeebuddy.infra.kafka.reminder_worker._state import ReminderState
from coffeebuddy.infra.kafka.reminder_worker._supervisor import Supervisor
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC, REMINDER_STATE_CHANGELOG_TOPIC

if TYPE_CHECKING:
    from conftest import Kit

S = ReminderStatus

# ---------------------------------------------------------------------- state and pruning


def _entry(rid: str, partition: int = 0) -> Pending:
    return Pending(rid, "run-1", "runner", 100.0, 200.0, 300.0, b"{}", "ev", 1.0, partition)


def _store(kit: type[Kit]) -> tuple[ReminderState, Any]:
    log = kit.MemoryChangelog()
    state = ReminderState(
        log, ReminderSettings.defaults(), now=lambda: 0.0, worker_id="w", events_topic="ev"
    )
    return state, log


def _pruned(state: ReminderState, log: Any, now: float, limit: int = 1000) -> list[tuple[int, str]]:
    before = {p: len(r) for p, r in log.parts.items()}
    state.prune(now, limit)
    return [
        (p, key)
        for p, records in log.parts.items()
        for key, value in records[before.get(p, 0) :]
        if value is None
    ]


async def test_pruning_tombstones_only_state_whose_lifetime_ended_and_that_did_not_change(
    kit: type[Kit],
) -> None:
    store, log = _store(kit)
    p0 = store.open(0)
    p1 = store.open(1)
    store._settle(p0, "done-early", 100.0, S.SENT)
    store._settle(p0, "extended", 100.0, S.SENT)
    store._settle(p0, "extended", 500.0, S.SENT)  # settled again with a longer lifetime
    store._settle(p1, "revoked", 100.0, S.SENT)
    store._mark(p0, "run-a", True, False, 100.0)
    store._mark(p0, "run-b", True, False, 100.0)
    mark = store._mark(p0, "run-b", False, True, 400.0)  # a later event extends it
    assert mark.closed
    assert mark.cancelled
    assert mark.keep_until == 400.0
    store.close(1)
    assert _pruned(store, log, 99.9) == []
    assert sorted(_pruned(store, log, 100.0)) == [(0, "done-early"), (0, "run:run-a")]
    assert p0.settled("extended")
    assert "run-b" in p0.runs
    assert len(p0.finals) + len(p0.runs) == 2
    assert _pruned(store, log, 500.0) == [(0, "run:run-b"), (0, "extended")]
    assert len(p0.finals) + len(p0.runs) == 0


async def test_pruning_stops_at_its_limit_and_continues_next_round(kit: type[Kit]) -> None:
    store, log = _store(kit)
    state = store.open(0)
    for i in range(5):
        store._settle(state, f"r{i}", 10.0 + i, S.SENT)
    assert len(_pruned(store, log, 100.0, limit=3)) == 3
    assert [k for _, k in _pruned(store, log, 100.0)] == ["r3", "r4"]


def test_tombstones_forget_reminders_and_run_marks(kit: type[Kit]) -> None:
    store, _ = _store(kit)
    state = store.open(0)
    state.pending["p"] = _entry("p")
    store._settle(state, "s", 50.0, S.SENT)
    store._mark(state, "run-1", False, True, 50.0)
    for key in ("p", "s", "run:run-1"):
        store.on_record(0, 9, key.encode(), None, False)
    assert state.pending == {}
    assert state.finals == {}
    assert state.runs == {}
    assert store.pending_count() == 0


def _rec(status: ReminderStatus, **kw: Any) -> StateRecord:
    base: dict[str, Any] = {
        "state_key": "rem-1",
        "status": status,
        "run_id": "run-1",
        "keep_until": 300.0,
        "recorded_at": 1.0,
        "writer": "w",
        "reminder": b"{}",
        "due": 100.0,
        "kind": "runner",
    }
    return StateRecord(**{**base, **kw})


def test_restored_entries_share_one_copy_of_their_event_source(kit: type[Kit]) -> None:
    # the parser gives each record its own copy of a string: 100k restored entries would hold
    # 100k copies of the same few sources
    data = kit.scheduled("rem-1").data.model_dump_json(exclude_none=True).encode()
    entries = [
        entry_of(
            decode_state(
                encode_state(
                    state_key=rid,
                    status=S.SCHEDULED,
                    run_id="run-1",
                    keep_until=300.0,
                    now=1.0,
                    source="urn:test",
                    writer="w",
                    reminder=data,
                    event_source="https://slack.example/coffeebuddy/app",
                )
            ),
            0,
            offset,
        )
        for offset, rid in enumerate(("rem-1", "rem-2"))
    ]
    assert entries[0].source == "https://slack.example/coffeebuddy/app"
    assert entries[0].source is entries[1].source


def test_applying_records_tracks_the_highest_epoch(kit: type[Kit]) -> None:
    store, _ = _store(kit)
    state = store.open(0)
    store._apply(state, _rec(S.CLAIMED, epoch=7, claimed_at=5.0, deadline=20.0), 0, True)
    assert state.max_epoch == 7
    assert state.pending["rem-1"].claim_epoch == 7


def test_a_claim_applied_to_an_entry_in_flight_updates_its_claim_and_keeps_the_entry(
    kit: type[Kit],
) -> None:
    store, _ = _store(kit)
    state = store.open(0)
    entry = state.pending["rem-1"] = _entry("rem-1")
    entry.in_flight = True
    entry.set_claim("me", 2, 150.0, 165.0)
    applied = store._apply(
        state,
        _rec(S.CLAIMED, owner="zombie", epoch=1, claimed_at=149.0, deadline=164.0),
        3,
        False,
    )
    assert applied is entry
    assert (entry.claim_owner, entry.claim_epoch, entry.claim_deadline) == ("zombie", 1, 164.0)
    assert state.pending["rem-1"] is entry


async def test_compact_drops_prune_items_of_partitions_no_longer_owned(kit: type[Kit]) -> None:
    store, log = _store(kit)
    store._settle(store.open(0), "a", 10.0, S.SENT)
    store._settle(store.open(1), "b", 10.0, S.SENT)
    store.close(1)
    store.compact()
    assert _pruned(store, log, 10.0) == [(0, "a")]


# ---------------------------------------------------------------------- settings


def test_good_settings_pass() -> None:
    assert ReminderSettings(max_concurrent_sends=64).claim_ttl == 15.0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"max_pending": 0}, "REMINDER_MAX_PENDING: must be at least 1 (got 0)"),
        ({"late_grace_s": -1.0}, "REMINDER_LATE_GRACE_S: must be at least 0 (got -1.0)"),
        ({"state_margin_s": -1.0}, "REMINDER_STATE_MARGIN_S: must be at least 0"),
        ({"run_memory_s": 0.0}, "REMINDER_RUN_MEMORY_S: must be greater than 0 (got 0.0)"),
        ({"retry_initial_s": 0.0}, "REMINDER_RETRY_INITIAL_S: must be greater than 0"),
        ({"retry_initial_s": 400.0}, "REMINDER_RETRY_INITIAL_S: must be <= REMINDER_RETRY_MAX_S"),
        ({"auth_probe_initial_s": 0.0}, "REMINDER_AUTH_PROBE_INITIAL_S: must be greater than 0"),
        (
            {"auth_probe_max_s": 0.5},
            "REMINDER_AUTH_PROBE_INITIAL_S: must be <= REMINDER_AUTH_PROBE_MAX_S",
        ),
        ({"max_concurrent_sends": 0}, "REMINDER_MAX_CONCURRENT_SENDS: must be at least 1 (got 0)"),
        ({"send_timeout_s": 0.0}, "REMINDER_SEND_TIMEOUT_S: must be greater than 0"),
        (
            {"claim_start_window_s": -1.0},
            "REMINDER_CLAIM_START_WINDOW_S: must be greater than 0 (got -1.0)",
        ),
        ({"clock_skew_s": -0.5}, "REMINDER_CLOCK_SKEW_S: must be at least 0 (got -0.5)"),
        (
            {"claim_ahead_s": 5.0},
            "REMINDER_CLAIM_AHEAD_S: must be below REMINDER_CLAIM_START_WINDOW_S (5.0 s)",
        ),
    ],
)
def test_each_bad_setting_is_named_with_its_value(change: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError, match=r"^invalid reminder worker configuration") as info:
        ReminderSettings(**change)
    assert named in str(info.value)
    assert len(info.value.problems) == 1  # only the bad one is reported


def test_a_typo_in_a_reminder_variable_gets_did_you_mean(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "coffeebuddy.infra.kafka.config"):
        settings = ReminderSettings.from_env({"REMINDER_MAX_PENDNG": "5"})
    assert settings.max_pending == 100_000
    assert "REMINDER_MAX_PENDNG is not a reminder worker setting; did you mean " in caplog.text
    assert "REMINDER_MAX_PENDING?" in caplog.text


# ---------------------------------------------------------------------- dead letters


def _pending(kit: type[Kit]) -> Pending:
    data = kit.scheduled("bad", run_id="run-7").data
    entry = Pending(
        "bad", "run-7", "runner", 1.0, 2.0, 3.0, data.model_dump_json().encode(), "", 0.0, 4
    )
    entry.origin_offset = 42
    return entry


def _publish(kit: type[Kit], producer: Any, topic: Any = REMINDER_EVENTS_TOPIC) -> Any:
    entry = _pending(kit)
    reminder = kit.scheduled("bad", run_id="run-7").data
    return DeadLetters(producer, topic, group="g").publish(entry, reminder, "invalid_blocks")


async def test_a_dead_letter_is_retried_until_the_broker_takes_it(
    kit: type[Kit], caplog: pytest.LogCaptureFixture
) -> None:
    producer = kit.FakeProducer()
    producer.failures = 1
    with caplog.at_level(logging.WARNING, "coffeebuddy.infra.kafka.reminder_worker"):
        where = await asyncio.wait_for(_publish(kit, producer), 5)
    assert where == (REMINDER_EVENTS_TOPIC.dead_letter_topic, 0, 0)
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
        assert await _publish(kit, producer, topic) is None
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


# ---------------------------------------------------------------------- supervision


async def test_a_crashed_task_is_restarted_and_named_until_it_makes_progress() -> None:
    supervisor = Supervisor()
    runs: list[int] = []
    crash = asyncio.Event()
    crash.set()
    proceed = asyncio.Event()

    async def work() -> None:
        runs.append(len(runs))
        if crash.is_set():
            crash.clear()
            raise RuntimeError("boom")
        await proceed.wait()
        supervisor.ok("thing")
        await asyncio.Event().wait()

    supervisor.start("thing", work)
    await wait_until(lambda: len(runs) == 2, timeout=5, message="restarted after the crash")
    assert supervisor.problems == ["thing failed (RuntimeError: boom), restarted 1x"]
    assert supervisor.running("thing")
    proceed.set()
    await wait_until(lambda: supervisor.problems == [], timeout=5, message="recovered")
    assert supervisor.restarts("thing") == 1
    await supervisor.stop()
    assert not supervisor.running("thing")


# ---------------------------------------------------------------------- history writer


class _RecordingProducer:
    """Stands in for the producer's batch send: records each batch's size."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def send_raw_many(self, topic: object, records: list[Any]) -> None:
        self.batches.append(len(records))


async def test_history_lingers_for_a_full_batch_and_a_flush_does_not_wait_the_linger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coffeebuddy.infra.kafka.reminder_worker import _history

    monkeypatch.setattr(_history, "_BATCH", 4)
    monkeypatch.setattr(_history, "_LINGER_S", 600.0)
    producer = _RecordingProducer()
    history = _history.History(producer, REMINDER_STATE_CHANGELOG_TOPIC)  # type: ignore[arg-type]
    supervisor = Supervisor()
    history.start(supervisor)
    history.append("r1", b"1")
    for _ in range(20):  # turns of the loop in which a writer without a linger would send r1
        await asyncio.sleep(0)
    for i in range(2, 5):
        history.append(f"r{i}", b"x")
    await wait_until(lambda: producer.batches, timeout=10, message="the full batch is sent")
    assert producer.batches == [4]
    history.append("r5", b"5")
    await history.flush(timeout=30)  # lingering 600 s would leave r5 unsent
    assert producer.batches == [4, 1]
    await supervisor.stop()


# ---------------------------------------------------------------------- process settings


def test_tune_gc_sets_the_thresholds_returns_the_old_ones_and_rejects_nonsense() -> None:
    import gc

    from coffeebuddy.infra.kafka.reminder_worker import tune_gc
    from coffeebuddy.infra.kafka.reminder_worker._gc import DEFAULT_GC_THRESHOLDS

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
