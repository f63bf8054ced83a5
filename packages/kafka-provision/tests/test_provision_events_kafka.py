"""`events tail|publish` on real brokers, in both CloudEvents content modes.

The Python API runs on the session broker (Apache Kafka in CI's first pass, the embedded broker
in its second) with unique topics; the console commands need the catalog's fixed names, so they
run against a dedicated embedded broker, as a newcomer runs them against `hatch run dev`'s.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import (
    CONTENT_MODES,
    REMINDER_SCHEDULED,
    ContentMode,
    ReminderScheduled,
)
from coffeebuddy.infra.kafka.provision import ensure_topics, main
from coffeebuddy.infra.kafka.provision.events import (
    SampleOptions,
    TailedRecord,
    envelope,
    publish_event,
    sample_data,
    tail_topic,
)
from coffeebuddy.infra.kafka.provision.events._samples import merge_data
from coffeebuddy.infra.kafka.testing import EmbeddedBroker, TopicFactory, wait_until_sync
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC

REPO = Path(__file__).resolve().parents[3]


async def _tail_all(settings: KafkaSettings, topic: object) -> list[TailedRecord]:
    return [r async for r in tail_topic(settings, topic, from_beginning=True, exit_at_end=True)]  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", CONTENT_MODES)
async def test_publish_then_tail_round_trips_and_a_bad_record_does_not_stop_the_tail(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, mode: ContentMode
) -> None:
    topic = unique_topic(2, base=REMINDER_EVENTS_TOPIC)
    options = SampleOptions(run_id="run-tail-1", user="U0TAIL")
    good = envelope(REMINDER_SCHEDULED, sample_data(REMINDER_SCHEDULED, options))
    first = await publish_event(kafka_settings, topic, good, mode=mode)
    assert (first.validated, first.mode, first.key) == (True, mode, "run-tail-1")
    bad = envelope(REMINDER_SCHEDULED, merge_data(good["data"], {"due_at": "tomorrow"}))
    broken = await publish_event(kafka_settings, topic, bad, mode=mode, validate=False)
    assert (broken.validated, broken.key, broken.partition) == (
        False,
        "run-tail-1",
        first.partition,
    )
    later = envelope(
        REMINDER_SCHEDULED, sample_data(REMINDER_SCHEDULED, SampleOptions(run_id="run-tail-1"))
    )
    last = await publish_event(kafka_settings, topic, later, mode=mode)

    records = await _tail_all(kafka_settings, topic)
    assert [(r.partition, r.offset, r.kind) for r in records] == [
        (first.partition, first.offset, "event"),
        (broken.partition, broken.offset, "undecodable"),
        (last.partition, last.offset, "event"),
    ]
    assert all(r.mode == mode for r in records)
    assert records[0].event is not None
    assert records[0].event.id == first.event_id
    assert isinstance(records[0].event, ReminderScheduled)
    assert records[0].event.data.recipient_user_id == "U0TAIL"
    assert "data.due_at: must be an RFC 3339 timestamp string" in (records[1].error or "")
    assert records[2].event is not None
    assert records[2].event.id == last.event_id


async def test_tail_from_the_end_shows_only_new_records(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    topic = unique_topic(1, base=REMINDER_EVENTS_TOPIC)
    old = envelope(REMINDER_SCHEDULED, sample_data(REMINDER_SCHEDULED, SampleOptions()))
    await publish_event(kafka_settings, topic, old)
    seen: list[TailedRecord] = []
    stop = asyncio.Event()

    async def follow() -> None:
        seen.extend([r async for r in tail_topic(kafka_settings, topic, stop=stop, count=1)])

    task = asyncio.create_task(follow())
    new = envelope(REMINDER_SCHEDULED, sample_data(REMINDER_SCHEDULED, SampleOptions()))
    # the tail starts at the end seen when it assigned: publish until it has seen one record
    published = []
    for _ in range(50):
        published.append((await publish_event(kafka_settings, topic, new)).offset)
        done, _ = await asyncio.wait({task}, timeout=0.2)
        if done:
            break
    await asyncio.wait_for(task, 10)
    assert len(seen) == 1
    assert seen[0].offset in published  # never the record published before the tail began
    assert seen[0].event is not None
    assert seen[0].event.id == new["id"]


# ------------------------------------------------------------------ the console commands


class Result(NamedTuple):
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def dev_broker() -> Iterator[str]:
    """A dedicated embedded broker with the catalog's topics, like `hatch run dev`'s."""
    with EmbeddedBroker(name="tansu-provision-events") as broker:
        settings = KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
            }
        )
        assert asyncio.run(ensure_topics(settings, "dev")).ok
        yield broker.bootstrap_servers


@pytest.fixture
def cli(
    dev_broker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    for key in [k for k in os.environ if k.startswith(("KAFKA_", "COFFEEBUDDY_DEV_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", dev_broker)
    monkeypatch.setenv("KAFKA_ENABLE_IDEMPOTENCE", "false")

    def call(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


def test_console_publish_and_tail_in_both_modes_and_a_bad_event(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = cli
    structured = run("events", "publish", "reminder.scheduled", "--due-in", "30", "--run", "run-c1")
    assert structured.code == 0, structured.err
    topic, partition, offset = structured.out.split()[0].split("/")
    assert topic == "coffeebuddy.reminder.events"
    assert "reminder.scheduled  id=" in structured.out
    assert "key=run-c1  (structured)" in structured.out
    assert "cancel it with: coffeebuddy-kafka events publish reminder.cancelled --run run-c1 " \
        "--reminder-id run-c1:last_call" in structured.err  # fmt: skip

    monkeypatch.setenv("COFFEEBUDDY_DEV_SLACK_USER", "U0FROMENV")
    binary = run("events", "publish", "reminder.scheduled", "--mode", "binary", "--json")
    assert binary.code == 0, binary.err
    sent = json.loads(binary.out)
    assert (sent["mode"], sent["validated"], sent["topic"]) == ("binary", True, topic)

    refused = run("events", "publish", "run.created", "--data", '{"place": null}')
    assert refused.code == 1
    assert "error: coffeebuddy.run.created.v1: data.place: required field is missing" in refused.err

    monkeypatch.setattr("sys.stdin", _Stdin('{"due_at": "tomorrow"}'))
    unchecked = run("events", "publish", "reminder.scheduled", "--data", "-", "--no-validate")
    assert unchecked.code == 0, unchecked.err
    assert "warning: --no-validate" in unchecked.err

    tailed = run("events", "tail", topic, "--from-beginning", "-e", "--json")
    assert tailed.code == 0, tailed.err
    rows = [json.loads(line) for line in tailed.out.splitlines()]
    by_id = {r["event"]["id"]: r for r in rows if r["kind"] == "event"}
    first_id = structured.out.split("id=")[1].split()[0]
    assert by_id[first_id]["mode"] == "structured"
    assert (by_id[first_id]["partition"], by_id[first_id]["offset"]) == (
        int(partition),
        int(offset),
    )
    assert by_id[sent["id"]]["mode"] == "binary"
    assert by_id[sent["id"]]["event"]["data"]["recipient_user_id"] == "U0FROMENV"
    [garbled] = [r for r in rows if r["kind"] == "undecodable"]
    assert "data.due_at" in garbled["error"]["message"]
    assert "reached the end of coffeebuddy.reminder.events: 3 record(s)" in tailed.err

    human = run("events", "tail", topic, "--from-beginning", "-e")
    lines = human.out.splitlines()
    assert len(lines) == 3
    assert any("UNDECODABLE" in line and "data.due_at" in line for line in lines)
    assert any(line.endswith("(binary)") and "for U0FROMENV" in line for line in lines)

    dry = run("events", "publish", "run.closed", "--run", "run-dry", "--dry-run")
    assert dry.code == 0
    assert json.loads(dry.out)["data"]["run_id"] == "run-dry"
    wrong = run("events", "tail", "coffeebuddy.nope")
    assert wrong.code == 1
    assert "'coffeebuddy.nope' is not a catalog topic" in wrong.err


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def read(self) -> str:
        return self.text


def test_ctrl_c_ends_a_tail_cleanly(dev_broker: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env["KAFKA_BOOTSTRAP_SERVERS"] = dev_broker
    tail = subprocess.Popen(
        [sys.executable, "-m", "coffeebuddy.infra.kafka.provision", "events", "tail",
         "coffeebuddy.run.events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert tail.stderr is not None
        started = tail.stderr.readline()
        assert started.startswith("tailing coffeebuddy.run.events from the end"), started
        # the tail is ready once it has assigned; a signal before that is also a clean stop
        wait_until_sync(lambda: tail.poll() is None, timeout=5, message="tail running")
        tail.send_signal(signal.SIGINT)
        _out, err = tail.communicate(timeout=20)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode in (0, 130), err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
