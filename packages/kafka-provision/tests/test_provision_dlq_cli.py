"""`coffeebuddy-kafka dlq inspect|replay` through the real CLI entry point and broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import main
from coffeebuddy.infra.kafka.testing import BrokerHandle, TopicFactory


async def _dead_letter(broker: BrokerHandle, dlq_topic: object, origin: str, run_id: str) -> None:
    h = "coffeebuddy.dlq."
    async with KafkaEventProducer(broker.settings()) as producer:
        await producer.send_raw(
            dlq_topic,  # type: ignore[arg-type]
            json.dumps(
                {"type": "coffeebuddy.reminder.scheduled.v1", "data": {"run_id": run_id}}
            ).encode(),
            key=run_id.encode(),
            headers=[
                (h + "origin.topic", origin.encode()),
                (h + "origin.partition", b"0"),
                (h + "origin.offset", b"7"),
                (h + "error.type", b"SlackApiError"),
                (h + "error.message", b"invalid_blocks"),
                (h + "reason", b"non_retryable"),
                (h + "attempts", b"1"),
            ],
        )


@pytest.fixture
def cli_env(kafka_broker: BrokerHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """KAFKA_* of the test broker in the environment (the CLI uses KafkaSettings.from_env())."""
    for key, value in kafka_broker.env.items():
        monkeypatch.setenv(key, value)
    state = tmp_path / "state" / "replayed.jsonl"
    monkeypatch.setenv("COFFEEBUDDY_DLQ_STATE_FILE", str(state))
    return state


def test_cli_inspect_and_replay_once(
    kafka_broker: BrokerHandle,
    unique_topic: TopicFactory,
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    origin = unique_topic(partitions=1)
    dlq = unique_topic.dead_letter(origin)
    asyncio.run(_dead_letter(kafka_broker, dlq, origin.name, "run-a"))
    asyncio.run(_dead_letter(kafka_broker, dlq, origin.name, "run-b"))
    capsys.readouterr()

    assert main(["dlq", "inspect", dlq.name, "--output", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in rows] == ["run-a", "run-b"]
    assert rows[0]["error_message"] == "invalid_blocks"
    assert rows[0]["replayed"] is False

    assert main(["dlq", "inspect", dlq.name, "--key", "run-b"]) == 0
    table = capsys.readouterr().out
    assert "1 dead letters" in table
    assert "invalid_blocks" in table

    assert main(["dlq", "replay", dlq.name, "--key", "run-a", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would replay {dlq.name}/0/0" in out
    assert not cli_env.exists()

    assert main(["dlq", "replay", dlq.name, "--key", "run-a", "--rate", "10"]) == 2
    assert f"replayed {dlq.name}/0/0 -> {origin.name}[0]@0" in capsys.readouterr().out

    assert main(["dlq", "replay", dlq.name, "--output", "json"]) == 1  # no selection, no --all
    assert "pass --all" in capsys.readouterr().err
    assert main(["dlq", "replay", dlq.name, "--all", "--output", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["already_replayed"] == [f"{dlq.name}/0/0"]
    assert [r["ref"] for r in report["replayed"]] == [f"{dlq.name}/0/1"]

    assert main(["dlq", "replay", dlq.name, "--all"]) == 0
    assert "replayed 0 of 2 selected" in capsys.readouterr().out

    assert main(["dlq", "inspect", dlq.name, "--output", "json"]) == 0
    assert all(r["replayed"] for r in json.loads(capsys.readouterr().out))


def test_cli_rejects_bad_input(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dlq", "inspect", "x.dlq", "--older-than", "soon"])
    assert "--older-than" in capsys.readouterr().err
    assert main(["dlq", "replay", "x.dlq", "--all", "--rate", "0"]) == 1
    assert "rate: must be > 0" in capsys.readouterr().err


def test_cli_replay_with_a_ledger_topic(
    kafka_broker: BrokerHandle,
    unique_topic: TopicFactory,
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    origin = unique_topic(partitions=1)
    dlq = unique_topic.dead_letter(origin)
    markers = unique_topic(1, key_field="ref", dead_letter=False)
    asyncio.run(_dead_letter(kafka_broker, dlq, origin.name, "run-t"))
    capsys.readouterr()
    replay = [
        "dlq",
        "replay",
        dlq.name,
        "--all",
        "--ledger-topic",
        markers.name,
        "--output",
        "json",
    ]

    assert main(replay) == 2
    assert [r["ref"] for r in json.loads(capsys.readouterr().out)["replayed"]] == [
        f"{dlq.name}/0/0"
    ]
    assert main(replay) == 0
    assert json.loads(capsys.readouterr().out)["already_replayed"] == [f"{dlq.name}/0/0"]
    assert not cli_env.exists()  # the topic, not the state file, holds the record

    assert (
        main(["dlq", "inspect", dlq.name, "--ledger-topic", markers.name, "--output", "json"]) == 0
    )
    assert [r["replayed"] for r in json.loads(capsys.readouterr().out)] == [True]
    assert main(["dlq", "replay", dlq.name, "--all", "--ledger-topic", "no.such.ledger"]) == 1
    assert "replay ledger topic 'no.such.ledger' does not exist" in capsys.readouterr().err


def test_cli_uses_the_catalog_ledger_topic_once_catalogued(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Pure selection logic: the state file is only the fallback until the catalog has the topic."""
    import argparse

    from coffeebuddy.infra.kafka.config import KafkaSettings
    from coffeebuddy.infra.kafka.provision import _dlq
    from coffeebuddy.infra.kafka.topics import CATALOG, TopicConfig

    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    args = argparse.Namespace(
        topic="coffeebuddy.reminder.events", ledger_topic=None, state_file=None, timeout=5.0
    )
    assert isinstance(_dlq._ledger(args, settings), _dlq.FileReplayLedger)

    replays = TopicConfig(
        name=_dlq.REPLAY_LEDGER_TOPIC,
        partitions=1,
        replication_factor=1,
        key_field="ref",
        event_types=frozenset({"coffeebuddy.dlq.replayed.v1"}),
        kind="log",
    )
    monkeypatch.setattr(
        _dlq, "CATALOG", CATALOG.model_copy(update={"topics": (*CATALOG.topics, replays)})
    )
    ledger = _dlq._ledger(args, settings)
    assert isinstance(ledger, _dlq.TopicReplayLedger)
    assert ledger.topic.name == "coffeebuddy.dlq.replays"
    args.state_file = str(tmp_path / "explicit.jsonl")  # an explicit file still wins
    assert isinstance(_dlq._ledger(args, settings), _dlq.FileReplayLedger)
