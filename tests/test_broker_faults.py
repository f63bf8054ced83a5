"""Broker faults with the production client defaults (acks=all, idempotence on), on Apache Kafka.

Like Kafka's own system tests: a broker is SIGKILLed while a producer writes and the worker
(the deployable, as a process, as its SCRAM principal over SASL_SSL) consumes; afterwards
nothing acknowledged is missing, nothing is in the log twice, and every reminder was DM'd once.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from coffeebuddy.infra.kafka.config import KafkaConnectionError, KafkaSettings, check_connection
from coffeebuddy.infra.kafka.models import decode_event
from coffeebuddy.infra.kafka.producer import KafkaEventProducer, PublishBatchError
from coffeebuddy.infra.kafka.testing import SASL_MECHANISMS, ApacheKafka, free_port, wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC
from coffeebuddy.services.fake_slack import FakeSlackServer

if TYPE_CHECKING:
    from conftest import LeakCheck, WorkerProcess, Workers

pytestmark = [pytest.mark.usefixtures("leak_check")]

BURST = 5_000


def publisher_settings(cluster: ApacheKafka, **extra: str) -> KafkaSettings:
    """slack-app over SASL_SSL, production defaults; a request timeout that outlasts a leader
    election (a SIGKILLed leader is noticed after the broker session timeout, 9 s)."""
    env = cluster.env("SASL_SSL", user="slack-app", mechanism="SCRAM-SHA-512")
    settings = KafkaSettings.from_env({**env, "KAFKA_REQUEST_TIMEOUT_MS": "30000", **extra})
    assert settings.acks == "all"
    assert settings.enable_idempotence is True
    return settings


async def settled(worker: WorkerProcess) -> bool:
    return await worker.metric("coffeebuddy_reminders_pending") == 0


async def test_single_broker_sigkilled_and_restarted_during_a_steady_stream(
    catalog_kafka: ApacheKafka,
    fake_slack: FakeSlackServer,
    workers: Workers,
    leak_check: LeakCheck,
) -> None:
    worker = workers.start(catalog_kafka, fake_slack)
    await worker.wait_ready()
    acked: list[str] = []
    failed: list[str] = []
    stop = asyncio.Event()

    async def stream() -> None:
        async with KafkaEventProducer(publisher_settings(catalog_kafka)) as producer:
            i = 0
            while not stop.is_set():
                rid = f"steady-{i}"
                i += 1
                event = workers.reminder(
                    rid, f"U0ST{i % 7}", datetime.now(UTC) + timedelta(seconds=2)
                )
                try:
                    await producer.publish(REMINDER_EVENTS_TOPIC, event)
                    acked.append(rid)
                except Exception:  # not acknowledged: allowed to be missing, never twice
                    failed.append(rid)
                await asyncio.sleep(0.05)  # the stream's pace, not a synchronisation

    task = asyncio.create_task(stream())
    try:
        await wait_until(lambda: len(acked) >= 30, timeout=30, message="the stream is flowing")
        catalog_kafka.kill(1)
        down = await worker.wait_ready(30, ready=False)
        assert down["checks"]["kafka"] is False, down  # type: ignore[index]
        assert "kafka: no Kafka broker answered" in str(down["detail"]), down
        before_restart = len(acked)
    finally:
        if catalog_kafka.pid(1) is None:
            await asyncio.to_thread(catalog_kafka.restart, 1)
    await worker.wait_ready(60)
    await wait_until(
        lambda: len(acked) >= before_restart + 30, timeout=60, message="the stream recovered"
    )
    stop.set()
    await task
    await wait_until(
        lambda: set(acked) <= set(workers.delivered(fake_slack)),
        timeout=60,
        message=f"all {len(acked)} acknowledged reminders delivered",
    )
    await wait_until(lambda: settled(worker), timeout=30, message="nothing pending")
    counts = workers.delivered(fake_slack)
    assert {rid: counts[rid] for rid in acked} == dict.fromkeys(acked, 1)
    assert all(counts[rid] <= 1 for rid in failed), "an unacknowledged reminder was sent twice"
    assert worker.process is not None
    assert worker.process.poll() is None, "the worker needed a restart"
    logs = worker.logs()
    assert "no Kafka broker answered" in logs
    assert "Kafka answers again" in logs
    assert worker.terminate() == 0, worker.log_tail()


async def _partitions(cluster: ApacheKafka, topic: str) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(**cluster.settings().admin_kwargs())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return list(described["partitions"])


async def _leader_with_most(cluster: ApacheKafka, topic: str) -> tuple[int, list[int]]:
    partitions = await _partitions(cluster, topic)
    node, _ = Counter(p["leader"] for p in partitions).most_common(1)[0]
    return node, sorted(p["partition"] for p in partitions if p["leader"] == node)


async def _ids_in_log(cluster: ApacheKafka, topic: str, prefix: str) -> Counter[str]:
    """reminder_id of every record of `topic` whose id starts with `prefix`, counted."""
    tps = [TopicPartition(topic, p["partition"]) for p in await _partitions(cluster, topic)]
    consumer = AIOKafkaConsumer(**cluster.settings().consumer_kwargs(None))
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        seen: Counter[str] = Counter()

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    if record.value is None:
                        continue
                    rid = getattr(decode_event(record.value).data, "reminder_id", "")
                    if rid.startswith(prefix):
                        seen[rid] += 1
        return seen
    finally:
        await consumer.stop()


@pytest.mark.kafka_cluster
async def test_leader_sigkilled_during_a_5000_reminder_burst_on_three_brokers(
    apache_required: None,
    kafka_cluster: ApacheKafka,
    fake_slack: FakeSlackServer,
    workers: Workers,
    leak_check: LeakCheck,
    provision_catalog: Any,
) -> None:
    await provision_catalog(kafka_cluster, "prod")  # RF 3, min.insync.replicas=2
    worker = workers.start(kafka_cluster, fake_slack, REMINDER_MAX_CONCURRENT_SENDS="64")
    await worker.wait_ready(90)
    victim, led = await _leader_with_most(kafka_cluster, REMINDER_EVENTS_TOPIC.name)
    assert led, "the victim leads some reminder partitions"
    start = datetime.now(UTC) + timedelta(seconds=15)
    events = [
        workers.reminder(f"burst-{i}", f"U0B{i % 500}", start + timedelta(milliseconds=i))
        for i in range(BURST)
    ]
    acked: set[str] = set()
    chunks = [events[i : i + 250] for i in range(0, BURST, 250)]
    async with KafkaEventProducer(publisher_settings(kafka_cluster)) as producer:
        for n, chunk in enumerate(chunks):
            if n == 4:  # 1,000 acknowledged: kill the leader mid-burst
                kafka_cluster.kill(victim)
            try:
                await producer.publish_many(REMINDER_EVENTS_TOPIC, chunk)
                acked.update(e.data.reminder_id for e in chunk)
            except PublishBatchError as exc:
                pytest.fail(f"{len(exc.failures)} of a chunk not acknowledged: {exc.failures[:3]}")
    assert len(acked) == BURST
    await wait_until(
        lambda: len(fake_slack.messages()) >= BURST // 5, timeout=120, message="DMs flowing"
    )
    await asyncio.to_thread(kafka_cluster.restart, victim)
    await wait_until(
        lambda: acked <= set(workers.delivered(fake_slack)),
        timeout=240,
        message=f"all {BURST} reminders delivered (have {len(fake_slack.messages())})",
    )
    await wait_until(lambda: settled(worker), timeout=60, message="nothing pending")
    in_log = await _ids_in_log(kafka_cluster, REMINDER_EVENTS_TOPIC.name, "burst-")
    assert set(in_log) == acked, f"{len(acked - set(in_log))} acknowledged events lost"
    assert [rid for rid, n in in_log.items() if n > 1] == [], "duplicates in the log"
    counts = workers.delivered(fake_slack)
    assert [rid for rid in acked if counts[rid] != 1] == [], "not DM'd exactly once"
    assert worker.process is not None
    assert worker.process.poll() is None
    assert worker.terminate() == 0, worker.log_tail()


async def test_worker_exits_3_when_no_broker_listens(
    catalog_kafka: ApacheKafka, fake_slack: FakeSlackServer, workers: Workers,
    leak_check: LeakCheck,
) -> None:  # fmt: skip
    address = f"127.0.0.1:{free_port()}"
    worker = workers.start(catalog_kafka, fake_slack, protocol="PLAINTEXT", bootstrap=address)
    assert worker.exit_code(60) == 3, worker.log_tail()
    (error,) = [r for r in worker.records() if r["level"] == "ERROR"]
    assert str(error["message"]).startswith("cannot reach Kafka: "), error
    assert f"nothing listens at {address}" in str(error["message"])


async def test_worker_exits_3_when_the_broker_never_answers(
    catalog_kafka: ApacheKafka, fake_slack: FakeSlackServer, workers: Workers,
    leak_check: LeakCheck,
) -> None:  # fmt: skip
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never says a word
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        worker = workers.start(catalog_kafka, fake_slack, protocol="PLAINTEXT", bootstrap=address)
        assert worker.exit_code(90) == 3, worker.log_tail()
    finally:
        silent.close()
    message = str(next(r for r in worker.records() if r["level"] == "ERROR")["message"])
    assert message.startswith("cannot reach Kafka: "), message
    assert f"{address} accepted the connection but the Kafka ApiVersions request" in message


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
async def test_unknown_user_or_wrong_password_names_the_variable_never_the_password(
    catalog_kafka: ApacheKafka, mechanism: str, leak_check: LeakCheck
) -> None:
    good = catalog_kafka.env("SASL_SSL", user="reminder-worker", mechanism=mechanism)
    password = good["KAFKA_SASL_PASSWORD"]
    for wrong in ({"KAFKA_SASL_USERNAME": "nobody"}, {"KAFKA_SASL_PASSWORD": password[::-1]}):
        settings = KafkaSettings.from_env({**good, **wrong})
        with pytest.raises(KafkaConnectionError) as caught:
            await check_connection(settings, timeout=10)
        text = str(caught.value)
        assert "KAFKA_SASL_USERNAME" in text, text
        assert mechanism in text, text
        assert repr(settings.sasl_username) in text, text
        leak_check.scan(f"{mechanism} {sorted(wrong)}", f"{text} {caught.value!r} {settings!r}")
        assert password not in text
        assert password[::-1] not in text
    await check_connection(KafkaSettings.from_env(good), timeout=10)  # the right ones work


async def test_worker_with_an_unknown_user_exits_3_naming_the_variable(
    catalog_kafka: ApacheKafka, fake_slack: FakeSlackServer, workers: Workers,
    leak_check: LeakCheck,
) -> None:  # fmt: skip
    worker = workers.make(catalog_kafka, fake_slack, mechanism="SCRAM-SHA-256")
    worker.env["KAFKA_SASL_USERNAME"] = "nobody"
    worker.start()
    assert worker.exit_code(60) == 3, worker.log_tail()
    logs = worker.logs()
    assert "SASL authentication as 'nobody' with SCRAM-SHA-256 failed" in logs, logs
    assert "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM" in logs
    assert worker.env["KAFKA_SASL_PASSWORD"] not in logs
