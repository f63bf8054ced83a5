"""DLQ inspect/replay on the real broker, dead letters written in the consumer's format."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from coffeebuddy.infra.kafka.config import KafkaSettings, topic_partitions
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    DeadLetterReplayed,
    decode_event,
    encode_event,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import _dlq
from coffeebuddy.infra.kafka.provision._dlq import (
    REPLAYED_FROM_HEADER,
    DeadLetterFilter,
    DlqError,
    FileReplayLedger,
    LedgerTopicMissingError,
    ReplayLedger,
    TopicReplayLedger,
    inspect_dead_letters,
    parse_duration,
    replay_dead_letters,
    replayed_event,
)
from coffeebuddy.infra.kafka.testing import TopicFactory
from coffeebuddy.infra.kafka.topics import CATALOG, DLQ_REPLAYS_TOPIC, TopicConfig

LEDGER_BASE = CATALOG.for_environment("dev").topic(DLQ_REPLAYS_TOPIC.name)


def _event(run_id: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "type": "coffeebuddy.reminder.scheduled.v1",
            "data": {"run_id": run_id},
        }
    ).encode()


def _dlq_headers(
    origin: str, partition: int, offset: int, key: str, error_type: str, reason: str
) -> list[tuple[str, bytes]]:
    h = "coffeebuddy.dlq."
    return [
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        (h + "origin.topic", origin.encode()),
        (h + "origin.partition", str(partition).encode()),
        (h + "origin.offset", str(offset).encode()),
        (h + "origin.key", key.encode()),
        (h + "error.type", error_type.encode()),
        (h + "error.message", f"{error_type} happened".encode()),
        (h + "reason", reason.encode()),
        (h + "attempts", b"3"),
        (h + "first_seen", datetime.now(UTC).isoformat().encode()),
    ]


async def _records(settings: KafkaSettings, topic: str) -> list[Any]:
    """Everything in partition-ordered `topic`, read group-less up to the current end."""
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(None))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + 15
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} up to {ends}"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(batch)
        return out
    finally:
        await consumer.stop()


@pytest.fixture
async def dead_letters(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> tuple[TopicConfig, TopicConfig]:
    origin = unique_topic(partitions=2)
    dlq = unique_topic.dead_letter(origin)
    async with KafkaEventProducer(kafka_settings) as producer:
        rows = [
            ("run-1", 0, 10, "slack.SlackApiError", "non_retryable"),
            ("run-2", 1, 11, "EventDecodeError", "decode_error"),
            ("run-3", 0, 12, "slack.SlackApiError", "retries_exhausted"),
        ]
        for run_id, partition, offset, error, reason in rows:
            await producer.send_raw(
                dlq,
                _event(run_id),
                key=run_id.encode(),
                headers=_dlq_headers(origin.name, partition, offset, run_id, error, reason),
            )
    return origin, dlq


async def test_inspect_lists_every_dead_letter_with_decoded_headers(
    kafka_settings: KafkaSettings, dead_letters: tuple[TopicConfig, TopicConfig]
) -> None:
    origin, dlq = dead_letters
    letters = await inspect_dead_letters(dlq.name, settings=kafka_settings)
    assert [d.run_id for d in letters] == ["run-1", "run-2", "run-3"]
    first = letters[0]
    assert first.origin_topic == origin.name
    assert (first.origin_partition, first.origin_offset) == (0, 10)
    assert first.origin_key == b"run-1"
    assert first.error_type == "slack.SlackApiError"
    assert first.error_message == "slack.SlackApiError happened"
    assert first.reason == "non_retryable"
    assert first.attempts == 3
    assert first.first_seen is not None
    assert timedelta(0) <= first.age() < timedelta(minutes=5)
    as_json = first.to_json()
    assert as_json["origin_topic"] == origin.name
    assert as_json["key"] == "run-1"
    assert as_json["ref"] == f"{dlq.name}/0/{first.offset}"
    # the origin topic resolves to its DLQ by the catalog/convention only for DLQ names
    assert len(await inspect_dead_letters(dlq, settings=kafka_settings)) == 3


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (DeadLetterFilter(reason="decode_error"), ["run-2"]),
        (DeadLetterFilter(error_type="SlackApiError"), ["run-1", "run-3"]),
        (DeadLetterFilter(error_type="slack.SlackApiError", reason="retries_exhausted"), ["run-3"]),
        (DeadLetterFilter(key="run-2"), ["run-2"]),
        (DeadLetterFilter(run_id="run-3"), ["run-3"]),
        (DeadLetterFilter(origin_topic="elsewhere"), []),
        (DeadLetterFilter(newer_than=timedelta(minutes=5)), ["run-1", "run-2", "run-3"]),
        (DeadLetterFilter(older_than=timedelta(minutes=5)), []),
    ],
)
async def test_inspect_filters(
    kafka_settings: KafkaSettings,
    dead_letters: tuple[TopicConfig, TopicConfig],
    where: DeadLetterFilter,
    expected: list[str],
) -> None:
    _, dlq = dead_letters
    letters = await inspect_dead_letters(dlq.name, settings=kafka_settings, where=where)
    assert [d.run_id for d in letters] == expected


async def test_replay_dry_run_then_once_then_nothing(
    kafka_settings: KafkaSettings, dead_letters: tuple[TopicConfig, TopicConfig], tmp_path: Path
) -> None:
    origin, dlq = dead_letters
    ledger = FileReplayLedger(tmp_path / "replayed.jsonl")
    where = DeadLetterFilter(error_type="SlackApiError")

    dry = await replay_dead_letters(
        dlq.name, ledger=ledger, settings=kafka_settings, where=where, dry_run=True
    )
    assert [d.run_id for d in dry.to_replay] == ["run-1", "run-3"]
    assert dry.replayed == []
    assert await _records(kafka_settings, origin.name) == []
    assert not ledger.path.exists()

    done = await replay_dead_letters(
        dlq.name, ledger=ledger, settings=kafka_settings, where=where, rate=50
    )
    assert [d.run_id for d, _ in done.replayed] == ["run-1", "run-3"]
    records = await _records(kafka_settings, origin.name)
    assert sorted(r.key for r in records) == [b"run-1", b"run-3"]
    for record in records:
        headers = dict(record.headers)
        assert not any(
            k.startswith("coffeebuddy.dlq.") and k != REPLAYED_FROM_HEADER for k in headers
        )
        assert headers["traceparent"].startswith(b"00-0af7")
        assert headers[REPLAYED_FROM_HEADER].decode().startswith(f"{dlq.name}/0/")
        assert json.loads(record.value)["data"]["run_id"] == record.key.decode()
    lines = [json.loads(line) for line in ledger.path.read_text().splitlines()]
    assert [e["run_id"] for e in lines] == ["run-1", "run-3"]
    assert all(e["key"] == e["ref"] and e["ref"].startswith(f"{dlq.name}/0/") for e in lines)
    assert {e["origin_topic"] for e in lines} == {origin.name}

    again = await replay_dead_letters(dlq.name, ledger=ledger, settings=kafka_settings, where=where)
    assert again.replayed == []
    assert [d.run_id for d in again.already_replayed] == ["run-1", "run-3"]
    assert len(await _records(kafka_settings, origin.name)) == 2

    # a fresh ledger object on the same file remembers too; the limit counts new sends only
    other = await replay_dead_letters(
        dlq.name, ledger=FileReplayLedger(ledger.path), settings=kafka_settings, limit=1
    )
    assert [d.run_id for d, _ in other.replayed] == ["run-2"]
    assert len(await _records(kafka_settings, origin.name)) == 3


async def test_replay_refuses_an_origin_that_is_not_the_dlqs(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, tmp_path: Path
) -> None:
    origin = unique_topic(partitions=1)
    dlq = unique_topic.dead_letter(origin)
    async with KafkaEventProducer(kafka_settings) as producer:
        await producer.send_raw(
            dlq,
            _event("run-x"),
            key=b"run-x",
            headers=_dlq_headers("coffeebuddy.run.events", 0, 1, "run-x", "E", "non_retryable"),
        )
    ledger = FileReplayLedger(tmp_path / "l.jsonl")
    with pytest.raises(DlqError, match="not the origin of"):
        await replay_dead_letters(dlq.name, ledger=ledger, settings=kafka_settings)
    assert await _records(kafka_settings, origin.name) == []


async def test_inspect_names_a_missing_topic(kafka_settings: KafkaSettings) -> None:
    with pytest.raises(DlqError, match="does not exist"):
        await inspect_dead_letters("no.such.topic.dlq", settings=kafka_settings, timeout=10)


def test_parse_duration() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    with pytest.raises(DlqError, match="'soon'"):
        parse_duration("soon")
    with pytest.raises(DlqError):
        parse_duration("5 minutes")


async def test_ledger_names_a_corrupt_line(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text('{"key": "a"}\nnot json\n')
    with pytest.raises(DlqError, match=r"l.jsonl:2"):
        await FileReplayLedger(path).load()


async def test_file_ledger_refuses_a_concurrent_replay(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    async with FileReplayLedger(path):
        with pytest.raises(DlqError, match="another replay holds"):
            async with FileReplayLedger(path):
                pass
    async with FileReplayLedger(path) as ledger:  # released again
        assert isinstance(ledger, ReplayLedger)


async def test_topic_ledger_is_shared_between_runs(
    kafka_settings: KafkaSettings,
    dead_letters: tuple[TopicConfig, TopicConfig],
    unique_topic: TopicFactory,
) -> None:
    origin, dlq = dead_letters
    markers = unique_topic(1, base=LEDGER_BASE, dead_letter=False)
    first = await replay_dead_letters(
        dlq.name,
        ledger=TopicReplayLedger(markers, settings=kafka_settings),
        settings=kafka_settings,
        where=DeadLetterFilter(key="run-2"),
    )
    assert [d.run_id for d, _ in first.replayed] == ["run-2"]
    # another operator, another process: a fresh ledger reads the markers from the topic
    second = await replay_dead_letters(
        dlq.name,
        ledger=TopicReplayLedger(markers, settings=kafka_settings),
        settings=kafka_settings,
    )
    assert [d.run_id for d in second.already_replayed] == ["run-2"]
    assert sorted(d.run_id or "" for d, _ in second.replayed) == ["run-1", "run-3"]
    assert sorted(r.key for r in await _records(kafka_settings, origin.name)) == [
        b"run-1",
        b"run-2",
        b"run-3",
    ]
    marker_records = await _records(kafka_settings, markers.name)
    assert len(marker_records) == 3
    origin_records = {r.key: r for r in await _records(kafka_settings, origin.name)}
    for record in marker_records:
        event = decode_event(record.value)
        assert isinstance(event, DeadLetterReplayed)
        data = event.data
        assert record.key == data.ref.encode()
        assert dict(record.headers)["content-type"] == CONTENT_TYPE.encode()
        assert data.ref.startswith(f"{dlq.name}/0/{data.dlq_offset}@")
        assert data.run_id == event.subject
        assert data.origin_topic == origin.name
        assert (data.origin_partition, data.origin_offset) in {(0, 10), (1, 11), (0, 12)}
        sent = origin_records[data.run_id.encode()]
        assert (data.target_partition, data.target_offset) == (sent.partition, sent.offset)
        assert data.replayed_by
    runs = sorted(str(decode_event(r.value).subject) for r in marker_records)
    assert runs == ["run-1", "run-2", "run-3"]


async def test_topic_ledger_refuses_to_replay_without_its_topic(
    kafka_settings: KafkaSettings,
    dead_letters: tuple[TopicConfig, TopicConfig],
    unique_topic: TopicFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    origin, dlq = dead_letters
    missing = LEDGER_BASE.model_copy(update={"name": f"coffeebuddy.dlq.x{uuid.uuid4().hex[:8]}"})
    ledger = TopicReplayLedger(missing, settings=kafka_settings, timeout=10)
    with pytest.raises(LedgerTopicMissingError, match="pick another with --ledger-topic") as info:
        await replay_dead_letters(dlq.name, ledger=ledger, settings=kafka_settings)
    assert info.value.topic == missing.name
    assert f"replay ledger topic {missing.name!r} does not exist" in str(info.value)
    # a catalogued ledger topic that was not applied yet: the error says how to create it
    monkeypatch.setattr(_dlq, "CATALOG", CATALOG.extend(topics=[missing]))
    with pytest.raises(LedgerTopicMissingError, match="`coffeebuddy-kafka apply`"):
        await replay_dead_letters(dlq.name, ledger=ledger, settings=kafka_settings)
    assert await _records(kafka_settings, origin.name) == []


async def test_topic_ledger_rejects_records_that_are_not_ledger_entries(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
) -> None:
    markers = unique_topic(1, base=LEDGER_BASE, dead_letter=False)
    async with KafkaEventProducer(kafka_settings) as producer:
        await producer.send_raw(markers, _event("run-9"), key=b"x", headers=None)
    with pytest.raises(DlqError, match=rf"{markers.name}\[0\]@0: not a ledger entry"):
        await TopicReplayLedger(markers, settings=kafka_settings).load()


def test_topic_ledger_needs_a_ledger_shaped_topic() -> None:
    with pytest.raises(DlqError, match=r"must allow event type 'coffeebuddy\.dlq\.replayed\.v1'"):
        TopicReplayLedger(CATALOG.topic("coffeebuddy.run.events"))
    assert TopicReplayLedger().topic == DLQ_REPLAYS_TOPIC


def test_replayed_event_takes_the_run_id_from_the_data_or_a_run_keyed_origin() -> None:
    from coffeebuddy.infra.kafka.producer import RecordMetadata

    letter = _dlq.DeadLetter(
        dlq_topic="coffeebuddy.run.events.dlq",
        partition=1,
        offset=5,
        timestamp=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        key=b"run-k",
        value=b"\xff not json",
        headers=(("coffeebuddy.dlq.origin.topic", b"coffeebuddy.run.events"),),
    )
    target = RecordMetadata(topic="coffeebuddy.run.events", partition=3, offset=77)
    event = replayed_event(letter, target, replayed_by="ops@host")
    assert event.data.run_id == event.subject == "run-k"  # run.events is keyed by run_id
    assert event.data.ref == "coffeebuddy.run.events.dlq/1/5@1795770000000" == letter.ledger_key
    assert (event.data.target_partition, event.data.target_offset) == (3, 77)
    assert decode_event(encode_event(event)) == event
    elsewhere = dataclasses.replace(letter, dlq_topic="test.x.dlq", headers=())
    no_run = replayed_event(elsewhere, target)
    assert no_run.data.run_id is None
    assert no_run.subject == no_run.data.ref


async def test_binary_dead_letter_is_inspected_and_replayed_in_binary_mode(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, tmp_path: Path
) -> None:
    from coffeebuddy.infra.kafka.models import (
        RunClosed,
        RunClosedData,
        content_mode,
        decode_record,
        encode_record,
    )

    origin = unique_topic(partitions=1)
    dlq = unique_topic.dead_letter(origin)
    event = RunClosed.create(data=RunClosedData(run_id="run-bin", closed_at=datetime.now(UTC)))
    value, ce_headers = encode_record(event, "binary")
    headers = [
        *_dlq_headers(origin.name, 0, 4, "run-bin", "NonRetryableError", "non_retryable"),
        *ce_headers,
    ]
    async with KafkaEventProducer(kafka_settings) as producer:
        await producer.send_raw(dlq, value, key=b"run-bin", headers=headers)
    [letter] = await inspect_dead_letters(dlq.name, settings=kafka_settings)
    assert letter.binary
    assert (letter.event_type, letter.run_id) == (event.type, "run-bin")
    done = await replay_dead_letters(
        dlq.name, ledger=FileReplayLedger(tmp_path / "l.jsonl"), settings=kafka_settings
    )
    assert len(done.replayed) == 1
    [record] = await _records(kafka_settings, origin.name)
    assert content_mode(record.headers) == "binary"
    assert record.value == value
    assert decode_record(record.value, record.headers) == event
    assert json.loads((tmp_path / "l.jsonl").read_text())["run_id"] == "run-bin"
