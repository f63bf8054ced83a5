"""`coffeebuddy-kafka dlq inspect|replay` through `main(argv)`, Kafka replaced by a fake cluster.

The commands are ordinary sub-commands of the CLI; `main(..., dlq_clients=...)` swaps their
`TopicReader`/`Publisher` for the in-memory `FakeCluster`. Exit codes are the CLI's one table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import DeadLetterReplayed, dead_letter_headers, decode_event
from coffeebuddy.infra.kafka.provision import ExitCode, build_parser, main
from coffeebuddy.infra.kafka.provision.dlq import DlqError, FileReplayLedger, TopicReplayLedger
from coffeebuddy.infra.kafka.provision.dlq._cli import select_ledger
from coffeebuddy.infra.kafka.topics import DLQ_REPLAYS_TOPIC

if TYPE_CHECKING:
    from conftest import FakeCluster

ORIGIN = "test.cli"
DLQ = "test.cli.dlq"


def _dead_letter(
    cluster: FakeCluster, run_id: str, *, reason: str = "non_retryable", value: bytes | None = None
) -> None:
    event = json.dumps({"type": "coffeebuddy.reminder.scheduled.v1", "data": {"run_id": run_id}})
    headers = dead_letter_headers(
        topic=ORIGIN,
        partition=0,
        offset=7,
        key=run_id.encode(),
        error=RuntimeError("invalid_blocks"),
        reason=reason,
        attempts=1,
        first_seen=1_795_770_000.0,
        original_headers=None,
    )
    cluster.put(DLQ, value or event.encode(), key=run_id.encode(), headers=headers)


@pytest.fixture
def cli(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeCluster:
    """Two dead letters, the origin and the catalog ledger topic (as after `apply`); the state
    file named by the environment is only used with `--state-file`."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # never dialled: fakes
    monkeypatch.setenv("COFFEEBUDDY_DLQ_STATE_FILE", str(tmp_path / "state" / "replayed.jsonl"))
    _dead_letter(cluster, "run-a")
    _dead_letter(cluster, "run-b")
    cluster.create(ORIGIN)
    cluster.create(DLQ_REPLAYS_TOPIC.name)
    return cluster


def _run(cluster: FakeCluster, *argv: str) -> int:
    return main(list(argv), dlq_clients=cluster.clients)


def _ledger_refs(cluster: FakeCluster) -> list[str]:
    events = [decode_event(r.value or b"") for r in cluster.topics[DLQ_REPLAYS_TOPIC.name]]
    return [e.data.ref for e in events if isinstance(e, DeadLetterReplayed)]


