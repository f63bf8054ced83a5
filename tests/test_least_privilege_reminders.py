"""Least privilege of `coffeebuddy-kafka reminders` on Apache Kafka: the operator principal
(`User:reminder-operator`, SCRAM) lists, shows and cancels with the catalog's ACLs only, and is
refused, with an error naming the resource (and, from the CLI, the permission and the
principal), when it writes anywhere else, reads what it was not granted or joins a group.

The worker's records are written as the admin (the worker's job) into the catalog's changelog
and history topics: one reminder sent, one scheduled long ago and long expired (a worker that
restores it later drops it as expired at once, so the shared broker's backlog stays empty).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

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
from coffeebuddy.infra.kafka.provision.reminders import partition_of
from coffeebuddy.infra.kafka.testing import ApacheKafka
from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_WORKER_GROUP,
    RUN_EVENTS_TOPIC,
    TopicConfig,
)

pytestmark = [pytest.mark.usefixtures("leak_check")]

S = ReminderStatus
OPERATOR = "reminder-operator"
PROBE_TOPIC = "lp.reminder-operator-probe"
"""Outside the catalog and its managed prefix: nobody but the admin may write it."""


def record(rid: str, status: S, run: str, due: datetime, **fields: object) -> bytes:
    data = ReminderScheduledData(
        run_id=run,
        reminder_id=rid,
        kind="last_call",
        team_id="T0OPS",
        channel_id="C0OPS",
        recipient_user_id="U0OPS",
        due_at=due,
        expires_at=due + timedelta(hours=1),
        place="Corner Cafe",
    )
    return encode_state(
        state_key=rid,
        status=status,
        run_id=run,
        keep_until=(due + timedelta(hours=2)).timestamp(),
        now=datetime.now(UTC).timestamp(),
        source="/coffeebuddy/reminder-worker",
        writer="reminder-worker-lp",
        reminder=data.model_dump_json().encode(),
        reminder_id=rid,
        **fields,  # type: ignore[arg-type]
    )


async def write_as_the_worker(admin: KafkaSettings, run: str, due: datetime) -> None:
    changelog = await KafkaTopicReader(admin).partition_count(REMINDER_STATE_CHANGELOG_TOPIC.name)
    history = await KafkaTopicReader(admin).partition_count(REMINDER_HISTORY_TOPIC.name)
    steps = [
        ("lp-op-sent", record("lp-op-sent", S.SCHEDULED, run, due)),
        ("lp-op-sent", record("lp-op-sent", S.SENT, run, due, slack_channel="D0OPS",
                              slack_ts=f"{due.timestamp() + 0.3:.6f}")),
        ("lp-op-pending", record("lp-op-pending", S.SCHEDULED, run, due)),
    ]  # fmt: skip
    async with KafkaEventProducer(admin) as producer:
        for rid, value in steps:
            await producer.send_raw(
                REMINDER_STATE_CHANGELOG_TOPIC,
                value,
                key=rid.encode(),
                partition=partition_of(run, changelog),
            )
            await producer.send_raw(
                REMINDER_HISTORY_TOPIC,
                value,
                key=rid.encode(),
                partition=partition_of(rid, history),
            )


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _write(settings: KafkaSettings, topic: TopicConfig) -> str | None:
    """None when the principal may write `topic`, else the error (the probe is a tombstone)."""
    async with KafkaEventProducer(settings) as producer:
        try:
            await producer.send_raw(topic, None, key=b"lp-operator-probe")
        except KafkaError as exc:
            return f"{type(exc).__name__}: {exc}"
    return None


async def _join(settings: KafkaSettings, topic: str, group: str) -> str | None:
    """None when the principal may consume `topic` in `group`, else the error."""
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(group))
    try:
        consumer.subscribe([topic])
        await consumer.start()
        await consumer.getmany(timeout_ms=1500)
        await consumer.getmany(timeout_ms=1500)
    except (KafkaError, ConnectionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await consumer.stop()
    return None


async def _fetch(settings: KafkaSettings, topic: str) -> str | None:
    """None when the principal may read `topic` by assignment (no group), else the error."""
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(None))
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            return f"not authorized to describe topic {topic} (absent from its metadata)"
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.getmany(timeout_ms=1500)
    except KafkaError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await consumer.stop()
    return None


async def test_operator_lists_shows_and_cancels_with_its_grants_only(
    catalog_kafka: ApacheKafka, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = catalog_kafka.settings()
    run = "run-lp-operator"
    await write_as_the_worker(admin, run, datetime.now(UTC) - timedelta(hours=2))
    for key, value in catalog_kafka.env(
        "SASL_SSL", user=OPERATOR, mechanism="SCRAM-SHA-512"
    ).items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()

    assert await cli("reminders", "list", "--run", run) == ExitCode.OK
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["lp-op-pending", "lp-op-sent"]

    assert await cli("reminders", "show", "lp-op-sent") == ExitCode.OK
    out = capsys.readouterr().out
    assert "now       sent" in out
    assert "0.300 s after due" in out

    assert await cli("reminders", "cancel", "lp-op-sent") == ExitCode.OK
    assert "already sent" in capsys.readouterr().out
    assert await cli("reminders", "cancel", "--run", run, "--yes") == ExitCode.CHANGES
    assert "cancelled 1 of 2" in capsys.readouterr().out
    published = [
        event
        for r in await KafkaTopicReader(admin).read(REMINDER_EVENTS_TOPIC.name)
        if r.value is not None
        and isinstance(event := decode_event(r.value), ReminderCancelled)
        and event.data.run_id == run
    ]
    assert [e.data.reminder_id for e in published] == ["lp-op-pending"]


async def test_operator_is_refused_everything_else(
    catalog_kafka: ApacheKafka, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = catalog_kafka.env("SASL_SSL", user=OPERATOR, mechanism="SCRAM-SHA-512")
    operator = KafkaSettings.from_env(env)
    # The catalog's grants, as written out here: any change to them must change this test.
    grants = {
        (b.resource_type, b.resource_name, b.operation)
        for p in CATALOG.principals
        if p.name == f"User:{OPERATOR}"
        for b in p.acl_bindings()
    }
    assert {(t, n, o) for t, n, o in grants if o in {"READ", "WRITE"}} == {
        ("TOPIC", REMINDER_STATE_CHANGELOG_TOPIC.name, "READ"),
        ("TOPIC", REMINDER_HISTORY_TOPIC.name, "READ"),
        ("TOPIC", REMINDER_EVENTS_TOPIC.name, "WRITE"),
    }
    assert not [g for g in grants if g[0] == "GROUP"]

    # Writing any catalog topic but the reminder events is refused, naming the topic.
    for topic in CATALOG.topics:
        if topic.name == REMINDER_EVENTS_TOPIC.name:
            continue
        error = await _write(operator, topic)
        assert error is not None, topic.name
        assert f"TopicAuthorizationFailedError: {topic.name}" in error, error
    # Reading the reminder or run events is refused, naming the topic.
    for name in (REMINDER_EVENTS_TOPIC.name, RUN_EVENTS_TOPIC.name):
        error = await _fetch(operator, name)
        assert error is not None, name
        assert name in error, error
    # Joining a group is refused, naming the group: the commands never join one.
    for group in (REMINDER_WORKER_GROUP.name, "coffeebuddy.reminder-operator"):
        error = await _join(operator, REMINDER_STATE_CHANGELOG_TOPIC.name, group)
        assert error is not None, group
        assert f"GroupAuthorizationFailedError: {group}" in error, error

    # From the CLI: the refusal names the permission, the resource and the principal.
    admin = AIOKafkaAdminClient(**catalog_kafka.settings().admin_kwargs())
    await admin.start()
    try:
        if PROBE_TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(PROBE_TOPIC, 1, 1)])
    finally:
        await admin.close()
    run = "run-lp-refused"
    await write_as_the_worker(catalog_kafka.settings(), run, datetime.now(UTC) - timedelta(hours=2))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    argv = ["reminders", "cancel", "--run", run, "--yes", "--events-topic", PROBE_TOPIC]
    assert await cli(*argv) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert f"User:{OPERATOR} may not WRITE reminder events topic '{PROBE_TOPIC}'" in err, err
    assert "TopicAuthorizationFailedError" in err
    assert "cancellations published before this: none" in err
    argv = ["reminders", "list", "--changelog-topic", RUN_EVENTS_TOPIC.name]
    assert await cli(*argv) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert f"state changelog '{RUN_EVENTS_TOPIC.name}' is not in the cluster's metadata" in err
    assert f"User:{OPERATOR} may not DESCRIBE it" in err
