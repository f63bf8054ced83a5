"""`coffeebuddy-kafka reminders` against a real `ReminderWorker` (consumer harness, producer,
changelog, history) on the session broker, with a recording in-process sender.

A reminder is followed through scheduled, claimed and sent, and told again by `show` after the
worker tombstoned its state; cancellations by id and by run reach the worker, which then sends
nothing; `list --watch` (the console script, in a process of its own) sees the claim and the
send as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness
from coffeebuddy.infra.kafka.metrics import KafkaMetrics, ReminderMetrics
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData, ReminderStatus
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ExitCode, main
from coffeebuddy.infra.kafka.provision.reminders import (
    OperatorTopics,
    ReminderFilter,
    list_reminders,
    show_reminder,
)
from coffeebuddy.infra.kafka.reminder_worker import (
    Fence,
    ReminderSettings,
    ReminderWorker,
    SendResult,
    WorkerTopics,
)
from coffeebuddy.infra.kafka.testing import BrokerHandle, TopicFactory, wait_until
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    RUN_EVENTS_TOPIC,
)

WAIT = 30.0


@dataclass
class RecordingSender:
    """Records each post (reminder id, Slack ts); never fails."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send(
        self, reminder: ReminderScheduledData, *, claim_time: datetime, fence: Fence
    ) -> SendResult:
        if not fence():
            return SendResult.fenced()
        ts = f"{datetime.now(UTC).timestamp():.6f}"
        self.sent.append((reminder.reminder_id, ts))
        return SendResult.sent("D0OPS", ts)

    async def find_sent(
        self, reminder: ReminderScheduledData, *, since: datetime
    ) -> SendResult | None:
        return None

    async def check_auth(self) -> SendResult:
        return SendResult.sent()

    def ids(self) -> list[str]:
        return [rid for rid, _ in self.sent]


@dataclass
class Setup:
    settings: KafkaSettings
    env: dict[str, str]
    worker_topics: WorkerTopics
    topics: OperatorTopics
    sender: RecordingSender
    worker: ReminderWorker | None = None
    producer: KafkaEventProducer | None = None

    @property
    def flags(self) -> list[str]:
        t = self.topics
        return [
            "--changelog-topic",
            t.changelog.name,
            "--history-topic",
            t.history.name,
        ]

    @property
    def cancel_flags(self) -> list[str]:
        return [*self.flags, "--events-topic", self.topics.reminders.name]

    async def publish(self, *events: ReminderScheduled) -> None:
        assert self.producer is not None
        await self.producer.publish_many(self.worker_topics.reminders, events)

    async def cli(self, *argv: str) -> int:
        """`main(argv)` in a thread (it runs its own event loop), as the console script would."""
        return await asyncio.to_thread(main, list(argv))


def reminder(rid: str, run: str, due: datetime, *, expires_s: float = 60.0) -> ReminderScheduled:
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run,
            reminder_id=rid,
            kind="runner",
            team_id="T0OPS",
            channel_id="C0OPS",
            recipient_user_id="U0OPS",
            due_at=due,
            expires_at=due + timedelta(seconds=expires_s),
            place="Corner Cafe",
        )
    )


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.fixture
def setup(
    kafka_broker: BrokerHandle, unique_topic: TopicFactory, monkeypatch: pytest.MonkeyPatch
) -> Setup:
    for key, value in kafka_broker.env.items():
        monkeypatch.setenv(key, value)
    reminders = unique_topic(2, event_types=REMINDER_EVENTS_TOPIC.event_types)
    runs = unique_topic(2, event_types=RUN_EVENTS_TOPIC.event_types)
    changelog = unique_topic(2, base=REMINDER_STATE_CHANGELOG_TOPIC, dead_letter=False)
    history = unique_topic(3, base=REMINDER_HISTORY_TOPIC, dead_letter=False)
    return Setup(
        kafka_broker.settings(),
        dict(kafka_broker.env),
        WorkerTopics(reminders=reminders, runs=runs, changelog=changelog, history=history),
        OperatorTopics(changelog=changelog, history=history, reminders=reminders),
        RecordingSender(),
    )


