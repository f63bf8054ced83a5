"""The dlq tools' Kafka adapters on the session broker: `KafkaTopicReader`, `KafkaPublisher`
and the `TopicReplayLedger` round trip. (The replay-once path end to end, with the harness, the
worker and Slack, is `tests/test_ops_dlq_replay_e2e.py` at the repo root.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import RunClosed, RunClosedData, encode_record
from coffeebuddy.infra.kafka.provision.dlq import (
    DeadLetter,
    KafkaTopicReader,
    TopicMissingError,
    TopicReplayLedger,
)
from coffeebuddy.infra.kafka.provision.dlq._publisher import KafkaPublisher, RecordPosition
from coffeebuddy.infra.kafka.testing import TopicFactory
from coffeebuddy.infra.kafka.topics import CATALOG, DLQ_REPLAYS_TOPIC

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LEDGER_BASE = CATALOG.for_environment("dev").topic(DLQ_REPLAYS_TOPIC.name)


async def test_published_records_are_read_back_from_every_partition(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    topic = unique_topic(partitions=2)
    event = RunClosed.create(data=RunClosedData(run_id="run-k", closed_at=T0))
    value, ce_headers = encode_record(event, "binary")
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    async with KafkaPublisher(kafka_settings) as publisher:
        sent = [
            await publisher.send(topic.name, value, key=key, headers=[*headers, *ce_headers])
            for key in (b"a", b"b", b"c", b"d")
        ]
    assert {s.topic for s in sent} == {topic.name}
    reader = KafkaTopicReader(kafka_settings, timeout=15.0)
    records = await reader.read(topic.name)
    assert sorted((r.partition, r.offset) for r in records) == sorted(
        (s.partition, s.offset) for s in sent
    )
    assert {r.key for r in records} == {b"a", b"b", b"c", b"d"}
    for record in records:
        assert record.value == value
        assert record.headers == (*headers, *ce_headers)
        assert record.timestamp_ms > 0
    with pytest.raises(
        TopicMissingError, match=r"replay ledger topic 'no\.such\.topic\.x' does not"
    ):
        await reader.read("no.such.topic.x", what="replay ledger topic")


async def test_topic_ledger_entries_survive_in_the_topic(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    markers = unique_topic(1, base=LEDGER_BASE, dead_letter=False)
    letter = DeadLetter("test.x.dlq", 0, 3, T0, b"run-l", b"{}", ())
    async with TopicReplayLedger(markers, settings=kafka_settings, timeout=15.0) as ledger:
        assert letter not in ledger
        await ledger.record(letter, RecordPosition("test.x", 0, 9))
        assert letter in ledger
    fresh = TopicReplayLedger(markers, settings=kafka_settings, timeout=15.0)
    await fresh.load()
    assert letter in fresh
    [entry] = fresh.entries.values()
    assert (entry.ref, entry.target_offset) == (letter.ledger_key, 9)
