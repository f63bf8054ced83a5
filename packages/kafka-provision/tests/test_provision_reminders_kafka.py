"""`coffeebuddy-kafka reminders list|show|cancel` on the session broker, through `main(argv)`.

The worker's records are written as the worker writes them (the models' `encode_state`, the
changelog partition of the run, the history partition of the reminder id), into test topics
shaped like the catalog's; the commands are pointed at them with `--changelog-topic`,
`--history-topic` and `--events-topic`. (With a real worker, and as the operator principal on
Apache Kafka: `tests/test_reminders_operator.py`, `tests/test_least_privilege_reminders.py`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import (
    ReminderCancelled,
    ReminderScheduledData,
    ReminderStatus,
    decode_event,
    encode_state,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ExitCode, main
from coffeebuddy.infra.kafka.provision.dlq import KafkaTopicReader
from coffeebuddy.infra.kafka.provision.reminders import (
    OperatorTopics,
    partition_of,
    watch_reminders,
)
from coffeebuddy.infra.kafka.provision.reminders._cancel import OPERATOR_SOURCE
from coffeebuddy.infra.kafka.provision.reminders._view import Change, Unreadable
from coffeebuddy.infra.kafka.testing import BrokerHandle, TopicFactory, wait_until
from coffeebuddy.infra.kafka.topics import (
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    TopicConfig,
)

S = ReminderStatus
PARTITIONS = 3
NOW = datetime.now(UTC).replace(microsecond=0)
CLAIM = {"owner": "worker-b", "epoch": 2}


@dataclass
class Cluster:
    """Test topics shaped like the catalog's, the broker's settings, and the CLI's topic flags."""

    settings: KafkaSettings
    changelog: TopicConfig
    history: TopicConfig
    events: TopicConfig

    @property
    def flags(self) -> list[str]:
        return ["--changelog-topic", self.changelog.name, "--history-topic", self.history.name]

    @property
    def topics(self) -> OperatorTopics:
        return OperatorTopics(self.changelog, self.history, self.events)

    def record(self, rid: str, status: S, run: str, *, due: datetime, **fields: Any) -> bytes:
        claim = fields.pop("claim", False)
        if claim:
            fields.update(CLAIM, claimed_at=due.timestamp() - 1, deadline=due.timestamp() + 14)
        data = ReminderScheduledData(
            run_id=run,
            reminder_id=rid,
            kind="runner",
            team_id="T1",
            channel_id="C1",
            recipient_user_id=fields.pop("user", "U1"),
            due_at=due,
            expires_at=due + timedelta(minutes=10),
            place="Cafe",
        )
        return encode_state(
            state_key=rid,
            status=status,
            run_id=run,
            keep_until=(due + timedelta(hours=1)).timestamp(),
            now=datetime.now(UTC).timestamp(),
            source="/test",
            writer="worker-a",
            reminder=data.model_dump_json().encode(),
            reminder_id=rid,
            **fields,
        )

    async def write(self, *steps: tuple[str, str, bytes | None], history: bool = True) -> None:
        """`(reminder id, run id, value)`: to the run's changelog partition and (not for
        tombstones) the id's history partition, in order, as the worker does."""
        async with KafkaEventProducer(self.settings) as producer:
            for rid, run, value in steps:
                await producer.send_raw(
                    self.changelog, value, key=rid.encode(), partition=partition_of(run, PARTITIONS)
                )
                if history and value is not None:
                    await producer.send_raw(
                        self.history,
                        value,
                        key=rid.encode(),
                        partition=partition_of(rid, PARTITIONS),
                    )

    async def cancellations(self) -> list[ReminderCancelled]:
        records = await KafkaTopicReader(self.settings, timeout=15).read(self.events.name)
        events = [decode_event(r.value) for r in records if r.value is not None]
        assert all(isinstance(e, ReminderCancelled) for e in events)
        return events  # type: ignore[return-value]