@contextlib.asynccontextmanager
async def worker_running(setup: Setup, **overrides: Any) -> AsyncIterator[Setup]:
    """A worker with its history on, short lifetimes (settled state is pruned seconds after
    expiry), in a consumer harness of its own group."""
    registry = CollectorRegistry()
    settings = ReminderSettings(
        **{
            "history": True,
            "late_grace_s": 1.0,
            "state_margin_s": 0.0,
            "retry_initial_s": 0.1,
            "retry_max_s": 1.0,
            **overrides,
        }
    )
    async with KafkaEventProducer(setup.settings) as producer:
        worker = ReminderWorker(
            setup.sender,
            producer,
            settings,
            setup.settings,
            topics=setup.worker_topics,
            metrics=ReminderMetrics(registry),
        )
        async with worker:
            harness = KafkaConsumerHarness(
                setup.settings,
                [setup.worker_topics.reminders, setup.worker_topics.runs],
                f"test-reminders-operator-{uuid.uuid4().hex[:8]}",
                worker.process_event,
                producer=producer,
                metrics=KafkaMetrics(registry),
                on_assign=worker.on_assign,
                on_revoke=worker.on_revoke,
                commit_interval=0.2,
                stop_timeout=10.0,
            )
            task = asyncio.create_task(harness.run())
            try:
                await wait_until(
                    lambda: (harness.health().ready and worker.ready) or task.done(),
                    timeout=WAIT,
                    message="worker ready",
                )
                if task.done():
                    task.result()
                setup.worker, setup.producer = worker, producer
                yield setup
            finally:
                await harness.stop()
                await asyncio.wait_for(task, 15.0)


async def statuses(setup: Setup) -> dict[str, str]:
    listing = await list_reminders(settings=setup.settings, topics=setup.topics)
    return {v.reminder_id: str(v.status) for v in listing.reminders}


