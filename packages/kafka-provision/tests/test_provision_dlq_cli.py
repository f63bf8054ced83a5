"""`coffeebuddy-kafka dlq inspect|replay` through the real CLI entry point and broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from coffeebuddy.infra.kafka.models import DeadLetterReplayed, decode_event
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import _dlq, ensure_topics, main
from coffeebuddy.infra.kafka.testing import BrokerHandle, TopicFactory
from coffeebuddy.infra.kafka.topics import DLQ_REPLAYS_TOPIC


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
    """KAFKA_* of the test broker in the environment (the CLI uses KafkaSettings.from_env()).

    The catalog's ledger topic exists (as after `coffeebuddy-kafka apply`); the state file
    named by the environment is only used with `--state-file`.
    """
    for key, value in kafka_broker.env.items():
        monkeypatch.setenv(key, value)
    report = asyncio.run(ensure_topics(kafka_broker.settings(), "dev", topics=[DLQ_REPLAYS_TOPIC]))
    assert report.ok, report
    state = tmp_path / "state" / "replayed.jsonl"
    monkeypatch.setenv("COFFEEBUDDY_DLQ_STATE_FILE", str(state))
    return state


async def _ledger_entries(broker: BrokerHandle, dlq: str) -> list[DeadLetterReplayed]:
    """The catalog ledger topic's entries for dead letters of `dlq`."""
    records = await _dlq._read_topic(broker.settings(), DLQ_REPLAYS_TOPIC.name, 15.0)
    events = [decode_event(r.value) for r in records]
    return [e for e in events if isinstance(e, DeadLetterReplayed) and e.data.dlq_topic == dlq]


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
    [entry] = asyncio.run(_ledger_entries(kafka_broker, dlq.name))  # the shared default ledger
    assert (entry.subject, entry.data.dlq_offset, entry.data.target_offset) == ("run-a", 0, 0)

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
    assert len(asyncio.run(_ledger_entries(kafka_broker, dlq.name))) == 2
    assert not cli_env.exists()  # the topic, not a state file, holds the record


def test_cli_state_file_is_an_explicit_opt_in(
    kafka_broker: BrokerHandle,
    unique_topic: TopicFactory,
    cli_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    origin = unique_topic(partitions=1)
    dlq = unique_topic.dead_letter(origin)
    asyncio.run(_dead_letter(kafka_broker, dlq, origin.name, "run-f"))
    capsys.readouterr()
    explicit = tmp_path / "explicit.jsonl"

    replay = ["dlq", "replay", dlq.name, "--all", "--output", "json"]
    assert main([*replay, "--state-file", str(explicit)]) == 2
    assert [json.loads(line)["run_id"] for line in explicit.read_text().splitlines()] == ["run-f"]
    assert main([*replay, "--state-file"]) == 2  # its own ledger: the env's file, empty so far
    refs = [
        [json.loads(line)["ref"] for line in f.read_text().splitlines()]
        for f in (cli_env, explicit)
    ]
    assert refs[0] == refs[1]
    assert refs[0][0].startswith(f"{dlq.name}/0/0@")
    assert main([*replay, "--state-file"]) == 0
    assert asyncio.run(_ledger_entries(kafka_broker, dlq.name)) == []
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*replay, "--state-file", str(explicit), "--ledger-topic", "x"])
    assert "not allowed with argument" in capsys.readouterr().err


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
    err = capsys.readouterr().err
    assert "replay ledger topic 'no.such.ledger' does not exist" in err
    assert "--state-file" in err
    # inspect stays usable without the ledger and says the replayed state is unknown
    inspect = ["dlq", "inspect", dlq.name, "--ledger-topic", "no.such.ledger", "--output", "json"]
    assert main(inspect) == 0
    out, err = capsys.readouterr()
    assert [r["replayed"] for r in json.loads(out)] == [None]
    assert "warning: replay ledger topic 'no.such.ledger' does not exist" in err


def test_cli_ledger_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Pure selection logic: the catalog topic by default, a state file only when asked."""
    import argparse

    from coffeebuddy.infra.kafka.config import KafkaSettings

    monkeypatch.setenv("COFFEEBUDDY_DLQ_STATE_FILE", str(tmp_path / "env.jsonl"))
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    args = argparse.Namespace(
        topic="coffeebuddy.reminder.events", ledger_topic=None, state_file=None, timeout=5.0
    )
    ledger = _dlq._ledger(args, settings)
    assert isinstance(ledger, _dlq.TopicReplayLedger)
    assert ledger.topic == DLQ_REPLAYS_TOPIC
    assert ledger.topic.name == "coffeebuddy.dlq.replays"

    args.ledger_topic = "ops.replays"
    custom = _dlq._ledger(args, settings)
    assert isinstance(custom, _dlq.TopicReplayLedger)
    assert (custom.topic.name, custom.topic.key_field) == ("ops.replays", "ref")
    args.ledger_topic = "coffeebuddy.run.events"  # a catalog topic that is no ledger
    with pytest.raises(_dlq.DlqError, match="must allow event type"):
        _dlq._ledger(args, settings)

    args.ledger_topic, args.state_file = None, ""  # bare --state-file: the env/XDG default
    from_env = _dlq._ledger(args, settings)
    assert isinstance(from_env, _dlq.FileReplayLedger)
    assert from_env.path == tmp_path / "env.jsonl"
    args.state_file = str(tmp_path / "explicit.jsonl")
    explicit = _dlq._ledger(args, settings)
    assert isinstance(explicit, _dlq.FileReplayLedger)
    assert explicit.path == tmp_path / "explicit.jsonl"
