"""KIT: dead letters can be listed and replayed exactly once with `coffeebuddy-kafka dlq`.

The replay ledger is the catalog's shared `coffeebuddy.dlq.replays` topic by default.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from coffeebuddy.infra.kafka.models import DeadLetterReplayedData
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ensure_topics, main
from coffeebuddy.infra.kafka.provision.dlq import TopicReplayLedger
from coffeebuddy.infra.kafka.testing import BrokerHandle, TopicFactory
from coffeebuddy.infra.kafka.topics import DLQ_REPLAYS_TOPIC, TopicConfig


async def _put_dead_letter(broker: BrokerHandle, dlq: TopicConfig, origin: str) -> None:
    """A dead letter in the consumer harness's documented header format."""
    h = "coffeebuddy.dlq."
    async with KafkaEventProducer(broker.settings()) as producer:
        await producer.send_raw(
            dlq,
            b'{"type": "coffeebuddy.reminder.scheduled.v1", "data": {"run_id": "kit-run"}}',
            key=b"kit-run",
            headers=[
                ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                (h + "origin.topic", origin.encode()),
                (h + "origin.partition", b"0"),
                (h + "origin.offset", b"0"),
                (h + "origin.key", b"kit-run"),
                (h + "error.type", b"ValueError"),
                (h + "error.message", b"bad reminder"),
                (h + "reason", b"non_retryable"),
                (h + "attempts", b"1"),
            ],
        )


def test_kit_dlq_inspect_then_replay_once(
    kafka_broker: BrokerHandle,
    unique_topic: TopicFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in kafka_broker.env.items():
        monkeypatch.setenv(key, value)
    # `coffeebuddy-kafka apply` creates the catalog's ledger topic; ensure_topics does the same
    report = asyncio.run(ensure_topics(kafka_broker.settings(), "dev", topics=[DLQ_REPLAYS_TOPIC]))
    assert report.ok
    origin = unique_topic(partitions=1)
    dlq = unique_topic.dead_letter(origin)
    asyncio.run(_put_dead_letter(kafka_broker, dlq, origin.name))
    capsys.readouterr()

    assert main(["dlq", "inspect", dlq.name, "--reason", "non_retryable", "--output", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["origin_topic"] == origin.name
    assert row["key"] == "kit-run"
    assert row["error_type"] == "ValueError"
    assert row["error_message"] == "bad reminder"

    replay = ["dlq", "replay", dlq.name, "--reason", "non_retryable", "--output", "json"]
    assert main([*replay, "--dry-run"]) == 2  # would replay one (exit codes: ExitCode)
    assert json.loads(capsys.readouterr().out)["would_replay"] == [f"{dlq.name}/0/0"]

    assert main(replay) == 2
    [sent] = json.loads(capsys.readouterr().out)["replayed"]
    assert sent["topic"] == origin.name

    assert main(replay) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["replayed"] == []
    assert again["already_replayed"] == [f"{dlq.name}/0/0"]

    entries = asyncio.run(_ledger_entries(kafka_broker, dlq.name))
    assert [(e.run_id, e.origin_topic, e.target_offset) for e in entries] == [
        ("kit-run", origin.name, sent["offset"])
    ]
    assert not list(tmp_path.iterdir())  # no local state file


async def _ledger_entries(broker: BrokerHandle, dlq: str) -> list[DeadLetterReplayedData]:
    ledger = TopicReplayLedger(DLQ_REPLAYS_TOPIC, settings=broker.settings())
    await ledger.load()
    return [e for e in ledger.entries.values() if e.dlq_topic == dlq]


def test_kit_dlq_replay_refuses_without_its_ledger_topic(
    kafka_broker: BrokerHandle,
    unique_topic: TopicFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in kafka_broker.env.items():
        monkeypatch.setenv(key, value)
    origin = unique_topic(partitions=1)
    dlq = unique_topic.dead_letter(origin)
    asyncio.run(_put_dead_letter(kafka_broker, dlq, origin.name))
    capsys.readouterr()
    missing = f"{dlq.name}.ledger"
    assert main(["dlq", "replay", dlq.name, "--all", "--ledger-topic", missing]) == 1
    assert f"replay ledger topic {missing!r} does not exist" in capsys.readouterr().err