async def test_show_tells_the_whole_story_after_the_state_was_tombstoned(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    async with worker_running(setup) as s:
        event = reminder("story-1", "run-story", soon(1.5), expires_s=1.0)
        await s.publish(event)
        await wait_until(lambda: s.sender.ids() == ["story-1"], timeout=WAIT, message="sent")

        async def pruned() -> bool:
            story = await show_reminder("story-1", settings=s.settings, topics=s.topics)
            return story.now == "pruned"

        # keep_until = expiry + state margin (0): the worker tombstones it about 3 s after due
        await wait_until(pruned, timeout=WAIT, message="state tombstoned in the changelog")
        assert s.worker is not None
        worker_id = s.worker.worker_id
    capsys.readouterr()
    assert await setup.cli("reminders", "show", "story-1", *setup.flags, "--json") == ExitCode.OK
    story = json.loads(capsys.readouterr().out)
    assert story["now"] == "pruned"
    assert story["changelog"]["current"] is None
    assert [step["status"] for step in story["steps"]] == ["scheduled", "claimed", "sent"]
    scheduled, claimed, sent = story["steps"]
    assert scheduled["event_id"] == event.id
    assert scheduled["origin_topic"] == setup.worker_topics.reminders.name
    assert scheduled["due_at"] == event.data.due_at.isoformat(timespec="milliseconds")
    assert claimed["owner"] == worker_id
    assert claimed["epoch"] >= 1
    assert claimed["deadline"] > claimed["claimed_at"]
    [(_, ts)] = setup.sender.sent
    assert (sent["slack_channel"], sent["slack_ts"]) == ("D0OPS", ts)
    assert sent["writer"] == worker_id
    assert 0 <= sent["lateness_s"] < 5
    assert all(step["source"] == "history" for step in story["steps"])
    # the changelog alone no longer knows it
    assert "story-1" not in await statuses(setup)

    assert await setup.cli("reminders", "show", "story-1", *setup.flags) == ExitCode.OK
    text = capsys.readouterr().out
    assert "now       pruned: tombstoned after its lifetime ended" in text
    assert f"by {worker_id}, epoch" in text
    assert f"message ts {ts}" in text


async def test_cancel_by_id_and_by_run_and_the_worker_sends_nothing(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    async with worker_running(setup) as s:
        due = soon(6.0)
        await s.publish(
            reminder("cx-1", "run-x1", due),
            reminder("cx-2", "run-x2", due),
            reminder("cx-3", "run-x2", due),
            # due just after the others, in a run nobody cancels: once it is sent, anything of
            # the others that could have gone out has gone out
            reminder("control", "run-x3", due + timedelta(seconds=0.5)),
        )

        async def scheduled_and_told() -> bool:
            now = await statuses(s)
            if len(now) < 4 or set(now.values()) != {"scheduled"}:
                return False
            with contextlib.suppress(ValueError):  # its history may not be flushed yet
                await show_reminder("cx-1", settings=s.settings, topics=s.topics)
                return True
            return False

        await wait_until(scheduled_and_told, timeout=WAIT, message="four scheduled, cx-1 told")
        capsys.readouterr()
        assert (
            await s.cli("reminders", "cancel", "cx-1", *s.cancel_flags, "--json")
            == ExitCode.CHANGES
        )
        by_id = json.loads(capsys.readouterr().out)
        argv = ["reminders", "cancel", "--run", "run-x2", "--yes", *s.cancel_flags, "--json"]
        assert await s.cli(*argv) == ExitCode.CHANGES
        by_run = json.loads(capsys.readouterr().out)
        assert [t["action"] for t in by_run["reminders"]] == ["cancelled", "cancelled"]

        async def cancelled() -> bool:
            return {
                k: v for k, v in (await statuses(s)).items() if k != "control"
            } == dict.fromkeys(("cx-1", "cx-2", "cx-3"), "cancelled")

        await wait_until(cancelled, timeout=WAIT, message="the worker recorded three cancellations")
        await wait_until(lambda: "control" in s.sender.ids(), timeout=WAIT, message="control sent")
        assert s.sender.ids() == ["control"]

        # a second cancel of the same reminder publishes nothing and says why
        assert await s.cli("reminders", "cancel", "cx-1", *s.cancel_flags) == ExitCode.OK
        assert "already cancelled (event" in capsys.readouterr().out
        story = await show_reminder("cx-1", settings=s.settings, topics=s.topics)
    [target] = by_id["reminders"]
    assert story.current is not None
    assert story.current.record.cause_event_id == target["event_id"]
    assert [step.status for step in story.steps] == ["scheduled", "cancelled"]
    assert f"by event {target['event_id']}" in story.steps[-1].detail()
    pending = ReminderFilter(statuses=frozenset({ReminderStatus.SCHEDULED, ReminderStatus.CLAIMED}))
    assert (
        await list_reminders(settings=setup.settings, topics=setup.topics, where=pending)
    ).reminders == []


async def test_list_watch_sees_a_claim_and_a_send(setup: Setup) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(setup.env)
    argv = ["-m", "coffeebuddy.infra.kafka.provision", "reminders", "list", "--watch", "--json"]
    watch = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        *setup.flags,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert watch.stdout is not None
    assert watch.stderr is not None
    lines: list[dict[str, Any]] = []

    async def collect() -> None:
        assert watch.stdout is not None
        async for (
            line
        ) in watch.stdout:  # each as it comes: not a comprehension (that waits for EOF)
            lines.append(json.loads(line))  # noqa: PERF401

    def seen() -> list[str]:
        return [
            f"{line['change']}:{line['status']}"
            for line in lines
            if line.get("reminder_id") == "watched-1"
        ]

    reader = asyncio.create_task(collect())
    try:
        started = await asyncio.wait_for(watch.stderr.readline(), WAIT)
        assert b"watching for changes" in started, started
        async with worker_running(setup) as s:
            await s.publish(reminder("watched-1", "run-w", soon(1.0)))
            await wait_until(lambda: s.sender.ids() == ["watched-1"], timeout=WAIT, message="sent")
            await wait_until(
                lambda: "changed:sent" in seen(), timeout=WAIT, message="the watch saw the send"
            )
    finally:
        watch.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(watch.wait(), WAIT)
        await asyncio.wait_for(reader, WAIT)
    assert code == ExitCode.OK, (await watch.stderr.read()).decode()
    assert seen() == ["changed:scheduled", "changed:claimed", "changed:sent"]
    claimed = next(line for line in lines if line["status"] == "claimed")
    assert claimed["owner"] is not None
    assert claimed["deadline"] is not None


def test_documented_reminders_commands_parse_with_the_real_cli() -> None:
    """Every `coffeebuddy-kafka reminders ...` command the runbook and the provision README
    show is valid for the CLI."""
    from pathlib import Path

    from coffeebuddy.infra.kafka.provision import build_parser

    repo = Path(__file__).resolve().parents[1]
    docs = [
        repo / "services/reminder-worker/RUNBOOK.md",
        repo / "packages/kafka-provision/README.md",
    ]
    commands = [
        " ".join(line.split("#", 1)[0].split())
        for doc in docs
        for line in doc.read_text().splitlines()
        if line.strip().startswith("coffeebuddy-kafka reminders ")
    ] + [
        " ".join(match.split())
        for doc in docs
        for match in re.findall(r"`(coffeebuddy-kafka reminders [^`]+)`", doc.read_text())
    ]
    assert len(commands) >= 8
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(command.split()[1:])
        assert args.reminders_command in {"list", "show", "cancel"}, command