def test_inspect_lists_dead_letters_and_whether_they_were_replayed(
    cli: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(cli, "dlq", "inspect", DLQ, "--output", "json") == ExitCode.OK
    rows = json.loads(capsys.readouterr().out)
    assert [(r["key"], r["error_message"], r["replayed"]) for r in rows] == [
        ("run-a", "invalid_blocks", False),
        ("run-b", "invalid_blocks", False),
    ]
    assert _run(cli, "dlq", "inspect", DLQ, "--key", "run-b") == ExitCode.OK
    table = capsys.readouterr().out
    assert "1 dead letters" in table
    assert "invalid_blocks" in table
    assert cli.sends == []


def test_replay_exit_codes_dry_run_then_once_then_nothing(
    cli: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    select = ("dlq", "replay", DLQ, "--key", "run-a")
    assert _run(cli, *select, "--dry-run") == ExitCode.CHANGES  # would send one
    out = capsys.readouterr().out
    assert f"would replay {DLQ}/0/0 -> {ORIGIN} key=run-a" in out
    assert "dry run: 1 of 1 would be sent" in out
    assert cli.sends == []

    assert _run(cli, *select, "--rate", "1000") == ExitCode.CHANGES  # sent one
    assert f"replayed {DLQ}/0/0 -> {ORIGIN}[0]@0" in capsys.readouterr().out
    assert [r.split("@")[0] for r in _ledger_refs(cli)] == [f"{DLQ}/0/0"]  # the shared ledger

    assert _run(cli, *select, "--dry-run") == ExitCode.OK  # nothing left to send
    assert f"skip {DLQ}/0/0: already replayed" in capsys.readouterr().out
    assert _run(cli, *select) == ExitCode.OK
    assert "replayed 0 of 1 selected" in capsys.readouterr().out

    assert _run(cli, "dlq", "replay", DLQ, "--output", "json") == ExitCode.ERROR
    assert "pass --all" in capsys.readouterr().err
    assert _run(cli, "dlq", "replay", DLQ, "--all", "--output", "json") == ExitCode.CHANGES
    report = json.loads(capsys.readouterr().out)
    assert report["already_replayed"] == [f"{DLQ}/0/0"]
    assert [r["ref"] for r in report["replayed"]] == [f"{DLQ}/0/1"]

    assert _run(cli, "dlq", "inspect", DLQ, "--output", "json") == ExitCode.OK
    assert all(r["replayed"] for r in json.loads(capsys.readouterr().out))
    assert len(cli.sends) == 2 + 2  # two records, two ledger entries
    assert not (tmp_path / "state").exists()  # the topic, not a state file, holds the record


def test_replay_all_dry_run_shows_decode_errors_left_out_and_why(
    cli: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    _dead_letter(cli, "run-garbled", reason="decode_error", value=b"\xff not an event")
    assert _run(cli, "dlq", "replay", DLQ, "--all", "--dry-run") == ExitCode.CHANGES
    out = capsys.readouterr().out
    assert f"would replay {DLQ}/0/0" in out
    assert f"would replay {DLQ}/0/1" in out
    assert f"would replay {DLQ}/0/2" not in out
    assert f"leave {DLQ}/0/2: decode_error" in out
    assert (
        "left out 1 dead letter(s) a replay cannot fix (decode_error: its bytes are not a " in out
    )
    assert "dry run: 2 of 2 would be sent" in out
    assert _run(cli, "dlq", "replay", DLQ, "--all") == ExitCode.CHANGES
    assert [topic for topic, *_ in cli.sends].count(ORIGIN) == 2  # not the garbled one
    capsys.readouterr()
    named = ("dlq", "replay", DLQ, "--reason", "decode_error", "--output", "json")
    assert _run(cli, *named, "--dry-run") == ExitCode.CHANGES
    report = json.loads(capsys.readouterr().out)
    assert (report["would_replay"], report["left_out"]) == ([f"{DLQ}/0/2"], [])


def test_state_file_is_an_explicit_opt_in(
    cli: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    explicit = tmp_path / "explicit.jsonl"
    replay = ("dlq", "replay", DLQ, "--all", "--output", "json")
    assert _run(cli, *replay, "--state-file", str(explicit)) == ExitCode.CHANGES
    assert [json.loads(line)["run_id"] for line in explicit.read_text().splitlines()] == [
        "run-a",
        "run-b",
    ]
    assert _run(cli, *replay, "--state-file") == ExitCode.CHANGES  # the env's file: its own
    from_env = tmp_path / "state" / "replayed.jsonl"
    assert from_env.read_text().count("\n") == 2
    assert _run(cli, *replay, "--state-file") == ExitCode.OK
    assert _ledger_refs(cli) == []
    capsys.readouterr()
    with pytest.raises(SystemExit) as usage:
        _run(cli, *replay, "--state-file", str(explicit), "--ledger-topic", "x")
    assert usage.value.code == ExitCode.ERROR
    assert "not allowed with argument" in capsys.readouterr().err


def test_bad_input_is_a_usage_error_naming_the_option(
    cli: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, where in [
        (("dlq", "inspect", DLQ, "--older-than", "soon"), "--older-than"),
        (("dlq", "inspect", DLQ, "--ref", "0-1"), "--ref '0-1': expected PARTITION:OFFSET"),
        (("dlq", "purge", DLQ), "invalid choice: 'purge'"),
    ]:
        with pytest.raises(SystemExit) as usage:
            _run(cli, *argv)
        assert usage.value.code == ExitCode.ERROR
        assert where in capsys.readouterr().err
    assert _run(cli, "dlq", "replay", DLQ, "--all", "--rate", "0") == ExitCode.ERROR
    assert "rate: must be > 0" in capsys.readouterr().err
    assert _run(cli, "dlq", "inspect", "no.such.dlq", "--output", "json") == ExitCode.ERROR
    out, err = capsys.readouterr()
    assert json.loads(out)["exit_code"] == ExitCode.ERROR
    assert "dead-letter topic 'no.such.dlq' does not exist" in err


def test_a_missing_ledger_topic_stops_replay_and_blurs_inspect(
    cli: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = ("--ledger-topic", "no.such.ledger")
    assert _run(cli, "dlq", "replay", DLQ, "--all", *missing) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "replay ledger topic 'no.such.ledger' does not exist" in err
    assert "--state-file" in err
    assert cli.sends == []
    # inspect stays usable without the ledger and says the replayed state is unknown
    assert _run(cli, "dlq", "inspect", DLQ, *missing, "--output", "json") == ExitCode.OK
    out, err = capsys.readouterr()
    assert [r["replayed"] for r in json.loads(out)] == [None, None]
    assert "warning: replay ledger topic 'no.such.ledger' does not exist" in err
    assert _run(cli, "dlq", "inspect", DLQ, *missing) == ExitCode.OK
    assert "│ ?" in capsys.readouterr().out


def test_a_custom_ledger_topic(cli: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    cli.create("ops.replays")
    replay = ("dlq", "replay", DLQ, "--all", "--ledger-topic", "ops.replays", "--output", "json")
    assert _run(cli, *replay) == ExitCode.CHANGES
    capsys.readouterr()
    assert _run(cli, *replay) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["already_replayed"] == [
        f"{DLQ}/0/0",
        f"{DLQ}/0/1",
    ]
    assert len(cli.topics["ops.replays"]) == 2
    assert _ledger_refs(cli) == []


def test_ledger_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The catalog topic by default, another topic by name, a state file only when asked."""
    monkeypatch.setenv("COFFEEBUDDY_DLQ_STATE_FILE", str(tmp_path / "env.jsonl"))
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    args = argparse.Namespace(topic=DLQ, ledger_topic=None, state_file=None, timeout=5.0)
    ledger = select_ledger(args, settings)
    assert isinstance(ledger, TopicReplayLedger)
    assert ledger.topic == DLQ_REPLAYS_TOPIC

    args.ledger_topic = "ops.replays"
    custom = select_ledger(args, settings)
    assert isinstance(custom, TopicReplayLedger)
    assert (custom.topic.name, custom.topic.key_field) == ("ops.replays", "ref")
    args.ledger_topic = "coffeebuddy.run.events"  # a catalog topic that is no ledger
    with pytest.raises(DlqError, match="must allow event type"):
        select_ledger(args, settings)

    args.ledger_topic, args.state_file = None, ""  # bare --state-file: the env/XDG default
    from_env = select_ledger(args, settings)
    assert isinstance(from_env, FileReplayLedger)
    assert from_env.path == tmp_path / "env.jsonl"
    args.state_file = str(tmp_path / "explicit.jsonl")
    explicit = select_ledger(args, settings)
    assert isinstance(explicit, FileReplayLedger)
    assert explicit.path == tmp_path / "explicit.jsonl"


def test_help_shows_the_one_exit_code_table(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for code in ExitCode:
        assert f"  {code.value}  {code.describe()}\n" in out
    assert "dlq replay --dry-run" in ExitCode.CHANGES.describe()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dlq", "replay", "--help"])
    replay_help = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 nothing (left) to send, 2 records sent (with --dry-run" in replay_help