@pytest.fixture
def cluster(
    kafka_broker: BrokerHandle, unique_topic: TopicFactory, monkeypatch: pytest.MonkeyPatch
) -> Cluster:
    for key, value in kafka_broker.env.items():
        monkeypatch.setenv(key, value)
    return Cluster(
        kafka_broker.settings(),
        unique_topic(PARTITIONS, base=REMINDER_STATE_CHANGELOG_TOPIC, dead_letter=False),
        unique_topic(PARTITIONS, base=REMINDER_HISTORY_TOPIC, dead_letter=False),
        unique_topic(PARTITIONS, base=REMINDER_EVENTS_TOPIC),
    )


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None
) -> tuple[int, str, str]:
    """`main(argv)` (a usage error's SystemExit is its exit code), its stdout and stderr."""
    with pytest.MonkeyPatch.context() as patch:
        if stdin is not None:
            patch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_sorts_filters_and_shows_unreadable_records(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cluster
    r, in1h, in2h = c.record, NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    asyncio.run(
        c.write(
            ("a-late", "run-a", r("a-late", S.SCHEDULED, "run-a", due=in2h)),
            ("a-soon", "run-a", r("a-soon", S.CLAIMED, "run-a", due=NOW, claim=True)),
            ("b-1", "run-b", r("b-1", S.SCHEDULED, "run-b", due=in1h, user="U2")),
            ("b-1", "run-b", r("b-1", S.SENT, "run-b", due=in1h, user="U2", slack_channel="D1",
                               slack_ts="1.000100")),
            ("b-1", "run-b", r("b-1", S.CLAIMED, "run-b", due=in1h, user="U2",
                               claim=True)),  # a zombie's claim: sent stands
            ("gone", "run-b", c.record("gone", S.SENT, "run-b", due=NOW - timedelta(days=1))),
            ("gone", "run-b", None),
            ("bad", "run-b", b'{"type": "coffeebuddy.reminder.state.v1", "data": {"status": 7}}'),
        )
    )  # fmt: skip
    code, out, err = run(["reminders", "list", *c.flags], capsys)
    assert code == ExitCode.OK, err
    lines = out.splitlines()
    assert lines[0].startswith("REMINDER")
    assert [line.split()[0] for line in lines[1:4]] == ["a-soon", "b-1", "a-late"]
    assert "claimed" in lines[1]
    assert "sent" in lines[2]
    bad_partition = partition_of("run-b", PARTITIONS)
    assert lines[4].startswith(f"unreadable {c.changelog.name}[{bad_partition}]@")
    assert "(key bad): data.status: unknown status '7'" in lines[4]
    assert "3 reminders in" in err
    assert "1 unreadable records skipped" in err

    code, out, _ = run(["reminders", "list", *c.flags, "--json", "--status", "pending"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == ExitCode.OK
    assert [r.get("reminder_id") for r in rows] == ["a-soon", "a-late", None]
    assert rows[0]["owner"] == "worker-b"
    assert rows[0]["partition"] == partition_of("run-a", PARTITIONS)
    assert rows[2]["status"] == "unreadable"

    for flags, expected in (
        (["--run", "run-b"], ["b-1"]),
        (["--user", "U2"], ["b-1"]),
        (["--team", "T1"], ["a-soon", "b-1", "a-late"]),
        (["--team", "T2"], []),
        (["--due-after", "+30m", "--due-before", "+90m"], ["b-1"]),
        (["--status", "sent", "--status", "claimed"], ["a-soon", "b-1"]),
    ):
        code, out, _ = run(["reminders", "list", *c.flags, "--json", *flags], capsys)
        listed = [json.loads(line).get("reminder_id") for line in out.splitlines()]
        assert [i for i in listed if i is not None] == expected, flags

    code, _, err = run(["reminders", "list", *c.flags, "--status", "lost"], capsys)
    assert code == ExitCode.ERROR
    assert "unknown status 'lost'" in err


def test_show_reads_one_history_partition_and_the_runs_changelog_partition(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cluster
    due = NOW - timedelta(minutes=5)
    rid = "told-1"
    sent = c.record(
        rid, S.SENT, "run-t", due=due, slack_channel="D9", slack_ts=f"{due.timestamp() + 0.25:.6f}"
    )
    asyncio.run(
        c.write(
            (rid, "run-t", c.record(rid, S.SCHEDULED, "run-t", due=due, event_id="ev-1",
                                    event_source="/coffeebuddy/slack-app", origin_topic="events",
                                    origin_partition=partition_of("run-t", PARTITIONS),
                                    origin_offset=41)),
            (rid, "run-t", c.record(rid, S.CLAIMED, "run-t", due=due, claim=True)),
            (rid, "run-t", sent),
            (rid, "run-t", None),  # its lifetime ended: the changelog forgets it
        )
    )  # fmt: skip

    async def more() -> None:
        async with KafkaEventProducer(c.settings) as producer:
            mine = partition_of(rid, PARTITIONS)
            await producer.send_raw(c.history, b"\x00garbage", key=rid.encode(), partition=mine)
            other = (mine + 1) % PARTITIONS  # where the id does not map: never read
            await producer.send_raw(
                c.history,
                c.record(rid, S.DROPPED, "run-t", due=due, reason="decoy"),
                key=rid.encode(),
                partition=other,
            )

    asyncio.run(more())
    code, out, err = run(["reminders", "show", rid, *c.flags], capsys)
    assert code == ExitCode.OK, err
    assert out.startswith(f"reminder {rid} of run run-t: runner for U1 (team T1, channel C1)")
    history = f"{c.history.name}[{partition_of(rid, PARTITIONS)}]"
    changelog = f"{c.changelog.name}[{partition_of('run-t', PARTITIONS)}]"
    assert f"read      {history}, {changelog}" in out
    assert "now       pruned: tombstoned after its lifetime ended" in out
    steps = [line for line in out.splitlines() if line[:4].isdigit() or line.startswith("- ")]
    statuses = [line.split()[2 if line[:4].isdigit() else 1] for line in steps]  # time: 2 words
    assert statuses == ["scheduled", "claimed", "sent", "unreadable"]
    assert "by event ev-1 from /coffeebuddy/slack-app" in steps[0]
    assert "by worker-b, epoch 2" in steps[1]
    assert "Slack channel D9" in steps[2]
    assert "0.250 s after due" in steps[2]
    assert f"[{history}@3]" in steps[3]  # after the three states (tombstones are not history)
    assert "decoy" not in out

    code, out, _ = run(["reminders", "show", rid, *c.flags, "--json"], capsys)
    doc = json.loads(out)
    assert code == ExitCode.OK
    assert doc["now"] == "pruned"
    assert [s["status"] for s in doc["steps"]] == ["scheduled", "claimed", "sent", "unreadable"]
    assert doc["steps"][3]["offset"] == 3
    assert doc["steps"][2]["lateness_s"] == pytest.approx(0.25, abs=1e-3)


def test_show_an_unknown_id_names_it_and_the_partition_searched(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cluster
    code, out, err = run(["reminders", "show", "nobody", *c.flags], capsys)
    assert code == ExitCode.ERROR
    assert out == ""
    history = f"{c.history.name}[{partition_of('nobody', PARTITIONS)}]"
    assert f"unknown reminder id 'nobody': no record of it in {history}" in err
    assert "pass --run RUN" in err
    code, out, err = run(
        ["reminders", "show", "nobody", "--run", "run-x", *c.flags, "--json"], capsys
    )
    changelog = f"{c.changelog.name}[{partition_of('run-x', PARTITIONS)}]"
    assert code == ExitCode.ERROR
    assert f"no record of it in {history}, {changelog}" in json.loads(out)["error"]


def test_show_without_history_reads_the_changelog_of_the_given_run(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cluster
    rid = "quiet-1"
    due = NOW + timedelta(hours=1)
    asyncio.run(
        c.write(
            (rid, "run-q", c.record(rid, S.SCHEDULED, "run-q", due=due)),
            (rid, "run-q", c.record(rid, S.CANCELLED, "run-q", due=due, cause_event_id="ev-c")),
            history=False,
        )
    )
    code, _, err = run(["reminders", "show", rid, *c.flags], capsys)
    assert code == ExitCode.ERROR
    assert "pass --run RUN" in err
    code, out, err = run(["reminders", "show", rid, "--run", "run-q", *c.flags], capsys)
    assert code == ExitCode.OK, err
    assert "now       cancelled" in out
    assert "history   none:" in out
    assert "by event ev-c" in out


def test_cancel_by_id_dry_run_then_for_real(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cluster
    due = NOW + timedelta(hours=3)
    asyncio.run(c.write(("c-1", "run-c", c.record("c-1", S.SCHEDULED, "run-c", due=due))))
    argv = ["reminders", "cancel", "c-1", *c.flags, "--events-topic", c.events.name]
    code, out, err = run([*argv, "--dry-run"], capsys)
    assert code == ExitCode.CHANGES, err
    assert "c-1  scheduled, due" in out
    assert "would publish a cancellation" in out
    assert "dry run: 1 of 1 would be cancelled" in out
    assert asyncio.run(c.cancellations()) == []

    code, out, err = run([*argv, "--reason", "run moved to Friday", "--json"], capsys)
    assert code == ExitCode.CHANGES, err
    report = json.loads(out)
    [event] = asyncio.run(c.cancellations())
    assert (event.data.run_id, event.data.reminder_id) == ("run-c", "c-1")
    assert event.data.reason == "run moved to Friday"
    assert event.source == OPERATOR_SOURCE
    [target] = report["reminders"]
    assert target["action"] == "cancelled"
    assert target["event_id"] == event.id
    partition = partition_of("run-c", PARTITIONS)  # keyed by run id, as the Slack app does
    assert target["published"] == f"{c.events.name}[{partition}]@0"


def test_cancel_reports_settled_reminders_and_publishes_nothing_for_them(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cluster
    due = NOW - timedelta(minutes=1)
    dead = {"dlq_topic": "x.dlq", "dlq_partition": 0, "dlq_offset": 3, "reason": "invalid_blocks"}
    asyncio.run(
        c.write(
            ("s-1", "run-s", c.record("s-1", S.SENT, "run-s", due=due, slack_channel="D1",
                                      slack_ts="1.1")),
            ("s-2", "run-s", c.record("s-2", S.DROPPED, "run-s", due=due, reason="expired")),
            ("s-3", "run-s", c.record("s-3", S.DEAD_LETTERED, "run-s", due=due, **dead)),
            ("s-4", "run-s", c.record("s-4", S.SENT, "run-s", due=due)),
            ("s-4", "run-s", None),
        )
    )  # fmt: skip
    argv = ["reminders", "cancel", "s-1", "s-2", "s-3", "s-4", *c.flags]
    code, out, err = run([*argv, "--events-topic", c.events.name], capsys)
    assert code == ExitCode.OK, err
    lines = out.splitlines()
    assert lines[0].startswith("s-1  already sent at")
    assert lines[1] == "s-2  already dropped (expired): nothing to cancel"
    assert lines[2].startswith("s-3  dead-lettered to x.dlq[0]@3 (invalid_blocks): not pending")
    assert lines[3].startswith("s-4  not in the changelog (last history record: sent at")
    assert lines[4] == "cancelled 0 of 4"
    assert asyncio.run(c.cancellations()) == []


def test_cancel_a_run_asks_before_cancelling_several(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cluster
    due = NOW + timedelta(hours=1)
    asyncio.run(
        c.write(
            ("r-1", "run-r", c.record("r-1", S.SCHEDULED, "run-r", due=due)),
            ("r-2", "run-r", c.record("r-2", S.CLAIMED, "run-r", due=due, claim=True)),
            ("r-3", "run-r", c.record("r-3", S.SENT, "run-r", due=due, slack_channel="D",
                                      slack_ts="2.0")),
            ("x-1", "run-x", c.record("x-1", S.SCHEDULED, "run-x", due=due)),
        )
    )  # fmt: skip
    argv = ["reminders", "cancel", "--run", "run-r", *c.flags, "--events-topic", c.events.name]
    code, out, err = run(argv, capsys, stdin="n\n")
    assert code == ExitCode.ERROR
    assert "cancel these 2 reminders? [y/N]" in err
    assert "not confirmed: nothing cancelled" in err
    assert asyncio.run(c.cancellations()) == []
    code, out, err = run(argv, capsys, stdin="")  # no answer at all: no
    assert code == ExitCode.ERROR
    assert asyncio.run(c.cancellations()) == []

    code, out, err = run(argv, capsys, stdin="y\n")
    assert code == ExitCode.CHANGES, err
    published = asyncio.run(c.cancellations())
    assert sorted(e.data.reminder_id for e in published) == ["r-1", "r-2"]
    assert "r-2  claimed by worker-b" in out
    assert "a post may be under way" in out
    assert "r-3  already sent" in out
    assert "cancelled 2 of 3" in out

    code, out, err = run([*argv, "--yes", "--dry-run"], capsys)
    assert code == ExitCode.CHANGES
    assert err == ""  # --yes: no question


def test_cancel_an_unknown_id_publishes_nothing(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    c = cluster
    due = NOW + timedelta(hours=1)
    asyncio.run(c.write(("k-1", "run-k", c.record("k-1", S.SCHEDULED, "run-k", due=due))))
    argv = [
        "reminders",
        "cancel",
        "k-1",
        "k-404",
        "--yes",
        *c.flags,
        "--events-topic",
        c.events.name,
    ]
    code, out, err = run(argv, capsys)
    assert code == ExitCode.ERROR
    assert out == ""
    assert "unknown reminder id 'k-404'" in err
    assert "Nothing cancelled." in err
    assert asyncio.run(c.cancellations()) == []
    code, _, err = run(["reminders", "cancel", "--run", "run-none", *c.flags], capsys)
    assert code == ExitCode.ERROR
    assert f"no reminder of run 'run-none' in {c.changelog.name}[" in err
    code, _, err = run(["reminders", "cancel", *c.flags], capsys)
    assert code == ExitCode.ERROR
    assert "name reminder ids, or a whole run with --run RUN" in err


def test_a_missing_topic_is_named(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["reminders", "list", "--changelog-topic", "test.no-such-changelog"], capsys)
    assert code == ExitCode.ERROR
    assert "state changelog 'test.no-such-changelog' is not in the cluster's metadata" in err
    assert "may not DESCRIBE it" in err


async def test_watch_reports_each_change_after_the_listing(cluster: Cluster) -> None:
    c = cluster
    due = NOW + timedelta(minutes=1)
    await c.write(("w-1", "run-w", c.record("w-1", S.SCHEDULED, "run-w", due=due)))
    listings: list[list[str]] = []
    changes: list[Change | Unreadable] = []
    watch = asyncio.create_task(
        watch_reminders(
            lambda listing: listings.append([v.reminder_id for v in listing.reminders]),
            changes.append,
            settings=c.settings,
            topics=c.topics,
        )
    )
    try:
        await wait_until(lambda: listings == [["w-1"]], timeout=20, message="the first listing")
        await c.write(
            ("w-1", "run-w", c.record("w-1", S.CLAIMED, "run-w", due=due, claim=True)),
            ("w-1", "run-w", c.record("w-1", S.SENT, "run-w", due=due)),
            ("w-1", "run-w", c.record("w-1", S.CLAIMED, "run-w", due=due, claim=True)),  # stale
            ("w-1", "run-w", b"nonsense"),
            ("w-1", "run-w", None),
        )
        await wait_until(lambda: len(changes) >= 4, timeout=20, message="four changes")
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    seen = [
        "unreadable" if isinstance(ch, Unreadable) else f"{ch.kind}:{ch.view.status}"
        for ch in changes
    ]
    assert seen == ["changed:claimed", "changed:sent", "unreadable", "pruned:sent"]


async def test_the_reader_reads_chosen_partitions_and_follows(cluster: Cluster) -> None:
    c = cluster
    async with KafkaEventProducer(c.settings) as producer:
        for p in range(PARTITIONS):
            await producer.send_raw(c.history, b"x", key=f"k{p}".encode(), partition=p)
    reader = KafkaTopicReader(c.settings, timeout=15)
    assert await reader.partition_count(c.history.name) == PARTITIONS
    only = await reader.read(c.history.name, partitions=[1])
    assert [(r.partition, r.key) for r in only] == [(1, b"k1")]
    with pytest.raises(ValueError, match=r"has no partition \[7\] \(it has 3\)"):
        await reader.read(c.history.name, partitions=[7])
    seen: list[bytes | None] = []
    async with contextlib.aclosing(reader.follow(c.history.name, partitions=[2])) as batches:
        async for batch in batches:
            if batch is None:
                seen.append(None)
                async with KafkaEventProducer(c.settings) as producer:
                    await producer.send_raw(c.history, b"y", key=b"late", partition=2)
                continue
            seen += [record.key for record in batch]
            if b"late" in seen:
                break
    assert seen == [b"k2", None, b"late"]


async def test_the_reader_reads_every_record_of_a_burst(cluster: Cluster) -> None:
    """The embedded broker answers ListOffsets with a stale end after a burst (hundreds of
    records short, seen with the worker's batched state writes and in the list bench), while its
    fetch responses carry the true high watermark: a reader that stopped at the ListOffsets end
    lost the rest. 6,000 records in whole batches over three partitions are all read back."""
    c = cluster
    async with KafkaEventProducer(c.settings) as producer:
        for start in range(0, 6000, 2000):
            await producer.send_raw_many(
                c.history,
                [(f"b{i}".encode(), b"x" * 200, i % 3) for i in range(start, start + 2000)],
            )
    records = await KafkaTopicReader(c.settings, timeout=15).read(c.history.name)
    assert sorted(int(r.key[1:]) for r in records if r.key) == list(range(6000))
    assert [r.key for r in records if r.partition == 1][:2] == [b"b1", b"b4"]  # in offset order
